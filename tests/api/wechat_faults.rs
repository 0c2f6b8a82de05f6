//! WeChat misbehaving: busy, slow, garbage, refusing us. The client always gets a clear errno
//! within its 3 s timeout, and nothing is stored.

use std::time::{Duration, Instant};

use serde_json::json;
use wxauth::dev::fake_wechat::Fault;

use crate::helpers::{TestApp, captured_logs};

const CLIENT_TIMEOUT: Duration = Duration::from_millis(3000);

async fn login_under(app: &TestApp, fault: Fault) -> (i64, Duration) {
    app.fake.set_fault(fault);
    let code = app.code_for("alice").code;
    let started = Instant::now();
    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    (reply.errno(), started.elapsed())
}

#[actix_web::test]
async fn busy_wechat_is_714() {
    let app = TestApp::spawn().await;
    let (errno, took) = login_under(&app, Fault::Busy).await;
    assert_eq!(errno, 714);
    assert!(took < CLIENT_TIMEOUT);
    assert_eq!(app.count_users(), 0);
}

#[actix_web::test]
async fn wechat_slower_than_the_timeout_is_715_within_three_seconds() {
    // The default WECHAT_TIMEOUT_MS, against a WeChat that takes 5 s.
    let app = TestApp::spawn().await;
    let (errno, took) = login_under(&app, Fault::Slow { delay_ms: 5000 }).await;
    assert_eq!(errno, 715);
    assert!(took < CLIENT_TIMEOUT, "answered after {took:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "gave WeChat its time: {took:?}"
    );
    assert_eq!(app.count_users(), 0);
}

#[actix_web::test]
async fn garbage_from_wechat_is_716() {
    let app = TestApp::spawn().await;
    let (errno, took) = login_under(&app, Fault::Garbage).await;
    assert_eq!(errno, 716);
    assert!(took < CLIENT_TIMEOUT);
    assert_eq!(app.count_users(), 0);
}

#[actix_web::test]
async fn rate_limited_and_risky_users_have_their_own_errnos() {
    let app = TestApp::spawn().await;
    assert_eq!(
        login_under(&app, Fault::Errcode { errcode: 45011 }).await.0,
        712
    );
    assert_eq!(
        login_under(&app, Fault::Errcode { errcode: 40226 }).await.0,
        713
    );
    assert_eq!(app.count_users(), 0);
}

#[actix_web::test]
async fn unreachable_wechat_is_a_clear_errno_quickly() {
    // Nothing listens on port 9 of loopback: connection refused.
    let app = TestApp::builder()
        .wechat_api_base("http://127.0.0.1:9")
        .spawn()
        .await;
    let code = app.code_for("alice").code;
    let started = Instant::now();
    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.errno(), 714, "{}", reply.raw);
    assert!(started.elapsed() < CLIENT_TIMEOUT);
}

#[actix_web::test]
async fn a_wrong_app_secret_is_our_fault_502_and_logged_loudly() {
    let app = TestApp::builder()
        .wechat_secret("not-the-secret")
        .spawn()
        .await;
    let code = app.code_for("alice").code;
    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.errno(), 502, "{}", reply.raw);
    assert_eq!(reply.body["errmsg"], "系统内部错误");
    assert!(
        !reply.raw.contains("40125"),
        "WeChat's detail stays in the log"
    );
    assert!(
        captured_logs()
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("WECHAT_SECRET")),
        "the operator is told what to fix"
    );
}

#[actix_web::test]
async fn whatever_is_slow_the_client_gets_an_envelope_before_its_timeout() {
    // Misconfigured: WeChat may take longer than the client waits. A login waits for WeChat
    // only as long as its deadline allows (keeping time for the database) and answers that
    // WeChat timed out, in time.
    let app = TestApp::builder()
        .config(|c| c.wechat.timeout = Duration::from_secs(10))
        .spawn()
        .await;
    let (errno, took) = login_under(&app, Fault::Slow { delay_ms: 8000 }).await;
    assert_eq!(errno, 715);
    assert!(took < CLIENT_TIMEOUT, "answered after {took:?}");
    assert_eq!(app.count_users(), 0);
}

#[actix_web::test]
async fn wechat_errmsg_reaches_the_log_escaped_and_cut() {
    let app = TestApp::spawn().await;
    let marker = format!("m{}", uuid::Uuid::new_v4().simple());
    let errmsg = format!(
        "{marker} bad\nINFO wxauth: forged line\r\u{202E}gnp.exe\u{0}{}",
        "x".repeat(30_000)
    );
    app.fake.set_fault(Fault::Message {
        errcode: 99_999,
        errmsg,
    });
    let code = app.code_for("alice").code;
    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.errno(), 716, "{}", reply.raw);
    assert!(
        !reply.raw.contains(&marker),
        "WeChat's text stays in the log"
    );

    let lines: Vec<String> = captured_logs()
        .into_iter()
        .filter(|l| l.contains(&marker))
        .collect();
    assert!(!lines.is_empty(), "the errmsg is logged");
    for line in &lines {
        assert!(
            !line.contains(['\n', '\r', '\u{202E}', '\u{0}']),
            "a raw control or bidi character: {line:.200}"
        );
        // Escaped (a line that quotes the cause with `{:?}` doubles the backslash).
        for escaped in [
            r"\u{a}INFO wxauth: forged line",
            r"\u{d}",
            r"\u{202e}gnp.exe",
            r"\u{0}",
        ] {
            assert!(line.contains(escaped), "{escaped} in {line:.200}");
        }
        assert!(line.len() < 1_000, "cut: {} bytes", line.len());
    }
}
