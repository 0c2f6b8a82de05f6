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
/// Access tokens live two hours.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(7200);
/// A replaced token keeps working this long (WeChat's overlap for `cgi-bin/token`).
const TOKEN_OVERLAP: Duration = Duration::from_secs(300);

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
    /// Answer HTTP 404, as a server without this endpoint does.
    Missing,
}

struct IssuedCode {
    openid: String,
    unionid: Option<String>,
    /// WeChat renews the session_key when the phone calls wx.login(); the code carries it.
    session_key: String,
    issued_at: SystemTime,
    used: bool,
}

struct PhoneCode {
    openid: String,
    phone: String,
    issued_at: SystemTime,
    used: bool,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, IssuedCode>,
    /// Each user's current session_key: a new login replaces it.
    session_keys: HashMap<String, String>,
    phone_codes: HashMap<String, PhoneCode>,
    /// Every access token handed out, with the moment it stops working.
    access_tokens: HashMap<String, SystemTime>,
    /// The token `stable_token` keeps handing out until it nears expiry.
    stable_token: Option<String>,
    /// Faults by endpoint name; `*` applies to every endpoint.
    faults: HashMap<String, Fault>,
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

    /// The openid a control request means: given outright, or the named test user's.
    fn test_user(&self, openid: Option<&str>, user: Option<&str>) -> Option<String> {
        match (
            openid.filter(|o| !o.is_empty()),
            user.filter(|u| !u.is_empty()),
        ) {
            (Some(o), _) => Some(o.to_string()),
            (None, Some(u)) => Some(self.openid_for(u)),
            (None, None) => None,
        }
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
        let session_key = B64.encode(crate::random::bytes::<16>());
        let mut st = self.state();
        st.session_keys
            .insert(openid.to_string(), session_key.clone());
        st.codes.insert(
            code.clone(),
            IssuedCode {
                openid: openid.to_string(),
                unionid: unionid.map(str::to_string),
                session_key,
                issued_at,
                used: false,
            },
        );
        MintedCode {
            code,
            openid: openid.to_string(),
        }
    }

    /// `count` codes at once, for load tests: code `i` logs in the user with openid
    /// `{prefix}{i % users}`, so `users` below `count` makes returning users.
    pub fn mint_codes(&self, prefix: &str, count: usize, users: usize) -> Vec<String> {
        let users = users.max(1);
        let now = SystemTime::now();
        let mut st = self.state();
        st.codes.reserve(count);
        (0..count)
            .map(|i| {
                let openid = format!("{prefix}{}", i % users);
                let code = format!("0{}", crate::random::token_hex(15));
                let session_key = B64.encode(crate::random::bytes::<16>());
                st.session_keys.insert(openid.clone(), session_key.clone());
                st.codes.insert(
                    code.clone(),
                    IssuedCode {
                        openid,
                        unionid: None,
                        session_key,
                        issued_at: now,
                        used: false,
                    },
                );
                code
            })
            .collect()
    }

    /// Makes every endpoint misbehave (`Fault::None` heals them all).
    pub fn set_fault(&self, fault: Fault) {
        let mut st = self.state();
        st.faults.clear();
        if fault != Fault::None {
            st.faults.insert("*".into(), fault);
        }
    }

    /// Makes one endpoint (e.g. `getuserphonenumber`) misbehave.
    pub fn set_fault_on(&self, endpoint: &str, fault: Fault) {
        let mut st = self.state();
        match fault {
            Fault::None => st.faults.remove(endpoint),
            f => st.faults.insert(endpoint.to_string(), f),
        };
    }

    /// A code from the `getPhoneNumber` button of the user with this openid.
    pub fn mint_phone_code(&self, openid: &str, phone: &str) -> String {
        let code = format!("p{}", crate::random::token_hex(15));
        self.state().phone_codes.insert(
            code.clone(),
            PhoneCode {
                openid: openid.to_string(),
                phone: phone.to_string(),
                issued_at: SystemTime::now(),
                used: false,
            },
        );
        code
    }

