//! The HTTP side: the listeners, the routes and middleware every worker's app is built from, and
//! the servers around them (signals left to `Application::run`, a bounded graceful stop).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use super::{BENCH_PATH, DEV_FAKE_PATH, SHUTDOWN_GRACE_SECS, StartupError};
use crate::api::{self, AppState};
use crate::config::{Config, HttpConfig};
use crate::dev::fake_wechat::{self as fake, FakeWeChat};

/// The bound listeners; nothing is accepted until the servers run.
pub(super) struct Listeners {
    main: TcpListener,
    /// Where `main` is bound (port 0 in the config picks a free one).
    pub(super) local: SocketAddr,
    /// `/metrics` on its own, when `METRICS_BIND_ADDR` is set.
    metrics: Option<TcpListener>,
}

impl Listeners {
    pub(super) fn bind(config: &HttpConfig) -> Result<Listeners, StartupError> {
        let bind = |addr: SocketAddr| {
            TcpListener::bind(addr).map_err(|cause| StartupError::Bind { addr, cause })
        };
        let main = bind(config.bind_addr)?;
        let local = main.local_addr()?;
        let metrics = config.metrics_bind_addr.map(bind).transpose()?;
        Ok(Listeners {
            main,
            local,
            metrics,
        })
    }
}

/// The servers on the listeners; they serve once awaited or spawned.
pub(super) struct Servers {
    pub(super) port: u16,
    pub(super) main: Server,
    /// `/metrics` and its port, on `METRICS_BIND_ADDR`.
    pub(super) metrics: Option<(u16, Server)>,
}

/// Sets the servers up on `listeners`; `dev_fake` is mounted at `DEV_FAKE_PATH`.
pub(super) fn start(
    config: &Config,
    state: &AppState,
    listeners: Listeners,
    dev_fake: Option<Arc<FakeWeChat>>,
) -> Result<Servers, StartupError> {
    let api_root = config.http.api_root();
    let routes = Routes {
        state: web::Data::new(state.clone()),
        openapi_json: api::openapi::document(&api_root, &config.http.token_header_shown())
            .to_string()
            .into(),
        api_root,
        admin_static_dir: state
            .admin
            .is_some()
            .then(|| config.admin.static_dir.clone()),
        metrics_on_main: listeners.metrics.is_none(),
        bench_endpoints: config.http.bench_endpoints,
        dev_fake,
        dev_hosts: api::middleware::DevHosts::of(config),
    };
    let mut server = HttpServer::new(move || routes.clone().app())
        .listen(listeners.main)?
        // Signals are handled by `run`: a drain comes before the stop.
        .disable_signals()
        // After the drain: stop accepting, let requests in flight finish (bounded).
        .shutdown_timeout(SHUTDOWN_GRACE_SECS);
    if config.http.workers > 0 {
        server = server.workers(config.http.workers);
    }
    let metrics = listeners
        .metrics
        .map(|listener| metrics_server(state, listener))
        .transpose()?;
    Ok(Servers {
        port: listeners.local.port(),
        main: server.run(),
        metrics,
    })
}

/// What each worker builds its app from.
#[derive(Clone)]
struct Routes {
    state: web::Data<AppState>,
    /// `{CONTEXT_PATH}/wx`.
    api_root: String,
    openapi_json: Arc<str>,
    /// The status page's files; `None` when the admin side is off.
    admin_static_dir: Option<PathBuf>,
    /// `/metrics` is served here, not on a listener of its own.
    metrics_on_main: bool,
    bench_endpoints: bool,
    dev_fake: Option<Arc<FakeWeChat>>,
    /// The `Host` names answered, in dev mode; `None` answers any.
    dev_hosts: Option<api::middleware::DevHosts>,
}

impl Routes {
    /// Every route of the main listener, inside the middleware every answer passes.
    fn app(
        self,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        let mut app = App::new()
            .app_data(self.state)
            .wrap(from_fn(api::metrics::record_request))
            .route("/healthz", web::get().to(api::health::healthz))
            .route("/readyz", web::get().to(api::health::readyz))
            .configure(|cfg| api::openapi::configure(cfg, self.openapi_json))
            .service(web::scope(&self.api_root).configure(api::configure_wx))
            .configure(|cfg| api::admin::configure(cfg, self.admin_static_dir.as_deref()));
        if self.metrics_on_main {
            app = app.route("/metrics", web::get().to(api::metrics::metrics));
        }
        if self.bench_endpoints {
            app = app.service(web::scope(BENCH_PATH).configure(api::bench::configure));
        }
        if let Some(fake) = self.dev_fake {
            app = app.service(web::scope(DEV_FAKE_PATH).configure(fake::configure(fake)));
        }
        if let Some(hosts) = self.dev_hosts {
            app = app.app_data(hosts);
        }
        app.default_service(web::to(api::not_found))
            .wrap(from_fn(api::middleware::dev_hosts_only))
            .wrap(from_fn(api::middleware::request_log))
            .wrap(api::middleware::nosniff())
            .wrap(from_fn(api::middleware::close_when_draining))
    }
}

/// `/metrics` alone, on the listener of `METRICS_BIND_ADDR`.
fn metrics_server(state: &AppState, listener: TcpListener) -> Result<(u16, Server), StartupError> {
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
    Ok((port, server))
}
