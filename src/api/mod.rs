//! The HTTP layer: the mini-program API under `{CONTEXT_PATH}/wx/` (one file per resource), plus
//! the health probe. Handlers parse input, send messages to the actors and answer the envelope.

pub mod auth;
pub mod bench;
pub mod extract;
pub mod health;
pub mod home;
pub mod meeting;
pub mod phone;
pub mod profile;
pub mod user;

use std::sync::Arc;

use actix::Addr;
use actix_web::{HttpResponse, web};

use crate::actors::session::SessionCache;
use crate::actors::{DbExecutor, SessionActor, WeChatClient};
use crate::error::{ApiError, Envelope};
use crate::token::TokenIssuer;

/// What every handler can reach: the three actors and the token issuer.
#[derive(Clone)]
pub struct AppState {
    pub db: Addr<DbExecutor>,
    pub sessions: Addr<SessionActor>,
    /// The SessionActor's cache, read by the token check without a message.
    pub session_cache: Arc<SessionCache>,
    pub wechat: Addr<WeChatClient>,
    pub tokens: Arc<TokenIssuer>,
    /// Our appid: encrypted data must carry it in its watermark.
    pub appid: String,
}

pub type ApiResult = Result<HttpResponse, ApiError>;

/// errno 0 with `data`.
pub fn ok<T: serde::Serialize>(data: T) -> ApiResult {
    Ok(HttpResponse::Ok().json(Envelope::ok(data)))
}

/// errno 0 with `data: null`.
pub fn ok_empty() -> ApiResult {
    Ok(HttpResponse::Ok().json(Envelope::<()> {
        errno: 0,
        errmsg: "成功",
        data: None,
    }))
}

/// The mini-program routes, relative to `{CONTEXT_PATH}/wx`.
pub fn configure_wx(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/auth/login_by_weixin",
        web::post().to(auth::login_by_weixin),
    )
    .route("/auth/logout", web::post().to(auth::logout))
    .route("/auth/logout_all", web::post().to(auth::logout_all))
    .route("/auth/refresh", web::post().to(auth::refresh))
    .route("/auth/bindPhone", web::post().to(phone::bind_phone))
    .route("/auth/profile", web::post().to(profile::update))
    .route("/auth/info", web::get().to(profile::info))
    .route("/user/index", web::get().to(user::index))
    .route("/home/index", web::get().to(home::index))
    .route("/swiperImgs", web::get().to(home::swiper_imgs))
    .route("/meeting/list", web::get().to(meeting::list))
    .route("/meeting/detail", web::get().to(meeting::detail))
    .route("/meeting/publish", web::post().to(meeting::publish))
    .route("/meeting/join", web::post().to(meeting::join))
    .route("/meeting/leave", web::post().to(meeting::leave));
}

/// Unknown paths and methods: an envelope, not an empty 404 page.
pub async fn not_found() -> ApiResult {
    Err(ApiError::NotFound)
}