    /// What an old client's `getPhoneNumber` hands over: the phone as open data, encrypted with
    /// the user's current session_key, stamped with `appid`'s watermark. `None` before any login.
    pub fn encrypted_phone(
        &self,
        openid: &str,
        phone: &str,
        appid: &str,
    ) -> Option<(String, String)> {
        let key = self.session_key_of(openid)?;
        let plain = serde_json::json!({
            "phoneNumber": phone,
            "purePhoneNumber": phone,
            "countryCode": "86",
            "watermark": { "timestamp": unix_now(), "appid": appid },
        });
        let iv = B64.encode(crate::random::bytes::<16>());
        let data =
            super::crypto::encrypt_open_data(&key, &iv, plain.to_string().as_bytes()).ok()?;
        Some((data, iv))
    }

    /// What `wx.getUserInfo` hands the client with `rawData`: `sha1(rawData + session_key)` with
    /// the user's current key.
    pub fn sign_raw_data(&self, openid: &str, raw_data: &str) -> Option<String> {
        use sha1::Digest as _;
        let key = self.session_key_of(openid)?;
        let digest = sha1::Sha1::digest(format!("{raw_data}{key}").as_bytes());
        Some(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Invalidates every access token at once, as a `force_refresh` elsewhere would.
    pub fn invalidate_access_tokens(&self) {
        let mut st = self.state();
        st.access_tokens.clear();
        st.stable_token = None;
    }

    /// Replaces the user's session_key, as `resetusersessionkey` would.
    pub fn reset_session_key(&self, openid: &str) -> String {
        let key = B64.encode(crate::random::bytes::<16>());
        self.state()
            .session_keys
            .insert(openid.to_string(), key.clone());
        key
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
        st.faults
            .get(endpoint)
            .or_else(|| st.faults.get("*"))
            .cloned()
    }

    fn check_credentials(
        &self,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Option<serde_json::Value> {
        match (appid, secret) {
            (None, _) => Some(wx_error(errcode::MISSING_APPID, "appid missing")),
            (_, None) => Some(wx_error(errcode::MISSING_SECRET, "appsecret missing")),
            (Some(a), _) if a != self.appid => {
                Some(wx_error(errcode::INVALID_APPID, "invalid appid"))
            }
            (_, Some(s)) if s != self.secret => {
                Some(wx_error(errcode::INVALID_SECRET, "invalid appsecret"))
            }
            _ => None,
        }
    }

    fn new_access_token(st: &mut State) -> String {
        let token = format!("ACCESS_{}", crate::random::token_hex(24));
        st.access_tokens
            .insert(token.clone(), SystemTime::now() + ACCESS_TOKEN_TTL);
        token
    }

    fn token_reply(st: &State, token: &str) -> serde_json::Value {
        let left = st
            .access_tokens
            .get(token)
            .and_then(|until| until.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        serde_json::json!({ "access_token": token, "expires_in": left.as_secs() })
    }

    /// `cgi-bin/token`: a new token each time; the previous ones keep working five minutes.
    fn plain_token(&self, appid: Option<&str>, secret: Option<&str>) -> serde_json::Value {
        if let Some(err) = self.check_credentials(appid, secret) {
            return err;
        }
        let mut st = self.state();
        let soon = SystemTime::now() + TOKEN_OVERLAP;
        for until in st.access_tokens.values_mut() {
            *until = (*until).min(soon);
        }
        let token = Self::new_access_token(&mut st);
        Self::token_reply(&st, &token)
    }

    /// `cgi-bin/stable_token`: the same token until five minutes before it expires.
    fn stable_token(&self, req: &StableTokenRequest) -> serde_json::Value {
        if let Some(err) = self.check_credentials(req.appid.as_deref(), req.secret.as_deref()) {
            return err;
        }
        let mut st = self.state();
        let current = st.stable_token.clone().filter(|t| {
            st.access_tokens
                .get(t)
                .is_some_and(|until| *until > SystemTime::now() + TOKEN_OVERLAP)
        });
        let token = match current {
            Some(t) if !req.force_refresh.unwrap_or(false) => t,
            _ => {
                if let Some(old) = st.stable_token.take() {
                    st.access_tokens.remove(&old);
                }
                let t = Self::new_access_token(&mut st);
                st.stable_token = Some(t.clone());
                t
            }
        };
        Self::token_reply(&st, &token)
    }

    /// `None` when the token is good, else WeChat's error for it.
    fn check_access_token(&self, token: Option<&str>) -> Option<serde_json::Value> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Some(wx_error(
                errcode::ACCESS_TOKEN_MISSING,
                "access_token missing",
            ));
        };
        match self.state().access_tokens.get(token) {
            None => Some(wx_error(
                errcode::INVALID_CREDENTIAL,
                "invalid credential, access_token is invalid or not latest",
            )),
            Some(until) if *until <= SystemTime::now() => Some(wx_error(
                errcode::ACCESS_TOKEN_EXPIRED,
                "access_token expired",
            )),
            Some(_) => None,
        }
    }

    fn phone_number(&self, token: Option<&str>, req: &PhoneRequest) -> serde_json::Value {
        if let Some(err) = self.check_access_token(token) {
            return err;
        }
        let mut st = self.state();
        let Some(issued) = req.code.as_deref().and_then(|c| st.phone_codes.get_mut(c)) else {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        };
        let expired = SystemTime::now()
            .duration_since(issued.issued_at)
            .unwrap_or_default()
            > CODE_TTL;
        let wrong_user = req.openid.as_deref().is_some_and(|o| o != issued.openid);
        if expired || wrong_user {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        }
        if issued.used {
            return wx_error(errcode::CODE_BEEN_USED, "code been used");
        }
        issued.used = true;
        let phone = issued.phone.clone();
        serde_json::json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone,
                "purePhoneNumber": phone,
                "countryCode": "86",
                "watermark": { "timestamp": unix_now(), "appid": self.appid },
            }
        })
    }

    /// Checks the login-state signature against the user's current key.
    fn signature_ok(&self, q: &SessionQuery) -> Result<String, serde_json::Value> {
        if let Some(err) = self.check_access_token(q.access_token.as_deref()) {
            return Err(err);
        }
        if q.sig_method.as_deref() != Some("hmac_sha256") {
            return Err(wx_error(87008, "invalid sig_method"));
        }
        let openid = q.openid.clone().unwrap_or_default();
        let key = self.session_key_of(&openid);
        let expected = key
            .as_deref()
            .map(|k| super::crypto::login_state_signature(k, ""));
        match (expected, q.signature.as_deref()) {
            (Some(e), Some(given)) if e == given => Ok(openid),
            _ => Err(wx_error(errcode::INVALID_SIGNATURE, "invalid signature")),
        }
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
        let session_key = issued.session_key.clone();
        let mut body = serde_json::json!({ "openid": openid, "session_key": session_key });
        if let Some(u) = unionid {
            body["unionid"] = serde_json::Value::String(u);
        }
        body
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
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
        Fault::Missing => Some(HttpResponse::NotFound().finish()),
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
struct TokenQuery {
    appid: Option<String>,
    secret: Option<String>,
}

async fn plain_token(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<TokenQuery>) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("token")).await {
        return reply;
    }
    wechat_reply(&fake.plain_token(q.appid.as_deref(), q.secret.as_deref()))
}

