//! The NOTIFY listener when its connection hangs without closing: two instances on one database,
//! B connected directly and D through a proxy that can freeze D's listener connection. A frozen
//! listener must not keep revoked tokens alive on D.

use std::time::{Duration, Instant};

use serde_json::json;
use wxauth::actors::session::CachedSessions;

use crate::db_proxy::DbProxy;
use crate::helpers::TestApp;

/// B (direct) and D (through the proxy) on one database.
async fn two_instances() -> (TestApp, TestApp, DbProxy) {
    let b = TestApp::spawn().await;
    let proxy = DbProxy::start();
    let d = b
        .sibling_with(&[("DATABASE_URL", &proxy.url_for(&b.db_url))])
        .await;
    (b, d, proxy)
}

async fn cached_sessions(app: &TestApp) -> usize {
    app.state
        .sessions
        .send(CachedSessions)
        .await
        .expect("mailbox")
}

/// Uses the token on `app` until `app` serves it from its cache: its listener is up and trusted.
async fn until_cached(app: &TestApp, token: &str) {
    let started = Instant::now();
    loop {
        assert_eq!(app.get("user/index", Some(token)).await.errno(), 0);
        if cached_sessions(app).await > 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the session cache was never trusted"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `user/index` with this token answers `errno`; how long that took.
async fn errno_within(app: &TestApp, token: &str, errno: i64, deadline: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = app.get("user/index", Some(token)).await.errno();
        if got == errno {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < deadline,
            "still errno {got} after {deadline:?}, expected {errno}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_logout_elsewhere_is_refused_within_seconds_while_the_listener_is_frozen() {
    let (b, d, proxy) = two_instances().await;
    let token = b.login_ok("frozen-listener").await;
    until_cached(&d, &token).await;

    assert_eq!(proxy.freeze_listeners(), 1, "D's listener connection");
    assert_eq!(
        b.post("auth/logout", &json!({}), Some(&token))
            .await
            .errno(),
        0
    );
    let took = errno_within(&d, &token, 501, Duration::from_secs(5)).await;
    println!("logout on B refused on D after {took:?}");
}
