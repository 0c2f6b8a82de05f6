//! The binary itself: SIGTERM lets requests in flight finish, then it exits cleanly.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::{Binary, free_port};
use crate::database::{DropDb, PG_SERVER};

fn curl_json(args: &[&str]) -> Value {
    let out = std::process::Command::new("curl")
        .arg("-s")
        .args(args)
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn post_json(url: &str, body: &Value) -> Value {
    curl_json(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        &body.to_string(),
        url,
    ])
}

#[test]
fn sigterm_finishes_the_login_in_flight_then_exits_cleanly() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let env = env_of(&[
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("127.0.0.1:{}", free_port())),
        ("DB_POOL_SIZE", "2".to_string()),
    ]);
    let mut bin = Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env);
    let base = bin.base.clone();
    assert!(
        bin.log_text().contains("DEV MODE"),
        "zero configuration is loudly dev mode"
    );

    let minted = curl_json(&[
        "-X",
        "POST",
        &format!("{base}/__wechat/fake/code?user=alice"),
    ]);
    let code = minted["code"].as_str().expect("code").to_string();
    post_json(
        &format!("{base}/__wechat/fake/fault"),
        &json!({ "mode": "slow", "delay_ms": 1200 }),
    );
    let login = std::thread::spawn(move || {
        post_json(
            &format!("{base}/oapro/wx/auth/login_by_weixin"),
            &json!({ "code": code }),
        )
    });
    std::thread::sleep(Duration::from_millis(400));

    bin.signal("TERM");

    let answer = login.join().expect("login thread");
    assert_eq!(answer["errno"], 0, "the login in flight finished: {answer}");
    assert_eq!(
        bin.wait_exit(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        bin.log_text()
    );
    let log = bin.log_text();
    assert!(log.contains("graceful shutdown"), "{log}");
    assert!(log.contains("wxauth stopped"), "{log}");
}

#[test]
fn sigterm_writes_the_login_log_rows_not_yet_flushed() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let env = env_of(&[
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("127.0.0.1:{}", free_port())),
        ("DB_POOL_SIZE", "2".to_string()),
        // No periodic write during the test: only the shutdown can write the rows.
        ("LOGIN_LOG_FLUSH_MS", "60000".to_string()),
    ]);
    let mut bin = Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env);
    let base = bin.base.clone();
    for user in ["log-a", "log-b", "log-c"] {
        let minted = curl_json(&[
            "-X",
            "POST",
            &format!("{base}/__wechat/fake/code?user={user}"),
        ]);
        let code = minted["code"].as_str().expect("code").to_string();
        let answer = post_json(
            &format!("{base}/oapro/wx/auth/login_by_weixin"),
            &json!({ "code": code }),
        );
        assert_eq!(answer["errno"], 0, "{answer}");
    }

    bin.signal("TERM");
    assert_eq!(
        bin.wait_exit(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        bin.log_text()
    );

    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = PgConnection::establish(&format!("{PG_SERVER}/{db}")).expect("connect");
    let rows = diesel::sql_query("SELECT count(*) AS n FROM login_log WHERE errno = 0")
        .get_result::<N>(&mut conn)
        .expect("count")
        .n;
    assert_eq!(rows, 3, "log:\n{}", bin.log_text());
}

#[test]
fn started_from_another_directory_the_release_layout_still_serves_the_status_page() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let elsewhere =
        std::env::temp_dir().join(format!("wxauth-cwd-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let env = env_of(&[
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("127.0.0.1:{}", free_port())),
        ("DB_POOL_SIZE", "2".to_string()),
        ("ADMIN_TOKEN", "admin-token-for-the-cwd-test".to_string()),
    ]);
    let bin = Binary::start_in(env!("CARGO_BIN_EXE_wxauth"), &env, Some(&elsewhere));

    let page = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("{}/admin/", bin.base),
        ])
        .output()
        .expect("curl runs");
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(page.ends_with("\n200"), "{page}");
    assert!(page.contains("<html"), "the page itself: {page}");
    let log = bin.log_text();
    assert!(!log.contains("admin page: no index.html"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    let _ = std::fs::remove_dir_all(&elsewhere);
}

pub(crate) fn env_of(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn dev_mode_on_the_network_starts_only_when_allowed_and_says_so() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let env = env_of(&[
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("0.0.0.0:{}", free_port())),
        ("DB_POOL_SIZE", "2".to_string()),
        ("ALLOW_DEV_MODE_ON_NETWORK", "1".to_string()),
    ]);
    let bin = Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env);
    let log = bin.log_text();
    assert!(log.contains("DEV MODE"), "{log}");
    assert!(
        log.contains("ALLOW_DEV_MODE_ON_NETWORK=1: dev mode listens on 0.0.0.0"),
        "{log}"
    );
}

/// Dev mode without ADMIN_TOKEN prints a link that opens the status page signed in: the
/// generated token rides in the fragment, and appears only in the banner's lines.
#[test]
fn the_dev_banner_links_to_the_status_page_signed_in() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let env = env_of(&[
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("127.0.0.1:{}", free_port())),
        ("DB_POOL_SIZE", "2".to_string()),
    ]);
    let bin = Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env);
    let log = bin.log_text();
    let link_prefix = format!("{}/admin/#token=", bin.base);
    let token = log
        .lines()
        .find_map(|l| {
            l.split_once(&link_prefix)
                .map(|(_, t)| t.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no status page link in the banner: {log}"));
    assert!(token.len() >= 16, "{token}");
    let status = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("authorization: Bearer {token}"))
        .arg(format!("{}/admin/api/status", bin.base))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "200",
        "the link's token works"
    );
    let with_token: Vec<&str> = log.lines().filter(|l| l.contains(&token)).collect();
    assert_eq!(
        with_token.len(),
        2,
        "the link and the token, once each: {with_token:?}"
    );

    // A configured ADMIN_TOKEN is the operator's: never printed, so no link either.
    drop(bin);
    let mut env = env;
    env.insert("BIND_ADDR".into(), format!("127.0.0.1:{}", free_port()));
    env.insert(
        "ADMIN_TOKEN".into(),
        "operator-chosen-admin-token-0123".into(),
    );
    let bin = Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env);
    let log = bin.log_text();
    assert!(!log.contains("#token="), "{log}");
    assert!(!log.contains("operator-chosen-admin-token-0123"), "{log}");
}