#[derive(Deserialize)]
struct StableTokenRequest {
    appid: Option<String>,
    secret: Option<String>,
    force_refresh: Option<bool>,
}

async fn stable_token(fake: web::Data<Arc<FakeWeChat>>, body: web::Bytes) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("stable_token")).await {
        return reply;
    }
    match serde_json::from_slice::<StableTokenRequest>(&body) {
        Ok(req) => wechat_reply(&fake.stable_token(&req)),
        Err(_) => wechat_reply(&wx_error(47001, "data format error")),
    }
}

#[derive(Deserialize)]
struct AccessTokenQuery {
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct PhoneRequest {
    code: Option<String>,
    openid: Option<String>,
}

async fn get_phone_number(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<AccessTokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("getuserphonenumber")).await {
        return reply;
    }
    match serde_json::from_slice::<PhoneRequest>(&body) {
        Ok(req) => wechat_reply(&fake.phone_number(q.access_token.as_deref(), &req)),
        Err(_) => wechat_reply(&wx_error(47001, "data format error")),
    }
}

#[derive(Deserialize)]
struct SessionQuery {
    access_token: Option<String>,
    openid: Option<String>,
    signature: Option<String>,
    sig_method: Option<String>,
}

async fn check_session(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<SessionQuery>,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("checksession")).await {
        return reply;
    }
    match fake.signature_ok(&q) {
        Ok(_) => wechat_reply(&serde_json::json!({ "errcode": 0, "errmsg": "ok" })),
        Err(e) => wechat_reply(&e),
    }
}

