//! The fault tests against the `wxauth` binary (release, from `scripts/fault-test`) with its
//! built-in WeChat fake. They take most of a minute, so they are `#[ignore]`d in the ordinary
//! suite and run by `scripts/fault-test`.
//!
//! 1. Steady logins and reads while the process is SIGKILLed and restarted, its database
//!    connections are cut (a TCP proxy between it and PostgreSQL drops every connection and
//!    refuses new ones for a while, as a database restart or a network cut would), and WeChat
//!    turns slow, busy and garbage. Asserts: every login that answered errno 0 has its user and
//!    session rows; no duplicate users; tokens issued before the kill still work after it; during
//!    faults every request got an envelope within 3 s; after the faults, full recovery.
//! 2. Two instances on one database, one of them behind a proxy that freezes its NOTIFY
//!    listener's connection (no data, no close). Asserts: a logout on the other instance is
//!    refused there within 5 s; a user disabled in SQL cannot write there; the listener recovers.

// Shared with the api tests, which use all of them; this binary uses a part.
#[allow(dead_code)]
#[path = "api/binary.rs"]
mod binary;
#[allow(dead_code)]
#[path = "api/database.rs"]
mod database;
#[path = "api/db_proxy.rs"]
mod db_proxy;
#[allow(dead_code)]
#[path = "api/reply.rs"]
mod reply;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::http::Method;
use base64::Engine;
use diesel::prelude::*;
use serde_json::{Value, json};

use binary::{BinaryApp, free_port};
use database::{Count, count};
use db_proxy::DbProxy;
use wxauth::dev::fake_wechat::{FakeWeChat, Fault};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
const CLIENTS: usize = 6;
const JWT_SECRET: &str = "fault-test-jwt-secret-0123456789abcdef";

#[derive(Debug, Clone)]
struct Outcome {
    phase: &'static str,
    op: &'static str,
    /// `None`: no envelope came back (connection refused, timeout, not JSON).
    errno: Option<i64>,
    latency: Duration,
}

#[derive(Default)]
struct Record {
    outcomes: Vec<Outcome>,
    /// (openid, token) of every login that answered errno 0.
    logins: Vec<(String, String)>,
}

struct Driver {
    base: String,
    http: awc::Client,
    record: Rc<RefCell<Record>>,
}

impl Driver {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (Option<Value>, Duration) {
        let url = format!("{}{path}", self.base);
        let headers: Vec<(&str, &str)> = token.map(|t| ("X-OA-Token", t)).into_iter().collect();
        let started = Instant::now();
        let sent = binary::send(&self.http, method, &url, &headers, body.as_ref()).await;
        let value = match sent {
            Ok(reply) if !reply.body.is_null() => Some(reply.body),
            Ok(reply) => {
                eprintln!("{path}: HTTP {}, body not JSON", reply.status);
                None
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                None
            }
        };
        (value, started.elapsed())
    }

    fn note(
        &self,
        phase: &'static str,
        op: &'static str,
        answer: &Option<Value>,
        latency: Duration,
    ) {
        let errno = answer.as_ref().and_then(|v| v["errno"].as_i64());
        self.record.borrow_mut().outcomes.push(Outcome {
            phase,
            op,
            errno,
            latency,
        });
    }

