//! WeCom's side of staff login, as the fake plays it: corps with the secret of their self-built
//! app and the mini-program it is linked to, `cgi-bin/gettoken` and
//! `cgi-bin/miniprogram/jscode2session`, and `wx.qy.login()` codes minted for an employee.
//!
//! WeCom's rules kept: a code is single use and dies after five minutes (a used, expired or
//! unknown code is 40029), each login hands out a fresh session_key, a corp token lasts two hours
//! and `gettoken` hands out the same one until then. A code comes from a mini-program, so any
//! corp linked to that mini-program may exchange it, and the answer names the employee's own
//! corp: the client must check it. The endpoints count their calls and suffer the faults set on
//! `gettoken` / `wecom_jscode2session` (or on every endpoint) like the rest of the fake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::faults::apply_fault;
use super::http::wechat_reply;
use super::{ACCESS_TOKEN_TTL, CODE_TTL, FakeWeChat, wx_error};
use crate::wechat::wecom::errcode;

struct Corp {
    secret: String,
    /// The mini-program its self-built app is linked to.
    appid: String,
}

struct IssuedCode {
    corpid: String,
    userid: String,
    /// The mini-program `wx.qy.login()` ran in.
    appid: String,
    session_key: String,
    issued_at: SystemTime,
    used: bool,
}

struct CorpToken {
    corpid: String,
    until: SystemTime,
}

#[derive(Default)]
struct State {
    /// In registration order: the first is the one a mint without a corpid means.
    corps: Vec<(String, Corp)>,
    tokens: HashMap<String, CorpToken>,
    codes: HashMap<String, IssuedCode>,
    /// Each employee's current session_key, by (corpid, userid).
    session_keys: HashMap<(String, String), String>,
}

/// WeCom as the fake plays it; reached through `FakeWeChat::wecom`.
#[derive(Default)]
pub struct FakeWeCom {
    state: Mutex<State>,
}

/// A `wx.qy.login()` code minted for an employee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintedWeComCode {
    pub code: String,
    pub corpid: String,
    pub userid: String,
}

impl FakeWeCom {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; they are still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A corp whose self-built app (with this secret) is linked to the mini-program `appid`.
    /// Registering it again replaces its secret and link.
    pub fn add_corp(&self, corpid: &str, secret: &str, appid: &str) {
        let corp = Corp {
            secret: secret.to_string(),
            appid: appid.to_string(),
        };
        let mut st = self.state();
        match st.corps.iter_mut().find(|(id, _)| id == corpid) {
            Some((_, existing)) => *existing = corp,
            None => st.corps.push((corpid.to_string(), corp)),
        }
    }

    /// What `wx.qy.login()` hands the phone of employee `userid` of `corpid`, issued `age` ago;
    /// `None` for a corp the fake does not know.
    pub fn mint_code_aged(
        &self,
        corpid: &str,
        userid: &str,
        age: Duration,
    ) -> Option<MintedWeComCode> {
        let mut st = self.state();
        let appid = st
            .corps
            .iter()
            .find(|(id, _)| id == corpid)
            .map(|(_, c)| c.appid.clone())?;
        let code = format!("q{}", crate::random::token_hex(15));
        let session_key = B64.encode(crate::random::bytes::<16>());
        st.session_keys.insert(
            (corpid.to_string(), userid.to_string()),
            session_key.clone(),
        );
        st.codes.insert(
            code.clone(),
            IssuedCode {
                corpid: corpid.to_string(),
                userid: userid.to_string(),
                appid,
                session_key,
                issued_at: SystemTime::now()
                    .checked_sub(age)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                used: false,
            },
        );
        Some(MintedWeComCode {
            code,
            corpid: corpid.to_string(),
            userid: userid.to_string(),
        })
    }

    /// A fresh `wx.qy.login()` code of employee `userid` of `corpid`.
    pub fn mint_code(&self, corpid: &str, userid: &str) -> Option<MintedWeComCode> {
        self.mint_code_aged(corpid, userid, Duration::ZERO)
    }

    /// The employee's current session_key, as WeCom knows it.
    pub fn session_key_of(&self, corpid: &str, userid: &str) -> Option<String> {
        self.state()
            .session_keys
            .get(&(corpid.to_string(), userid.to_string()))
            .cloned()
    }

    /// Makes every corp token expired (42001 from now on), as two hours would.
    pub fn expire_tokens(&self) {
        let past = SystemTime::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for token in self.state().tokens.values_mut() {
            token.until = past;
        }
    }

    /// Forgets every corp token (40014 from now on), as a secret reset in WeCom's console would.
    pub fn invalidate_tokens(&self) {
        self.state().tokens.clear();
    }

