//! WeChat's server protocol: the values it hands us, its errcodes and its crypto; the client
//! that talks to it (`client`, the `WeChatClient` actor and its parts) and the login's estimate of
//! its latency (`latency`). The fake that plays it lives in `dev::fake_wechat`.

pub(crate) mod client;
pub(crate) mod crypto;
pub(crate) mod latency;
pub mod wecom;

use std::fmt;

use serde::Deserialize;

use crate::text::loggable_upstream_text;

/// The WeChat errcodes this service reacts to.
pub(crate) mod errcode {
    pub(crate) const SYSTEM_BUSY: i64 = -1;
    pub(crate) const INVALID_CODE: i64 = 40029;
    pub(crate) const CODE_BEEN_USED: i64 = 40163;
    pub(crate) const RATE_LIMITED: i64 = 45011;
    pub(crate) const HIGH_RISK_USER: i64 = 40226;
    pub(crate) const INVALID_APPID: i64 = 40013;
    pub(crate) const INVALID_SECRET: i64 = 40125;
    pub(crate) const INVALID_CREDENTIAL: i64 = 40001;
    pub(crate) const ACCESS_TOKEN_EXPIRED: i64 = 42001;
    pub(crate) const ACCESS_TOKEN_MISSING: i64 = 41001;
    pub(crate) const INVALID_SIGNATURE: i64 = 87009;
    pub(crate) const MISSING_APPID: i64 = 41002;
    pub(crate) const MISSING_SECRET: i64 = 41004;
    pub(crate) const MISSING_CODE: i64 = 41008;
    /// msgSecCheck: the user has not opened the mini-program in the last two hours.
    pub(crate) const USER_NOT_RECENT: i64 = 61010;
    /// msgSecCheck: over 4000 checks a minute (or 2,000,000 a day) for the app.
    pub(crate) const CONTENT_CHECK_RATE: i64 = 44991;
    /// subscribe/send: the user gave no (or no more) consent for this template.
    pub(crate) const NO_SUBSCRIPTION: i64 = 43101;
    /// subscribe/send: over WeChat's rate.
    pub(crate) const API_RATE_LIMITED: i64 = 45009;
    /// subscribe/send: a data value breaks its template key's rule.
    pub(crate) const BAD_ARGUMENT: i64 = 47003;

    /// Every errcode above. Any other is labelled `other` in metrics and on the status page:
    /// the code comes from a response body, so it is not trusted to be from a small set.
    pub(crate) const KNOWN: [i64; 19] = [
        SYSTEM_BUSY,
        INVALID_CODE,
        CODE_BEEN_USED,
        RATE_LIMITED,
        HIGH_RISK_USER,
        INVALID_APPID,
        INVALID_SECRET,
        INVALID_CREDENTIAL,
        ACCESS_TOKEN_EXPIRED,
        ACCESS_TOKEN_MISSING,
        INVALID_SIGNATURE,
        MISSING_APPID,
        MISSING_SECRET,
        MISSING_CODE,
        USER_NOT_RECENT,
        CONTENT_CHECK_RATE,
        NO_SUBSCRIPTION,
        API_RATE_LIMITED,
        BAD_ARGUMENT,
    ];

    /// Errcodes that mean our access token is stale: refresh it once and retry once.
    pub(crate) fn is_stale_access_token(code: i64) -> bool {
        matches!(code, INVALID_CREDENTIAL | ACCESS_TOKEN_EXPIRED)
    }

