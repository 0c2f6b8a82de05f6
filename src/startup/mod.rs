//! Builds the running service from a `Config` and runs it: `state` starts the actors behind the
//! `AppState`, `background` the upkeep beside the requests, `server` binds the listeners and sets
//! up the HTTP servers with their routes; `Application` puts them together, serves until a signal,
//! drains, and stops the upkeep before the last writes. `main` and the tests use the same
//! builder, so the tests run what production runs.

mod background;
mod server;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;

use self::server::Listeners;
use self::state::WeChatUpstream;
use crate::api::AppState;
use crate::config::Config;
use crate::db::setup::{self, SetupError};
use crate::dev::fake_wechat::FakeWeChat;
use crate::metrics::Metrics;
use crate::sessions::FlushLastSeen;
use crate::shutdown;

/// How long requests in flight get to finish once the listener is closed (after the drain).
const SHUTDOWN_GRACE_SECS: u64 = 10;
/// How long queued `login_log` rows and `last_seen_at` times get to be written before exit.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Where the built-in fake lives in dev mode.
pub(crate) const DEV_FAKE_PATH: &str = "/__wechat";
/// Where the benchmark comparison routes live when `BENCH_ENDPOINTS=1`.
const BENCH_PATH: &str = "/bench";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] SetupError),
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("http server: {0}")]
    Server(#[from] std::io::Error),
    #[error("cannot load the demo data: {0}")]
    Demo(String),
    #[error("cannot give the existing users their identities: {0}")]
    Identities(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A server running in the background (tests): where it listens and how to stop it.
pub struct Spawned {
    pub port: u16,
    pub metrics_port: Option<u16>,
    pub dev_fake: Option<Arc<FakeWeChat>>,
    pub state: AppState,
    pub handle: actix_web::dev::ServerHandle,
}

pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own listener, when `METRICS_BIND_ADDR` is set.
    metrics_server: Option<(u16, Server)>,
    /// The built-in WeChat fake (dev mode only).
    dev_fake: Option<Arc<FakeWeChat>>,
    state: AppState,
    /// The background work, stopped once the server has stopped.
    background: crate::background::Jobs,
    shutdown_drain: Duration,
}

impl Application {
    /// Prepares the database (blocking: this runs once, before serving), binds the listeners
    /// (port 0 picks a free one) and starts the actors. Call `run` to serve.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        // awc on rustls needs a process-wide crypto provider; a second call is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let metrics = Arc::new(Metrics::new()?);
        let pool = setup::prepare(&config.database.url, config.database.pool_size)?;
        let listeners = Listeners::bind(&config.http)?;
        let (upstream, dev_fake) = WeChatUpstream::for_mode(&config, listeners.local);
        let state = state::build(&config, pool, metrics, upstream).await?;
        let background = background::start(&config, &state);
        let servers = server::start(&config, &state, listeners, dev_fake.clone())?;
        Ok(Application {
            port: servers.port,
            server: servers.main,
            metrics_server: servers.metrics,
            dev_fake,
            state,
            background,
            shutdown_drain: config.http.shutdown_drain,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate `/metrics` listener, when `METRICS_BIND_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(port, _)| *port)
    }

    /// Serves until SIGTERM/SIGINT: drains for `SHUTDOWN_DRAIN_SECS`, stops accepting, lets the
    /// requests in flight finish, then writes what was queued (login_log rows, `last_seen_at`).
    /// The metrics listener stops with the main one; if it fails on its own, logins keep being
    /// served.
    pub async fn run(self) -> std::io::Result<()> {
        let state = self.state;
        actix_rt::spawn(shutdown::on_signal(
            state.drain.clone(),
            self.shutdown_drain,
            self.server.handle(),
            SHUTDOWN_GRACE_SECS,
        ));
        let result = match self.metrics_server {
            None => self.server.await,
            Some((_, metrics)) => {
                let metrics_handle = metrics.handle();
                let server = self.server;
                let main = async move {
                    let result = server.await;
                    metrics_handle.stop(true).await;
                    result
                };
                let (main, metrics) = futures_util::future::join(main, metrics).await;
                if let Err(e) = metrics {
                    log::error!("metrics listener stopped: {e}");
                }
                main
            }
        };
        self.background.stop();
        flush(&state).await;
        result
    }

    /// Serves in the background on the current actix system; for tests (no signal handling: stop
    /// it through `Spawned::handle`, drain it through `state.drain`).
    pub fn spawn(self) -> Spawned {
        let handle = self.server.handle();
        actix_web::rt::spawn(self.server);
        let metrics_port = self.metrics_server.map(|(port, server)| {
            actix_web::rt::spawn(server);
            port
        });
        Spawned {
            port: self.port,
            metrics_port,
            dev_fake: self.dev_fake,
            state: self.state,
            handle,
        }
    }
}

/// The writes that do not make a request wait: done now, before the process exits.
async fn flush(state: &AppState) {
    match tokio::time::timeout(FLUSH_LIMIT, state.login_log.flush()).await {
        Ok(0) => {}
        Ok(written) => log::info!("login_log: wrote the last {written} rows"),
        Err(_) => log::warn!(
            "login_log: {} rows still waiting after {FLUSH_LIMIT:?}; they are lost",
            state.login_log.pending()
        ),
    }
    match tokio::time::timeout(FLUSH_LIMIT, state.sessions.send(FlushLastSeen)).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => log::warn!("last_seen_at not written before exit: {e}"),
        Ok(Err(e)) => log::warn!("last_seen_at not written before exit: {e}"),
        Err(_) => log::warn!("last_seen_at not written within {FLUSH_LIMIT:?} before exit"),
    }
}
