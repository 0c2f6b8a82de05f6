//! The fake's routes: WeChat's endpoints, each answered as WeChat does, after any fault set for
//! it; and the control API under `fake/` that tests and load generators use to mint codes, set
//! faults and read call counts.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::content::{SecCheckRequest, SubscribeRequest};
use super::endpoints::{Code2SessionQuery, PhoneRequest, SessionQuery, StableTokenRequest};
use super::faults::{Fault, apply_fault};
use super::{FakeWeChat, wecom, wx_error};

/// Answers as WeChat does: HTTP 200, JSON bytes labelled `text/plain`.
pub(super) fn wechat_reply(body: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body(body.to_string())
}

async fn jscode2session(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<Code2SessionQuery>,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("jscode2session")).await {
        return reply;
    }
    wechat_reply(&fake.code2session(&q))
}

#[derive(Deserialize)]
struct TokenQuery {
    appid: Option<String>,
    secret: Option<String>,
}

async fn plain_token(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<TokenQuery>) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("token")).await {
        return reply;
    }
    wechat_reply(&fake.plain_token(q.appid.as_deref(), q.secret.as_deref()))
}

async fn stable_token(fake: web::Data<Arc<FakeWeChat>>, body: web::Bytes) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("stable_token")).await {
        return reply;
    }
    match serde_json::from_slice::<StableTokenRequest>(&body) {
        Ok(req) => wechat_reply(&fake.stable_token(&req)),
        Err(_) => wechat_reply(&wx_error(47001, "data format error")),
    }
}

#[derive(Deserialize)]
struct AccessTokenQuery {
    access_token: Option<String>,
}

async fn get_phone_number(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<AccessTokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("getuserphonenumber")).await {
        return reply;
    }
    match serde_json::from_slice::<PhoneRequest>(&body) {
        Ok(req) => wechat_reply(&fake.phone_number(q.access_token.as_deref(), &req)),
        Err(_) => wechat_reply(&wx_error(47001, "data format error")),
    }
}

async fn check_session(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<SessionQuery>,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("checksession")).await {
        return reply;
    }
    match fake.signature_ok(&q) {
        Ok(_) => wechat_reply(&serde_json::json!({ "errcode": 0, "errmsg": "ok" })),
        Err(e) => wechat_reply(&e),
    }
}

async fn reset_session_key(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<SessionQuery>,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("resetusersessionkey")).await {
        return reply;
    }
    match fake.signature_ok(&q) {
        Ok(openid) => {
            let key = fake.reset_session_key(&openid);
            wechat_reply(
                &serde_json::json!({ "errcode": 0, "errmsg": "ok", "openid": openid, "session_key": key }),
            )
        }
        Err(e) => wechat_reply(&e),
    }
}

async fn msg_sec_check(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<AccessTokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("msg_sec_check")).await {
        return reply;
    }
    match serde_json::from_slice::<SecCheckRequest>(&body) {
        Ok(req) => {
            if let Some(reply) = apply_fault(fake.user_fault("msg_sec_check", req.openid())).await {
                return reply;
            }
            wechat_reply(&fake.sec_check(q.access_token.as_deref(), &req))
        }
        Err(_) => wechat_reply(&wx_error(47001, "data format error")),
    }
}

async fn subscribe_send(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<AccessTokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("subscribe_send")).await {
        return reply;
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return wechat_reply(&wx_error(47001, "data format error"));
    };
    fake.record_subscribe_message(q.access_token.as_deref(), &json);
    let touser = serde_json::from_value::<SubscribeRequest>(json.clone()).ok();
    let fault = fake.user_fault("subscribe_send", touser.as_ref().and_then(|r| r.touser()));
    if let Some(reply) = apply_fault(fault).await {
        return reply;
    }
    wechat_reply(&fake.subscribe_send(q.access_token.as_deref(), &json))
}

#[derive(Deserialize)]
struct UserFaultQuery {
    endpoint: String,
    user: Option<String>,
    openid: Option<String>,
    /// The app a named user is meant in; the default app when not given.
    appid: Option<String>,
}

/// `POST fake/user_fault?endpoint=E&user=NAME` with a fault as the body: that endpoint misbehaves
/// for that user only.
async fn set_user_fault(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<UserFaultQuery>,
    body: web::Json<Fault>,
) -> HttpResponse {
    let Some(appid) = control_app(&fake, q.appid.as_deref()) else {
        return unknown_app();
    };
    let Some(openid) = fake.test_user(&appid, q.openid.as_deref(), q.user.as_deref()) else {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "give ?user=NAME or ?openid=ID"}));
    };
    fake.set_user_fault(&q.endpoint, &openid, body.into_inner());
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

/// `GET fake/subscribe_messages`: every subscribe message received, in order.
async fn subscribe_messages(fake: web::Data<Arc<FakeWeChat>>) -> HttpResponse {
    HttpResponse::Ok().json(fake.subscribe_messages())
}

#[derive(Deserialize)]
struct MintQuery {
    /// The app whose `wx.login()` it is; the first app when absent.
    appid: Option<String>,
    user: Option<String>,
    openid: Option<String>,
    unionid: Option<String>,
    age_secs: Option<u64>,
}

