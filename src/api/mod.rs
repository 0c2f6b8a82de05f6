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
use crate::error::{
    ACCOUNT_DISABLED, ApiError, BAD_ARGUMENT, BAD_ARGUMENT_VALUE, BUSY, CONTENT_REFUSED, Envelope,
    Errno, ErrnoSpec, FOREIGN_WATERMARK, MOBILE_TAKEN, PHONE_CODE_INVALID, RATE_LIMITED, SERIOUS,
    SIGNATURE_MISMATCH, SUCCESS, UNLOGIN, WX_BAD_RESPONSE, WX_BUSY, WX_CODE_INVALID, WX_CODE_USED,
    WX_RATE_LIMITED, WX_RISKY_USER, WX_TIMEOUT,
};
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

/// One operation of the mini-program API, declared once: the router mounts `route` at `path` for
/// `method`, and `/openapi.json` describes it from the same entry.
pub struct Operation {
    /// Relative to `{CONTEXT_PATH}/wx`.
    pub path: &'static str,
    pub method: Method,
    pub(crate) summary: &'static str,
    /// Needs the token header.
    pub auth: bool,
    /// The errnos it can answer besides 0.
    pub(crate) errnos: &'static [ErrnoSpec],
    pub(crate) query: fn() -> Vec<openapi::QueryParam>,
    /// The JSON body's schema.
    pub(crate) body: Option<openapi::SchemaOf>,
    /// The success `data`'s schema; `None` for `data: null`.
    pub(crate) data: Option<openapi::SchemaOf>,
    /// The handler (a capture-less closure).
    route: fn() -> Route,
}

impl Operation {
    /// An operation that needs the token, takes no query or body and answers `data: null`.
    fn new(
        method: Method,
        path: &'static str,
        route: fn() -> Route,
        summary: &'static str,
        errnos: &'static [ErrnoSpec],
    ) -> Self {
        Operation {
            path,
            method,
            summary,
            auth: true,
            errnos,
            query: Vec::new,
            body: None,
            data: None,
            route,
        }
    }

    /// Without the token.
    fn public(self) -> Self {
        Operation {
            auth: false,
            ..self
        }
    }

    fn query(self, query: fn() -> Vec<openapi::QueryParam>) -> Self {
        Operation { query, ..self }
    }

    fn body(self, body: openapi::SchemaOf) -> Self {
        Operation {
            body: Some(body),
            ..self
        }
    }

    fn data(self, data: openapi::SchemaOf) -> Self {
        Operation {
            data: Some(data),
            ..self
        }
    }
}

