//! The failover test against the `wxauth` binary (release): two instances whose `DATABASE_URL`
//! names a primary and its synchronous standby with `target_session_attrs=read-write`. Needs
//! the two servers `scripts/failover-test` makes, so it is `#[ignore]`d in the ordinary suite.
//!
//! Steady logins and reads on both instances; a few tokens logged out; then, under the same
//! load, the primary is SIGKILLed and the standby promoted. Asserts: every request got an
//! envelope within 3 s throughout; logins work again on both instances soon after the
//! promotion; every login that answered errno 0, before or during the failover, has its session
//! row on the new primary and its token works on both instances; the tokens logged out before
//! are refused by both; both instances are ready with a healthy NOTIFY listener (it reconnected
//! to the new primary), a logout on one is refused by the other within 1 s, and both stop
//! cleanly.

// Shared with the api tests, which use all of them; this binary uses a part.
#[allow(dead_code)]
#[path = "api/binary.rs"]
mod binary;
#[allow(dead_code)]
#[path = "api/database.rs"]
mod database;
#[allow(dead_code)]
#[path = "api/reply.rs"]
mod reply;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::http::Method;
use base64::Engine;
use diesel::prelude::*;
use serde_json::{Value, json};

use binary::BinaryApp;
use database::Count;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
const CLIENTS_PER_INSTANCE: usize = 3;
const DATABASE: &str = "wxauth_failover";
const JWT_SECRET: &str = "failover-test-jwt-secret-0123456789abcdef";

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/failover-test"))
}