    /// Errcodes that mean our own appid/secret/request is wrong: a deployment problem, not the user's.
    pub(crate) fn is_configuration_error(code: i64) -> bool {
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
pub(crate) enum WeChatError {
    /// WeChat answered with a non-zero errcode; `errmsg` went through `loggable_upstream_text`.
    #[error("wechat errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("wechat did not answer in time")]
    Timeout,
    #[error("wechat unreachable: {0}")]
    Transport(String),
    #[error("wechat answered garbage: {0}")]
    BadResponse(String),
    /// An HTTP status other than 200 (WeChat itself answers 200 even for errors, so this is a
    /// proxy's error page or a server without the endpoint).
    #[error("wechat answered HTTP {0}")]
    HttpStatus(u16),
    /// Too many calls to WeChat in flight already: refused without calling.
    #[error("too many wechat calls in flight")]
    Overloaded,
}

impl WeChatError {
    /// A short label from a closed set, for metrics and the status page: WeChat's errcode when
    /// it is one of `errcode::KNOWN`, else `other`; or what went wrong on the way (`timeout`,
    /// `unreachable`, `bad_response`, `overloaded`).
    pub(crate) fn errcode_label(&self) -> String {
        match self {
            WeChatError::Api { errcode, .. } if errcode::KNOWN.contains(errcode) => {
                errcode.to_string()
            }
            WeChatError::Api { .. } => "other".into(),
            WeChatError::Timeout => "timeout".into(),
            WeChatError::Transport(_) => "unreachable".into(),
            WeChatError::BadResponse(_) | WeChatError::HttpStatus(_) => "bad_response".into(),
            WeChatError::Overloaded => "overloaded".into(),
        }
    }
}

/// What the labels of `WeChatError::errcode_label` mean, for the status page; a label not here
/// is shown as it is.
pub(crate) const LABEL_NAMES: [(LabelOf, &str); 11] = [
    (LabelOf::Errcode(errcode::SYSTEM_BUSY), "busy"),
    (LabelOf::Errcode(errcode::INVALID_CODE), "invalid code"),
    (LabelOf::Errcode(errcode::CODE_BEEN_USED), "code used"),
    (LabelOf::Errcode(errcode::RATE_LIMITED), "rate limited"),
    (LabelOf::Errcode(errcode::HIGH_RISK_USER), "risky user"),
    (LabelOf::Errcode(errcode::INVALID_APPID), "bad appid"),
    (LabelOf::Errcode(errcode::INVALID_SECRET), "bad secret"),
    (
        LabelOf::Errcode(errcode::INVALID_CREDENTIAL),
        "bad credential",
    ),
    (LabelOf::Word("timeout"), "no answer in time"),
    (LabelOf::Word("unreachable"), "cannot connect"),
    (LabelOf::Word("bad_response"), "not a valid reply"),
];

/// An errcode label: WeChat's errcode, or a word for what went wrong on the way.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LabelOf {
    Errcode(i64),
    Word(&'static str),
}

impl LabelOf {
    /// The label as `errcode_label` writes it.
    pub(crate) fn label(self) -> String {
        match self {
            LabelOf::Errcode(code) => code.to_string(),
            LabelOf::Word(word) => word.to_string(),
        }
    }
}

/// Serialises as `{"40029": "invalid code", "timeout": "no answer in time", …}`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LabelNames;

impl serde::Serialize for LabelNames {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(LABEL_NAMES.len()))?;
        for (label, name) in LABEL_NAMES {
            map.serialize_entry(&label.label(), name)?;
        }
        map.end()
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
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// A `wx.login()` code: single use, valid five minutes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct JsCode(String);
opaque_debug!(JsCode);

impl JsCode {
    /// Codes are short printable tokens; anything else is refused before it reaches WeChat.
    pub(crate) fn parse(raw: &str) -> Result<JsCode, &'static str> {
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
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// What `jscode2session` hands back for a good code.
#[derive(Debug, Clone)]
pub(crate) struct WxSession {
    pub(crate) openid: String,
    pub(crate) unionid: Option<String>,
    pub(crate) session_key: SessionKey,
}

/// The error part every WeChat answer may carry.
#[derive(Deserialize)]
struct ErrorPart {
    errcode: Option<i64>,
    errmsg: Option<String>,
}

/// Parses a WeChat answer: a non-zero `errcode` is an error whatever else the body holds; then
/// the body must have the expected shape. WeChat labels some JSON `text/plain`, so the bytes are
/// parsed whatever the content type says.
pub(crate) fn parse_reply<T: serde::de::DeserializeOwned>(
    endpoint: &str,
    body: &[u8],
) -> Result<T, WeChatError> {
    // serde's message can quote the body: it is upstream text like any other.
    let bad = |e: serde_json::Error| {
        WeChatError::BadResponse(format!(
            "{endpoint} answered something that is not its JSON: {}",
            loggable_upstream_text(&e.to_string())
        ))
    };
    let head: ErrorPart = serde_json::from_slice(body).map_err(bad)?;
    if let Some(code) = head.errcode.filter(|c| *c != 0) {
        // Kept only to be logged, so made loggable once, here, where it enters.
        return Err(WeChatError::Api {
            errcode: code,
            errmsg: loggable_upstream_text(&head.errmsg.unwrap_or_default()),
        });
    }
    serde_json::from_slice(body).map_err(bad)
}

fn printable_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128 && value.chars().all(|c| c.is_ascii_graphic())
}

#[derive(Deserialize)]
struct RawCode2Session {
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
}

/// Parses a `jscode2session` body; success bodies may or may not carry `errcode: 0`.
pub(crate) fn parse_code2session(body: &[u8]) -> Result<WxSession, WeChatError> {
    let raw: RawCode2Session = parse_reply("jscode2session", body)?;
    let openid = raw.openid.filter(|o| printable_id(o)).ok_or_else(|| {
        WeChatError::BadResponse("jscode2session answer lacks a valid openid".into())
    })?;
    let session_key = raw
        .session_key
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or_else(|| {
            WeChatError::BadResponse("jscode2session answer lacks a session_key".into())
        })?;
    Ok(WxSession {
        openid,
        unionid: raw.unionid.filter(|u| printable_id(u)),
        session_key: SessionKey::new(session_key),
    })
}

/// An access token as `cgi-bin/token` and `cgi-bin/stable_token` hand it out.
#[derive(Deserialize)]
pub(crate) struct AccessTokenReply {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
}

impl fmt::Debug for AccessTokenReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessTokenReply(***, expires_in: {})", self.expires_in)
    }
}