const LOGIN_ERRNOS: &[ErrnoSpec] = &[
    BAD_ARGUMENT,
    BAD_ARGUMENT_VALUE,
    ACCOUNT_DISABLED,
    WX_CODE_INVALID,
    WX_CODE_USED,
    WX_RATE_LIMITED,
    WX_RISKY_USER,
    WX_BUSY,
    WX_TIMEOUT,
    WX_BAD_RESPONSE,
    SIGNATURE_MISMATCH,
    RATE_LIMITED,
    BUSY,
    SERIOUS,
];
const BIND_PHONE_ERRNOS: &[ErrnoSpec] = &[
    BAD_ARGUMENT,
    BAD_ARGUMENT_VALUE,
    UNLOGIN,
    MOBILE_TAKEN,
    WX_RATE_LIMITED,
    WX_RISKY_USER,
    WX_BUSY,
    WX_TIMEOUT,
    WX_BAD_RESPONSE,
    FOREIGN_WATERMARK,
    PHONE_CODE_INVALID,
    RATE_LIMITED,
    BUSY,
    SERIOUS,
];
const LINK_ERRNOS: &[ErrnoSpec] = &[
    BAD_ARGUMENT,
    BAD_ARGUMENT_VALUE,
    UNLOGIN,
    WX_CODE_INVALID,
    WX_CODE_USED,
    WX_RATE_LIMITED,
    WX_RISKY_USER,
    WX_BUSY,
    WX_TIMEOUT,
    WX_BAD_RESPONSE,
    SIGNATURE_MISMATCH,
    BUSY,
    SERIOUS,
];
/// WeCom's refusals reach fewer errnos than WeChat's: see `wechat::wecom::wecom_error`.
const WECOM_LOGIN_ERRNOS: &[ErrnoSpec] = &[
    BAD_ARGUMENT,
    BAD_ARGUMENT_VALUE,
    ACCOUNT_DISABLED,
    WX_CODE_INVALID,
    WX_BUSY,
    WX_TIMEOUT,
    WX_BAD_RESPONSE,
    RATE_LIMITED,
    BUSY,
    SERIOUS,
];
const WECOM_LINK_ERRNOS: &[ErrnoSpec] = &[
    BAD_ARGUMENT,
    BAD_ARGUMENT_VALUE,
    UNLOGIN,
    WX_CODE_INVALID,
    WX_BUSY,
    WX_TIMEOUT,
    WX_BAD_RESPONSE,
    BUSY,
    SERIOUS,
];
/// A call with a token and a JSON body.
const AUTH_BODY_ERRNOS: &[ErrnoSpec] = &[BAD_ARGUMENT, BAD_ARGUMENT_VALUE, UNLOGIN, BUSY, SERIOUS];
/// A call with a token and a JSON body whose text goes through WeChat's content check: refused
/// as risky (730), or the check could not be made (714/715/716).
const CHECKED_BODY_ERRNOS: &[ErrnoSpec] = &[
    BAD_ARGUMENT,
    BAD_ARGUMENT_VALUE,
    UNLOGIN,
    WX_BUSY,
    WX_TIMEOUT,
    WX_BAD_RESPONSE,
    CONTENT_REFUSED,
    BUSY,
    SERIOUS,
];
/// A call with a token and nothing else to check.
const AUTH_ERRNOS: &[ErrnoSpec] = &[UNLOGIN, BUSY, SERIOUS];
/// A call with arguments but no token.
const ARGS_ERRNOS: &[ErrnoSpec] = &[BAD_ARGUMENT, BAD_ARGUMENT_VALUE, BUSY, SERIOUS];
/// A call whose arguments are all optional: only a bad value is refused.
const OPTIONAL_ARGS_ERRNOS: &[ErrnoSpec] = &[BAD_ARGUMENT_VALUE, BUSY, SERIOUS];
/// A call without arguments or token.
const PLAIN_ERRNOS: &[ErrnoSpec] = &[BUSY, SERIOUS];

