//! The binary itself: SIGTERM lets requests in flight finish, then it exits cleanly.

use std::time::Duration;

use serde_json::json;

use crate::binary::{BinaryApp, free_port};
use crate::database::count;

const LOGIN: &str = "/oapro/wx/auth/login_by_weixin";

#[actix_web::test]
async fn sigterm_finishes_the_login_in_flight_then_exits_cleanly() {
    let mut app = BinaryApp::builder().env("DB_POOL_SIZE", "2").start().await;
    assert!(
        app.log_text().contains("DEV MODE"),
        "zero configuration is loudly dev mode"
    );

    let code = app.code("alice").await;
    app.post(
        "/__wechat/fake/fault",
        &json!({ "mode": "slow", "delay_ms": 1200 }),
        &[],
    )
    .await;
    let body = json!({ "code": code });
    let login = app.post(LOGIN, &body, &[]);
    let terminate = async {
        actix_web::rt::time::sleep(Duration::from_millis(400)).await;
        app.signal("TERM");
    };
    let (answer, ()) = futures_util::future::join(login, terminate).await;

    assert_eq!(
        answer.errno(),
        0,
        "the login in flight finished: {}",
        answer.raw
    );
    assert_eq!(
        app.wait_exit(Duration::from_secs(15)).await,
        Some(0),
        "log:\n{}",
        app.log_text()
    );
    let log = app.log_text();
    assert!(log.contains("graceful shutdown"), "{log}");
    assert!(log.contains("wxauth stopped"), "{log}");
}

#[actix_web::test]
async fn sigterm_writes_the_login_log_rows_not_yet_flushed() {
    let mut app = BinaryApp::builder()
        .env("DB_POOL_SIZE", "2")
        // No periodic write during the test: only the shutdown can write the rows.
        .env("LOGIN_LOG_FLUSH_MS", "60000")
        .start()
        .await;
    for user in ["log-a", "log-b", "log-c"] {
        let answer = app.login(user).await;
        assert_eq!(answer.errno(), 0, "{}", answer.raw);
    }

    app.signal("TERM");
    assert_eq!(
        app.wait_exit(Duration::from_secs(15)).await,
        Some(0),
        "log:\n{}",
        app.log_text()
    );

    let rows = count(
        &app.db_url,
        "SELECT count(*) AS n FROM login_log WHERE errno = 0",
    );
    assert_eq!(rows, 3, "log:\n{}", app.log_text());
}

