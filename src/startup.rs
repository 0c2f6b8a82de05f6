//! Builds the running service from a `Config`: database, actors, HTTP server. `main` and the
//! tests use the same builder, so the tests run what production runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::actors::deletion::DeletionSweeper;
use crate::actors::login_log::{LoginLogPruner, LoginLogWriter};
use crate::actors::session::FlushLastSeen;
use crate::actors::{DbHandle, SessionActor, WeChatClient, listener};
use crate::admission;
use crate::api::admin::AdminToken;
use crate::api::limits::RateLimits;
use crate::api::{self, AppState, Started};
use crate::config::{Config, Secret, WeChatMode};
use crate::db::sealed::SessionKeyCipher;
use crate::db::setup::{self, SetupError};
use crate::dev::fake_wechat::{self as fake, FakeWeChat};
use crate::metrics::Metrics;
use crate::shutdown::{self, Drain};
use crate::token::TokenIssuer;

/// How long requests in flight get to finish once the listener is closed (after the drain).
pub const SHUTDOWN_GRACE_SECS: u64 = 10;
/// How long queued `login_log` rows and `last_seen_at` times get to be written before exit.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Where the built-in fake lives in dev mode.
pub const DEV_FAKE_PATH: &str = "/__wechat";
/// Where the benchmark comparison routes live when `BENCH_ENDPOINTS=1`.
pub const BENCH_PATH: &str = "/bench";
/// The appid the built-in fake plays.
pub const DEV_APPID: &str = "wxdevfake00000000";

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
    pub dev_fake: Option<Arc<FakeWeChat>>,
    pub state: AppState,
    shutdown_drain: Duration,
}

/// The address a client on this machine uses to reach a listener bound to `addr`.
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, addr.port())
}

impl Application {
    /// Prepares the database (blocking: this runs once, before serving), binds the listener
    /// (port 0 picks a free one) and starts the actors. Call `run` to serve.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        // awc on rustls needs a process-wide crypto provider; a second call is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let metrics = Arc::new(Metrics::new()?);
        let pool = setup::prepare(&config.database_url, config.db_pool_size)?;
        let bind = |addr: SocketAddr| {
            TcpListener::bind(addr).map_err(|cause| StartupError::Bind { addr, cause })
        };
        let listener = bind(config.bind_addr)?;
        let local = listener.local_addr()?;
        let metrics_listener = config.metrics_bind_addr.map(bind).transpose()?;

        let (api_base, appid, secret, dev_fake) = match &config.wechat {
            WeChatMode::Upstream {
                appid,
                secret,
                api_base,
            } => (api_base.clone(), appid.clone(), secret.clone(), None),
            WeChatMode::Dev => {
                let secret = Secret::new(crate::random::token_hex(16));
                let fake = FakeWeChat::new(DEV_APPID, secret.expose());
                let base = format!("http://{}{DEV_FAKE_PATH}", loopback_for(local));
                (base, DEV_APPID.to_string(), secret, Some(fake))
            }
        };