/// The app a control request is for: `appid` when given, else the first app; `None` when this
/// WeChat does not know it.
fn control_app(fake: &FakeWeChat, appid: Option<&str>) -> Option<String> {
    match appid.filter(|a| !a.is_empty()) {
        None => Some(fake.appid.clone()),
        Some(appid) => fake.knows(appid).then(|| appid.to_string()),
    }
}

fn unknown_app() -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({"error": "this WeChat knows no such appid"}))
}

async fn mint(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<MintQuery>) -> HttpResponse {
    let Some(appid) = control_app(&fake, q.appid.as_deref()) else {
        return unknown_app();
    };
    let age = Duration::from_secs(q.age_secs.unwrap_or(0));
    match (
        q.openid.as_deref().filter(|o| !o.is_empty()),
        q.user.as_deref().filter(|u| !u.is_empty()),
    ) {
        // A named user in a bound app also gets their unionid.
        (None, Some(user)) if q.unionid.is_none() && age.is_zero() => {
            HttpResponse::Ok().json(fake.mint_code_in(&appid, user))
        }
        _ => {
            let Some(openid) = fake.test_user(&appid, q.openid.as_deref(), q.user.as_deref())
            else {
                return HttpResponse::BadRequest()
                    .json(serde_json::json!({"error": "give ?user=NAME or ?openid=ID"}));
            };
            HttpResponse::Ok().json(fake.mint_app_code(&appid, &openid, q.unionid.as_deref(), age))
        }
    }
}

/// The most codes one `fake/codes` call mints.
pub(crate) const MAX_BULK_CODES: usize = 1_000_000;

#[derive(Deserialize)]
struct BulkMintQuery {
    count: usize,
    prefix: String,
    users: Option<usize>,
}

/// `POST fake/codes?count=N&prefix=P[&users=K]`: N codes, one per line (`text/plain`), for load
/// generators that post one fresh code per login.
async fn mint_bulk(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<BulkMintQuery>) -> HttpResponse {
    let prefix_ok = (1..=64).contains(&q.prefix.len())
        && q.prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !prefix_ok || !(1..=MAX_BULK_CODES).contains(&q.count) {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": "give count=1..1000000 and prefix=[A-Za-z0-9_-]{1,64}"
        }));
    }
    let codes = fake.mint_codes(&q.prefix, q.count, q.users.unwrap_or(q.count));
    let mut body = String::with_capacity(codes.len() * 32);
    for code in codes {
        body.push_str(&code);
        body.push('\n');
    }
    HttpResponse::Ok().content_type("text/plain").body(body)
}

#[derive(Deserialize)]
struct PhoneMintQuery {
    appid: Option<String>,
    user: Option<String>,
    openid: Option<String>,
    phone: String,
}

async fn mint_phone(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<PhoneMintQuery>,
) -> HttpResponse {
    let Some(appid) = control_app(&fake, q.appid.as_deref()) else {
        return unknown_app();
    };
    let Some(openid) = fake.test_user(&appid, q.openid.as_deref(), q.user.as_deref()) else {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "give ?user=NAME or ?openid=ID"}));
    };
    HttpResponse::Ok()
        .json(serde_json::json!({ "code": fake.mint_phone_code_in(&appid, &openid, &q.phone) }))
}

async fn set_fault(fake: web::Data<Arc<FakeWeChat>>, body: web::Json<Fault>) -> HttpResponse {
    fake.set_fault(body.into_inner());
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

async fn stats(fake: web::Data<Arc<FakeWeChat>>) -> HttpResponse {
    let calls = fake.state().calls.clone();
    HttpResponse::Ok().json(serde_json::json!({ "calls": calls }))
}

/// Mounts the fake's routes (relative to the scope it is mounted in).
pub fn configure(fake: Arc<FakeWeChat>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(fake))
            .route("/sns/jscode2session", web::get().to(jscode2session))
            .route("/cgi-bin/token", web::get().to(plain_token))
            .route("/cgi-bin/stable_token", web::post().to(stable_token))
            .route(
                "/wxa/business/getuserphonenumber",
                web::post().to(get_phone_number),
            )
            .route("/wxa/checksession", web::get().to(check_session))
            .route("/wxa/resetusersessionkey", web::get().to(reset_session_key))
            .route("/wxa/msg_sec_check", web::post().to(msg_sec_check))
            .route(
                "/cgi-bin/message/subscribe/send",
                web::post().to(subscribe_send),
            )
            .route("/fake/user_fault", web::post().to(set_user_fault))
            .route(
                "/fake/subscribe_messages",
                web::get().to(subscribe_messages),
            )
            .route("/fake/phone_code", web::post().to(mint_phone))
            .route("/fake/code", web::post().to(mint))
            .route("/fake/codes", web::post().to(mint_bulk))
            .route("/fake/fault", web::post().to(set_fault))
            .route("/fake/stats", web::get().to(stats))
            .configure(wecom::routes);
    }
}