    /// One client's loop: log in (a small set of users, so logins are both first and repeat),
    /// then read with the token.
    async fn client(&self, phase: &'static str, id: usize, until: Instant) {
        let mut n = 0;
        while Instant::now() < until {
            let user = format!("c{id}-u{}", n % 7);
            n += 1;
            let (minted, _) = self
                .call(
                    Method::POST,
                    &format!("/__wechat/fake/code?user={user}"),
                    None,
                    None,
                )
                .await;
            let Some(code) = minted
                .as_ref()
                .and_then(|m| m["code"].as_str().map(str::to_string))
            else {
                self.note(phase, "mint", &None, Duration::ZERO);
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let openid = minted
                .as_ref()
                .and_then(|m| m["openid"].as_str())
                .unwrap_or_default()
                .to_string();
            let (answer, latency) = self
                .call(
                    Method::POST,
                    "/oapro/wx/auth/login_by_weixin",
                    Some(json!({ "code": code })),
                    None,
                )
                .await;
            self.note(phase, "login", &answer, latency);
            let token = answer
                .as_ref()
                .filter(|a| a["errno"] == 0)
                .and_then(|a| a["data"]["token"].as_str().map(str::to_string));
            if let Some(token) = token {
                self.record
                    .borrow_mut()
                    .logins
                    .push((openid, token.clone()));
                let (read, latency) = self
                    .call(Method::GET, "/oapro/wx/user/index", None, Some(&token))
                    .await;
                self.note(phase, "read", &read, latency);
            }
        }
    }

    async fn load(&self, phase: &'static str, duration: Duration) {
        let until = Instant::now() + duration;
        futures_util::future::join_all((0..CLIENTS).map(|id| self.client(phase, id, until))).await;
    }

    /// Per phase, operation and errno: how many answers (printed; the assertions come after).
    fn summary(&self) {
        let mut counts: std::collections::BTreeMap<(&str, &str, Option<i64>), usize> =
            Default::default();
        for o in &self.record.borrow().outcomes {
            *counts.entry((o.phase, o.op, o.errno)).or_default() += 1;
        }
        for ((phase, op, errno), n) in counts {
            println!("{phase:>16} {op:>6} errno {errno:?}: {n}");
        }
    }

    async fn set_fault(&self, fault: Value) {
        let (answer, _) = self
            .call(Method::POST, "/__wechat/fake/fault", Some(fault), None)
            .await;
        assert!(answer.is_some(), "the fake takes the fault");
    }
}

fn jti_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("jwt payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("b64");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["jti"].as_str().expect("jti").to_string()
}

#[actix_web::test]
#[ignore = "half a minute against the release binary: run with scripts/fault-test"]
async fn wxauth_survives_kills_database_cuts_and_a_misbehaving_wechat() {
    let proxy = DbProxy::start();
    let deployment = BinaryApp::builder()
        // A fixed address: the same deployment starts again there after the kill.
        .env("BIND_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("JWT_SECRET", JWT_SECRET)
        .env("DB_POOL_SIZE", "4")
        .env("RATE_LOGIN_PER_IP", "0")
        .env("RATE_LOGIN_PER_OPENID", "0");
    let db_url = deployment.db_url();
    let mut bin = deployment
        .env("DATABASE_URL", proxy.url_for(&db_url))
        .start()
        .await;
    let driver = Driver {
        base: bin.base.clone(),
        http: awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish(),
        record: Rc::new(RefCell::new(Record::default())),
    };

    driver.load("steady", Duration::from_secs(3)).await;

    // SIGKILL mid-traffic, then the same deployment starts again.
    let before_kill: Vec<String> = driver
        .record
        .borrow()
        .logins
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    let killing = driver.load("kill", Duration::from_millis(700));
    let kill = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        bin.signal("KILL");
    };
    futures_util::future::join(killing, kill).await;
    assert_eq!(
        bin.wait_exit(Duration::from_secs(5)).await,
        None,
        "killed, no exit code"
    );
    let restarted_at = Instant::now();
    let _restarted = bin.again().start().await;
    println!("restart to ready: {:?}", restarted_at.elapsed());
    for token in before_kill.iter().rev().take(20) {
        let (answer, _) = driver
            .call(Method::GET, "/oapro/wx/user/index", None, Some(token))
            .await;
        let answer = answer.expect("an envelope");
        // A token whose user logged in again since is still its own session: still valid.
        assert_eq!(answer["errno"], 0, "token from before the kill: {answer}");
    }
    driver.load("after-kill", Duration::from_secs(2)).await;

    // The database goes away under load (every connection cut, new ones refused), then returns.
    let outage = async {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        proxy.cut();
        actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
        let (ready, _) = driver.call(Method::GET, "/readyz", None, None).await;
        actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
        proxy.restore();
        ready
    };
    let (_, ready_during_cut) =
        futures_util::future::join(driver.load("database-cut", Duration::from_secs(4)), outage)
            .await;
    let ready_during_cut = ready_during_cut.expect("/readyz answered during the cut");
    assert_eq!(
        ready_during_cut["status"], "unavailable",
        "/readyz reflects the outage"
    );
    driver.load("database-back", Duration::from_secs(3)).await;
    let (ready_after, _) = driver.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        ready_after.expect("/readyz")["status"],
        "ready",
        "and its end"
    );