        let db_threads = config.db_pool_size as usize;
        let cipher = match config.session_encryption_key {
            Some(key) => SessionKeyCipher::new(&key),
            None => SessionKeyCipher::derived_from(config.jwt_secret.expose()),
        };
        let (login_admission, db_admission) = admission::for_instance(db_threads, &metrics);
        let db = DbHandle::start(pool.clone(), cipher, db_threads, db_admission);
        // Only dev mode: a production database must never receive demo rows by accident.
        if config.is_dev_mode() {
            let seeded = db
                .background()
                .seed_demo_if_empty(chrono::Utc::now())
                .await
                .map_err(|e| StartupError::Demo(e.to_string()))?;
            if let Some(report) = seeded {
                log::info!("dev mode: loaded demo data into an empty app: {report}");
            }
        }
        let sessions = SessionActor::new(
            db.clone(),
            config.session_cache_capacity,
            config.session_max_lifetime,
        );
        let session_cache = sessions.cache();
        let sessions = sessions.start();
        let session_listener = listener::spawn(
            &config.database_listen_url,
            pool.clone(),
            sessions.clone(),
            session_cache.clone(),
            metrics.clone(),
        )?;
        let wechat = WeChatClient::new(
            api_base,
            appid.clone(),
            secret,
            config.wechat_timeout,
            config.access_token_mode,
            metrics.clone(),
        )
        .start();
        LoginLogPruner::new(&db, config.login_log_retention).start();
        DeletionSweeper::new(&db).start();
        let admin = config
            .admin_token
            .as_ref()
            .map(|t| Arc::new(AdminToken::new(t)));
        if admin.is_some() && !config.admin_static_dir.join("index.html").is_file() {
            log::warn!(
                "admin page: no index.html in {} (ADMIN_STATIC_DIR); /admin/ will answer 404, the admin API still works",
                config.admin_static_dir.display()
            );
        }
        crate::log_throttle::spawn_flusher(&crate::log_throttle::ERRORS);
        crate::log_throttle::spawn_flusher(&crate::log_throttle::OVERLOAD);
        let limits = Arc::new(RateLimits::new(&config));
        let pruned = limits.clone();
        actix_web::rt::spawn(async move {
            loop {
                actix_web::rt::time::sleep(std::time::Duration::from_secs(60)).await;
                pruned.prune();
            }
        });
        let login_log = LoginLogWriter::new(&db, metrics.clone());
        login_log.run_flusher(config.login_log_flush);
        let state = AppState {
            login_log,
            db,
            login_admission,
            sessions,
            session_cache,
            listener: session_listener,
            wechat,
            // A login's token never outlives its session's maximum lifetime.
            tokens: Arc::new(TokenIssuer::new(
                config.jwt_secret.expose().as_bytes(),
                config.token_ttl.min(config.session_max_lifetime),
            )),
            limits,
            appid,
            metrics,
            admin,
            started: Started::now(),
            dev_mode: config.is_dev_mode(),
            deletion_grace: chrono::TimeDelta::from_std(config.account_deletion_grace)
                .unwrap_or(chrono::TimeDelta::days(30)),
            token_header: config.token_header.clone(),
            drain: Drain::new(),
        };

        let api_root = config.api_root();
        let app_state = web::Data::new(state.clone());
        let fake_for_app = dev_fake.clone();
        let metrics_on_main = metrics_listener.is_none();
        let admin_on = state.admin.is_some();
        let static_dir = config.admin_static_dir.clone();
        let bench_endpoints = config.bench_endpoints;
        let openapi_json: std::sync::Arc<str> =
            api::openapi::document(&api_root, state.token_header.as_str())
                .to_string()
                .into();
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(app_state.clone())
                .wrap(from_fn(api::metrics::record_request))
                .route("/healthz", web::get().to(api::health::healthz))
                .route("/readyz", web::get().to(api::health::readyz))
                .configure(|cfg| api::openapi::configure(cfg, openapi_json.clone()))
                .service(web::scope(&api_root).configure(api::configure_wx))
                .configure(|cfg| {
                    api::admin::configure(cfg, admin_on.then_some(static_dir.as_path()))
                });
            if metrics_on_main {
                app = app.route("/metrics", web::get().to(api::metrics::metrics));
            }
            if bench_endpoints {
                app = app.service(web::scope(BENCH_PATH).configure(api::bench::configure));
            }
            if let Some(fake) = &fake_for_app {
                app =
                    app.service(web::scope(DEV_FAKE_PATH).configure(fake::configure(fake.clone())));
            }
            app.default_service(web::to(api::not_found))
                .wrap(from_fn(api::middleware::request_log))
                .wrap(api::middleware::nosniff())
                .wrap(from_fn(api::middleware::close_when_draining))
        })
        .listen(listener)?
        // Signals are handled by `run`: a drain comes before the stop.
        .disable_signals()
        // After the drain: stop accepting, let requests in flight finish (bounded).
        .shutdown_timeout(SHUTDOWN_GRACE_SECS);
        if config.workers > 0 {
            server = server.workers(config.workers);
        }

        let metrics_server = match metrics_listener {
            None => None,
            Some(listener) => {
                let port = listener.local_addr()?.port();
                let app_state = web::Data::new(state.clone());
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(app_state.clone())
                        .route("/metrics", web::get().to(api::metrics::metrics))
                        .default_service(web::to(api::admin::not_found))
                        .wrap(api::middleware::nosniff())
                })
                .listen(listener)?
                .disable_signals()
                // Scraped every few seconds at most: one thread is plenty.
                .workers(1)
                .run();
                Some((port, server))
            }
        };

        Ok(Application {
            port: local.port(),
            server: server.run(),
            metrics_server,
            dev_fake,
            state,
            shutdown_drain: config.shutdown_drain,
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