async fn reset_session_key(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<SessionQuery>,
) -> HttpResponse {
    if let Some(reply) = apply_fault(fake.count("resetusersessionkey")).await {
        return reply;
    }
    match fake.signature_ok(&q) {
        Ok(openid) => {
            let key = fake.reset_session_key(&openid);
            wechat_reply(
                &serde_json::json!({ "errcode": 0, "errmsg": "ok", "openid": openid, "session_key": key }),
            )
        }
        Err(e) => wechat_reply(&e),
    }
}

#[derive(Deserialize)]
struct MintQuery {
    user: Option<String>,
    openid: Option<String>,
    unionid: Option<String>,
    age_secs: Option<u64>,
}

async fn mint(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<MintQuery>) -> HttpResponse {
    let Some(openid) = fake.test_user(q.openid.as_deref(), q.user.as_deref()) else {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "give ?user=NAME or ?openid=ID"}));
    };
    let age = Duration::from_secs(q.age_secs.unwrap_or(0));
    HttpResponse::Ok().json(fake.mint_code_for(&openid, q.unionid.as_deref(), age))
}

/// The most codes one `fake/codes` call mints.
pub const MAX_BULK_CODES: usize = 1_000_000;

#[derive(Deserialize)]
struct BulkMintQuery {
    count: usize,
    prefix: String,
    users: Option<usize>,
}

/// `POST fake/codes?count=N&prefix=P[&users=K]`: N codes, one per line (`text/plain`), for load
/// generators that post one fresh code per login.
async fn mint_bulk(fake: web::Data<Arc<FakeWeChat>>, q: web::Query<BulkMintQuery>) -> HttpResponse {
    let prefix_ok = (1..=64).contains(&q.prefix.len())
        && q.prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !prefix_ok || !(1..=MAX_BULK_CODES).contains(&q.count) {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": "give count=1..1000000 and prefix=[A-Za-z0-9_-]{1,64}"
        }));
    }
    let codes = fake.mint_codes(&q.prefix, q.count, q.users.unwrap_or(q.count));
    let mut body = String::with_capacity(codes.len() * 32);
    for code in codes {
        body.push_str(&code);
        body.push('\n');
    }
    HttpResponse::Ok().content_type("text/plain").body(body)
}

#[derive(Deserialize)]
struct PhoneMintQuery {
    user: Option<String>,
    openid: Option<String>,
    phone: String,
}

