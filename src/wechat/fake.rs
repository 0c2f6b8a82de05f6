//! A faithful fake of the WeChat server APIs wxauth calls, served in dev mode and used by the
//! tests as WeChat. It keeps WeChat's rules: codes are single use and die after five minutes,
//! every login hands out a fresh session_key, errors come as HTTP 200 with an errcode, and
//! `jscode2session` answers as `text/plain`.
//!
//! Besides the WeChat endpoints it has a small control API under `fake/` (mint a code for a named
//! test user, switch on faults, read call counts). The same controls are methods on `FakeWeChat`
//! for in-process tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::errcode;

/// Codes live five minutes, as WeChat's do.
pub const CODE_TTL: Duration = Duration::from_secs(300);

/// What the fake does to the next calls, to test how wxauth copes with a misbehaving WeChat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Fault {
    /// Behave like WeChat on a good day.
    None,
    /// Answer `{"errcode":-1,"errmsg":"system error"}`.
    Busy,
    /// Wait this long before answering normally.
    Slow { delay_ms: u64 },
    /// Answer an HTML error page instead of JSON.
    Garbage,
    /// Answer this errcode.
    Errcode { errcode: i64 },
}

struct IssuedCode {
    openid: String,
    unionid: Option<String>,
    issued_at: SystemTime,
    used: bool,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, IssuedCode>,
    /// Each user's current session_key: a new login replaces it.
    session_keys: HashMap<String, String>,
    fault: Option<Fault>,
    calls: HashMap<&'static str, u64>,
}

pub struct FakeWeChat {
    appid: String,
    secret: String,
    state: Mutex<State>,
}

/// A code minted for a test user, with the openid WeChat will report for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintedCode {
    pub code: String,
    pub openid: String,
}

impl FakeWeChat {
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Arc<FakeWeChat> {
        Arc::new(FakeWeChat {
            appid: appid.into(),
            secret: secret.into(),
            state: Mutex::new(State::default()),
        })
    }

    pub fn appid(&self) -> &str {
        &self.appid
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; they are still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The openid this app's WeChat gives the named test user: stable across runs.
    pub fn openid_for(&self, user: &str) -> String {
        let digest = Sha256::digest(format!("{}:{user}", self.appid).as_bytes());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        format!("o{}", &b64[..27])
    }

    /// What `wx.login()` would hand the named user's phone.
    pub fn mint_code(&self, user: &str) -> MintedCode {
        let openid = self.openid_for(user);
        self.mint_code_for(&openid, None, Duration::ZERO)
    }

    /// A code for an exact openid (and unionid), issued `age` ago.
    pub fn mint_code_for(&self, openid: &str, unionid: Option<&str>, age: Duration) -> MintedCode {
        let code = format!("0{}", crate::random::token_hex(15));
        let issued_at = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.state().codes.insert(
            code.clone(),
            IssuedCode {
                openid: openid.to_string(),
                unionid: unionid.map(str::to_string),
                issued_at,
                used: false,
            },
        );
        MintedCode {
            code,
            openid: openid.to_string(),
        }
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state().fault = match fault {
            Fault::None => None,
            f => Some(f),
        };
    }

    /// How many times an endpoint (e.g. `jscode2session`) was called.
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.state().calls.get(endpoint).copied().unwrap_or(0)
    }

    /// The user's current session_key, as WeChat knows it.
    pub fn session_key_of(&self, openid: &str) -> Option<String> {
        self.state().session_keys.get(openid).cloned()
    }

    /// Every session_key ever current for some user: for tests that look for leaks.
    pub fn all_session_keys(&self) -> Vec<String> {
        self.state().session_keys.values().cloned().collect()
    }

    fn count(&self, endpoint: &'static str) -> Option<Fault> {
        let mut st = self.state();
        *st.calls.entry(endpoint).or_insert(0) += 1;
        st.fault.clone()
    }

    fn code2session(&self, q: &Code2SessionQuery) -> serde_json::Value {
        let (Some(appid), Some(secret), Some(js_code)) = (&q.appid, &q.secret, &q.js_code) else {
            let code = if q.appid.is_none() {
                errcode::MISSING_APPID
            } else if q.secret.is_none() {
                errcode::MISSING_SECRET
            } else {
                errcode::MISSING_CODE
            };
            return wx_error(code, "missing parameter");
        };
        if appid != &self.appid {
            return wx_error(errcode::INVALID_APPID, "invalid appid");
        }
        if secret != &self.secret {
            return wx_error(errcode::INVALID_SECRET, "invalid appsecret");
        }
        if q.grant_type.as_deref() != Some("authorization_code") {
            return wx_error(40002, "invalid grant_type");
        }
        let mut st = self.state();
        let Some(issued) = st.codes.get_mut(js_code) else {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        };
        if issued.used {
            return wx_error(errcode::CODE_BEEN_USED, "code been used");
        }
        let age = SystemTime::now()
            .duration_since(issued.issued_at)
            .unwrap_or_default();
        if age > CODE_TTL {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        }
        issued.used = true;
        let openid = issued.openid.clone();
        let unionid = issued.unionid.clone();
        let session_key = B64.encode(crate::random::bytes::<16>());
        st.session_keys.insert(openid.clone(), session_key.clone());
        let mut body = serde_json::json!({ "openid": openid, "session_key": session_key });
        if let Some(u) = unionid {
            body["unionid"] = serde_json::Value::String(u);
        }
        body
    }
}