#[actix_web::test]
async fn started_from_another_directory_the_release_layout_still_serves_the_status_page() {
    let elsewhere =
        std::env::temp_dir().join(format!("wxauth-cwd-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let app = BinaryApp::builder()
        .env("DB_POOL_SIZE", "2")
        .env("ADMIN_TOKEN", "admin-token-for-the-cwd-test")
        .current_dir(&elsewhere)
        .start()
        .await;

    let page = app.get("/admin/", &[]).await;
    assert_eq!(page.status, 200, "{}", page.raw);
    assert!(page.raw.contains("<html"), "the page itself: {}", page.raw);
    let log = app.log_text();
    assert!(!log.contains("admin page: no index.html"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[actix_web::test]
async fn dev_mode_on_the_network_starts_only_when_allowed_and_says_so() {
    let app = BinaryApp::builder()
        .env("BIND_ADDR", format!("0.0.0.0:{}", free_port()))
        .env("DB_POOL_SIZE", "2")
        .env("ALLOW_DEV_MODE_ON_NETWORK", "1")
        .start()
        .await;
    let log = app.log_text();
    assert!(log.contains("DEV MODE"), "{log}");
    assert!(
        log.contains("ALLOW_DEV_MODE_ON_NETWORK=1: dev mode listens on 0.0.0.0"),
        "{log}"
    );
}

/// Dev mode without ADMIN_TOKEN prints a link that opens the status page signed in: the
/// generated token rides in the fragment, and appears only in the banner's lines.
#[actix_web::test]
async fn the_dev_banner_links_to_the_status_page_signed_in() {
    let app = BinaryApp::builder().env("DB_POOL_SIZE", "2").start().await;
    let log = app.log_text();
    let link_prefix = format!("{}/admin/#token=", app.base);
    let token = log
        .lines()
        .find_map(|l| {
            l.split_once(&link_prefix)
                .map(|(_, t)| t.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no status page link in the banner: {log}"));
    assert!(token.len() >= 16, "{token}");
    let status = app
        .get(
            "/admin/api/status",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(status.status, 200, "the link's token works");
    let with_token: Vec<&str> = log.lines().filter(|l| l.contains(&token)).collect();
    assert_eq!(
        with_token.len(),
        2,
        "the link and the token, once each: {with_token:?}"
    );

    // A configured ADMIN_TOKEN is the operator's: never printed, so no link either.
    let operator = app
        .again()
        .env("ADMIN_TOKEN", "operator-chosen-admin-token-0123");
    drop(app);
    let app = operator.start().await;
    let log = app.log_text();
    assert!(!log.contains("#token="), "{log}");
    assert!(!log.contains("operator-chosen-admin-token-0123"), "{log}");
}

#[actix_web::test]
async fn production_without_a_session_encryption_key_warns_that_it_is_derived() {
    let production = BinaryApp::builder()
        .env("DB_POOL_SIZE", "2")
        .env("WECHAT_APPID", "wx1234567890abcdef")
        .env("WECHAT_SECRET", "app-secret-of-the-test")
        // Nothing listens there: start-up does not call WeChat.
        .env(
            "WECHAT_API_BASE",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .env("JWT_SECRET", "jwt-secret-of-the-test-0123456789abcdef");
    let derived = production.clone().start().await;
    let log = derived.log_text();
    assert!(
        log.contains("WARN") && log.contains("SESSION_ENCRYPTION_KEY is not set"),
        "{log}"
    );
    assert!(!log.contains("jwt-secret-of-the-test"), "{log}");
    drop(derived);

    let own_key = production
        .env("SESSION_ENCRYPTION_KEY", "ab".repeat(32))
        .start()
        .await;
    let log = own_key.log_text();
    assert!(!log.contains("SESSION_ENCRYPTION_KEY"), "{log}");
}

#[actix_web::test]
async fn sigterm_drains_then_stops_accepting_and_writes_what_was_queued() {
    let mut app = BinaryApp::builder()
        .env("DB_POOL_SIZE", "2")
        .env("SHUTDOWN_DRAIN_SECS", "3")
        .start()
        .await;

    let ready = app.get("/readyz", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.raw);
    assert_ne!(
        ready.header("connection"),
        Some("close"),
        "{:?}",
        ready.headers
    );
    let token = app.login("alice").await.token();

    app.signal("TERM");
    let signalled = std::time::Instant::now();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    let ready = app.get("/readyz", &[]).await;
    assert_eq!(ready.status, 503, "draining is not ready: {}", ready.raw);
    assert_eq!(ready.body["status"], "draining");
    assert_eq!(
        ready.header("connection"),
        Some("close"),
        "{:?}",
        ready.headers
    );

    // Still served while draining, each answer closing its connection.
    let during = app.login("bob").await;
    assert_eq!(
        during.errno(),
        0,
        "a login during the drain: {}",
        during.raw
    );
    assert_eq!(
        during.header("connection"),
        Some("close"),
        "{:?}",
        during.headers
    );
    let index = app
        .get("/oapro/wx/user/index", &[("X-OA-Token", &token)])
        .await;
    assert_eq!((index.status, index.errno()), (200, 0), "{}", index.raw);
    assert_eq!(
        index.header("connection"),
        Some("close"),
        "{:?}",
        index.headers
    );

    assert_eq!(
        app.wait_exit(Duration::from_secs(20)).await,
        Some(0),
        "log:\n{}",
        app.log_text()
    );
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "the drain lasts SHUTDOWN_DRAIN_SECS"
    );
    assert!(
        app.request(awc::http::Method::GET, "/healthz", &[], None)
            .await
            .is_err(),
        "nothing listens after the exit"
    );

    // Both attempts are in login_log, and the token's use during the drain was written as
    // last_seen_at on the way out (the periodic write is 30 s away).
    let logged = count(
        &app.db_url,
        "SELECT count(*) AS n FROM login_log WHERE errno = 0",
    );
    assert_eq!(logged, 2);
    let seen = count(
        &app.db_url,
        "SELECT count(*) AS n FROM user_session WHERE last_seen_at > created_at + interval '200 milliseconds'",
    );
    assert_eq!(seen, 1, "last_seen_at of the session used during the drain");
    let log = app.log_text();
    assert!(log.contains("draining for 3 s"), "{log}");
}
