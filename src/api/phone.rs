//! `auth/bindPhone`: the `getPhoneNumber` button's result, on today's clients (a phone `code`
//! exchanged at WeChat) and on old ones (`encryptedData` + `iv`, decrypted with the user's current
//! session_key, which never leaves the server).

use actix_web::web;
use serde::{Deserialize, Serialize};

use super::extract::{AuthUser, JsonBody};
use super::{ApiResult, AppState, ok};
use crate::domain::{MobileBinding, WxUser};
use crate::error::{self, ApiError, UnloginReason};
use crate::logging::RequestId;
use crate::wechat::client::WeChatClient;
use crate::wechat::client::{CheckSessionKey, GetPhoneNumber};
use crate::wechat::crypto::{CryptoError, decrypt_open_data};
use crate::wechat::{PhoneInfo, SessionKey, WeChatError, errcode};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BindPhoneRequest {
    /// From the getPhoneNumber button; wins over `encryptedData` and `iv`.
    #[schema(max_length = 128)]
    code: Option<String>,
    /// Base64, sent together with `iv`.
    #[schema(format = Byte)]
    encrypted_data: Option<String>,
    /// Base64 of 16 bytes.
    #[schema(format = Byte)]
    iv: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BoundPhone {
    pub(crate) phone: String,
}

fn present(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `POST auth/bindPhone` `{code}` or `{encryptedData, iv}` → `{phone}`.
pub(crate) async fn bind_phone(
    state: web::Data<AppState>,
    user: AuthUser,
    JsonBody(body): JsonBody<BindPhoneRequest>,
) -> ApiResult {
    state.limits.bind_phone_by(user.user_id)?;
    let account = current_user(&state, user.user_id).await?;
    let TokenApp::MiniProgram(in_app) = token_app(&state, &account, user.jti).await? else {
        return Err(ApiError::bad_value(
            "a WeCom login has no phone number at WeChat: bindPhone needs a login with wx.login()",
        ));
    };
    let phone = match (
        present(body.code),
        present(body.encrypted_data),
        present(body.iv),
    ) {
        (Some(code), _, _) => by_code(&in_app, code).await?,
        (None, Some(data), Some(iv)) => by_open_data(&in_app, &data, &iv).await?,
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(ApiError::bad_argument(
                "encryptedData and iv must be sent together",
            ));
        }
        (None, None, None) => {
            return Err(ApiError::bad_argument(
                "code (from the getPhoneNumber button) or encryptedData and iv are required",
            ));
        }
    };
    if phone
        .watermark
        .as_ref()
        .is_some_and(|w| w.appid != in_app.appid)
    {
        log::warn!(
            "bindPhone: user {} sent data stamped for another app",
            account.id
        );
        return Err(ApiError::new(error::FOREIGN_WATERMARK));
    }
    let mobile = phone
        .mobile()
        .ok_or_else(|| ApiError::bad_value("the phone number in the data is not a phone number"))?;
    match state.db.bind_mobile(account.id, mobile.clone()).await? {
        MobileBinding::Bound => {
            log::info!("bindPhone: user {} bound a phone", account.id);
            ok(BoundPhone { phone: mobile })
        }
        MobileBinding::TakenByAnother => {
            log::info!(
                "bindPhone: user {} asked for a phone bound to another account",
                account.id
            );
            Err(ApiError::new(error::MOBILE_TAKEN))
        }
        MobileBinding::NoSuchUser => Err(ApiError::unlogin(UnloginReason::Disabled)),
    }
}

async fn current_user(state: &AppState, user_id: i64) -> Result<WxUser, ApiError> {
    state
        .db
        .user(user_id)
        .await?
        .filter(WxUser::is_usable)
        .ok_or(ApiError::unlogin(UnloginReason::Disabled))
}

/// The token's app, as bindPhone talks to it: the phone data is that app's, exchanged with its
/// access token, for the user's openid there, or decrypted with the user's session_key there.
pub(super) struct InApp {
    user_id: i64,
    appid: String,
    pub(super) wechat: actix::Addr<WeChatClient>,
    pub(super) openid: String,
    newest_session_key: Option<SessionKey>,
}

/// What a token's session is of.
pub(super) enum TokenApp {
    MiniProgram(InApp),
    /// A WeCom staff login: an employee of the corp `corpid`, with no openid at WeChat to act as.
    WeCom {
        corpid: String,
    },
}

pub(super) async fn token_app(
    state: &AppState,
    user: &WxUser,
    jti: String,
) -> Result<TokenApp, ApiError> {
    let default_appid = state.apps.default_app().appid.clone();
    let Some(found) = state.db.session_app(jti, default_appid.clone()).await? else {
        return Err(ApiError::unlogin(UnloginReason::Revoked));
    };
    if state.apps.get(&found.appid).is_none() && state.apps.of_corp(&found.appid).is_some() {
        return Ok(TokenApp::WeCom {
            corpid: found.appid,
        });
    }
    // A session of an app no longer configured has nobody to ask at WeChat.
    let Some(app) = state.apps.get(&found.appid) else {
        log::info!(
            "bindPhone: user {}'s session is of an app no longer configured",
            user.id
        );
        return Err(ApiError::unlogin(UnloginReason::Revoked));
    };
    let openid = match found.openid {
        Some(openid) => openid,
        // A user the previous release made, not yet adopted: its openid is the default app's.
        None if found.appid == default_appid => user.weixin_openid.clone(),
        None => return Err(ApiError::unlogin(UnloginReason::Revoked)),
    };
    Ok(TokenApp::MiniProgram(InApp {
        user_id: user.id,
        appid: found.appid,
        wechat: app.wechat.clone(),
        openid,
        newest_session_key: found.newest_session_key,
    }))
}

async fn by_code(app: &InApp, code: String) -> Result<PhoneInfo, ApiError> {
    if code.len() > 128 || !code.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_value("code is not a getPhoneNumber code"));
    }
    let reply = app
        .wechat
        .send(GetPhoneNumber {
            code,
            openid: app.openid.clone(),
            request_id: RequestId::current(),
        })
        .await?;
    reply.map_err(|e| match e {
        WeChatError::Api {
            errcode: errcode::INVALID_CODE | errcode::CODE_BEEN_USED,
            ..
        } => ApiError::new(error::PHONE_CODE_INVALID),
        other => ApiError::from(other),
    })
}

