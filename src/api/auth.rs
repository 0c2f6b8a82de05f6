//! `auth/*`: WeChat login and logout.

use actix_web::{HttpRequest, web};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::extract::{AuthUser, JsonBody, client_ip};
use super::{ApiResult, AppState, ok, ok_empty};
use crate::actors::db::UpsertOnLogin;
use crate::actors::session::{EndSession, StartSession};
use crate::actors::wechat::Code2Session;
use crate::db::models::{NewWxUser, WxUser};
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

    let session = state.wechat.send(Code2Session(code)).await??;

    let now = Utc::now();
    let ip = client_ip(&req);
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
            last_login_ip: ip.chars().take(63).collect(),
            add_time: now,
            update_time: now,
        }))
        .await??;
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
        mask_openid(&user.weixin_openid)
    );

    let expires = DateTime::<Utc>::from_timestamp(issued.expires_at, 0).unwrap_or(now);
    ok(LoginAnswer {
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
