//! The errors a mini-program can see, and the one place that turns them into the wire envelope
//! `{"errno", "errmsg", "data"}` (always HTTP 200, as the client expects).
//!
//! Which type to use where:
//! - handlers return `Result<_, ApiError>`;
//! - the database layer returns `DbError`, the WeChat layer `WeChatError`; both convert into
//!   `ApiError` here, so a handler can use `?` and never builds error JSON by hand;
//! - the cause of a 502 goes to the log (without secrets), never to the client.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::log_throttle::ERRORS;
use crate::wechat::{WeChatError, errcode};

/// The wire envelope every mini-program answer uses.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub errno: i32,
    pub errmsg: &'static str,
    pub data: Option<T>,
}

impl<T: Serialize> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Envelope {
            errno: 0,
            errmsg: "成功",
            data: Some(data),
        }
    }
}

/// The errno an answer carried, left in the response's extensions by the one place that builds
/// each envelope, so the request metrics can label by errno without parsing bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// The errno of a busy refusal: this instance is at capacity and did nothing.
pub const BUSY_ERRNO: i32 = 721;

/// A busy refusal's `data`: why, and how long to wait before the retry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusyData {
    pub reason: &'static str,
    /// Milliseconds to wait before trying again.
    pub retry_after_ms: u64,
}

/// Why an argument was refused: shown to the client developer in `data.reason`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reason {
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: a required argument is missing, or the body is not JSON.
    #[error("bad argument: {0}")]
    BadArgument(String),
    /// 402: an argument is present but its value or type is wrong.
    #[error("bad argument value: {0}")]
    BadArgumentValue(String),
    /// 501: no live session; the client drops its token and opens the login page.
    #[error("not logged in")]
    Unlogin,
    /// 502: our fault (database down, misconfiguration). The cause is logged, not shown.
    #[error("internal error: {0}")]
    Serious(String),
    /// 404: no such API.
    #[error("no such api")]
    NotFound,
    /// 700: the account is disabled or deleted.
    #[error("account disabled")]
    AccountDisabled,
    /// 705: the phone number is bound to another account (litemall's errno).
    #[error("mobile bound to another user")]
    MobileTaken,
    /// 717: encrypted data carries another app's watermark.
    #[error("watermark of another app")]
    ForeignWatermark,
    /// 718: the phone button's code is invalid, expired, used or not this user's.
    #[error("wechat: invalid phone code")]
    PhoneCodeInvalid,
    /// 719: `rawData` does not match its `signature`.
    #[error("rawData signature mismatch")]
    SignatureMismatch,
    /// 720: this client, user or openid is over its rate limit.
    #[error("rate limited")]
    RateLimited,
    /// 721: this instance is at capacity; nothing was done (a login's code was not spent).
    /// The client retries after `retry_after_ms`.
    #[error("server busy: {reason}")]
    Busy {
        reason: &'static str,
        retry_after_ms: u64,
    },
    /// 710: WeChat says the login code is invalid or expired (40029).
    #[error("wechat: invalid code")]
    WxCodeInvalid,
    /// 711: WeChat says the login code was already used (40163).
    #[error("wechat: code used")]
    WxCodeUsed,
    /// 712: WeChat rate-limits this user's logins (45011).
    #[error("wechat: rate limited")]
    WxRateLimited,
    /// 713: WeChat blocks this user as high-risk (40226).
    #[error("wechat: high-risk user")]
    WxRiskyUser,
    /// 714: WeChat is busy (-1) or refused the call for a transient reason.
    #[error("wechat: busy")]
    WxBusy,
    /// 715: WeChat did not answer within WECHAT_TIMEOUT_MS.
    #[error("wechat: timeout")]
    WxTimeout,
    /// 716: WeChat answered something that is not a valid reply.
    #[error("wechat: bad response: {0}")]
    WxBadResponse(String),
}

