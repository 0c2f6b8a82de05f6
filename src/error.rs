//! The errors a mini-program can see, and the one place that turns them into the wire envelope
//! `{"errno", "errmsg", "data"}` (always HTTP 200, as the client expects).
//!
//! Which type to use where:
//! - handlers return `Result<_, ApiError>`;
//! - the database layer returns `DbError`, the WeChat layer `WeChatError`; both convert into
//!   `ApiError` here, so a handler can use `?` and never builds error JSON by hand;
//! - something of ours that failed is `ApiError::serious(cause)` (or `internal(what, cause)` to
//!   say what was being done): the cause keeps its `source()` chain and goes to the log (without
//!   secrets), never to the client.
//!
//! Every errno is declared once, in `CATALOGUE`: its `errmsg` on the wire, a label for operators
//! and when a client gets it. The envelope, `/openapi.json`, the status page and README's errno
//! table (a test holds it equal) all read it from there. An `ApiError` is one of these entries
//! (`ApiError::new(MOBILE_TAKEN)`) with the `data` some of them carry (`bad_value(reason)`,
//! `busy(reason, retry_after_ms)`, ...) and, for the log only, its cause and the place that
//! raised it: a new errno is its `ErrnoSpec` const and its line in `CATALOGUE`, nothing else.

use std::error::Error as StdError;
use std::fmt;
use std::panic::Location;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::db::DbError;
use crate::log_throttle::ERRORS;
use crate::wechat::{WeChatError, errcode};

/// One errno of the wire contract and everything said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrnoSpec {
    pub errno: i32,
    /// The envelope's `errmsg`: the mini-program may show it to its user as it is.
    pub(crate) errmsg: &'static str,
    /// A few words for operators: the status page and the log lines.
    pub label: &'static str,
    /// When a client gets it (README's errno table, in Markdown).
    pub(crate) when: &'static str,
}