    /// `cgi-bin/gettoken`: the corp's current token, or a new one once it has expired.
    fn gettoken(&self, corpid: Option<&str>, secret: Option<&str>) -> serde_json::Value {
        let mut st = self.state();
        let Some(corpid) = corpid.filter(|c| st.corps.iter().any(|(id, _)| id == c)) else {
            return wx_error(errcode::INVALID_CORPID, "invalid corpid");
        };
        let Some(secret) = secret.filter(|s| !s.is_empty()) else {
            return wx_error(errcode::MISSING_SECRET, "corpsecret missing");
        };
        if !st
            .corps
            .iter()
            .any(|(id, c)| id == corpid && c.secret == secret)
        {
            return wx_error(errcode::INVALID_SECRET, "invalid credential");
        }
        let now = SystemTime::now();
        let current = st
            .tokens
            .iter()
            .find(|(_, t)| t.corpid == corpid && t.until > now)
            .map(|(token, t)| (token.clone(), t.until));
        let (token, until) = current.unwrap_or_else(|| {
            let token = format!("CORP_{}", crate::random::token_hex(24));
            let until = now + ACCESS_TOKEN_TTL;
            st.tokens.insert(
                token.clone(),
                CorpToken {
                    corpid: corpid.to_string(),
                    until,
                },
            );
            (token, until)
        });
        let left = until.duration_since(now).unwrap_or_default().as_secs();
        serde_json::json!({
            "errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": left
        })
    }

    /// `cgi-bin/miniprogram/jscode2session`: a code of the mini-program the token's corp is
    /// linked to, once, within five minutes; the answer names the employee's corp.
    fn jscode2session(&self, q: &JsCodeQuery) -> serde_json::Value {
        let mut st = self.state();
        let Some(token) = q.access_token.as_deref().filter(|t| !t.is_empty()) else {
            return wx_error(errcode::MISSING_ACCESS_TOKEN, "access_token missing");
        };
        let token_corp = match st.tokens.get(token) {
            None => return wx_error(errcode::INVALID_ACCESS_TOKEN, "invalid access_token"),
            Some(t) if t.until <= SystemTime::now() => {
                return wx_error(errcode::ACCESS_TOKEN_EXPIRED, "access_token expired");
            }
            Some(t) => t.corpid.clone(),
        };
        if q.grant_type.as_deref() != Some("authorization_code") {
            return wx_error(40002, "invalid grant_type");
        }
        let linked_appid = st
            .corps
            .iter()
            .find(|(id, _)| *id == token_corp)
            .map(|(_, c)| c.appid.clone());
        let Some(issued) = q.js_code.as_deref().and_then(|c| st.codes.get_mut(c)) else {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        };
        let expired = SystemTime::now()
            .duration_since(issued.issued_at)
            .unwrap_or_default()
            > CODE_TTL;
        if issued.used || expired || linked_appid.as_deref() != Some(issued.appid.as_str()) {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        }
        issued.used = true;
        serde_json::json!({
            "errcode": 0,
            "errmsg": "ok",
            "corpid": issued.corpid,
            "userid": issued.userid,
            "session_key": issued.session_key,
        })
    }
}

#[derive(Deserialize)]
struct GetTokenQuery {
    corpid: Option<String>,
    corpsecret: Option<String>,
}

#[derive(Deserialize)]
struct JsCodeQuery {
    access_token: Option<String>,
    js_code: Option<String>,
    grant_type: Option<String>,
}

async fn gettoken(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<GetTokenQuery>) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("gettoken")).await {
        return reply;
    }
    wechat_reply(
        &fake
            .wecom()
            .gettoken(q.corpid.as_deref(), q.corpsecret.as_deref()),
    )
}

async fn jscode2session(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<JsCodeQuery>,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("wecom_jscode2session")).await {
        return reply;
    }
    wechat_reply(&fake.wecom().jscode2session(&q))
}

#[derive(Deserialize)]
struct MintQuery {
    corpid: Option<String>,
    userid: Option<String>,
    age_secs: Option<u64>,
}

/// `POST fake/wecom/code?userid=NAME[&corpid=ID][&age_secs=N]`: a `wx.qy.login()` code; the
/// corp defaults to the first one the fake knows.
async fn mint(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<MintQuery>) -> HttpResponse {
    let wecom = fake.wecom();
    let corpid = q
        .corpid
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| wecom.state().corps.first().map(|(id, _)| id.clone()));
    let (Some(corpid), Some(userid)) = (corpid, q.userid.as_deref().filter(|u| !u.is_empty()))
    else {
        return HttpResponse::BadRequest().json(
            serde_json::json!({"error": "give ?userid=NAME (and ?corpid=ID of a known corp)"}),
        );
    };
    let age = Duration::from_secs(q.age_secs.unwrap_or(0));
    match wecom.mint_code_aged(&corpid, userid, age) {
        Some(minted) => HttpResponse::Ok().json(minted),
        None => HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "the fake knows no such corp"})),
    }
}

