//! WeCom (企业微信) as wxauth meets it: staff open a mini-program inside WeCom, `wx.qy.login()`
//! gives a code, and the server exchanges it for the employee's corpid and userid with the
//! access token of the corp's self-built app (`cgi-bin/gettoken`, then
//! `cgi-bin/miniprogram/jscode2session`).
//!
//! WeCom numbers its errors its own way (40001 is a bad secret here, a stale token on the
//! mini-program side), so its errcodes are translated once, here, into the `WeChatError`s the rest
//! of the service already maps to errnos: what reaches a handler means the same whichever API it
//! came from.

use std::fmt;

use serde::Deserialize;

use super::{
    AccessTokenReply, SessionKey, WeChatError, errcode as wechat, parse_reply, printable_id,
};
use crate::config::Secret;

/// One `[[wecom]]` entry: a corp, the secret of its self-built app linked to the mini-program,
/// and that mini-program's appid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeComApp {
    pub corpid: String,
    pub corpsecret: Secret,
    pub appid: String,
}

/// The corp a WeCom login from the mini-program `appid` is exchanged as: the first configured
/// one linked to it. `None`: WeCom login is not configured for that mini-program.
pub fn corp_for_app<'a>(apps: &'a [WeComApp], appid: &str) -> Option<&'a WeComApp> {
    apps.iter().find(|a| a.appid == appid)
}

/// WeCom's errcodes as its documentation words them.
pub(crate) mod errcode {
    pub(crate) const BUSY: i64 = -1;
    /// On `gettoken`: the corpsecret does not belong to the corp (WeCom's "invalid credential").
    pub(crate) const INVALID_SECRET: i64 = 40001;
    pub(crate) const INVALID_CORPID: i64 = 40013;
    pub(crate) const INVALID_ACCESS_TOKEN: i64 = 40014;
    pub(crate) const INVALID_CODE: i64 = 40029;
    pub(crate) const MISSING_ACCESS_TOKEN: i64 = 41001;
    pub(crate) const MISSING_SECRET: i64 = 41004;
    pub(crate) const ACCESS_TOKEN_EXPIRED: i64 = 42001;
    pub(crate) const RATE_LIMITED: i64 = 45009;
}

/// WeCom's `errcode`/`errmsg` as the `WeChatError` of the same meaning, so that the errno a
/// client sees does not depend on which API refused: a bad code is 710, a busy upstream 714, our
/// own bad corpid/corpsecret the same errno (502, logged loudly) as a bad AppSecret.
pub(crate) fn wecom_error(code: i64, errmsg: &str) -> WeChatError {
    let api = |errcode: i64| WeChatError::Api {
        errcode,
        errmsg: format!("WeCom errcode {code}: {errmsg}"),
    };
    match code {
        errcode::INVALID_CODE => api(wechat::INVALID_CODE),
        // A corp-wide quota, not this user's: a busy upstream to the client.
        errcode::BUSY | errcode::RATE_LIMITED => api(wechat::SYSTEM_BUSY),
        errcode::INVALID_CORPID => api(wechat::INVALID_APPID),
        errcode::INVALID_SECRET => api(wechat::INVALID_SECRET),
        errcode::MISSING_SECRET => api(wechat::MISSING_SECRET),
        errcode::MISSING_ACCESS_TOKEN => api(wechat::ACCESS_TOKEN_MISSING),
        // WeChat's 40001 is exactly "invalid access token": a refused corp token is then
        // refreshed and retried once like the mini-program's, and our fault if it persists.
        errcode::INVALID_ACCESS_TOKEN => api(wechat::INVALID_CREDENTIAL),
        errcode::ACCESS_TOKEN_EXPIRED => api(wechat::ACCESS_TOKEN_EXPIRED),
        // Kept out of WeChat's numbering: the same number may mean something else there.
        _ => WeChatError::BadResponse(format!("unexpected WeCom errcode {code}: {errmsg}")),
    }
}