/// A phone number, from `getuserphonenumber` or from decrypted open data (same field names).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PhoneInfo {
    pub(crate) phone_number: String,
    pub(crate) pure_phone_number: String,
    /// WeChat sends it as a string; some old payloads as a number.
    #[serde(deserialize_with = "string_or_number")]
    pub(crate) country_code: String,
    pub(crate) watermark: Option<Watermark>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Watermark {
    pub(crate) appid: String,
}

impl PhoneInfo {
    /// What we store: the bare number for mainland China, the number with its area code otherwise.
    pub(crate) fn mobile(&self) -> Option<String> {
        let chosen = if self.country_code == "86" && !self.pure_phone_number.is_empty() {
            &self.pure_phone_number
        } else {
            &self.phone_number
        };
        let valid = !chosen.is_empty()
            && chosen.len() <= 20
            && chosen
                .chars()
                .all(|c| c.is_ascii_digit() || c == '+' || c == '-');
        valid.then(|| chosen.clone())
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom("expected a string or a number")),
    }
}

#[derive(Deserialize)]
struct PhoneReply {
    phone_info: PhoneInfo,
}

pub(crate) fn parse_phone_reply(body: &[u8]) -> Result<PhoneInfo, WeChatError> {
    Ok(parse_reply::<PhoneReply>("getuserphonenumber", body)?.phone_info)
}

/// What `msgSecCheck` (version 2) thinks of a text: `result.suggest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suggest {
    Pass,
    Review,
    Risky,
}

#[derive(Deserialize)]
struct SecCheckResult {
    suggest: Option<String>,
}

#[derive(Deserialize)]
struct SecCheckReply {
    result: Option<SecCheckResult>,
}

/// Parses a `msgSecCheck` answer. Version 2 answers errcode 0 for a violation too, so the
/// verdict is `result.suggest`; an answer without a known one is garbage, never a pass.
pub(crate) fn parse_sec_check(body: &[u8]) -> Result<Suggest, WeChatError> {
    let reply: SecCheckReply = parse_reply("msg_sec_check", body)?;
    match reply.result.and_then(|r| r.suggest).as_deref() {
        Some("pass") => Ok(Suggest::Pass),
        Some("review") => Ok(Suggest::Review),
        Some("risky") => Ok(Suggest::Risky),
        _ => Err(WeChatError::BadResponse(
            "msg_sec_check answer lacks result.suggest".into(),
        )),
    }
}