fn wx_error(code: i64, msg: &str) -> serde_json::Value {
    let rid = crate::random::token_hex(6);
    serde_json::json!({ "errcode": code, "errmsg": format!("{msg}, rid: {rid}") })
}

#[derive(Deserialize)]
struct Code2SessionQuery {
    appid: Option<String>,
    secret: Option<String>,
    js_code: Option<String>,
    grant_type: Option<String>,
}

/// Answers as WeChat does: HTTP 200, JSON bytes labelled `text/plain`.
fn wechat_reply(body: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body(body.to_string())
}

/// Applies a configured fault; `Some` is the answer to send instead of the real one.
async fn apply_fault(fault: Option<Fault>) -> Option<HttpResponse> {
    match fault? {
        Fault::None => None,
        Fault::Busy => Some(wechat_reply(&wx_error(
            errcode::SYSTEM_BUSY,
            "system error",
        ))),
        Fault::Slow { delay_ms } => {
            actix_web::rt::time::sleep(Duration::from_millis(delay_ms)).await;
            None
        }
        Fault::Garbage => Some(
            HttpResponse::Ok()
                .content_type("text/html")
                .body("<html><body>502 Bad Gateway</body></html>"),
        ),
        Fault::Errcode { errcode } => Some(wechat_reply(&wx_error(errcode, "injected error"))),
    }
}

async fn jscode2session(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<Code2SessionQuery>,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("jscode2session")).await {
        return reply;
    }
    wechat_reply(&fake.code2session(&q))
}

#[derive(Deserialize)]
struct MintQuery {
    user: Option<String>,
    openid: Option<String>,
    unionid: Option<String>,
    age_secs: Option<u64>,
}

async fn mint(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<MintQuery>) -> HttpResponse {
    let openid = match (&q.openid, &q.user) {
        (Some(o), _) if !o.is_empty() => o.clone(),
        (_, Some(u)) if !u.is_empty() => fake.openid_for(u),
        _ => {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({"error": "give ?user=NAME or ?openid=ID"}));
        }
    };
    let age = Duration::from_secs(q.age_secs.unwrap_or(0));
    HttpResponse::Ok().json(fake.mint_code_for(&openid, q.unionid.as_deref(), age))
}

async fn set_fault(fake: web::Data<Arc<FakeWeChat>>, body: web::Json<Fault>) -> HttpResponse {
    fake.set_fault(body.into_inner());
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

async fn stats(fake: web::Data<Arc<FakeWeChat>>) -> HttpResponse {
    let calls = fake.state().calls.clone();
    HttpResponse::Ok().json(serde_json::json!({ "calls": calls }))
}

/// Mounts the fake's routes (relative to the scope it is mounted in).
pub fn configure(fake: Arc<FakeWeChat>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(fake))
            .route("/sns/jscode2session", web::get().to(jscode2session))
            .route("/fake/code", web::post().to(mint))
            .route("/fake/fault", web::post().to(set_fault))
            .route("/fake/stats", web::get().to(stats));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(fake: &FakeWeChat, code: &str) -> Code2SessionQuery {
        Code2SessionQuery {
            appid: Some(fake.appid.clone()),
            secret: Some(fake.secret.clone()),
            js_code: Some(code.to_string()),
            grant_type: Some("authorization_code".into()),
        }
    }

    #[test]
    fn codes_are_single_use_and_keys_fresh() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let a = fake.mint_code("alice");
        let first = fake.code2session(&query(&fake, &a.code));
        assert_eq!(first["openid"], a.openid);
        assert_eq!(fake.code2session(&query(&fake, &a.code))["errcode"], 40163);
        let b = fake.mint_code("alice");
        let second = fake.code2session(&query(&fake, &b.code));
        assert_ne!(first["session_key"], second["session_key"]);
        assert_eq!(
            fake.session_key_of(&a.openid).as_deref(),
            second["session_key"].as_str()
        );
    }

    #[test]
    fn expired_unknown_and_wrong_credentials() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let old = fake.mint_code_for("o1", None, CODE_TTL + Duration::from_secs(1));
        assert_eq!(
            fake.code2session(&query(&fake, &old.code))["errcode"],
            40029
        );
        assert_eq!(fake.code2session(&query(&fake, "nope"))["errcode"], 40029);
        let good = fake.mint_code("bob");
        let mut q = query(&fake, &good.code);
        q.secret = Some("wrong".into());
        assert_eq!(fake.code2session(&q)["errcode"], 40125);
        q.appid = Some("wxother".into());
        assert_eq!(fake.code2session(&q)["errcode"], 40013);
        q.appid = None;
        assert_eq!(fake.code2session(&q)["errcode"], 41002);
    }

    #[test]
    fn openids_are_stable_and_look_like_wechat_ones() {
        let fake = FakeWeChat::new("wxapp", "secret");
        assert_eq!(fake.openid_for("alice"), fake.openid_for("alice"));
        assert_ne!(fake.openid_for("alice"), fake.openid_for("bob"));
        assert_eq!(fake.openid_for("alice").len(), 28);
    }
}
