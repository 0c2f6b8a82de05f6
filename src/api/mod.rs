//! The HTTP layer: the mini-program API under `{CONTEXT_PATH}/wx/` (one file per resource), the
//! health probes, `/metrics`, and the admin API behind the status page. Mini-program handlers parse
//! input, send messages to the actors and answer the envelope; the operator's endpoints answer
//! plain HTTP status codes.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod bench;
pub(crate) mod content_check;
pub(crate) mod extract;
pub(crate) mod health;
pub(crate) mod home;
pub(crate) mod limits;
pub(crate) mod meeting;
pub(crate) mod metrics;
pub(crate) mod middleware;
pub mod openapi;
pub(crate) mod phone;
pub mod profile;
pub(crate) mod user;

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::http::Method;
use actix_web::{HttpResponse, Route, web};
use chrono::{DateTime, Utc};

use crate::background::login_log::LoginLogWriter;
use crate::db::DbHandle;
use crate::error::{ApiError, Envelope, Errno, SUCCESS};
use crate::metrics::Metrics;
use crate::sessions::SessionActor;
use crate::sessions::SessionCache;
use crate::sessions::listener::ListenerHealth;
use crate::token::TokenIssuer;

/// What every handler can reach: the three actors, the token issuer, and what the operator's
/// endpoints report on.
#[derive(Clone)]
pub struct AppState {
    pub db: DbHandle,
    pub sessions: Addr<SessionActor>,
    /// The SessionActor's cache, read by the token check without a message.
    pub(crate) session_cache: Arc<SessionCache>,
    /// Whether the NOTIFY listener is proven alive, for the probes and the status page.
    pub(crate) listener: Arc<ListenerHealth>,
    /// Every configured mini-program with its own WeChatClient.
    pub(crate) apps: Arc<crate::apps::ServedApps>,
    pub(crate) tokens: Arc<TokenIssuer>,
    pub(crate) limits: Arc<limits::RateLimits>,
    /// Whether and how user text is checked by WeChat before others see it.
    pub(crate) content_check: content_check::ContentCheck,
    pub(crate) metrics: Arc<Metrics>,
    pub login_log: LoginLogWriter,
    /// Logins in progress, and the queue in front of them (before any WeChat call).
    pub login_admission: Arc<crate::admission::Admission>,
    /// `None`: the admin page and API are off.
    pub(crate) admin: Option<Arc<admin::AdminToken>>,
    pub(crate) started: Started,
    pub(crate) dev_mode: bool,
    /// ACCOUNT_DELETION_GRACE_DAYS.
    pub(crate) deletion_grace: chrono::TimeDelta,
    /// The request header that carries the token (`TOKEN_HEADER`).
    pub(crate) token_header: actix_web::http::header::HeaderName,
    /// Set on SIGTERM: `/readyz` answers 503 and every answer closes its connection.
    pub(crate) drain: Arc<crate::shutdown::Drain>,
}

/// When this process started serving, for uptime.
#[derive(Clone, Copy)]
pub(crate) struct Started {
    pub(crate) at: DateTime<Utc>,
    pub(crate) instant: Instant,
}

impl Started {
    pub(crate) fn now() -> Self {
        Started {
            at: Utc::now(),
            instant: Instant::now(),
        }
    }
}

pub(crate) type ApiResult = Result<HttpResponse, ApiError>;

/// errno 0 with `data`.
pub(crate) fn ok<T: serde::Serialize>(data: T) -> ApiResult {
    Ok(with_errno_zero(HttpResponse::Ok().json(Envelope::ok(data))))
}

/// errno 0 with `data: null`.
pub(crate) fn ok_empty() -> ApiResult {
    Ok(with_errno_zero(HttpResponse::Ok().json(Envelope::<()> {
        errno: SUCCESS.errno,
        errmsg: SUCCESS.errmsg,
        data: None,
    })))
}

fn with_errno_zero(mut response: HttpResponse) -> HttpResponse {
    response.extensions_mut().insert(Errno(SUCCESS.errno));
    response
}

/// The mini-program routes, relative to `{CONTEXT_PATH}/wx`, with their methods. One table for the
/// router and for the test that holds /openapi.json to it.
pub fn wx_routes() -> Vec<(&'static str, Method, Route)> {
    vec![
        (
            "/auth/login_by_weixin",
            Method::POST,
            web::route().to(auth::login_by_weixin),
        ),
        (
            "/auth/login_by_wecom",
            Method::POST,
            web::route().to(auth::login_by_wecom),
        ),
        ("/auth/logout", Method::POST, web::route().to(auth::logout)),
        (
            "/auth/logout_all",
            Method::POST,
            web::route().to(auth::logout_all),
        ),
        (
            "/auth/link_weixin",
            Method::POST,
            web::route().to(auth::link_weixin),
        ),
        (
            "/auth/link_wecom",
            Method::POST,
            web::route().to(auth::link_wecom),
        ),
        (
            "/auth/refresh",
            Method::POST,
            web::route().to(auth::refresh),
        ),
        (
            "/auth/deactivate",
            Method::POST,
            web::route().to(account::deactivate),
        ),
        (
            "/auth/export",
            Method::GET,
            web::route().to(account::export),
        ),
        (
            "/auth/bindPhone",
            Method::POST,
            web::route().to(phone::bind_phone),
        ),
        (
            "/auth/profile",
            Method::POST,
            web::route().to(profile::update),
        ),
        ("/auth/info", Method::GET, web::route().to(profile::info)),
        ("/user/index", Method::GET, web::route().to(user::index)),
        ("/home/index", Method::GET, web::route().to(home::index)),
        (
            "/swiperImgs",
            Method::GET,
            web::route().to(home::swiper_imgs),
        ),
        ("/meeting/list", Method::GET, web::route().to(meeting::list)),
        (
            "/meeting/detail",
            Method::GET,
            web::route().to(meeting::detail),
        ),
        (
            "/meeting/publish",
            Method::POST,
            web::route().to(meeting::publish),
        ),
        (
            "/meeting/join",
            Method::POST,
            web::route().to(meeting::join),
        ),
        (
            "/meeting/leave",
            Method::POST,
            web::route().to(meeting::leave),
        ),
        (
            "/meeting/subscribe",
            Method::POST,
            web::route().to(meeting::subscribe),
        ),
    ]
}

/// Mounts `wx_routes()`.
pub(crate) fn configure_wx(cfg: &mut web::ServiceConfig) {
    for (path, method, route) in wx_routes() {
        // The deadline wraps each resource, after routing: see `middleware::deadline`.
        cfg.service(
            web::resource(path)
                .wrap(actix_web::middleware::from_fn(middleware::deadline))
                .route(route.method(method.clone()))
                // A wrong method answers the envelope too, not an empty 405.
                .default_service(web::to(move || {
                    let allow = method.clone();
                    async move { Err::<HttpResponse, _>(ApiError::WrongMethod(allow)) }
                })),
        );
    }
}

/// Unknown paths and methods: an envelope, not an empty 404 page.
pub(crate) async fn not_found() -> ApiResult {
    Err(ApiError::NotFound)
}