pub(crate) const SUCCESS: ErrnoSpec = ErrnoSpec {
    errno: 0,
    errmsg: "成功",
    label: "success",
    when: "success",
};
pub(crate) const BAD_ARGUMENT: ErrnoSpec = ErrnoSpec {
    errno: 401,
    errmsg: "参数不对",
    label: "bad argument",
    when: "a required argument is missing, the body is empty or not JSON (`data.reason` says which)",
};
pub(crate) const BAD_ARGUMENT_VALUE: ErrnoSpec = ErrnoSpec {
    errno: 402,
    errmsg: "参数值不对",
    label: "bad argument value",
    when: "a value has the wrong type or is out of range, or the body is over 16 KiB; an unknown \
           meeting id; joining a cancelled or finished meeting (`data.reason`)",
};
pub(crate) const NOT_FOUND: ErrnoSpec = ErrnoSpec {
    errno: 404,
    errmsg: "接口不存在",
    label: "no such API",
    when: "no such API (HTTP 404)",
};
pub(crate) const WRONG_METHOD: ErrnoSpec = ErrnoSpec {
    errno: 405,
    errmsg: "请求方法不对",
    label: "wrong method",
    when: "the API exists but not with this method (HTTP 405; the `Allow` header names the one it takes)",
};
pub(crate) const UNLOGIN: ErrnoSpec = ErrnoSpec {
    errno: 501,
    errmsg: "请登录",
    label: "not logged in",
    when: "no live session: log in again; `data.reason` says why (see *Why a 501*)",
};
pub(crate) const SERIOUS: ErrnoSpec = ErrnoSpec {
    errno: 502,
    errmsg: "系统内部错误",
    label: "internal error",
    when: "our fault: database down, request deadline missed, WeChat refusing our appid/secret \
           (logged loudly)",
};
pub(crate) const ACCOUNT_DISABLED: ErrnoSpec = ErrnoSpec {
    errno: 700,
    errmsg: "账号已被禁用",
    label: "account disabled",
    when: "the account is disabled, or its deletion is pending and this login cannot restore it \
           (the account was disabled, or the deletion was asked for while this login was under way)",
};
pub(crate) const MOBILE_TAKEN: ErrnoSpec = ErrnoSpec {
    errno: 705,
    errmsg: "手机号已绑定其他账号",
    label: "phone bound to another account",
    when: "bindPhone: the phone is bound to another account",
};
pub(crate) const WX_CODE_INVALID: ErrnoSpec = ErrnoSpec {
    errno: 710,
    errmsg: "登录凭证无效或已过期，请重新登录",
    label: "WeChat: invalid code",
    when: "WeChat (or WeCom) 40029: invalid or expired code; call `wx.login()` (inside WeCom \
           `wx.qy.login()`) again",
};
pub(crate) const WX_CODE_USED: ErrnoSpec = ErrnoSpec {
    errno: 711,
    errmsg: "登录凭证已被使用，请重新登录",
    label: "WeChat: code already used",
    when: "WeChat 40163: the code was already used",
};
pub(crate) const WX_RATE_LIMITED: ErrnoSpec = ErrnoSpec {
    errno: 712,
    errmsg: "登录过于频繁，请稍后再试",
    label: "WeChat: too many logins",
    when: "WeChat 45011: too many logins for this user",
};
pub(crate) const WX_RISKY_USER: ErrnoSpec = ErrnoSpec {
    errno: 713,
    errmsg: "该微信账号存在风险，暂时无法登录",
    label: "WeChat: high-risk user",
    when: "WeChat 40226: high-risk user",
};
pub(crate) const WX_BUSY: ErrnoSpec = ErrnoSpec {
    errno: 714,
    errmsg: "微信服务繁忙，请稍后再试",
    label: "WeChat: busy",
    when: "WeChat -1 (busy) or unreachable; WeCom -1 or 45009 (the corp's call quota)",
};
pub(crate) const WX_TIMEOUT: ErrnoSpec = ErrnoSpec {
    errno: 715,
    errmsg: "微信服务响应超时，请稍后再试",
    label: "WeChat: timeout",
    when: "WeChat did not answer within `WECHAT_TIMEOUT_MS`, or (login) within what the request \
           deadline leaves after keeping 700 ms for the database and the answer",
};
pub(crate) const WX_BAD_RESPONSE: ErrnoSpec = ErrnoSpec {
    errno: 716,
    errmsg: "微信服务返回异常，请稍后再试",
    label: "WeChat: bad response",
    when: "WeChat answered something that is not a valid reply",
};
pub(crate) const FOREIGN_WATERMARK: ErrnoSpec = ErrnoSpec {
    errno: 717,
    errmsg: "数据不属于本小程序，请重新授权",
    label: "watermark of another app",
    when: "bindPhone: encrypted data without our appid in its watermark",
};
pub(crate) const PHONE_CODE_INVALID: ErrnoSpec = ErrnoSpec {
    errno: 718,
    errmsg: "手机号授权已失效，请重新点击授权",
    label: "invalid phone code",
    when: "bindPhone: the phone code is invalid, expired, used or another user's",
};
pub(crate) const SIGNATURE_MISMATCH: ErrnoSpec = ErrnoSpec {
    errno: 719,
    errmsg: "用户信息签名校验失败，请重新登录",
    label: "rawData signature mismatch",
    when: "login: `rawData` does not match `signature`",
};
pub(crate) const RATE_LIMITED: ErrnoSpec = ErrnoSpec {
    errno: 720,
    errmsg: "请求过于频繁，请稍后再试",
    label: "rate limited",
    when: "over a rate limit (`RATE_*`); retry later",
};
pub(crate) const BUSY: ErrnoSpec = ErrnoSpec {
    errno: 721,
    errmsg: "服务繁忙，请稍后再试",
    label: "server busy",
    when: "this instance is at capacity and refused the request before doing anything (a login's \
           code was not sent to WeChat, so the same code still works); `data` is \
           `{\"reason\": \"...\", \"retryAfterMs\": N}`: retry after N ms",
};
pub(crate) const CONTENT_REFUSED: ErrnoSpec = ErrnoSpec {
    errno: 730,
    errmsg: "内容含有违规信息，请修改后再试",
    label: "content refused",
    when: "WeChat's content check (`msgSecCheck`) found the text risky; nothing was stored; \
           `data.field` names the field (`title`, `content`, `location`, `nickName`)",
};

