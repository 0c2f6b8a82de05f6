//! WeChat's server protocol: the values it hands us, its errcodes, its crypto, and a faithful fake
//! of its API for dev mode and tests. The actor that talks to it lives in `actors::wechat`.

pub mod crypto;
pub mod fake;

use std::fmt;

use serde::Deserialize;

/// WeChat errcodes this service reacts to (see shared/WECHAT_API.md).
pub mod errcode {
    pub const SYSTEM_BUSY: i64 = -1;
    pub const INVALID_CODE: i64 = 40029;
    pub const CODE_BEEN_USED: i64 = 40163;
    pub const RATE_LIMITED: i64 = 45011;
    pub const HIGH_RISK_USER: i64 = 40226;
    pub const INVALID_APPID: i64 = 40013;
    pub const INVALID_SECRET: i64 = 40125;
    pub const INVALID_CREDENTIAL: i64 = 40001;
    pub const MISSING_APPID: i64 = 41002;
    pub const MISSING_SECRET: i64 = 41004;
    pub const MISSING_CODE: i64 = 41008;

    /// Errcodes that mean our own appid/secret/request is wrong: a deployment problem, not the user's.
    pub fn is_configuration_error(code: i64) -> bool {
        matches!(
            code,
            INVALID_APPID
                | INVALID_SECRET
                | INVALID_CREDENTIAL
                | MISSING_APPID
                | MISSING_SECRET
                | MISSING_CODE
        )
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WeChatError {
    /// WeChat answered with a non-zero errcode.
    #[error("wechat errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("wechat did not answer in time")]
    Timeout,
    #[error("wechat unreachable: {0}")]
    Transport(String),
    #[error("wechat answered garbage: {0}")]
    BadResponse(String),
}

impl WeChatError {
    /// A short, bounded label for metrics and the status page: WeChat's errcode, or what went
    /// wrong on the way (`timeout`, `unreachable`, `bad_response`).
    pub fn errcode_label(&self) -> String {
        match self {
            WeChatError::Api { errcode, .. } => errcode.to_string(),
            WeChatError::Timeout => "timeout".into(),
            WeChatError::Transport(_) => "unreachable".into(),
            WeChatError::BadResponse(_) => "bad_response".into(),
        }
    }
}

macro_rules! opaque_debug {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        }
    };
}

/// A user's session_key: only ever held server-side. `Debug` hides it so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(String);
opaque_debug!(SessionKey);

impl SessionKey {
    pub fn new(value: String) -> Self {
        SessionKey(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A `wx.login()` code: single use, valid five minutes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsCode(String);
opaque_debug!(JsCode);

impl JsCode {
    /// Codes are short printable tokens; anything else is refused before it reaches WeChat.
    pub fn parse(raw: &str) -> Result<JsCode, &'static str> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("code is empty");
        }
        if raw.len() > 128 {
            return Err("code is longer than 128 characters");
        }
        if !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err("code holds characters a wx.login code never has");
        }
        Ok(JsCode(raw.to_string()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What `jscode2session` hands back for a good code.
#[derive(Debug, Clone)]
pub struct WxSession {
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: SessionKey,
}

#[derive(Deserialize)]
struct RawCode2Session {
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

/// Parses a `jscode2session` body. WeChat sends it as `text/plain`, sometimes with `errcode: 0` on
/// success, so the bytes are parsed whatever the content type says.
pub fn parse_code2session(body: &[u8]) -> Result<WxSession, WeChatError> {
    let raw: RawCode2Session = serde_json::from_slice(body).map_err(|e| {
        WeChatError::BadResponse(format!("jscode2session body is not the expected JSON: {e}"))
    })?;
    if let Some(code) = raw.errcode.filter(|c| *c != 0) {
        return Err(WeChatError::Api {
            errcode: code,
            errmsg: raw.errmsg.unwrap_or_default(),
        });
    }
    let openid = raw
        .openid
        .filter(|o| !o.is_empty() && o.len() <= 128 && o.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            WeChatError::BadResponse("jscode2session answer lacks a valid openid".into())
        })?;
    let session_key = raw
        .session_key
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or_else(|| {
            WeChatError::BadResponse("jscode2session answer lacks a session_key".into())
        })?;
    let unionid = raw
        .unionid
        .filter(|u| !u.is_empty() && u.len() <= 128 && u.chars().all(|c| c.is_ascii_graphic()));
    Ok(WxSession {
        openid,
        unionid,
        session_key: SessionKey::new(session_key),
    })
}

/// `oGZUI0egBJY1zhBYw2KhdUfwVJJE` → `oGZU****VJJE`: enough to tell users apart in a log.
pub fn mask_openid(openid: &str) -> String {
    let chars: Vec<char> = openid.chars().collect();
    if chars.len() <= 8 {
        return "****".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_with_or_without_errcode_zero() {
        let a =
            parse_code2session(br#"{"openid":"o1","session_key":"k=="}"#).expect("plain success");
        assert_eq!(a.openid, "o1");
        assert!(a.unionid.is_none());
        let b = parse_code2session(
            br#"{"errcode":0,"errmsg":"ok","openid":"o2","session_key":"k","unionid":"u"}"#,
        )
        .expect("errcode 0 success");
        assert_eq!(b.unionid.as_deref(), Some("u"));
    }

    #[test]
    fn errcodes_and_garbage_are_told_apart() {
        match parse_code2session(br#"{"errcode":40163,"errmsg":"code been used, rid: 1"}"#) {
            Err(WeChatError::Api { errcode, .. }) => assert_eq!(errcode, 40163),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_code2session(b"<html>502</html>"),
            Err(WeChatError::BadResponse(_))
        ));
        assert!(matches!(
            parse_code2session(br#"{"openid":"o"}"#),
            Err(WeChatError::BadResponse(_))
        ));
        assert!(matches!(
            parse_code2session(b""),
            Err(WeChatError::BadResponse(_))
        ));
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s =
            parse_code2session(br#"{"openid":"o1","session_key":"very-secret-key"}"#).expect("ok");
        assert!(!format!("{s:?}").contains("very-secret-key"));
        let code = JsCode::parse("abc").expect("ok");
        assert!(!format!("{code:?}").contains("abc"));
    }

    #[test]
    fn codes_are_checked() {
        assert!(JsCode::parse("").is_err());
        assert!(JsCode::parse("   ").is_err());
        assert!(JsCode::parse(&"a".repeat(129)).is_err());
        assert!(JsCode::parse("a b").is_err());
        assert!(JsCode::parse("061abcDEF").is_ok());
    }

    #[test]
    fn openids_are_masked() {
        assert_eq!(mask_openid("oGZUI0egBJY1zhBYw2KhdUfwVJJE"), "oGZU****VJJE");
        assert_eq!(mask_openid("short"), "****");
    }
}