/// Parses a `subscribe/send` answer: errcode 0 (a `msgid` with it) is sent.
pub(crate) fn parse_subscribe_send(body: &[u8]) -> Result<(), WeChatError> {
    parse_reply::<serde_json::Value>("subscribe/send", body).map(|_| ())
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
    fn errcode_labels_come_from_a_closed_set() {
        let api = |errcode| WeChatError::Api {
            errcode,
            errmsg: String::new(),
        };
        assert_eq!(api(45011).errcode_label(), "45011");
        assert_eq!(api(-1).errcode_label(), "-1");
        for unknown in [0, 12345, i64::MAX, i64::MIN, 40030] {
            assert_eq!(api(unknown).errcode_label(), "other", "{unknown}");
        }
        assert_eq!(WeChatError::Timeout.errcode_label(), "timeout");
    }

    #[test]
    fn every_named_label_is_one_a_wechat_error_can_have() {
        let labels: Vec<String> = errcode::KNOWN
            .into_iter()
            .map(|errcode| {
                WeChatError::Api {
                    errcode,
                    errmsg: String::new(),
                }
                .errcode_label()
            })
            .chain(
                [
                    WeChatError::Timeout,
                    WeChatError::Transport(String::new()),
                    WeChatError::BadResponse(String::new()),
                    WeChatError::Overloaded,
                ]
                .iter()
                .map(WeChatError::errcode_label),
            )
            .collect();
        let names = serde_json::to_value(LabelNames).expect("json");
        let names = names.as_object().expect("a map");
        assert_eq!(names.len(), LABEL_NAMES.len(), "a label named twice");
        for label in names.keys() {
            assert!(labels.contains(label), "{label} is no errcode label");
        }
        assert_eq!(names["40029"], "invalid code");
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
    fn phone_replies_parse_with_string_or_number_country_codes() {
        let body = br#"{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"timestamp":1637744274,"appid":"wx1"}}}"#;
        let info = parse_phone_reply(body).expect("phone");
        assert_eq!(info.mobile().as_deref(), Some("13800138000"));
        assert_eq!(info.watermark.expect("watermark").appid, "wx1");
        let foreign = br#"{"phone_info":{"phoneNumber":"+1-2025550123","purePhoneNumber":"2025550123","countryCode":1}}"#;
        assert_eq!(
            parse_phone_reply(foreign)
                .expect("phone")
                .mobile()
                .as_deref(),
            Some("+1-2025550123")
        );
        assert!(matches!(
            parse_phone_reply(br#"{"errcode":40029,"errmsg":"invalid code"}"#),
            Err(WeChatError::Api { errcode: 40029, .. })
        ));
        let junk = br#"{"phone_info":{"phoneNumber":"<script>","purePhoneNumber":"<script>","countryCode":"86"}}"#;
        assert_eq!(parse_phone_reply(junk).expect("parses").mobile(), None);
    }

    #[test]
    fn sec_check_verdicts_come_from_suggest_not_errcode() {
        let verdict = |body: &str| parse_sec_check(body.as_bytes());
        assert_eq!(
            verdict(r#"{"errcode":0,"errmsg":"ok","result":{"suggest":"risky","label":20001}}"#)
                .ok(),
            Some(Suggest::Risky)
        );
        assert_eq!(
            verdict(r#"{"errcode":0,"result":{"suggest":"review","label":100}}"#).ok(),
            Some(Suggest::Review)
        );
        assert_eq!(
            verdict(r#"{"errcode":0,"result":{"suggest":"pass","label":100}}"#).ok(),
            Some(Suggest::Pass)
        );
        for garbage in [
            r#"{"errcode":0,"errmsg":"ok"}"#,
            r#"{"errcode":0,"result":{}}"#,
            r#"{"errcode":0,"result":{"suggest":"maybe"}}"#,
            "<html></html>",
        ] {
            assert!(
                matches!(verdict(garbage), Err(WeChatError::BadResponse(_))),
                "{garbage}"
            );
        }
        assert!(matches!(
            verdict(r#"{"errcode":61010,"errmsg":"user in-active"}"#),
            Err(WeChatError::Api { errcode: 61010, .. })
        ));
    }

    #[test]
    fn openids_are_masked() {
        assert_eq!(mask_openid("oGZUI0egBJY1zhBYw2KhdUfwVJJE"), "oGZU****VJJE");
        assert_eq!(mask_openid("short"), "****");
    }
}