impl ApiError {
    pub fn errno(&self) -> i32 {
        match self {
            ApiError::BadArgument(_) => 401,
            ApiError::BadArgumentValue(_) => 402,
            ApiError::Unlogin => 501,
            ApiError::Serious(_) => 502,
            ApiError::NotFound => 404,
            ApiError::AccountDisabled => 700,
            ApiError::MobileTaken => 705,
            ApiError::ForeignWatermark => 717,
            ApiError::PhoneCodeInvalid => 718,
            ApiError::SignatureMismatch => 719,
            ApiError::RateLimited => 720,
            ApiError::Busy { .. } => BUSY_ERRNO,
            ApiError::WxCodeInvalid => 710,
            ApiError::WxCodeUsed => 711,
            ApiError::WxRateLimited => 712,
            ApiError::WxRiskyUser => 713,
            ApiError::WxBusy => 714,
            ApiError::WxTimeout => 715,
            ApiError::WxBadResponse(_) => 716,
        }
    }

    pub fn errmsg(&self) -> &'static str {
        match self {
            ApiError::BadArgument(_) => "参数不对",
            ApiError::BadArgumentValue(_) => "参数值不对",
            ApiError::Unlogin => "请登录",
            ApiError::Serious(_) => "系统内部错误",
            ApiError::NotFound => "接口不存在",
            ApiError::AccountDisabled => "账号已被禁用",
            ApiError::MobileTaken => "手机号已绑定其他账号",
            ApiError::ForeignWatermark => "数据不属于本小程序，请重新授权",
            ApiError::PhoneCodeInvalid => "手机号授权已失效，请重新点击授权",
            ApiError::SignatureMismatch => "用户信息签名校验失败，请重新登录",
            ApiError::RateLimited => "请求过于频繁，请稍后再试",
            ApiError::Busy { .. } => "服务繁忙，请稍后再试",
            ApiError::WxCodeInvalid => "登录凭证无效或已过期，请重新登录",
            ApiError::WxCodeUsed => "登录凭证已被使用，请重新登录",
            ApiError::WxRateLimited => "登录过于频繁，请稍后再试",
            ApiError::WxRiskyUser => "该微信账号存在风险，暂时无法登录",
            ApiError::WxBusy => "微信服务繁忙，请稍后再试",
            ApiError::WxTimeout => "微信服务响应超时，请稍后再试",
            ApiError::WxBadResponse(_) => "微信服务返回异常，请稍后再试",
        }
    }

    pub fn bad_argument(reason: impl Into<String>) -> Self {
        ApiError::BadArgument(reason.into())
    }

    pub fn bad_value(reason: impl Into<String>) -> Self {
        ApiError::BadArgumentValue(reason.into())
    }

    pub fn serious(cause: impl std::fmt::Display) -> Self {
        ApiError::Serious(cause.to_string())
    }
}

/// Every documented errno with its message, for README and tests.
pub fn catalogue() -> Vec<(i32, &'static str)> {
    let all = [
        ApiError::BadArgument(String::new()),
        ApiError::BadArgumentValue(String::new()),
        ApiError::Unlogin,
        ApiError::Serious(String::new()),
        ApiError::NotFound,
        ApiError::AccountDisabled,
        ApiError::MobileTaken,
        ApiError::ForeignWatermark,
        ApiError::PhoneCodeInvalid,
        ApiError::SignatureMismatch,
        ApiError::RateLimited,
        ApiError::Busy {
            reason: "",
            retry_after_ms: 0,
        },
        ApiError::WxCodeInvalid,
        ApiError::WxCodeUsed,
        ApiError::WxRateLimited,
        ApiError::WxRiskyUser,
        ApiError::WxBusy,
        ApiError::WxTimeout,
        ApiError::WxBadResponse(String::new()),
    ];
    all.iter().map(|e| (e.errno(), e.errmsg())).collect()
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // A client can repeat these as fast as it likes (a slow body misses the deadline every
        // time): one line per cause per interval, with a count.
        match self {
            ApiError::Serious(cause) => log_cause(log::Level::Error, 502, cause),
            ApiError::WxBadResponse(cause) => log_cause(log::Level::Warn, 716, cause),
            // Counted and summarised once a second where the refusal is decided.
            ApiError::Busy { .. } => {}
            other => log::debug!("errno {}: {other}", other.errno()),
        }
        let mut builder = HttpResponse::build(self.status_code());
        let mut response = match self {
            ApiError::BadArgument(r) | ApiError::BadArgumentValue(r) => builder.json(Envelope {
                errno: self.errno(),
                errmsg: self.errmsg(),
                data: Some(Reason { reason: r.clone() }),
            }),
            ApiError::Busy {
                reason,
                retry_after_ms,
            } => builder.json(Envelope {
                errno: self.errno(),
                errmsg: self.errmsg(),
                data: Some(BusyData {
                    reason,
                    retry_after_ms: *retry_after_ms,
                }),
            }),
            _ => builder.json(Envelope::<()> {
                errno: self.errno(),
                errmsg: self.errmsg(),
                data: None,
            }),
        };
        response.extensions_mut().insert(Errno(self.errno()));
        response
    }
}