/// Parses a WeCom answer like `parse_reply`, with WeCom's errcodes translated.
fn parse_wecom<T: serde::de::DeserializeOwned>(
    endpoint: &str,
    body: &[u8],
) -> Result<T, WeChatError> {
    parse_reply(endpoint, body).map_err(|e| match e {
        WeChatError::Api { errcode, errmsg } => wecom_error(errcode, &errmsg),
        other => other,
    })
}

/// A `cgi-bin/gettoken` answer; the same shape as the mini-program's access token.
pub(crate) fn parse_gettoken(body: &[u8]) -> Result<AccessTokenReply, WeChatError> {
    let reply: AccessTokenReply = parse_wecom("gettoken", body)?;
    if reply.access_token.is_empty() || reply.expires_in == 0 {
        return Err(WeChatError::BadResponse("gettoken answer is empty".into()));
    }
    Ok(reply)
}

/// What WeCom's `jscode2session` hands back for a good code: whose employee, and their key.
#[derive(Clone)]
pub(crate) struct WeComSession {
    pub(crate) corpid: String,
    pub(crate) userid: String,
    pub(crate) session_key: SessionKey,
}

impl fmt::Debug for WeComSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeComSession")
            .field("corpid", &self.corpid)
            .field("userid", &super::mask_openid(&self.userid))
            .field("session_key", &self.session_key)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawWeComSession {
    corpid: Option<String>,
    userid: Option<String>,
    session_key: Option<String>,
}