/// Every errno a client can get, in ascending order.
pub const CATALOGUE: &[ErrnoSpec] = &[
    SUCCESS,
    BAD_ARGUMENT,
    BAD_ARGUMENT_VALUE,
    NOT_FOUND,
    WRONG_METHOD,
    UNLOGIN,
    SERIOUS,
    ACCOUNT_DISABLED,
    MOBILE_TAKEN,
    WX_CODE_INVALID,
    WX_CODE_USED,
    WX_RATE_LIMITED,
    WX_RISKY_USER,
    WX_BUSY,
    WX_TIMEOUT,
    WX_BAD_RESPONSE,
    FOREIGN_WATERMARK,
    PHONE_CODE_INVALID,
    SIGNATURE_MISMATCH,
    RATE_LIMITED,
    BUSY,
    CONTENT_REFUSED,
];

/// The errno of a busy refusal: this instance is at capacity and did nothing.
pub(crate) const BUSY_ERRNO: i32 = BUSY.errno;

/// Serialises as `{"401": "bad argument", …}`: each errno's label, for the status page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrnoLabels;

impl Serialize for ErrnoLabels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(CATALOGUE.len()))?;
        for spec in CATALOGUE {
            map.serialize_entry(&spec.errno, spec.label)?;
        }
        map.end()
    }
}

/// The wire envelope every mini-program answer uses.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<T: Serialize> {
    pub(crate) errno: i32,
    pub(crate) errmsg: &'static str,
    pub(crate) data: Option<T>,
}

impl<T: Serialize> Envelope<T> {
    pub(crate) fn ok(data: T) -> Self {
        Envelope {
            errno: SUCCESS.errno,
            errmsg: SUCCESS.errmsg,
            data: Some(data),
        }
    }
}

/// The errno an answer carried, left in the response's extensions by the one place that builds
/// each envelope, so the request metrics can label by errno without parsing bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) i32);

/// A busy refusal's `data`: why, and how long to wait before the retry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BusyData {
    pub(crate) reason: &'static str,
    /// Milliseconds to wait before trying again.
    pub(crate) retry_after_ms: u64,
}

/// Which field WeChat's content check refused: `data.field` of errno 730.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct RefusedField {
    /// The request's name of the field: `title`, `content`, `location` or `nickName`.
    pub(crate) field: &'static str,
}

/// Why an argument was refused: shown to the client developer in `data.reason`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Reason {
    pub(crate) reason: String,
}

/// Why a request answers 501, in `data.reason`: a closed set of words, so a client can tell a
/// misconfiguration (it will never log in this way) from a session that simply ended. A token
/// that does not verify is `invalid` whether forged, altered or signed with another key: what
/// a token's signature proves is only told to who holds a token that verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnloginReason {
    /// No token in the token header, nor anywhere else.
    Missing,
    /// No token in the token header, but something token-shaped under another header a client
    /// may be sending it in (`Authorization: Bearer`, `X-OA-Token`, `X-Litemall-Token`).
    WrongHeader,
    /// The header holds something that is not a token's shape (three base64url parts).
    Malformed,
    /// Token-shaped, but its signature or what it says does not verify.
    Invalid,
    /// The token or its session is past its end.
    Expired,
    /// Its session was ended: logout, logout on every device, a refresh replaced it.
    Revoked,
    /// Its account is disabled, deleted, or its deletion was asked for.
    Disabled,
    /// Its account was merged into another one.
    Merged,
    /// bindPhone: the session_key WeChat would decrypt with is missing or no longer current.
    SessionKey,
}