#[test]
fn production_without_a_session_encryption_key_warns_that_it_is_derived() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let production = |key: Option<&str>| {
        let mut env = env_of(&[
            ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
            ("BIND_ADDR", format!("127.0.0.1:{}", free_port())),
            ("DB_POOL_SIZE", "2".to_string()),
            ("WECHAT_APPID", "wx1234567890abcdef".to_string()),
            ("WECHAT_SECRET", "app-secret-of-the-test".to_string()),
            // Nothing listens there: start-up does not call WeChat.
            (
                "WECHAT_API_BASE",
                format!("http://127.0.0.1:{}", free_port()),
            ),
            (
                "JWT_SECRET",
                "jwt-secret-of-the-test-0123456789abcdef".to_string(),
            ),
        ]);
        if let Some(key) = key {
            env.insert("SESSION_ENCRYPTION_KEY".into(), key.into());
        }
        Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env)
    };
    let derived = production(None);
    let log = derived.log_text();
    assert!(
        log.contains("WARN") && log.contains("SESSION_ENCRYPTION_KEY is not set"),
        "{log}"
    );
    assert!(!log.contains("jwt-secret-of-the-test"), "{log}");
    drop(derived);

    let own_key = production(Some(&"ab".repeat(32)));
    let log = own_key.log_text();
    assert!(!log.contains("SESSION_ENCRYPTION_KEY"), "{log}");
}

/// `curl -i`: the status code and the lower-cased header lines of an answer, and its body.
fn curl_head(args: &[&str]) -> (u16, Vec<String>, Value) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines.map(|l| l.trim().to_ascii_lowercase()).collect();
    (
        status,
        headers,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn dev_login(base: &str, user: &str) -> (Vec<String>, Value) {
    let minted = curl_json(&[
        "-X",
        "POST",
        &format!("{base}/__wechat/fake/code?user={user}"),
    ]);
    let code = minted["code"].as_str().expect("code").to_string();
    let (_, headers, body) = curl_head(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        &json!({ "code": code }).to_string(),
        &format!("{base}/oapro/wx/auth/login_by_weixin"),
    ]);
    (headers, body)
}

#[test]
fn sigterm_drains_then_stops_accepting_and_writes_what_was_queued() {
    use diesel::prelude::*;
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let port = free_port();
    let env = env_of(&[
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("DB_POOL_SIZE", "2".to_string()),
        ("SHUTDOWN_DRAIN_SECS", "3".to_string()),
    ]);
    let mut bin = Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env);
    let base = bin.base.clone();

    let (status, headers, ready) = curl_head(&[&format!("{base}/readyz")]);
    assert_eq!(status, 200, "{ready}");
    assert!(
        !headers.contains(&"connection: close".to_string()),
        "{headers:?}"
    );
    let (_, before) = dev_login(&base, "alice");
    let token = before["data"]["token"].as_str().expect("token").to_string();

    bin.signal("TERM");
    let signalled = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(300));

    let (status, headers, ready) = curl_head(&[&format!("{base}/readyz")]);
    assert_eq!(status, 503, "draining is not ready: {ready}");
    assert_eq!(ready["status"], "draining");
    assert!(
        headers.contains(&"connection: close".to_string()),
        "{headers:?}"
    );

    // Still served while draining, each answer closing its connection.
    let (headers, during) = dev_login(&base, "bob");
    assert_eq!(during["errno"], 0, "a login during the drain: {during}");
    assert!(
        headers.contains(&"connection: close".to_string()),
        "{headers:?}"
    );
    let (status, headers, index) = curl_head(&[
        "-H",
        &format!("X-OA-Token: {token}"),
        &format!("{base}/oapro/wx/user/index"),
    ]);
    assert_eq!((status, &index["errno"]), (200, &json!(0)), "{index}");
    assert!(
        headers.contains(&"connection: close".to_string()),
        "{headers:?}"
    );

    assert_eq!(
        bin.wait_exit(Duration::from_secs(20)),
        Some(0),
        "log:\n{}",
        bin.log_text()
    );
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "the drain lasts SHUTDOWN_DRAIN_SECS"
    );
    let refused = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/healthz"),
        ])
        .output()
        .expect("curl");
    assert_eq!(refused.stdout, b"000", "nothing listens after the exit");

    // Both attempts are in login_log, and the token's use during the drain was written as
    // last_seen_at on the way out (the periodic write is 30 s away).
    let mut conn =
        PgConnection::establish(&format!("{PG_SERVER}/{db}")).expect("connect to the test db");
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let logged: N = diesel::sql_query("SELECT count(*) AS n FROM login_log WHERE errno = 0")
        .get_result(&mut conn)
        .expect("count login_log");
    assert_eq!(logged.n, 2);
    let seen: N = diesel::sql_query(
        "SELECT count(*) AS n FROM user_session WHERE last_seen_at > created_at + interval '200 milliseconds'",
    )
    .get_result(&mut conn)
    .expect("count sessions");
    assert_eq!(
        seen.n, 1,
        "last_seen_at of the session used during the drain"
    );
    let log = bin.log_text();
    assert!(log.contains("draining for 3 s"), "{log}");
}