/// Parses a WeCom `jscode2session` body. A userid is at most 64 characters in WeCom; the bound
/// here is the looser one every other id gets, so a valid one is never refused.
pub(crate) fn parse_jscode2session(body: &[u8]) -> Result<WeComSession, WeChatError> {
    let raw: RawWeComSession = parse_wecom("wecom jscode2session", body)?;
    let lacks = |what: &str| {
        WeChatError::BadResponse(format!("wecom jscode2session answer lacks a valid {what}"))
    };
    let corpid = raw
        .corpid
        .filter(|c| printable_id(c))
        .ok_or_else(|| lacks("corpid"))?;
    let userid = raw
        .userid
        .filter(|u| printable_id(u))
        .ok_or_else(|| lacks("userid"))?;
    let session_key = raw
        .session_key
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or_else(|| lacks("session_key"))?;
    Ok(WeComSession {
        corpid,
        userid,
        session_key: SessionKey::new(session_key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    fn errno(e: WeChatError) -> i32 {
        ApiError::from(e).errno()
    }

    #[test]
    fn a_login_is_exchanged_as_the_first_corp_linked_to_its_mini_program() {
        let app = |corpid: &str, appid: &str| WeComApp {
            corpid: corpid.into(),
            corpsecret: Secret::new("corp-secret-value"),
            appid: appid.into(),
        };
        let apps = [app("ww1", "wxa"), app("ww2", "wxb"), app("ww3", "wxb")];
        assert_eq!(
            corp_for_app(&apps, "wxb").map(|a| a.corpid.as_str()),
            Some("ww2")
        );
        assert_eq!(
            corp_for_app(&apps, "wxa").map(|a| a.corpid.as_str()),
            Some("ww1")
        );
        assert!(corp_for_app(&apps, "wxc").is_none());
        assert!(!format!("{apps:?}").contains("corp-secret-value"));
    }

    #[test]
    fn a_good_exchange_parses_with_its_corp_and_user() {
        let s = parse_jscode2session(
            br#"{"errcode":0,"errmsg":"ok","corpid":"ww2222222222222222","userid":"zhangsan","session_key":"kJtdi6RF+Dv67QkbLlPGjw=="}"#,
        )
        .expect("documented success");
        assert_eq!(s.corpid, "ww2222222222222222");
        assert_eq!(s.userid, "zhangsan");
        assert_eq!(s.session_key.expose(), "kJtdi6RF+Dv67QkbLlPGjw==");
        let printed = format!("{s:?}");
        assert!(!printed.contains("kJtdi6RF"), "the key stays out of Debug");
        assert!(!printed.contains("zhangsan"), "the userid is masked");
    }

    #[test]
    fn an_exchange_without_its_fields_is_a_bad_response() {
        for body in [
            &br#"{"errcode":0,"errmsg":"ok","userid":"u","session_key":"k"}"#[..],
            br#"{"errcode":0,"errmsg":"ok","corpid":"ww1","session_key":"k"}"#,
            br#"{"errcode":0,"errmsg":"ok","corpid":"ww1","userid":"u"}"#,
            br#"{"corpid":"ww1","userid":"a b","session_key":"k"}"#,
            br#"{"corpid":"","userid":"u","session_key":"k"}"#,
            b"<html>502</html>",
            b"",
        ] {
            assert!(
                matches!(parse_jscode2session(body), Err(WeChatError::BadResponse(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn gettoken_parses_like_an_access_token() {
        let t = parse_gettoken(
            br#"{"errcode":0,"errmsg":"ok","access_token":"CORP_TOKEN","expires_in":7200}"#,
        )
        .expect("documented success");
        assert_eq!(
            (t.access_token.as_str(), t.expires_in),
            ("CORP_TOKEN", 7200)
        );
        assert!(!format!("{t:?}").contains("CORP_TOKEN"));
        assert!(matches!(
            parse_gettoken(br#"{"errcode":0,"errmsg":"ok","access_token":"","expires_in":7200}"#),
            Err(WeChatError::BadResponse(_))
        ));
    }

    #[test]
    fn wecom_errcodes_reach_the_errnos_of_the_same_meaning() {
        let reply = |code: i64| {
            format!(r#"{{"errcode":{code},"errmsg":"message, hint: [x]"}}"#).into_bytes()
        };
        let exchange = |code| errno(parse_jscode2session(&reply(code)).expect_err("refused"));
        let token = |code| errno(parse_gettoken(&reply(code)).expect_err("refused"));
        assert_eq!(
            exchange(40029),
            710,
            "invalid or used code, like wx.login's"
        );
        assert_eq!(exchange(-1), 714, "busy");
        assert_eq!(
            exchange(45009),
            714,
            "the corp's quota: busy, not the user's fault"
        );
        assert_eq!(token(40013), 502, "bad corpid: our configuration");
        assert_eq!(token(40001), 502, "bad corpsecret: our configuration");
        let bad_appsecret = errno(WeChatError::Api {
            errcode: wechat::INVALID_SECRET,
            errmsg: String::new(),
        });
        assert_eq!(token(40001), bad_appsecret, "as a bad AppSecret");
        assert_eq!(exchange(12345), 716, "unknown: a bad response");
        assert_eq!(
            exchange(40163),
            716,
            "WeChat's 40163 means nothing particular in WeCom"
        );
    }

    #[test]
    fn refused_corp_tokens_are_the_ones_retried() {
        for code in [errcode::INVALID_ACCESS_TOKEN, errcode::ACCESS_TOKEN_EXPIRED] {
            let translated = wecom_error(code, "token refused");
            let WeChatError::Api { errcode, errmsg } = &translated else {
                panic!("{translated:?}");
            };
            assert!(wechat::is_stale_access_token(*errcode), "{code}");
            assert!(
                errmsg.contains(&format!("WeCom errcode {code}")),
                "{errmsg}"
            );
        }
        for code in [40001, 40013, 40029, -1, 45009] {
            match wecom_error(code, "x") {
                WeChatError::Api { errcode, .. } => {
                    assert!(!wechat::is_stale_access_token(errcode), "{code}")
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn translated_errors_keep_labels_from_the_closed_set() {
        for code in [
            -1, 40001, 40013, 40014, 40029, 41001, 41004, 42001, 45009, 99999,
        ] {
            let label = wecom_error(code, "x").errcode_label();
            assert!(
                label == "bad_response" || wechat::KNOWN.iter().any(|k| k.to_string() == label),
                "{code} → {label}"
            );
        }
    }
}
