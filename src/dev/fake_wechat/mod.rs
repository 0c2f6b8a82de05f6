//! A faithful fake of the WeChat server APIs wxauth calls, served in dev mode and used by the
//! tests as WeChat. It keeps WeChat's rules: codes are single use and die after five minutes,
//! every login hands out a fresh session_key, errors come as HTTP 200 with an errcode, and
//! `jscode2session` answers as `text/plain`.
//!
//! - `codes.rs`: what a phone's WeChat hands the client (login and phone codes, open data).
//! - `endpoints.rs`: WeChat's server side (tokens, code exchange, phone numbers, signatures).
//! - `wecom.rs`: WeCom's side of staff login (corps, corp tokens, `wx.qy.login()` codes).
//! - `content.rs`: the content check (a word list) and subscribe messages (each one kept).
//! - `faults.rs`: misbehaviour on demand, to test how wxauth copes with a bad WeChat day.
//! - `http.rs`: the routes: WeChat's endpoints, and a small control API under `fake/` (mint a
//!   code for a named test user, switch on faults, read call counts). The same controls are
//!   methods on `FakeWeChat` for in-process tests.

mod codes;
mod content;
mod endpoints;
mod faults;
mod http;
mod wecom;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine;
use sha2::{Digest, Sha256};

pub use self::codes::MintedCode;
pub use self::content::{REVIEW_WORDS, RISKY_WORDS};
pub use self::faults::Fault;
pub use self::http::configure;
pub use self::wecom::{FakeWeCom, MintedWeComCode};

/// Codes live five minutes, as WeChat's do.
pub const CODE_TTL: Duration = Duration::from_secs(300);
/// Access tokens live two hours.
pub(crate) const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(7200);

struct IssuedCode {
    /// The app whose `wx.login()` made it: another app's credentials cannot exchange it.
    appid: String,
    openid: String,
    unionid: Option<String>,
    /// WeChat renews the session_key when the phone calls wx.login(); the code carries it.
    session_key: String,
    issued_at: SystemTime,
    used: bool,
}

struct PhoneCode {
    appid: String,
    openid: String,
    phone: String,
    issued_at: SystemTime,
    used: bool,
}

struct FakeApp {
    appid: String,
    secret: String,
    /// Bound to an open-platform account: its logins of named test users carry their unionid,
    /// the same in every bound app.
    bound: bool,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, IssuedCode>,
    /// Each user's current session_key: a new login replaces it.
    session_keys: HashMap<String, String>,
    phone_codes: HashMap<String, PhoneCode>,
    /// The apps this WeChat knows, the first one `new`'s.
    apps: Vec<FakeApp>,
    /// Every access token handed out: its app, and the moment it stops working.
    access_tokens: HashMap<String, (String, SystemTime)>,
    /// Per app, the token `stable_token` keeps handing out until it nears expiry.
    stable_tokens: HashMap<String, String>,
    /// Faults by endpoint name; `*` applies to every endpoint.
    faults: HashMap<String, Fault>,
    /// Faults for one user on one endpoint: (endpoint, openid).
    user_faults: HashMap<(String, String), Fault>,
    calls: HashMap<&'static str, u64>,
    /// Every subscribe message body received, in order, with the app of its access token.
    subscribe_messages: Vec<(Option<String>, serde_json::Value)>,
}

pub struct FakeWeChat {
    /// The first app's: the one control requests and the plain `mint_*` methods mean.
    appid: String,
    state: Mutex<State>,
    wecom: FakeWeCom,
}

impl FakeWeChat {
    /// A WeChat that knows one mini-program (more with `add_app`), not bound to an open
    /// platform.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Arc<FakeWeChat> {
        let (appid, secret) = (appid.into(), secret.into());
        let state = State {
            apps: vec![FakeApp {
                appid: appid.clone(),
                secret,
                bound: false,
            }],
            ..State::default()
        };
        Arc::new(FakeWeChat {
            appid,
            state: Mutex::new(state),
            wecom: FakeWeCom::default(),
        })
    }

    /// WeCom's side: its corps, tokens and `wx.qy.login()` codes.
    pub fn wecom(&self) -> &FakeWeCom {
        &self.wecom
    }

    /// Another mini-program this WeChat knows.
    pub fn add_app(&self, appid: &str, secret: &str) {
        let mut st = self.state();
        st.apps.retain(|app| app.appid != appid);
        st.apps.push(FakeApp {
            appid: appid.to_string(),
            secret: secret.to_string(),
            bound: false,
        });
    }

    /// Binds the app to the company's open-platform account: from now on its logins of named
    /// test users carry their unionid.
    pub fn bind_open_platform(&self, appid: &str) {
        for app in self.state().apps.iter_mut().filter(|a| a.appid == appid) {
            app.bound = true;
        }
    }

    /// The unionid WeChat gives the named test user in every bound app.
    pub fn unionid_for(&self, user: &str) -> String {
        let digest = Sha256::digest(format!("unionid:{user}").as_bytes());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        format!("u{}", &b64[..27])
    }

    fn is_bound(&self, appid: &str) -> bool {
        self.state()
            .apps
            .iter()
            .any(|app| app.appid == appid && app.bound)
    }

    /// The AppSecret this WeChat knows app `appid` by (tests look for it in logs).
    pub fn secret_of(&self, appid: &str) -> Option<String> {
        self.state()
            .apps
            .iter()
            .find(|app| app.appid == appid)
            .map(|app| app.secret.clone())
    }

    /// Is this one of the apps this WeChat knows?
    pub(crate) fn knows(&self, appid: &str) -> bool {
        self.state().apps.iter().any(|app| app.appid == appid)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; they are still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The openid the first app's WeChat gives the named test user: stable across runs.
    pub fn openid_for(&self, user: &str) -> String {
        self.openid_in(&self.appid, user)
    }

    /// The openid app `appid` gives the named test user: each app its own, as WeChat does.
    pub fn openid_in(&self, appid: &str, user: &str) -> String {
        let digest = Sha256::digest(format!("{appid}:{user}").as_bytes());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        format!("o{}", &b64[..27])
    }

    /// The openid a control request means in app `appid`: given outright, or the named test
    /// user's.
    fn test_user(&self, appid: &str, openid: Option<&str>, user: Option<&str>) -> Option<String> {
        match (
            openid.filter(|o| !o.is_empty()),
            user.filter(|u| !u.is_empty()),
        ) {
            (Some(o), _) => Some(o.to_string()),
            (None, Some(u)) => Some(self.openid_in(appid, u)),
            (None, None) => None,
        }
    }

    /// How many times an endpoint (e.g. `jscode2session`) was called.
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.state().calls.get(endpoint).copied().unwrap_or(0)
    }

    /// The user's current session_key, as WeChat knows it.
    pub fn session_key_of(&self, openid: &str) -> Option<String> {
        self.state().session_keys.get(openid).cloned()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// An error as WeChat words it, with a request id like WeChat's.
fn wx_error(code: i64, msg: &str) -> serde_json::Value {
    let rid = crate::random::token_hex(6);
    serde_json::json!({ "errcode": code, "errmsg": format!("{msg}, rid: {rid}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openids_are_stable_and_look_like_wechat_ones() {
        let fake = FakeWeChat::new("wxapp", "secret");
        assert_eq!(fake.openid_for("alice"), fake.openid_for("alice"));
        assert_ne!(fake.openid_for("alice"), fake.openid_for("bob"));
        assert_eq!(fake.openid_for("alice").len(), 28);
        assert_ne!(fake.openid_in("wxother", "alice"), fake.openid_for("alice"));
    }
}
