//! `auth/*`: WeChat login and logout.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::extract::{AuthUser, JsonBody, client_ip};
use super::{ApiResult, AppState, ok, ok_empty};
use crate::actors::db::UpsertOnLogin;
use crate::actors::session::{EndSession, StartSession};
use crate::actors::wechat::Code2Session;
use crate::db::models::{NewLoginLogEntry, NewWxUser, WxUser};
use crate::error::ApiError;
use crate::wechat::{JsCode, mask_openid};

/// The nickname WeChat itself shows for users who have not chosen one.
pub const DEFAULT_NICKNAME: &str = "微信用户";
pub const MAX_NICKNAME_CHARS: usize = 64;
pub const MAX_AVATAR_LEN: usize = 512;

/// Dates shown to the client are China Standard Time, as the mini-program's users read them.
pub fn china_time(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    match FixedOffset::east_opt(8 * 3600) {
        Some(cst) => t.with_timezone(&cst),
        None => t.fixed_offset(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    code: Option<String>,
    user_info: Option<LoginProfile>,
}

/// The profile old clients send at login (`wx.getUserInfo`'s shape). Optional: current clients
/// send the code alone and fill the profile in later.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LoginProfile {
    nick_name: Option<String>,
    avatar_url: Option<String>,
    gender: Option<i64>,
}

/// A profile that passed validation.
pub struct Profile {
    pub nickname: String,
    pub avatar: String,
    pub gender: i16,
}

impl LoginProfile {
    fn validate(self) -> Result<Profile, ApiError> {
        let nickname = self.nick_name.as_deref().map(str::trim).unwrap_or_default();
        let nickname = if nickname.is_empty() {
            DEFAULT_NICKNAME.to_string()
        } else {
            validate_nickname(nickname)?
        };
        let avatar = match self.avatar_url.as_deref().map(str::trim) {
            None | Some("") => String::new(),
            Some(url) => validate_avatar(url)?,
        };
        let gender = validate_gender(self.gender.unwrap_or(0))?;
        Ok(Profile {
            nickname,
            avatar,
            gender,
        })
    }
}

pub fn validate_nickname(raw: &str) -> Result<String, ApiError> {
    let nickname = raw.trim();
    let chars = nickname.chars().count();
    if chars == 0 || chars > MAX_NICKNAME_CHARS {
        return Err(ApiError::bad_value(format!(
            "nickName must be 1 to {MAX_NICKNAME_CHARS} characters"
        )));
    }
    if nickname.chars().any(char::is_control) {
        return Err(ApiError::bad_value(
            "nickName must not contain control characters",
        ));
    }
    Ok(nickname.to_string())
}

pub fn validate_avatar(raw: &str) -> Result<String, ApiError> {
    let url = raw.trim();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok
        || url.len() > MAX_AVATAR_LEN
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::bad_value(format!(
            "avatarUrl must be an http(s) URL of at most {MAX_AVATAR_LEN} characters"
        )));
    }
    Ok(url.to_string())
}

pub fn validate_gender(raw: i64) -> Result<i16, ApiError> {
    match raw {
        0..=2 => Ok(raw as i16),
        _ => Err(ApiError::bad_value(
            "gender must be 0 (unknown), 1 (male) or 2 (female)",
        )),
    }
}

/// The user as the mini-program shows it (litemall's field names).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfoView {
    pub nick_name: String,
    pub avatar_url: String,
    pub gender: i16,
    pub user_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub register_date: String,
    pub status: i16,
    pub user_level: i16,
    pub user_level_desc: &'static str,
}

