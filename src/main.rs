use std::process::ExitCode;

use wxauth::announce::Announcement;
use wxauth::config::{self, Config};
use wxauth::db::demo;
use wxauth::startup::Application;

const USAGE: &str = "\
usage: wxauth                       serve the API (configuration: see README)
       wxauth seed-demo [--force]   load the demo data; refused with WECHAT_APPID set, unless --force";

#[actix_web::main]
async fn main() -> ExitCode {
    // Before the logger starts: RUST_LOG may be set in `.env` too.
    let dotenv = Config::load_dotenv();
    env_logger::Builder::from_env(
        env_logger::Env::default().filter_or(config::RUST_LOG.name, config::RUST_LOG.default),
    )
    .init();

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

    let config = match dotenv.and_then(|()| Config::from_env()) {
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
    let announcement = Announcement::new(&config);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            log::error!("cannot start: {e}");
            eprintln!("wxauth: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    announcement.serving(app.port(), app.metrics_port());
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