impl UnloginReason {
    /// Every reason, in the README's order.
    pub(crate) const ALL: [UnloginReason; 9] = [
        UnloginReason::Missing,
        UnloginReason::WrongHeader,
        UnloginReason::Malformed,
        UnloginReason::Invalid,
        UnloginReason::Expired,
        UnloginReason::Revoked,
        UnloginReason::Disabled,
        UnloginReason::Merged,
        UnloginReason::SessionKey,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UnloginReason::Missing => "missing",
            UnloginReason::WrongHeader => "wrong_header",
            UnloginReason::Malformed => "malformed",
            UnloginReason::Invalid => "invalid",
            UnloginReason::Expired => "expired",
            UnloginReason::Revoked => "revoked",
            UnloginReason::Disabled => "disabled",
            UnloginReason::Merged => "merged",
            UnloginReason::SessionKey => "session_key",
        }
    }
}

impl From<crate::domain::SessionEnd> for UnloginReason {
    fn from(end: crate::domain::SessionEnd) -> Self {
        use crate::domain::SessionEnd;
        match end {
            SessionEnd::Expired => UnloginReason::Expired,
            SessionEnd::Revoked => UnloginReason::Revoked,
            SessionEnd::Disabled => UnloginReason::Disabled,
            SessionEnd::Merged => UnloginReason::Merged,
            SessionEnd::Unknown => UnloginReason::Invalid,
        }
    }
}

/// A 501's `data`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UnloginData {
    pub(crate) reason: &'static str,
}

/// What went wrong inside, for the log: an error with its `source()` chain.
pub(crate) type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// An error a client can see: an entry of `CATALOGUE` and what its envelope's `data` says; for
/// the log only, what caused it and where it was raised.
#[derive(Debug)]
pub(crate) struct ApiError {
    spec: ErrnoSpec,
    detail: Detail,
    cause: Option<Cause>,
    location: &'static Location<'static>,
}

/// What an error tells the client besides its errno and errmsg.
#[derive(Debug)]
enum Detail {
    None,
    /// 401, 402: `data.reason`.
    Reason(String),
    /// 501: `data.reason`, one of a closed set of words.
    Unlogin(UnloginReason),
    /// 721: why, and when to retry.
    Busy {
        reason: &'static str,
        retry_after_ms: u64,
    },
    /// 730: `data.field`.
    Field(&'static str),
    /// 405: the method the API takes, in the `Allow` header (`data` is null).
    Allow(Method),
}

impl ApiError {
    /// `spec`'s errno with `data: null`.
    #[track_caller]
    pub(crate) fn new(spec: ErrnoSpec) -> Self {
        ApiError::with_detail(spec, Detail::None)
    }

    #[track_caller]
    fn with_detail(spec: ErrnoSpec, detail: Detail) -> Self {
        ApiError {
            spec,
            detail,
            cause: None,
            location: Location::caller(),
        }
    }

    /// The same error, with what caused it (for the log, never the client).
    pub(crate) fn because(self, cause: impl Into<Cause>) -> Self {
        ApiError {
            cause: Some(cause.into()),
            ..self
        }
    }

    pub(crate) fn errno(&self) -> i32 {
        self.spec.errno
    }

    /// Whether this error answers `spec`'s errno.
    pub(crate) fn is(&self, spec: ErrnoSpec) -> bool {
        self.spec == spec
    }

    /// 401: a required argument is missing, or the body is not JSON.
    #[track_caller]
    pub(crate) fn bad_argument(reason: impl Into<String>) -> Self {
        ApiError::with_detail(BAD_ARGUMENT, Detail::Reason(reason.into()))
    }

    /// 402: an argument is present but its value or type is wrong.
    #[track_caller]
    pub(crate) fn bad_value(reason: impl Into<String>) -> Self {
        ApiError::with_detail(BAD_ARGUMENT_VALUE, Detail::Reason(reason.into()))
    }

    /// 501: no live session; the client drops its token and opens the login page.
    #[track_caller]
    pub(crate) fn unlogin(reason: UnloginReason) -> Self {
        ApiError::with_detail(UNLOGIN, Detail::Unlogin(reason))
    }

    /// 721: this instance is at capacity and did nothing (a login's code was not spent); the
    /// client retries after `retry_after_ms`.
    #[track_caller]
    pub(crate) fn busy(reason: &'static str, retry_after_ms: u64) -> Self {
        ApiError::with_detail(
            BUSY,
            Detail::Busy {
                reason,
                retry_after_ms,
            },
        )
    }