/// The mini-program API: what the router mounts under `{CONTEXT_PATH}/wx` and what
/// `/openapi.json` describes.
pub fn operations() -> Vec<Operation> {
    use Method as M;
    use openapi::Schemas;
    vec![
        Operation::new(
            M::POST,
            "/auth/login_by_weixin",
            || web::to(auth::login_by_weixin),
            "Log in with the code from wx.login(); answers the token",
            LOGIN_ERRNOS,
        )
        .public()
        .body(Schemas::of::<auth::LoginRequest>)
        .data(Schemas::of::<auth::LoginAnswer>),
        Operation::new(
            M::POST,
            "/auth/login_by_wecom",
            || web::to(auth::login_by_wecom),
            "Inside WeCom: log in as staff with the code from wx.qy.login(); answers as login_by_weixin",
            WECOM_LOGIN_ERRNOS,
        )
        .public()
        .body(Schemas::of::<auth::WeComCodeRequest>)
        .data(Schemas::of::<auth::LoginAnswer>),
        Operation::new(
            M::POST,
            "/auth/logout",
            || web::to(auth::logout),
            "End this token's session",
            AUTH_ERRNOS,
        ),
        Operation::new(
            M::POST,
            "/auth/logout_all",
            || web::to(auth::logout_all),
            "End every session of the user",
            AUTH_ERRNOS,
        ),
        Operation::new(
            M::POST,
            "/auth/link_weixin",
            || web::to(auth::link_weixin),
            "Attach the person's identity in another mini-program to this account (merging the account that had it)",
            LINK_ERRNOS,
        )
        .body(Schemas::of::<auth::LinkWeixinRequest>)
        .data(Schemas::of::<auth::LinkAnswer>),
        Operation::new(
            M::POST,
            "/auth/link_wecom",
            || web::to(auth::link_wecom),
            "Attach the person's WeCom identity (code from wx.qy.login()) to this account (merging the account that had it)",
            WECOM_LINK_ERRNOS,
        )
        .body(Schemas::of::<auth::WeComCodeRequest>)
        .data(Schemas::of::<auth::LinkAnswer>),
        Operation::new(
            M::POST,
            "/auth/refresh",
            || web::to(auth::refresh),
            "A new token for the same session; the old one stops working",
            AUTH_ERRNOS,
        )
        .data(Schemas::of::<auth::RefreshAnswer>),
        Operation::new(
            M::POST,
            "/auth/deactivate",
            || web::to(account::deactivate),
            "Delete the account after the grace period; ends every session",
            AUTH_ERRNOS,
        )
        .data(Schemas::of::<account::DeactivateAnswer>),
        Operation::new(
            M::GET,
            "/auth/export",
            || web::to(account::export),
            "Everything stored about the user",
            AUTH_ERRNOS,
        )
        .data(Schemas::of::<account::ExportView>),
        Operation::new(
            M::POST,
            "/auth/bindPhone",
            || web::to(phone::bind_phone),
            "Bind the phone number from the getPhoneNumber button",
            BIND_PHONE_ERRNOS,
        )
        .body(Schemas::of::<phone::BindPhoneRequest>)
        .data(Schemas::of::<phone::BoundPhone>),
        Operation::new(
            M::POST,
            "/auth/profile",
            || web::to(profile::update),
            "Change nickname, avatar or gender (at least one); a new nickname goes through \
             WeChat's content check",
            CHECKED_BODY_ERRNOS,
        )
        .body(Schemas::of::<profile::ProfileRequest>)
        .data(Schemas::of::<profile::UserInfoView>),
        Operation::new(
            M::GET,
            "/auth/info",
            || web::to(profile::info),
            "The user's profile",
            AUTH_ERRNOS,
        )
        .data(Schemas::of::<profile::InfoView>),
        Operation::new(
            M::GET,
            "/user/index",
            || web::to(user::index),
            "How many meetings the user published and joined",
            AUTH_ERRNOS,
        )
        .data(Schemas::of::<user::UserIndex>),
        Operation::new(
            M::GET,
            "/home/index",
            || web::to(home::index),
            "Home page: swiper images and upcoming meetings",
            PLAIN_ERRNOS,
        )
        .public()
        .data(Schemas::of::<home::HomeIndex>),
        Operation::new(
            M::GET,
            "/swiperImgs",
            || web::to(home::swiper_imgs),
            "Swiper images",
            PLAIN_ERRNOS,
        )
        .public()
        .data(Schemas::array_of::<home::SwiperImageView>),
        Operation::new(
            M::GET,
            "/meeting/list",
            || web::to(meeting::list),
            "Meetings, newest first, a page at a time",
            OPTIONAL_ARGS_ERRNOS,
        )
        .public()
        .query(meeting_list_query)
        .data(Schemas::inline::<meeting::Page<meeting::MeetingView>>),
        Operation::new(
            M::GET,
            "/meeting/detail",
            || web::to(meeting::detail),
            "One meeting (one pending review or rejected only for its publisher, with the token)",
            ARGS_ERRNOS,
        )
        .public()
        .query(meeting_detail_query)
        .data(Schemas::of::<meeting::MeetingView>),
        Operation::new(
            M::POST,
            "/meeting/publish",
            || web::to(meeting::publish),
            "Publish a meeting; title, content and location go through WeChat's content \
             check (a text WeChat wants reviewed is stored pending an admin's review)",
            CHECKED_BODY_ERRNOS,
        )
        .body(Schemas::of::<meeting::PublishRequest>)
        .data(Schemas::of::<meeting::MeetingView>),
        Operation::new(
            M::POST,
            "/meeting/join",
            || web::to(meeting::join),
            "Join a meeting that has not ended",
            AUTH_BODY_ERRNOS,
        )
        .body(Schemas::of::<meeting::MeetingIdRequest>)
        .data(Schemas::of::<meeting::Membership>),
        Operation::new(
            M::POST,
            "/meeting/leave",
            || web::to(meeting::leave),
            "Leave a meeting",
            AUTH_BODY_ERRNOS,
        )
        .body(Schemas::of::<meeting::MeetingIdRequest>)
        .data(Schemas::of::<meeting::Membership>),
        Operation::new(
            M::POST,
            "/meeting/subscribe",
            || web::to(meeting::subscribe),
            "Report wx.requestSubscribeMessage's answer for the reminder template, for a \
             joined meeting: a consent gives one reminder before the start (402 with \
             data.reason when the meeting is not joined)",
            AUTH_BODY_ERRNOS,
        )
        .body(Schemas::of::<meeting::SubscribeRequest>)
        .data(Schemas::of::<meeting::Subscription>),
    ]
}