async fn by_open_data(app: &InApp, data: &str, iv: &str) -> Result<PhoneInfo, ApiError> {
    let Some(session_key) = app.newest_session_key.clone() else {
        log::info!(
            "bindPhone: no session_key for user {}: asking for a new login",
            app.user_id
        );
        return Err(ApiError::unlogin(UnloginReason::SessionKey));
    };
    let decrypted = decrypt_open_data(session_key.expose(), iv, data);
    let parsed = match decrypted {
        Err(CryptoError::Base64(field)) => {
            return Err(ApiError::bad_value(format!("{field} is not valid base64")));
        }
        Err(CryptoError::Length(field)) => {
            return Err(ApiError::bad_value(format!("{field} has the wrong length")));
        }
        Err(CryptoError::Decrypt) => None,
        // A wrong key yields valid padding once in a while; the JSON check catches that too.
        Ok(plain) => serde_json::from_slice::<PhoneInfo>(&plain).ok(),
    };
    if let Some(info) = parsed {
        if info.watermark.is_none() {
            return Err(ApiError::new(error::FOREIGN_WATERMARK));
        }
        return Ok(info);
    }
    // Corrupt data, or a key WeChat has replaced (the client called wx.login() without us)?
    // Only WeChat knows: ask it, without sending the key itself.
    let still_valid = app
        .wechat
        .send(CheckSessionKey {
            openid: app.openid.clone(),
            session_key,
            request_id: RequestId::current(),
        })
        .await??;
    if still_valid {
        Err(ApiError::bad_value(
            "encryptedData could not be decrypted: the data is corrupt",
        ))
    } else {
        log::info!(
            "bindPhone: user {}'s session_key is stale: asking for a new login",
            app.user_id
        );
        Err(ApiError::unlogin(UnloginReason::SessionKey))
    }
}
