use std::process::ExitCode;

use wxauth::config::Config;
use wxauth::db::demo;
use wxauth::startup::{Application, DEV_FAKE_PATH};

const USAGE: &str = "\
usage: wxauth                       serve the API (configuration: see README)
       wxauth seed-demo [--force]   load the demo data; refused with WECHAT_APPID set, unless --force";

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let seed_demo = match args.as_slice() {
        [] => None,
        ["seed-demo"] => Some(false),
        ["seed-demo", "--force"] => Some(true),
        ["-h" | "--help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            eprintln!("wxauth: {e}");
            return ExitCode::from(2);
        }
    };
    match seed_demo {
        Some(force) => seed(&config, force),
        None => serve(config).await,
    }
}

fn seed(config: &Config, force: bool) -> ExitCode {
    match demo::seed_command(config, force) {
        Ok(report) if report.is_empty() => {
            println!("demo data already loaded: nothing added");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!("demo data loaded: {report}");
            ExitCode::SUCCESS
        }
        Err(e @ demo::SeedCommandError::Production) => {
            eprintln!("wxauth: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("wxauth: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let bind = config.bind_addr;
    let api_root = config.api_root();
    let dev = config.is_dev_mode();
    // Shown once, in the dev banner below; never logged in production.
    let generated_admin_token = config
        .admin_token
        .as_ref()
        .filter(|_| config.admin_token_generated)
        .map(|t| t.expose().to_string());
    let admin_on = config.admin_token.is_some();
    let metrics_addr = config.metrics_bind_addr;
    if config.bench_endpoints {
        log::warn!(
            "BENCH_ENDPOINTS=1: serving benchmark comparison routes under /bench/; not for production"
        );
    }
    if config.jwt_secret_generated {
        log::warn!(
            "JWT_SECRET is not set: generated a random one for this process; tokens will not survive a restart"
        );
    }

    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            log::error!("cannot start: {e}");
            eprintln!("wxauth: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let port = app.port();
    if dev {
        let base = format!("http://127.0.0.1:{port}");
        log::warn!("==================================================================");
        log::warn!("DEV MODE: WECHAT_APPID is not set, so wxauth serves a FAKE WeChat");
        log::warn!("at {base}{DEV_FAKE_PATH} and logs users in through it. Not for production.");
        log::warn!(
            "mint a login code: curl -s -X POST '{base}{DEV_FAKE_PATH}/fake/code?user=alice'"
        );
        if let Some(token) = &generated_admin_token {
            log::warn!("ADMIN_TOKEN is not set: generated one for this process. Status page:");
            log::warn!("  {base}/admin/   admin token: {token}");
        }
        log::warn!("==================================================================");
    }
    log::info!(
        "wxauth {} listening on {}:{port}, API at {api_root}/, health at /healthz and /readyz",
        env!("CARGO_PKG_VERSION"),
        bind.ip()
    );
    match (app.metrics_port(), metrics_addr) {
        (Some(mport), Some(addr)) => log::info!("metrics at http://{}:{mport}/metrics", addr.ip()),
        _ => log::info!("metrics at /metrics"),
    }
    if admin_on {
        log::info!("admin status page at /admin/ (Authorization: Bearer ADMIN_TOKEN)");
    } else {
        log::info!("admin status page off: ADMIN_TOKEN is not set");
    }
    let code = match app.run().await {
        Ok(()) => {
            log::info!("wxauth stopped");
            0
        }
        Err(e) => {
            log::error!("server stopped: {e}");
            1
        }
    };
    exit_after_serving(code)
}

/// Ends the process without running C `atexit` handlers. The database threads (the DbExecutor's
/// and the NOTIFY listener's) are still alive at this point; libpq talks TLS through OpenSSL, and
/// OpenSSL's exit-time cleanup running under a thread that is mid-read crashes the process
/// (seen as SIGSEGV in `OPENSSL_cleanup`). Everything worth keeping is committed or flushed
/// already, so skipping the handlers loses nothing.
fn exit_after_serving(code: i32) -> ExitCode {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process; no Rust state is observed after it.
    unsafe { libc::_exit(code) }
}