fn meeting_list_query() -> Vec<openapi::QueryParam> {
    use serde_json::json;
    vec![
        openapi::QueryParam {
            name: "page",
            required: false,
            schema: json!({ "type": "integer", "minimum": 1, "maximum": meeting::MAX_PAGE, "default": 1 }),
            description: "Page number, from 1",
        },
        openapi::QueryParam {
            name: "limit",
            required: false,
            schema: json!({ "type": "integer", "minimum": 1, "maximum": meeting::MAX_LIMIT,
                            "default": meeting::DEFAULT_LIMIT }),
            description: "Meetings per page",
        },
        openapi::QueryParam {
            name: "state",
            required: false,
            schema: json!({ "type": "integer", "enum": [1, 2] }),
            description: "1 published, 2 cancelled; absent or empty: any",
        },
    ]
}

fn meeting_detail_query() -> Vec<openapi::QueryParam> {
    vec![openapi::QueryParam {
        name: "id",
        required: true,
        schema: serde_json::json!({ "type": "integer", "format": "int64", "minimum": 1 }),
        description: "The meeting's id",
    }]
}

/// Mounts `operations()`.
pub(crate) fn configure_wx(cfg: &mut web::ServiceConfig) {
    for Operation {
        path,
        method,
        route,
        ..
    } in operations()
    {
        // The deadline wraps each resource, after routing: see `middleware::deadline`.
        cfg.service(
            web::resource(path)
                .wrap(actix_web::middleware::from_fn(middleware::deadline))
                .route(route().method(method.clone()))
                // A wrong method answers the envelope too, not an empty 405.
                .default_service(web::to(move || {
                    let allow = method.clone();
                    async move { Err::<HttpResponse, _>(ApiError::wrong_method(allow)) }
                })),
        );
    }
}

/// Unknown paths and methods: an envelope, not an empty 404 page.
pub(crate) async fn not_found() -> ApiResult {
    Err(ApiError::new(crate::error::NOT_FOUND))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{TestRequest, call_service, init_service};

    /// Each operation's path answers its method with its handler: not the 404 of an unknown
    /// path, not the 405 of another method (the handlers fail here, without the app's state).
    #[actix_web::test]
    async fn every_operation_is_routed_for_its_method() {
        let app = init_service(
            actix_web::App::new()
                .service(web::scope("/wx").configure(configure_wx))
                .default_service(web::to(not_found)),
        )
        .await;
        let status = |method: Method, path: &str| {
            let request = TestRequest::default()
                .method(method)
                .uri(&format!("/wx{path}"))
                .to_request();
            let app = &app;
            async move { call_service(app, request).await.status().as_u16() }
        };
        for op in operations() {
            let answered = status(op.method.clone(), op.path).await;
            assert!(
                ![404, 405].contains(&answered),
                "{} {} answered {answered}",
                op.method,
                op.path
            );
        }
        assert_eq!(status(Method::GET, "/no/such/api").await, 404);
        assert_eq!(status(Method::DELETE, "/auth/logout").await, 405);
    }
}