#[derive(Debug, Clone)]
struct Outcome {
    phase: &'static str,
    instance: usize,
    op: &'static str,
    /// `None`: no envelope came back (connection refused, timeout, not JSON).
    errno: Option<i64>,
    latency: Duration,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Login {
    instance: usize,
    token: String,
}

#[derive(Default)]
struct Record {
    outcomes: Vec<Outcome>,
    /// Every login that answered errno 0.
    logins: Vec<Login>,
}

struct Driver {
    bases: Vec<String>,
    http: awc::Client,
    record: Rc<RefCell<Record>>,
}

impl Driver {
    async fn call(
        &self,
        instance: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (Option<Value>, Duration) {
        let url = format!("{}{path}", self.bases[instance]);
        let headers: Vec<(&str, &str)> = token.map(|t| ("X-OA-Token", t)).into_iter().collect();
        let started = Instant::now();
        let sent = binary::send(&self.http, method, &url, &headers, body.as_ref()).await;
        let value = match sent {
            Ok(reply) => Some(reply.body).filter(|b| !b.is_null()),
            Err(e) => {
                eprintln!("instance {instance} {path}: {e}");
                None
            }
        };
        (value, started.elapsed())
    }

    fn note(
        &self,
        phase: &'static str,
        instance: usize,
        op: &'static str,
        answer: &Option<Value>,
        latency: Duration,
    ) {
        self.record.borrow_mut().outcomes.push(Outcome {
            phase,
            instance,
            op,
            errno: answer.as_ref().and_then(|v| v["errno"].as_i64()),
            latency,
            at: Instant::now(),
        });
    }

    /// Logs `user` in on `instance` (its own WeChat fake mints the code); the token on errno 0.
    async fn login(&self, phase: &'static str, instance: usize, user: &str) -> Option<String> {
        let (minted, _) = self
            .call(
                instance,
                Method::POST,
                &format!("/__wechat/fake/code?user={user}"),
                None,
                None,
            )
            .await;
        let code = minted
            .as_ref()
            .and_then(|m| m["code"].as_str().map(str::to_string))?;
        let (answer, latency) = self
            .call(
                instance,
                Method::POST,
                "/oapro/wx/auth/login_by_weixin",
                Some(json!({ "code": code })),
                None,
            )
            .await;
        self.note(phase, instance, "login", &answer, latency);
        let token = answer
            .as_ref()
            .filter(|a| a["errno"] == 0)
            .and_then(|a| a["data"]["token"].as_str().map(str::to_string))?;
        self.record.borrow_mut().logins.push(Login {
            instance,
            token: token.clone(),
        });
        Some(token)
    }

    async fn errno(&self, instance: usize, token: &str) -> Option<i64> {
        let (answer, _) = self
            .call(
                instance,
                Method::GET,
                "/oapro/wx/user/index",
                None,
                Some(token),
            )
            .await;
        answer.and_then(|a| a["errno"].as_i64())
    }

    /// One client's loop on one instance: log in (a few users, so logins are both first and
    /// repeat), then read with the token.
    async fn client(&self, phase: &'static str, instance: usize, id: usize, until: Instant) {
        let mut n = 0;
        while Instant::now() < until {
            let user = format!("i{instance}c{id}u{}", n % 5);
            n += 1;
            match self.login(phase, instance, &user).await {
                Some(token) => {
                    let (read, latency) = self
                        .call(
                            instance,
                            Method::GET,
                            "/oapro/wx/user/index",
                            None,
                            Some(&token),
                        )
                        .await;
                    self.note(phase, instance, "read", &read, latency);
                }
                // Failing fast during the failover: do not spin.
                None => actix_web::rt::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn load(&self, phase: &'static str, duration: Duration) {
        let until = Instant::now() + duration;
        let clients = (0..self.bases.len())
            .flat_map(|instance| (0..CLIENTS_PER_INSTANCE).map(move |id| (instance, id)));
        futures_util::future::join_all(clients.map(|(i, id)| self.client(phase, i, id, until)))
            .await;
    }

    /// Waits until `instance` refuses `token` (errno 501); how long that took, at most `limit`.
    async fn refused_within(&self, instance: usize, token: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let errno = self.errno(instance, token).await;
            if errno == Some(501) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "a logged-out token still works on instance {instance} after {limit:?}: {errno:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until `instance`'s `/readyz` says ready with its listener ok.
    async fn ready_with_listener(&self, instance: usize, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let (ready, _) = self
                .call(instance, Method::GET, "/readyz", None, None)
                .await;
            let ready = ready.unwrap_or(Value::Null);
            if ready["status"] == "ready" && ready["listener"]["state"] == "ok" {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "instance {instance} not ready with its listener within {limit:?}: {ready}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
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
#[ignore = "needs a primary and a synchronous standby: run with scripts/failover-test"]
async fn acknowledged_logins_survive_a_failover_to_the_synchronous_standby() {
    let primary_port = env_var("FAILOVER_PRIMARY_PORT");
    let standby_port = env_var("FAILOVER_STANDBY_PORT");
    let primary_pid = env_var("FAILOVER_PRIMARY_PID");
    let database_url = format!(
        "postgres://postgres@127.0.0.1:{primary_port},127.0.0.1:{standby_port}/{DATABASE}\
         ?target_session_attrs=read-write&connect_timeout=2&sslmode=disable"
    );
    let instance = BinaryApp::builder()
        .env("DATABASE_URL", database_url.clone())
        .env("JWT_SECRET", JWT_SECRET)
        .env("DB_POOL_SIZE", "4")
        .env("RATE_LOGIN_PER_IP", "0")
        .env("RATE_LOGIN_PER_OPENID", "0")
        .env("SHUTDOWN_DRAIN_SECS", "0");
    let mut instances = [instance.clone().start().await, instance.start().await];
    // The script kills them if this process is killed before it can.
    if let Ok(path) = std::env::var("FAILOVER_PIDS_FILE") {
        let mut file = std::fs::File::create(path).expect("pids file");
        for bin in &instances {
            writeln!(file, "{}", bin.pid()).expect("pids file");
        }
    }
    let driver = Driver {
        bases: instances.iter().map(|b| b.base.clone()).collect(),
        http: awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish(),
        record: Rc::new(RefCell::new(Record::default())),
    };
    for instance in 0..2 {
        driver
            .ready_with_listener(instance, Duration::from_secs(20))
            .await;
    }
    println!("two instances on {database_url}");

    driver.load("steady", Duration::from_secs(3)).await;

    // Logged out before the failover, alternately on each instance.
    let before: Vec<Login> = driver.record.borrow().logins.clone();
    assert!(
        before.len() >= 10,
        "steady load logged in: {}",
        before.len()
    );
    let revoked: Vec<String> = before
        .iter()
        .step_by(3)
        .take(6)
        .map(|l| l.token.clone())
        .collect();
    for (i, token) in revoked.iter().enumerate() {
        let (answer, _) = driver
            .call(
                i % 2,
                Method::POST,
                "/oapro/wx/auth/logout",
                Some(json!({})),
                Some(token),
            )
            .await;
        assert_eq!(
            answer.expect("an envelope")["errno"],
            0,
            "logout before the failover"
        );
    }
    for token in &revoked {
        for instance in 0..2 {
            driver
                .refused_within(instance, token, Duration::from_secs(1))
                .await;
        }
    }
    println!("logged out {} tokens before the failover", revoked.len());

    // The failover, under load: the primary dies at 1 s; once both instances' /readyz have said
    // so, the standby is promoted (what a failover manager does after noticing).
    let killed_at = Rc::new(RefCell::new(None::<Instant>));
    let promoted_at = Rc::new(RefCell::new(None::<Instant>));
    let readyz_without_primary = Rc::new(RefCell::new(Vec::new()));
    let failover = async {
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &primary_pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGKILL the primary");
        *killed_at.borrow_mut() = Some(Instant::now());
        println!("primary (pid {primary_pid}) killed");
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        let without_primary: Vec<Value> = futures_util::future::join_all((0..2).map(|instance| {
            let driver = &driver;
            async move {
                let (ready, _) = driver
                    .call(instance, Method::GET, "/readyz", None, None)
                    .await;
                ready.unwrap_or(Value::Null)["status"].clone()
            }
        }))
        .await;
        println!("/readyz without a primary: {without_primary:?}");
        *readyz_without_primary.borrow_mut() = without_primary;
        let url = format!("postgres://postgres@127.0.0.1:{standby_port}/postgres?sslmode=disable");
        let promoted = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&url).expect("connect to the standby");
            #[derive(QueryableByName)]
            struct Promoted {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                promoted: bool,
            }
            diesel::sql_query("SELECT pg_promote(true, 30) AS promoted")
                .get_result::<Promoted>(&mut conn)
                .expect("pg_promote")
                .promoted
        })
        .await
        .expect("promotion thread");
        assert!(promoted, "the standby was promoted");
        *promoted_at.borrow_mut() = Some(Instant::now());
        println!(
            "standby promoted, {:?} after the kill",
            killed_at
                .borrow()
                .map(|at| at.elapsed())
                .unwrap_or_default()
        );
    };
    futures_util::future::join(driver.load("failover", Duration::from_secs(10)), failover).await;
    let killed_at = killed_at.borrow().expect("killed");
    let promoted_at = promoted_at.borrow().expect("promoted");
    assert_eq!(
        *readyz_without_primary.borrow(),
        vec![json!("unavailable"), json!("unavailable")],
        "/readyz says so while there is no primary"
    );

    let mut listener_back = Vec::new();
    for instance in 0..2 {
        listener_back.push(
            driver
                .ready_with_listener(instance, Duration::from_secs(30))
                .await,
        );
    }
    driver.load("after", Duration::from_secs(2)).await;

    // What happened, by phase, instance, operation and errno.
    {
        let record = driver.record.borrow();
        let mut counts: BTreeMap<(&str, usize, &str, Option<i64>), usize> = BTreeMap::new();
        for o in &record.outcomes {
            *counts
                .entry((o.phase, o.instance, o.op, o.errno))
                .or_default() += 1;
        }
        for ((phase, instance, op, errno), n) in counts {
            println!("{phase:>9} instance {instance} {op:>5} errno {errno:?}: {n}");
        }
    }

    let (outcomes, logins) = {
        let record = driver.record.borrow();
        (record.outcomes.clone(), record.logins.clone())
    };
    // Every request got an envelope in time, even while there was no primary.
    for o in &outcomes {
        assert!(o.errno.is_some(), "no envelope: {o:?}");
        assert!(o.latency < CLIENT_TIMEOUT, "too slow: {o:?}");
    }
    // Logins came back on both instances soon after the promotion.
    for (instance, listener_back) in listener_back.iter().enumerate() {
        let first_ok = outcomes
            .iter()
            .filter(|o| {
                o.instance == instance
                    && o.op == "login"
                    && o.errno == Some(0)
                    && o.at > promoted_at
            })
            .map(|o| o.at)
            .min()
            .unwrap_or_else(|| panic!("no login on instance {instance} after the promotion"));
        let resumed = first_ok.saturating_duration_since(promoted_at);
        println!(
            "instance {instance}: logins again {resumed:?} after the promotion ({:?} after the kill); listener healthy {:?} after the load",
            first_ok.saturating_duration_since(killed_at),
            listener_back
        );
        assert!(
            resumed < Duration::from_secs(5),
            "logins resumed after {resumed:?}"
        );
    }
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.phase == "after").collect();
    assert!(after.len() > 10, "load ran after the failover");
    assert!(
        after.iter().all(|o| o.errno == Some(0)),
        "full recovery: {:?}",
        after
            .iter()
            .filter(|o| o.errno != Some(0))
            .collect::<Vec<_>>()
    );

    // No acknowledged login lost: each has its session row on the new primary, unrevoked unless
    // logged out above, and its token works on both instances.
    let new_primary =
        format!("postgres://postgres@127.0.0.1:{standby_port}/{DATABASE}?sslmode=disable");
    let during = logins.len() - before.len();
    let mut conn = PgConnection::establish(&new_primary).expect("connect to the new primary");
    for login in &logins {
        let live: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM user_session WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind::<diesel::sql_types::Text, _>(jti_of(&login.token))
        .get_result(&mut conn)
        .expect("query");
        let want = i64::from(!revoked.contains(&login.token));
        assert_eq!(
            live.n, want,
            "session row of a login acknowledged by instance {}",
            login.instance
        );
    }
    for login in &logins {
        let want = if revoked.contains(&login.token) {
            501
        } else {
            0
        };
        for instance in 0..2 {
            assert_eq!(
                driver.errno(instance, &login.token).await,
                Some(want),
                "a token from instance {} on instance {instance}",
                login.instance
            );
        }
    }
    let dupes: Count =
        diesel::sql_query("SELECT count(*) - count(DISTINCT weixin_openid) AS n FROM wx_user")
            .get_result(&mut conn)
            .expect("query");
    assert_eq!(dupes.n, 0, "no user twice");
    println!(
        "{} acknowledged logins ({} of them after the steady phase) all on the new primary and valid on both instances; {} logged out before stay refused",
        logins.len(),
        during,
        revoked.len()
    );

    // A logout on one instance after the failover is refused by the other within 1 s: through
    // the NOTIFY listener, which had to reconnect to the new primary.
    for (from, to) in [(0, 1), (1, 0)] {
        let token = driver
            .login("check", from, &format!("after-failover-{from}"))
            .await
            .expect("a login after the failover");
        assert_eq!(driver.errno(to, &token).await, Some(0));
        let (answer, _) = driver
            .call(
                from,
                Method::POST,
                "/oapro/wx/auth/logout",
                Some(json!({})),
                Some(&token),
            )
            .await;
        assert_eq!(answer.expect("an envelope")["errno"], 0);
        let after = driver
            .refused_within(to, &token, Duration::from_secs(1))
            .await;
        println!("logout on instance {from} refused by instance {to} after {after:?}");
    }
    for instance in 0..2 {
        driver
            .ready_with_listener(instance, Duration::from_secs(5))
            .await;
        println!("instance {instance}: /readyz ready, listener ok");
    }
    // And they stop cleanly, having written what they queued to the new primary.
    for (instance, bin) in instances.iter_mut().enumerate() {
        bin.signal("TERM");
        assert_eq!(
            bin.wait_exit(Duration::from_secs(20)).await,
            Some(0),
            "instance {instance} stops cleanly; log:\n{}",
            bin.log_text()
        );
    }
    println!("both instances stopped cleanly");
}