    /// 730: WeChat's content check found this field's text risky; nothing was stored.
    #[track_caller]
    pub(crate) fn content_refused(field: &'static str) -> Self {
        ApiError::with_detail(CONTENT_REFUSED, Detail::Field(field))
    }

    /// 405: the API exists, with `allow` and no other method.
    #[track_caller]
    pub(crate) fn wrong_method(allow: Method) -> Self {
        ApiError::with_detail(WRONG_METHOD, Detail::Allow(allow))
    }

    /// 716: WeChat answered something that is not a valid reply; `cause` says what, for the log.
    #[track_caller]
    pub(crate) fn wx_bad_response(cause: impl Into<Cause>) -> Self {
        ApiError::new(WX_BAD_RESPONSE).because(cause)
    }

    /// A 502 whose cause says what went wrong: a message or an error (its chain is kept).
    #[track_caller]
    pub(crate) fn serious(cause: impl Into<Cause>) -> Self {
        ApiError::new(SERIOUS).because(cause)
    }

    /// A 502 because `cause` failed while doing `what` (`cannot sign token`).
    #[track_caller]
    pub(crate) fn internal(what: &'static str, cause: impl Into<Cause>) -> Self {
        ApiError::serious(Context {
            what,
            source: cause.into(),
        })
    }
}

/// The operator's words: the label, and what the client was told in `data`. The cause is its
/// `source()`.
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec.label)?;
        match &self.detail {
            Detail::Reason(detail) => write!(f, ": {detail}"),
            Detail::Busy { reason, .. } => write!(f, ": {reason}"),
            Detail::Field(field) => write!(f, ": {field}"),
            Detail::Unlogin(reason) => write!(f, ": {}", reason.as_str()),
            Detail::None | Detail::Allow(_) => Ok(()),
        }
    }
}

impl StdError for ApiError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn StdError + 'static))
    }
}

/// A cause with what was being done when it happened.
#[derive(Debug)]
struct Context {
    what: &'static str,
    source: Cause,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl StdError for Context {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// An error and its sources on one line, `a: b: c`. Many errors already end their own text
/// with their source's (`query failed: {0}`): such a source is not written twice.
fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let more = source.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = source.source();
    }
    text
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        if self.spec == NOT_FOUND {
            StatusCode::NOT_FOUND
        } else if self.spec == WRONG_METHOD {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::OK
        }
    }

    fn error_response(&self) -> HttpResponse {
        // A client can repeat these as fast as it likes (a slow body misses the deadline every
        // time): one line per cause per interval, with a count.
        let errno = self.spec.errno;
        match &self.cause {
            Some(cause) => {
                let level = if self.spec == SERIOUS {
                    log::Level::Error
                } else {
                    log::Level::Warn
                };
                log_cause(level, errno, &chain_text(&**cause), self.location);
            }
            // Counted and summarised once a second where the refusal is decided.
            None if self.spec == BUSY => {}
            None => log::debug!("errno {errno}: {self} (at {})", self.location),
        }
        let mut builder = HttpResponse::build(self.status_code());
        if let Detail::Allow(allow) = &self.detail {
            builder.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
        }
        let envelope = |data| Envelope {
            errno,
            errmsg: self.spec.errmsg,
            data,
        };
        let mut response = match &self.detail {
            Detail::Reason(reason) => builder.json(envelope(Some(ErrorData::Reason(Reason {
                reason: reason.clone(),
            })))),
            Detail::Unlogin(reason) => {
                builder.json(envelope(Some(ErrorData::Unlogin(UnloginData {
                    reason: reason.as_str(),
                }))))
            }
            Detail::Busy {
                reason,
                retry_after_ms,
            } => builder.json(envelope(Some(ErrorData::Busy(BusyData {
                reason,
                retry_after_ms: *retry_after_ms,
            })))),
            Detail::Field(field) => {
                builder.json(envelope(Some(ErrorData::Field(RefusedField { field }))))
            }
            Detail::None | Detail::Allow(_) => builder.json(envelope(None)),
        };
        response.extensions_mut().insert(Errno(errno));
        response
    }
}

