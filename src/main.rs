use std::process::ExitCode;

use wxauth::announce::Announcement;
use wxauth::config::{Config, LogFormat};
use wxauth::db::demo;
use wxauth::logging;
use wxauth::startup::Application;

const USAGE: &str = "\
usage: wxauth                       serve the API (configuration: see README)
       wxauth seed-demo [--force]   load the demo data; refused with WECHAT_APPID set, unless --force";

#[actix_web::main]
async fn main() -> ExitCode {
    // Before the logger starts: RUST_LOG and LOG_FORMAT may be set in `.env` too.
    let dotenv = Config::load_dotenv();
    let log_format = LogFormat::from_env();
    logging::init(log_format);

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
            fatal(log_format, &e.to_string());
            return ExitCode::from(2);
        }
    };
    match seed_demo {
        Some(force) => seed(&config, force),
        None => serve(config).await,
    }
}

/// Why the binary cannot start, said whatever `RUST_LOG` lets through: in `text` a log line and
/// a plain `wxauth: ...` line; in `json` one `json` line, so that stderr stays parseable.
fn fatal(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => {
            log::error!("{message}");
            eprintln!("wxauth: {message}");
        }
        LogFormat::Json => {
            eprintln!(
                "{}",
                logging::json_text(log::Level::Error, "wxauth", message)
            );
        }
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
    let log_format = config.logging.format;
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            fatal(log_format, &format!("cannot start: {e}"));
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