/// WeCom's endpoints and the mint, relative to the fake's scope.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cgi-bin/gettoken", web::get().to(gettoken))
        .route(
            "/cgi-bin/miniprogram/jscode2session",
            web::get().to(jscode2session),
        )
        .route("/fake/wecom/code", web::post().to(mint));
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORP: &str = "ww0000000000000001";
    const OTHER: &str = "ww0000000000000002";

    fn wecom() -> FakeWeCom {
        let w = FakeWeCom::default();
        w.add_corp(CORP, "corp-secret", "wxapp");
        w.add_corp(OTHER, "other-secret", "wxapp");
        w.add_corp("ww0000000000000003", "third-secret", "wxelse");
        w
    }

    fn token(w: &FakeWeCom, corp: &str, secret: &str) -> String {
        let reply = w.gettoken(Some(corp), Some(secret));
        reply["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{reply}"))
            .to_string()
    }

    fn exchange(token: &str, code: &str) -> JsCodeQuery {
        JsCodeQuery {
            access_token: Some(token.into()),
            js_code: Some(code.into()),
            grant_type: Some("authorization_code".into()),
        }
    }

    #[test]
    fn codes_are_single_use_with_a_fresh_key_each_login() {
        let w = wecom();
        let t = token(&w, CORP, "corp-secret");
        let a = w.mint_code(CORP, "zhangsan").expect("known corp");
        let first = w.jscode2session(&exchange(&t, &a.code));
        assert_eq!(
            (
                first["errcode"].clone(),
                first["corpid"].clone(),
                first["userid"].clone()
            ),
            (0.into(), CORP.into(), "zhangsan".into())
        );
        assert_eq!(w.jscode2session(&exchange(&t, &a.code))["errcode"], 40029);
        let b = w.mint_code(CORP, "zhangsan").expect("known corp");
        let second = w.jscode2session(&exchange(&t, &b.code));
        assert_ne!(first["session_key"], second["session_key"]);
        assert_eq!(
            w.session_key_of(CORP, "zhangsan").as_deref(),
            second["session_key"].as_str()
        );
        assert!(w.mint_code("ww-unknown", "x").is_none());
    }

    #[test]
    fn old_unknown_and_foreign_mini_program_codes_are_40029() {
        let w = wecom();
        let t = token(&w, CORP, "corp-secret");
        let old = w
            .mint_code_aged(CORP, "u", CODE_TTL + Duration::from_secs(1))
            .expect("known corp");
        assert_eq!(w.jscode2session(&exchange(&t, &old.code))["errcode"], 40029);
        assert_eq!(w.jscode2session(&exchange(&t, "qnope"))["errcode"], 40029);
        let elsewhere = w.mint_code("ww0000000000000003", "u").expect("known");
        assert_eq!(
            w.jscode2session(&exchange(&t, &elsewhere.code))["errcode"],
            40029,
            "a code of another mini-program"
        );
        let mut q = exchange(&t, "x");
        q.grant_type = None;
        assert_eq!(w.jscode2session(&q)["errcode"], 40002);
    }

    #[test]
    fn a_code_of_a_corp_linked_to_the_same_mini_program_names_that_corp() {
        let w = wecom();
        let t = token(&w, CORP, "corp-secret");
        let theirs = w.mint_code(OTHER, "lisi").expect("known corp");
        let reply = w.jscode2session(&exchange(&t, &theirs.code));
        assert_eq!(reply["corpid"], OTHER);
    }

    #[test]
    fn tokens_last_until_they_expire_and_are_bound_to_credentials() {
        let w = wecom();
        let t = token(&w, CORP, "corp-secret");
        assert_eq!(token(&w, CORP, "corp-secret"), t, "the same while valid");
        assert_ne!(token(&w, OTHER, "other-secret"), t, "each corp its own");
        let code = w.mint_code(CORP, "u").expect("known").code;
        w.expire_tokens();
        assert_eq!(w.jscode2session(&exchange(&t, &code))["errcode"], 42001);
        let fresh = token(&w, CORP, "corp-secret");
        assert_ne!(fresh, t);
        w.invalidate_tokens();
        assert_eq!(w.jscode2session(&exchange(&fresh, &code))["errcode"], 40014);
        assert_eq!(
            w.jscode2session(&JsCodeQuery {
                access_token: None,
                js_code: Some(code),
                grant_type: Some("authorization_code".into()),
            })["errcode"],
            41001
        );
        assert_eq!(w.gettoken(Some(CORP), Some("wrong"))["errcode"], 40001);
        assert_eq!(
            w.gettoken(Some(CORP), Some("other-secret"))["errcode"],
            40001
        );
        assert_eq!(w.gettoken(Some("ww-unknown"), Some("x"))["errcode"], 40013);
        assert_eq!(w.gettoken(None, Some("x"))["errcode"], 40013);
        assert_eq!(w.gettoken(Some(CORP), None)["errcode"], 41004);
    }
}
