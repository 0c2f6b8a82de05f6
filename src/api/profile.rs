//! The user's profile: shown at login and on `auth/info`, edited through `auth/profile` (WeChat's
//! current flow: the client picks avatar and nickname after login and sends them separately).

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};

use super::content_check::{self, Text};
use super::extract::{AuthUser, JsonBody};
use super::{ApiResult, AppState, ok};
use crate::china_time::china_time;
use crate::domain::{ProfileEdit, WxUser};
use crate::error::{ApiError, UnloginReason};
use crate::wechat::client::Scene;

/// The nickname WeChat itself shows for users who have not chosen one.
pub(crate) const DEFAULT_NICKNAME: &str = "微信用户";
pub(crate) const MAX_NICKNAME_CHARS: usize = 64;
pub(crate) const MAX_AVATAR_LEN: usize = 512;

pub(crate) fn validate_nickname(raw: &str) -> Result<String, ApiError> {
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
    crate::text::check_user_text(nickname)
        .map_err(|problem| ApiError::bad_value(problem.message("nickName")))?;
    Ok(nickname.to_string())
}

pub(crate) fn validate_avatar(raw: &str) -> Result<String, ApiError> {
    http_url("avatarUrl", raw, MAX_AVATAR_LEN)
}

/// Characters refused anywhere in a URL the client shows: besides whitespace and control
/// characters, those that end an HTML attribute or a CSS `url(...)`, and the backslash, which
/// browsers read as `/` and other parsers do not.
fn breaks_out(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '\\')
}

/// An http(s) URL with a host and without `user:password@`, of at most `max` characters,
/// trimmed; `field` names it in the refusal. Checked by a real URL parser (WHATWG rules, as
/// browsers and the mini-program's `<image>` read it), and stored as that parser writes it, so
/// what is stored is what every reader sees.
pub(crate) fn http_url(field: &str, raw: &str, max: usize) -> Result<String, ApiError> {
    let raw = raw.trim();
    let too_long = || ApiError::bad_value(format!("{field} must be at most {max} characters"));
    if raw.len() > max {
        return Err(too_long());
    }
    if raw.chars().any(breaks_out) {
        return Err(ApiError::bad_value(format!(
            "{field} must not contain spaces, quotes, backquotes, angle brackets, backslashes \
             or control characters"
        )));
    }
    let not_http = || {
        ApiError::bad_value(format!(
            "{field} must be an http(s) URL with a host, such as https://example.com/a.png"
        ))
    };
    let url = url::Url::parse(raw).map_err(|_| not_http())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(not_http());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::bad_value(format!(
            "{field} must not contain a user name or password (user:password@)"
        )));
    }
    let canonical = String::from(url);
    if canonical.len() > max {
        return Err(too_long());
    }
    Ok(canonical)
}

pub(crate) fn validate_gender(raw: i64) -> Result<i16, ApiError> {
    match raw {
        0..=2 => Ok(raw as i16),
        _ => Err(ApiError::bad_value(
            "gender must be 0 (unknown), 1 (male) or 2 (female)",
        )),
    }
}

/// The user as the mini-program shows it (litemall's field names).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserInfoView {
    pub(crate) nick_name: String,
    pub(crate) avatar_url: String,
    pub(crate) gender: i16,
    pub(crate) user_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<String>,
    pub(crate) register_date: String,
    pub(crate) status: i16,
    pub(crate) user_level: i16,
    pub(crate) user_level_desc: &'static str,
    /// Only on `auth/login_by_wecom` and `auth/link_wecom`: the WeCom corp (corpid) the person
    /// is staff of, as WeCom answered the `wx.qy.login()` code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) corp_id: Option<String>,
    /// With `corpId`: the person's userid in that corp (WeCom's 成员 UserID). Not the account's
    /// `userId`, which stays the same in every app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) corp_user_id: Option<String>,
}

impl UserInfoView {
    /// The view of a WeCom login or link: which corp, which employee.
    pub(crate) fn in_corp(mut self, corpid: &str, userid: &str) -> Self {
        self.corp_id = Some(corpid.to_string());
        self.corp_user_id = Some(userid.to_string());
        self
    }
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
            corp_id: None,
            corp_user_id: None,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ProfileRequest {
    /// Also accepted as `nickName`.
    #[serde(alias = "nickName")]
    #[schema(min_length = 1, max_length = 64)]
    nickname: Option<String>,
    /// An http(s) URL; also accepted as `avatarUrl`.
    #[serde(alias = "avatarUrl")]
    #[schema(max_length = 512)]
    avatar: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    #[schema(minimum = 0, maximum = 2)]
    gender: Option<i64>,
}

impl ProfileRequest {
    fn validate(self) -> Result<ProfileEdit, ApiError> {
        let edit = ProfileEdit {
            nickname: self
                .nickname
                .as_deref()
                .map(validate_nickname)
                .transpose()?,
            avatar: self.avatar.as_deref().map(validate_avatar).transpose()?,
            gender: self.gender.map(validate_gender).transpose()?,
        };
        if edit.is_empty() {
            return Err(ApiError::bad_argument(
                "give at least one of nickname, avatar, gender",
            ));
        }
        Ok(edit)
    }
}

/// `POST auth/profile` `{nickname?, avatar?, gender?}` → the updated userInfo. A new nickname
/// goes through the content check first (scene 1); there is no pending state for a nickname, so
/// one WeChat would not pass outright is refused (730), as is one that cannot be checked.
pub(crate) async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
    JsonBody(body): JsonBody<ProfileRequest>,
) -> ApiResult {
    let edit = body.validate()?;
    if let Some(nickname) = &edit.nickname {
        let text = Text {
            field: "nickName",
            value: nickname,
        };
        content_check::check(&state, &req, &user, Scene::Profile, &[text], false).await?;
    }
    let updated = state
        .db
        .update_profile(user.user_id, edit)
        .await?
        .ok_or(ApiError::unlogin(UnloginReason::Disabled))?;
    ok(UserInfoView::from(&updated))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InfoView {
    pub(crate) nick_name: String,
    pub(crate) avatar: String,
    pub(crate) gender: i16,
    pub(crate) mobile: String,
}

/// `GET auth/info`: litemall's shape.
pub(crate) async fn info(state: web::Data<AppState>, user: AuthUser) -> ApiResult {
    let found = state.db.user(user.user_id).await?;
    let u = found
        .filter(WxUser::is_usable)
        .ok_or(ApiError::unlogin(UnloginReason::Disabled))?;
    ok(InfoView {
        nick_name: u.nickname,
        avatar: u.avatar,
        gender: u.gender,
        mobile: u.mobile,
    })
}