    let wechat_faults = [
        (
            "wechat-slow",
            json!({ "mode": "slow", "delay_ms": 5000 }),
            715,
        ),
        ("wechat-busy", json!({ "mode": "busy" }), 714),
        ("wechat-garbage", json!({ "mode": "garbage" }), 716),
    ];
    for (phase, fault, _) in &wechat_faults {
        driver.set_fault(fault.clone()).await;
        driver.load(phase, Duration::from_secs(3)).await;
    }
    driver.set_fault(json!({ "mode": "none" })).await;
    driver.load("recovered", Duration::from_secs(3)).await;

    driver.summary();
    let record = driver.record.borrow();
    for (phase, _, errno) in &wechat_faults {
        let logins: Vec<&Outcome> = record
            .outcomes
            .iter()
            .filter(|o| o.phase == *phase && o.op == "login")
            .collect();
        assert!(!logins.is_empty(), "{phase}: load ran");
        assert!(
            logins.iter().all(|o| o.errno == Some(*errno)),
            "{phase}: {logins:?}"
        );
    }
    let recovered: Vec<&Outcome> = record
        .outcomes
        .iter()
        .filter(|o| o.phase == "recovered")
        .collect();
    assert!(recovered.len() > 10, "load ran after recovery");
    assert!(
        recovered.iter().all(|o| o.errno == Some(0)),
        "full recovery: {recovered:?}"
    );
    for o in record.outcomes.iter().filter(|o| o.phase != "kill") {
        assert!(o.errno.is_some(), "no envelope: {o:?}");
        assert!(o.latency < CLIENT_TIMEOUT, "too slow: {o:?}");
    }
    let during_outage = record
        .outcomes
        .iter()
        .filter(|o| o.phase == "database-cut" && o.errno == Some(502))
        .count();
    println!(
        "outcomes: {}, logins ok: {}, 502s while the database was cut: {during_outage}",
        record.outcomes.len(),
        record.logins.len()
    );

    // Every login that said errno 0 left its rows; no user twice.
    let mut conn = PgConnection::establish(&db_url).expect("db");
    for (openid, token) in &record.logins {
        let users: Count =
            diesel::sql_query("SELECT count(*) AS n FROM wx_user WHERE weixin_openid = $1")
                .bind::<diesel::sql_types::Text, _>(openid)
                .get_result(&mut conn)
                .expect("query");
        assert_eq!(users.n, 1, "user row for {openid}");
        let sessions: Count =
            diesel::sql_query("SELECT count(*) AS n FROM user_session WHERE id = $1")
                .bind::<diesel::sql_types::Text, _>(jti_of(token))
                .get_result(&mut conn)
                .expect("query");
        assert_eq!(sessions.n, 1, "session row for a login that answered 0");
    }
    let dupes = count(
        &db_url,
        "SELECT count(*) - count(DISTINCT weixin_openid) AS n FROM wx_user",
    );
    assert_eq!(dupes, 0);
}

/// The named test user logs in on `app`; the token and the user's id.
async fn login(app: &BinaryApp, user: &str) -> (String, i64) {
    let answer = app.login(user).await;
    assert_eq!(answer.errno(), 0, "login: {}", answer.raw);
    let id = answer.body["data"]["userInfo"]["userId"]
        .as_i64()
        .expect("a userId");
    (answer.token(), id)
}