/// A cause reads `what went wrong: details`; the head is the kind the throttle counts, the
/// details (a driver's message, WeChat's errmsg with its request id) vary from one event to the
/// next and are shown for the first of each interval.
fn log_cause(level: log::Level, errno: i32, cause: &str) {
    match cause.split_once(": ") {
        Some((head, details)) => {
            ERRORS.log(level, &format!("errno {errno}: {head}"), Some(&details))
        }
        None => ERRORS.log(level, &format!("errno {errno}: {cause}"), None),
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            // As for any token of such a user: its sessions are revoked, the client logs in again
            // (and is then refused with 700).
            DbError::AccountNotUsable => ApiError::Unlogin,
            other => ApiError::Serious(other.to_string()),
        }
    }
}

impl From<crate::actors::db_executor::DbFailure> for ApiError {
    fn from(e: crate::actors::db_executor::DbFailure) -> Self {
        use crate::actors::db_executor::DbFailure;
        match e {
            DbFailure::Busy(busy) => busy.into(),
            DbFailure::Query(e) => e.into(),
            stopped @ DbFailure::Stopped(_) => ApiError::Serious(stopped.to_string()),
        }
    }
}

impl From<crate::admission::Busy> for ApiError {
    fn from(busy: crate::admission::Busy) -> Self {
        ApiError::Busy {
            reason: busy.reason,
            retry_after_ms: busy.retry_after.as_millis().try_into().unwrap_or(u64::MAX),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::Serious(format!("actor mailbox: {e}"))
    }
}

impl From<WeChatError> for ApiError {
    fn from(e: WeChatError) -> Self {
        match e {
            WeChatError::Api { errcode, errmsg } => match errcode {
                errcode::INVALID_CODE => ApiError::WxCodeInvalid,
                errcode::CODE_BEEN_USED => ApiError::WxCodeUsed,
                errcode::RATE_LIMITED => ApiError::WxRateLimited,
                errcode::HIGH_RISK_USER => ApiError::WxRiskyUser,
                errcode::SYSTEM_BUSY => ApiError::WxBusy,
                code if errcode::is_configuration_error(code) => {
                    ERRORS.log(
                        log::Level::Error,
                        &format!(
                            "WeChat refused our credentials (errcode {code}): check WECHAT_APPID and WECHAT_SECRET"
                        ),
                        Some(&errmsg),
                    );
                    ApiError::Serious(format!("wechat configuration error {code}"))
                }
                code => ApiError::WxBadResponse(format!("unexpected errcode {code}: {errmsg}")),
            },
            WeChatError::Timeout => ApiError::WxTimeout,
            WeChatError::Transport(cause) => {
                ERRORS.log(log::Level::Warn, "WeChat unreachable", Some(&cause));
                ApiError::WxBusy
            }
            WeChatError::BadResponse(cause) => ApiError::WxBadResponse(cause),
            WeChatError::HttpStatus(status) => ApiError::WxBadResponse(format!("HTTP {status}")),
            // Refused before anything was sent: the code is not spent, so a retry can use it.
            WeChatError::Overloaded => ApiError::Busy {
                reason: "too many WeChat calls in progress",
                retry_after_ms: 1000,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for (errno, _) in catalogue() {
            assert!(seen.insert(errno), "errno {errno} used twice");
        }
    }

    #[test]
    fn wechat_errcodes_map_to_distinct_login_errnos() {
        let map = |code| {
            ApiError::from(WeChatError::Api {
                errcode: code,
                errmsg: String::new(),
            })
            .errno()
        };
        assert_eq!(map(40029), 710);
        assert_eq!(map(40163), 711);
        assert_eq!(map(45011), 712);
        assert_eq!(map(40226), 713);
        assert_eq!(map(-1), 714);
        assert_eq!(map(40125), 502);
        assert_eq!(ApiError::from(WeChatError::Timeout).errno(), 715);
        assert_eq!(
            ApiError::from(WeChatError::BadResponse("x".into())).errno(),
            716
        );
    }
}