impl From<&WxUser> for UserInfoView {
    fn from(u: &WxUser) -> Self {
        UserInfoView {
            nick_name: u.nickname.clone(),
            avatar_url: u.avatar.clone(),
            gender: u.gender,
            user_id: u.id,
            phone: Some(u.mobile.clone()).filter(|m| !m.is_empty()),
            register_date: china_time(u.add_time).format("%Y-%m-%d").to_string(),
            status: u.status,
            user_level: u.user_level,
            user_level_desc: match u.user_level {
                1 => "VIP用户",
                2 => "高级VIP用户",
                _ => "普通用户",
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    pub token: String,
    /// When the token stops working, `yyyy-MM-dd HH:mm:ss` China Standard Time.
    pub token_expire: String,
    pub user_info: UserInfoView,
}

/// Longer user agents are cut before they reach `login_log`.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// `POST auth/login_by_weixin` `{code, userInfo?}`.
pub async fn login_by_weixin(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult {
    let raw_code = body
        .code
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::bad_argument("code is required: pass the code from wx.login()"))?;
    let code = JsCode::parse(&raw_code).map_err(ApiError::bad_value)?;
    // Checked before the exchange, so a bad profile does not burn the user's code.
    let profile = body.user_info.unwrap_or_default().validate()?;

    // From here on every outcome is a login attempt: counted and written to login_log.
    let ip: String = client_ip(&req).chars().take(63).collect();
    let mut who = Who::default();
    let result = sign_in(&state, code, profile, &ip, &mut who).await;
    let errno = result.as_ref().map_or_else(ApiError::errno, |_| 0);
    state.metrics.observe_login(errno);
    state.login_log.record(NewLoginLogEntry {
        user_id: who.user_id,
        openid_masked: who.openid_masked,
        ip,
        user_agent: user_agent(&req),
        errno,
        add_time: Utc::now(),
    });
    ok(result?)
}

/// What a login attempt learned about the user before it ended, for `login_log`.
#[derive(Default)]
struct Who {
    user_id: Option<i64>,
    openid_masked: String,
}

/// The user agent, cut to `MAX_USER_AGENT_CHARS` and without control characters.
fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT_CHARS)
        .collect()
}

/// The login proper: code → WeChat session → user row → token and live session.
async fn sign_in(
    state: &AppState,
    code: JsCode,
    profile: Profile,
    ip: &str,
    who: &mut Who,
) -> Result<LoginAnswer, ApiError> {
    let session = state.wechat.send(Code2Session(code)).await??;
    who.openid_masked = mask_openid(&session.openid);

    let now = Utc::now();
    let user = state
        .db
        .send(UpsertOnLogin(NewWxUser {
            username: format!("wx_{}", crate::random::token_hex(8)),
            nickname: profile.nickname,
            avatar: profile.avatar,
            gender: profile.gender,
            weixin_openid: session.openid.clone(),
            unionid: session.unionid.clone(),
            last_login_time: Some(now),
            last_login_ip: ip.to_string(),
            add_time: now,
            update_time: now,
        }))
        .await??;
    who.user_id = Some(user.id);
    if !user.is_usable() {
        log::info!("login refused: user {} is disabled", user.id);
        return Err(ApiError::AccountDisabled);
    }

    let issued = state
        .tokens
        .issue(user.id, now.timestamp())
        .map_err(|e| ApiError::serious(format!("cannot sign token: {e}")))?;
    state
        .sessions
        .send(StartSession {
            jti: issued.jti,
            user_id: user.id,
            expires_at: issued.expires_at,
            session_key: session.session_key,
        })
        .await?;
    log::info!(
        "login ok: user {} openid {} from {ip}",
        user.id,
        who.openid_masked
    );

    let expires = DateTime::<Utc>::from_timestamp(issued.expires_at, 0).unwrap_or(now);
    Ok(LoginAnswer {
        token: issued.token,
        token_expire: china_time(expires).format("%Y-%m-%d %H:%M:%S").to_string(),
        user_info: UserInfoView::from(&user),
    })
}

/// `POST auth/logout`: the token is dead from this moment on.
pub async fn logout(state: web::Data<AppState>, user: AuthUser) -> ApiResult {
    state.sessions.send(EndSession { jti: user.jti }).await?;
    log::info!("logout: user {}", user.user_id);
    ok_empty()
}