async fn mint_phone(
    fake: web::Data<Arc<FakeWeChat>>,
    q: web::Query<PhoneMintQuery>,
) -> HttpResponse {
    let Some(openid) = fake.test_user(q.openid.as_deref(), q.user.as_deref()) else {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "give ?user=NAME or ?openid=ID"}));
    };
    HttpResponse::Ok().json(serde_json::json!({ "code": fake.mint_phone_code(&openid, &q.phone) }))
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
            .route("/cgi-bin/token", web::get().to(plain_token))
            .route("/cgi-bin/stable_token", web::post().to(stable_token))
            .route(
                "/wxa/business/getuserphonenumber",
                web::post().to(get_phone_number),
            )
            .route("/wxa/checksession", web::get().to(check_session))
            .route("/wxa/resetusersessionkey", web::get().to(reset_session_key))
            .route("/fake/phone_code", web::post().to(mint_phone))
            .route("/fake/code", web::post().to(mint))
            .route("/fake/codes", web::post().to(mint_bulk))
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
    fn bulk_codes_cycle_over_the_users_and_each_works_once() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let codes = fake.mint_codes("load-", 5, 2);
        assert_eq!(codes.len(), 5);
        let openids: Vec<_> = codes
            .iter()
            .map(|c| fake.code2session(&query(&fake, c))["openid"].clone())
            .collect();
        assert_eq!(openids, ["load-0", "load-1", "load-0", "load-1", "load-0"]);
        assert_eq!(
            fake.code2session(&query(&fake, &codes[0]))["errcode"],
            40163
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
    fn stable_tokens_stay_until_invalidated_and_plain_tokens_replace_each_other() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let req = StableTokenRequest {
            appid: Some("wxapp".into()),
            secret: Some("secret".into()),
            force_refresh: None,
        };
        let a = fake.stable_token(&req)["access_token"].clone();
        assert_eq!(fake.stable_token(&req)["access_token"], a);
        assert!(fake.check_access_token(a.as_str()).is_none());
        fake.invalidate_access_tokens();
        assert_eq!(
            fake.check_access_token(a.as_str()).expect("refused")["errcode"],
            40001
        );
        assert_ne!(fake.stable_token(&req)["access_token"], a);

        let p1 = fake.plain_token(Some("wxapp"), Some("secret"))["access_token"].clone();
        let p2 = fake.plain_token(Some("wxapp"), Some("secret"))["access_token"].clone();
        assert_ne!(p1, p2);
        assert!(
            fake.check_access_token(p1.as_str()).is_none(),
            "five minutes of overlap"
        );
        assert_eq!(
            fake.plain_token(Some("wxapp"), Some("bad"))["errcode"],
            40125
        );
    }

    #[test]
    fn phone_codes_are_single_use_and_tied_to_their_user() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let token = fake.plain_token(Some("wxapp"), Some("secret"))["access_token"]
            .as_str()
            .map(str::to_string);
        let code = fake.mint_phone_code("o1", "13800138000");
        let ask = |openid: &str| PhoneRequest {
            code: Some(code.clone()),
            openid: Some(openid.into()),
        };
        assert_eq!(
            fake.phone_number(token.as_deref(), &ask("o2"))["errcode"],
            40029
        );
        assert_eq!(
            fake.phone_number(token.as_deref(), &ask("o1"))["phone_info"]["purePhoneNumber"],
            "13800138000"
        );
        assert_eq!(
            fake.phone_number(token.as_deref(), &ask("o1"))["errcode"],
            40163
        );
        assert_eq!(
            fake.phone_number(Some("stale"), &ask("o1"))["errcode"],
            40001
        );
        assert_eq!(fake.phone_number(None, &ask("o1"))["errcode"], 41001);
    }

    #[test]
    fn encrypted_phones_decrypt_with_the_current_key_only() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let login = fake.mint_code("amy");
        fake.code2session(&query(&fake, &login.code));
        let (data, iv) = fake
            .encrypted_phone(&login.openid, "13900139000", "wxapp")
            .expect("a key exists");
        let key = fake.session_key_of(&login.openid).expect("key");
        let plain = super::super::crypto::decrypt_open_data(&key, &iv, &data).expect("decrypts");
        let json: serde_json::Value = serde_json::from_slice(&plain).expect("json");
        assert_eq!(json["watermark"]["appid"], "wxapp");
        let new_key = fake.reset_session_key(&login.openid);
        assert_ne!(new_key, key);
    }

    #[test]
    fn openids_are_stable_and_look_like_wechat_ones() {
        let fake = FakeWeChat::new("wxapp", "secret");
        assert_eq!(fake.openid_for("alice"), fake.openid_for("alice"));
        assert_ne!(fake.openid_for("alice"), fake.openid_for("bob"));
        assert_eq!(fake.openid_for("alice").len(), 28);
    }
}