async fn errno(app: &BinaryApp, token: &str) -> i64 {
    app.get("/oapro/wx/user/index", &[("X-OA-Token", token)])
        .await
        .errno()
}

/// `/readyz`, once its listener state is (or is not) `ok`, within `limit`.
async fn listener_ok(app: &BinaryApp, want: bool, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let ready = app.get("/readyz", &[]).await.body;
        assert_eq!(ready["status"], "ready", "{ready}");
        if (ready["listener"]["state"] == "ok") == want {
            return ready;
        }
        assert!(started.elapsed() < limit, "listener: {ready}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
#[ignore = "against the release binary: run with scripts/fault-test"]
async fn a_frozen_listener_does_not_keep_revoked_tokens_or_disabled_users_alive() {
    let proxy = DbProxy::start();
    let instance = BinaryApp::builder()
        .env("JWT_SECRET", JWT_SECRET)
        .env("DB_POOL_SIZE", "2");
    let behind_proxy = instance
        .clone()
        .env("DATABASE_URL", proxy.url_for(&instance.db_url()));
    let b = instance.start().await;
    let d = behind_proxy.start().await;

    // A token logged out on B stops working on D within 5 s, though D's listener hears nothing.
    let (token, _) = login(&b, "frozen-1").await;
    listener_ok(&d, true, Duration::from_secs(10)).await;
    assert_eq!(errno(&d, &token).await, 0);
    assert_eq!(proxy.freeze_listeners(), 1, "D's listener connection");
    let logout = b
        .post(
            "/oapro/wx/auth/logout",
            &json!({}),
            &[("X-OA-Token", &token)],
        )
        .await;
    assert_eq!(logout.errno(), 0, "{}", logout.raw);
    let started = Instant::now();
    let mut answers = Vec::new();
    loop {
        let errno = errno(&d, &token).await;
        answers.push(errno);
        if errno == 501 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the logged-out token still works on D after 5 s: {answers:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    println!("logout on B refused on D after {:?}", started.elapsed());
    // D replaced the frozen connection by itself.
    let ready = listener_ok(&d, true, Duration::from_secs(10)).await;
    assert_eq!(ready["listener"]["replacements"], 1, "{ready}");

    // A user disabled in SQL (the trigger revokes the sessions and notifies, D does not hear)
    // cannot write on D, not even before D notices its listener is deaf.
    let (token, user_id) = login(&b, "frozen-2").await;
    assert_eq!(errno(&d, &token).await, 0);
    assert_eq!(proxy.freeze_listeners(), 1, "D's new listener connection");
    let mut conn = PgConnection::establish(&b.db_url).expect("db");
    let disabled = diesel::sql_query("UPDATE wx_user SET status = 1 WHERE id = $1")
        .bind::<diesel::sql_types::BigInt, _>(user_id)
        .execute(&mut conn)
        .expect("disable");
    assert_eq!(disabled, 1);
    let profile = d
        .post(
            "/oapro/wx/auth/profile",
            &json!({ "nickname": "changed" }),
            &[("X-OA-Token", &token)],
        )
        .await;
    assert_eq!(profile.errno(), 501, "{}", profile.raw);
    let changed = count(
        &b.db_url,
        "SELECT count(*) AS n FROM wx_user WHERE nickname = 'changed'",
    );
    assert_eq!(changed, 0, "the profile is unchanged");
    // The second frozen connection is replaced too.
    let started = Instant::now();
    loop {
        let ready = listener_ok(&d, true, Duration::from_secs(10)).await;
        if ready["listener"]["replacements"] == 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{ready}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        d.log_text().contains("session listener"),
        "D logged the listener's trouble:\n{}",
        d.log_text()
    );
}

/// First logins sent all at once, each with its own code; answers how many codes the fake
/// received and how many sessions came of them.
async fn login_burst(
    base: &str,
    fake: &FakeWeChat,
    db_url: &str,
    prefix: &str,
    logins: usize,
) -> (u64, i64) {
    let http = awc::Client::builder()
        .connector(awc::Connector::new().limit(logins))
        .timeout(Duration::from_secs(30))
        .finish();
    let codes: Vec<String> = (0..logins)
        .map(|i| {
            fake.mint_code_for(&format!("{prefix}{i}"), None, Duration::ZERO)
                .code
        })
        .collect();
    let sessions = || count(db_url, "SELECT count(*) AS n FROM user_session");
    let (sent_before, sessions_before) = (fake.calls("jscode2session"), sessions());
    let url = format!("{base}/oapro/wx/auth/login_by_weixin");
    let answered = futures_util::future::join_all(codes.iter().map(|code| {
        let request = http.post(&url);
        async move {
            let mut response = request.send_json(&json!({ "code": code })).await.ok()?;
            let body = response.body().await.ok()?;
            serde_json::from_slice::<Value>(&body).ok()?["errno"].as_i64()
        }
    }))
    .await;
    let mut errnos = std::collections::BTreeMap::new();
    for errno in &answered {
        *errnos.entry(*errno).or_insert(0) += 1;
    }
    assert!(
        answered.iter().flatten().count() * 100 >= logins * 99,
        "nearly every login was answered: {errnos:?}"
    );
    // A session is written before its answer: the last ones are in once every answer is.
    let sent = fake.calls("jscode2session") - sent_before;
    let made = sessions() - sessions_before;
    println!("{prefix}: answers by errno {errnos:?}; {sent} codes sent, {made} sessions");
    (sent, made)
}

/// 2,500 first logins at once while WeChat takes 200 ms or 1000 ms (give or take 30 %), on a cold
/// instance and then on the same instance warm: at most 1 % of the codes WeChat receives may end
/// without a session. A login that waited too long in the queue for WeChat's round trip as it is
/// now is refused (721) before its code is sent, so the same code still works for the retry.
/// WeChat is the fake on a server of its own in this process, as it is another host in
/// production (dev mode's built-in fake would share the flooded listener).
#[actix_web::test]
#[ignore = "login bursts against the release binary: run with scripts/fault-test"]
async fn a_slow_wechat_burns_no_codes_in_a_burst_cold_or_warm() {
    const APPID: &str = "wxburstabcdefghij";
    let secret = format!("burst-secret-{}", uuid::Uuid::new_v4().simple());
    for delay_ms in [200u64, 1000] {
        let fake = FakeWeChat::new(APPID, &secret);
        fake.set_fault_on(
            "jscode2session",
            Fault::Jitter {
                min_ms: delay_ms * 7 / 10,
                max_ms: delay_ms * 13 / 10,
            },
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake");
        let fake_base = format!("http://{}", listener.local_addr().expect("fake addr"));
        let served = fake.clone();
        let fake_server = actix_web::HttpServer::new(move || {
            actix_web::App::new().configure(wxauth::dev::fake_wechat::configure(served.clone()))
        })
        .listen(listener)
        .expect("fake listens")
        .workers(1)
        .run();
        let fake_handle = fake_server.handle();
        actix_web::rt::spawn(fake_server);

        let bin = BinaryApp::builder()
            .env("WECHAT_APPID", APPID)
            .env("WECHAT_SECRET", secret.clone())
            .env("WECHAT_API_BASE", fake_base)
            .env("JWT_SECRET", JWT_SECRET)
            // The burst comes from one address, and is no abuse.
            .env("RATE_LOGIN_PER_IP", "0")
            .env("RUST_LOG", "warn")
            .start()
            .await;
        for round in ["cold", "warm"] {
            let prefix = format!("burst-{delay_ms}-{round}-");
            let (sent, made) = login_burst(&bin.base, &fake, &bin.db_url, &prefix, 2500).await;
            let wasted = sent as i64 - made;
            assert!(sent > 0, "{round}: some codes reached WeChat");
            assert!(
                wasted * 100 <= sent as i64,
                "WeChat at {delay_ms} ms, {round}: {wasted} of {sent} codes sent ended without a session"
            );
        }
        drop(bin);
        fake_handle.stop(false).await;
    }
}