/// An error's `data` on the wire.
#[derive(Serialize)]
#[serde(untagged)]
enum ErrorData {
    Reason(Reason),
    Unlogin(UnloginData),
    Busy(BusyData),
    Field(RefusedField),
}

/// A cause reads `what went wrong: details`; the head is the kind the throttle counts, the
/// details (a driver's message, WeChat's errmsg with its request id) and where the error was
/// raised vary from one event to the next and are shown for the first of each interval.
fn log_cause(level: log::Level, errno: i32, cause: &str, location: &Location<'_>) {
    match cause.split_once(": ") {
        Some((head, details)) => ERRORS.log(
            level,
            &format!("errno {errno}: {head}"),
            Some(&format_args!("{details}; at {location}")),
        ),
        None => ERRORS.log(
            level,
            &format!("errno {errno}: {cause}"),
            Some(&format_args!("at {location}")),
        ),
    }
}

impl From<DbError> for ApiError {
    #[track_caller]
    fn from(e: DbError) -> Self {
        match e {
            // As for any token of such a user: its sessions are revoked, the client logs in again
            // (and is then refused with 700).
            DbError::AccountNotUsable => ApiError::unlogin(UnloginReason::Disabled),
            // Only the same person logging in from several apps at the very same moment, again
            // and again: a retry a moment later finds the account.
            DbError::Contended => ApiError::busy("concurrent logins of the same person", 200),
            other => ApiError::serious(other),
        }
    }
}

impl From<crate::db::DbFailure> for ApiError {
    #[track_caller]
    fn from(e: crate::db::DbFailure) -> Self {
        use crate::db::DbFailure;
        match e {
            DbFailure::Busy(busy) => ApiError::from(busy),
            DbFailure::Query(e) => ApiError::from(e),
            stopped @ DbFailure::Stopped(_) => ApiError::serious(stopped),
            // A read batch's failure, as each request in the batch sees it.
            DbFailure::Shared(shared) => match &*shared {
                DbFailure::Busy(busy) => ApiError::from(busy.clone()),
                DbFailure::Query(DbError::AccountNotUsable) => {
                    ApiError::unlogin(UnloginReason::Disabled)
                }
                _ => ApiError::serious(shared),
            },
        }
    }
}

impl From<crate::admission::Busy> for ApiError {
    #[track_caller]
    fn from(busy: crate::admission::Busy) -> Self {
        ApiError::busy(
            busy.reason,
            busy.retry_after.as_millis().try_into().unwrap_or(u64::MAX),
        )
    }
}

impl From<actix::MailboxError> for ApiError {
    #[track_caller]
    fn from(e: actix::MailboxError) -> Self {
        ApiError::internal("actor mailbox", e)
    }
}

impl From<WeChatError> for ApiError {
    #[track_caller]
    fn from(e: WeChatError) -> Self {
        match e {
            WeChatError::Api { errcode, errmsg } => match errcode {
                errcode::INVALID_CODE => ApiError::new(WX_CODE_INVALID),
                errcode::CODE_BEEN_USED => ApiError::new(WX_CODE_USED),
                errcode::RATE_LIMITED => ApiError::new(WX_RATE_LIMITED),
                errcode::HIGH_RISK_USER => ApiError::new(WX_RISKY_USER),
                errcode::SYSTEM_BUSY => ApiError::new(WX_BUSY),
                code if errcode::is_configuration_error(code) => {
                    ERRORS.log(
                        log::Level::Error,
                        &format!(
                            "WeChat refused our credentials (errcode {code}): check WECHAT_APPID and WECHAT_SECRET"
                        ),
                        Some(&errmsg),
                    );
                    ApiError::serious(format!("wechat configuration error {code}"))
                }
                code => ApiError::wx_bad_response(format!("unexpected errcode {code}: {errmsg}")),
            },
            WeChatError::Timeout => ApiError::new(WX_TIMEOUT),
            WeChatError::Transport(cause) => {
                ERRORS.log(log::Level::Warn, "WeChat unreachable", Some(&cause));
                ApiError::new(WX_BUSY)
            }
            WeChatError::BadResponse(cause) => ApiError::wx_bad_response(cause),
            WeChatError::HttpStatus(status) => ApiError::wx_bad_response(format!("HTTP {status}")),
            // Refused before anything was sent: the code is not spent, so a retry can use it.
            WeChatError::Overloaded => ApiError::busy("too many WeChat calls in progress", 1000),
        }
    }
}

impl ApiError {
    /// A content check (`msgSecCheck`) that could not be made: WeChat's busy, timeout or
    /// bad-answer errno.
    #[track_caller]
    pub(crate) fn unchecked(e: WeChatError) -> Self {
        match e {
            WeChatError::Timeout => ApiError::new(WX_TIMEOUT),
            WeChatError::Api {
                errcode: errcode::SYSTEM_BUSY | errcode::CONTENT_CHECK_RATE,
                ..
            }
            | WeChatError::Overloaded
            | WeChatError::Transport(_) => ApiError::new(WX_BUSY),
            WeChatError::Api { errcode, errmsg } => {
                ApiError::wx_bad_response(format!("msg_sec_check errcode {errcode}: {errmsg}"))
            }
            WeChatError::BadResponse(cause) => ApiError::wx_bad_response(cause),
            WeChatError::HttpStatus(status) => ApiError::wx_bad_response(format!("HTTP {status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_ascending_without_duplicates() {
        for pair in CATALOGUE.windows(2) {
            assert!(
                pair[0].errno < pair[1].errno,
                "{} before {}",
                pair[0].errno,
                pair[1].errno
            );
        }
    }

    #[actix_web::test]
    async fn every_entry_answers_its_errno_and_errmsg() {
        for spec in CATALOGUE.iter().filter(|s| s.errno != SUCCESS.errno) {
            let response = ApiError::new(*spec).error_response();
            let status = match spec.errno {
                404 => StatusCode::NOT_FOUND,
                405 => StatusCode::METHOD_NOT_ALLOWED,
                _ => StatusCode::OK,
            };
            assert_eq!(response.status(), status, "errno {}", spec.errno);
            assert_eq!(
                response.extensions().get::<Errno>().copied(),
                Some(Errno(spec.errno))
            );
            let body = actix_web::body::to_bytes(response.into_body())
                .await
                .expect("body");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(
                body,
                serde_json::json!({ "errno": spec.errno, "errmsg": spec.errmsg, "data": null })
            );
        }
    }

    #[actix_web::test]
    async fn the_detail_is_the_data_and_the_cause_stays_out() {
        let answer = |error: ApiError| async move {
            let body = actix_web::body::to_bytes(error.error_response().into_body())
                .await
                .expect("body");
            serde_json::from_slice::<serde_json::Value>(&body).expect("json")["data"].clone()
        };
        use serde_json::json;
        assert_eq!(
            answer(ApiError::bad_value("id must be positive")).await,
            json!({ "reason": "id must be positive" })
        );
        assert_eq!(
            answer(ApiError::busy("queue full", 300)).await,
            json!({ "reason": "queue full", "retryAfterMs": 300 })
        );
        assert_eq!(
            answer(ApiError::content_refused("title")).await,
            json!({ "field": "title" })
        );
        assert_eq!(
            answer(ApiError::unlogin(UnloginReason::Merged)).await,
            json!({ "reason": "merged" })
        );
        assert_eq!(
            answer(ApiError::wx_bad_response("errcode 1: secret-ish")).await,
            json!(null)
        );
        let wrong = ApiError::wrong_method(actix_web::http::Method::POST).error_response();
        assert_eq!(
            wrong.headers().get(actix_web::http::header::ALLOW),
            Some(&actix_web::http::header::HeaderValue::from_static("POST"))
        );
    }

    #[test]
    fn an_error_knows_where_it_was_raised() {
        let line = line!() + 1;
        let err = ApiError::new(MOBILE_TAKEN);
        assert_eq!((err.location.file(), err.location.line()), (file!(), line));
        fn query() -> Result<(), ApiError> {
            Err(DbError::Contended)?
        }
        let err = query().expect_err("refused");
        assert_eq!(err.errno(), BUSY.errno);
        assert_eq!(err.location.line(), line + 3, "where `?` converted it");
    }

    /// README's `### errno` table, row by row: errno, errmsg, when.
    fn readme_errno_table() -> Vec<(String, String, String)> {
        let readme = include_str!("../README.md");
        let after_heading = readme
            .split_once("\n### errno\n")
            .map(|(_, rest)| rest)
            .expect("README has a `### errno` section");
        after_heading
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            // The header and the `|---|` line.
            .skip(2)
            .map(|row| {
                let cells: Vec<&str> = row
                    .trim()
                    .trim_start_matches('|')
                    .trim_end_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect();
                assert_eq!(
                    cells.len(),
                    3,
                    "README errno row with {} cells: {row}",
                    cells.len()
                );
                (cells[0].into(), cells[1].into(), cells[2].into())
            })
            .collect()
    }

    #[test]
    fn the_readme_errno_table_is_the_catalogue() {
        let readme = readme_errno_table();
        let code: Vec<(String, String, String)> = CATALOGUE
            .iter()
            .map(|s| (s.errno.to_string(), s.errmsg.into(), s.when.into()))
            .collect();
        if readme != code {
            let row = |(errno, errmsg, when): &(String, String, String)| {
                format!("| {errno} | {errmsg} | {when} |")
            };
            let mut diff = String::new();
            for line in readme.iter().filter(|r| !code.contains(r)) {
                diff.push_str(&format!("- README: {}\n", row(line)));
            }
            for line in code.iter().filter(|r| !readme.contains(r)) {
                diff.push_str(&format!("+ code:   {}\n", row(line)));
            }
            if diff.is_empty() {
                diff.push_str("the same rows in another order\n");
            }
            panic!(
                "README's errno table differs from error::CATALOGUE (write the code's rows into \
                 README.md):\n{diff}"
            );
        }
    }

    #[test]
    fn the_readme_lists_every_501_reason_and_no_other() {
        let readme = include_str!("../README.md");
        let section = readme
            .split_once("\n### Why a 501\n")
            .and_then(|(_, rest)| rest.split_once("\n### ").map(|(section, _)| section))
            .expect("README has a `### Why a 501` section");
        let listed: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(reason, _)| reason))
            // The table's header.
            .filter(|cell| *cell != "data.reason")
            .collect();
        let code: Vec<&str> = UnloginReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(listed, code);
        let answer = |reason| {
            let response = ApiError::unlogin(reason).error_response();
            assert_eq!(response.status(), StatusCode::OK);
            response.extensions().get::<Errno>().copied()
        };
        assert_eq!(answer(UnloginReason::Merged), Some(Errno(501)));
    }

    #[test]
    fn a_serious_cause_keeps_its_chain_for_the_log() {
        let io = std::io::Error::other("connection reset");
        let err = ApiError::internal("cannot sign token", io);
        assert_eq!(err.errno(), 502);
        let source = err.source().expect("the cause");
        assert_eq!(source.to_string(), "cannot sign token");
        assert_eq!(
            source.source().map(ToString::to_string).as_deref(),
            Some("connection reset")
        );
        assert_eq!(chain_text(source), "cannot sign token: connection reset");
        // A source already at the end of its error's text is written once.
        let err = ApiError::from(DbError::Query(diesel::result::Error::NotFound));
        assert_eq!(err.errno(), 502);
        assert_eq!(
            chain_text(err.source().expect("the cause")),
            "query failed: Record not found"
        );
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

    #[test]
    fn the_status_page_labels_are_the_catalogue_s() {
        let labels = serde_json::to_value(ErrnoLabels).expect("json");
        assert_eq!(labels["710"], "WeChat: invalid code");
        assert_eq!(
            labels.as_object().map(serde_json::Map::len),
            Some(CATALOGUE.len())
        );
    }
}
