//! The login pipeline under load, by its rules: admission before WeChat, busy refusals that
//! spend nothing, one commit per login, and the database part of an admitted login never
//! refused.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use crate::helpers::{TestApp, captured_logs};

fn count(app: &TestApp, sql: &str) -> i64 {
    crate::database::count(&app.db_url, sql)
}

/// Takes every place the login admission has, as a spike of logins waiting on WeChat would.
/// The last try, which finds it full, counts as one refusal.
async fn fill_login_admission(app: &TestApp) -> Vec<wxauth::admission::Permit> {
    let mut held = Vec::new();
    while let Ok(p) = app.state.login_admission.acquire(Duration::ZERO).await {
        held.push(p);
        assert!(held.len() <= 2000, "the login admission has no limit");
    }
    held
}

#[actix_rt::test]
async fn a_refused_login_spends_no_code_writes_no_row_and_answers_721_with_retry_after() {
    let app = TestApp::spawn().await;
    let held = fill_login_admission(&app).await;
    let exchanges = app.fake.calls("jscode2session");
    let code = app.code_for("spike-user").code;
    let started = std::time::Instant::now();
    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "answered within the client's 3 s"
    );

    assert_eq!(reply.status, 200);
    assert_eq!(reply.errno(), 721, "{}", reply.raw);
    assert_eq!(reply.body["errmsg"], "服务繁忙，请稍后再试");
    assert!(
        reply.body["data"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let retry = reply.body["data"]["retryAfterMs"]
        .as_u64()
        .expect("retryAfterMs");
    assert!((200..=5000).contains(&retry), "retryAfterMs {retry}");
    assert_eq!(
        app.fake.calls("jscode2session"),
        exchanges,
        "the code was not sent to WeChat"
    );

    // No login_log row, but counted in the metrics and on the status page.
    app.state.login_log.flush().await;
    assert_eq!(count(&app, "SELECT count(*) AS n FROM login_log"), 0);
    let metrics = app.get_abs("/metrics").await.raw;
    // The probe that found the admission full, and this login.
    assert!(
        metrics.contains(r#"wxauth_requests_refused_total{kind="login"} 2"#),
        "{metrics}"
    );
    // The limit and the places taken, for an SRE watching a spike.
    for (what, value) in [
        ("in_flight", held.len()),
        ("limit", held.len()),
        ("queued", 0),
    ] {
        let line = format!(r#"wxauth_admission{{kind="login",what="{what}"}} {value}"#);
        assert!(metrics.contains(&line), "{line}: {metrics}");
    }
    // No log line for the refused request itself.
    let id = reply
        .header("x-request-id")
        .expect("request id")
        .to_string();
    assert!(
        !captured_logs().iter().any(|l| l.contains(&id)),
        "a refusal is summarised, not logged per request"
    );

    // Once there is room, the same code logs the user in: it was never spent.
    drop(held);
    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(app.fake.calls("jscode2session"), exchanges + 1);
}

#[actix_rt::test]
async fn the_status_page_counts_busy_refusals() {
    let app = TestApp::builder()
        .admin_token("admin-token-for-pipeline-tests")
        .spawn()
        .await;
    let held = fill_login_admission(&app).await;
    let reply = app.login("status-spike").await;
    assert_eq!(reply.errno(), 721, "{}", reply.raw);
    drop(held);
    let status = app
        .get_with(
            &format!("{}/admin/api/status", app.base),
            &[("Authorization", "Bearer admin-token-for-pipeline-tests")],
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.raw);
    let admission = &status.body["admission"];
    // The probe that found the admission full, and the login.
    assert_eq!(admission["refused"]["login"], 2, "{}", status.raw);
    assert_eq!(admission["refused"]["read"], 0);
    assert_eq!(admission["logins"]["in_flight"], 0);
    assert!(
        admission["logins"]["limit"]
            .as_u64()
            .is_some_and(|l| l >= 3)
    );
}

#[actix_rt::test]
async fn reads_are_refused_with_721_when_the_database_is_saturated() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("reader").await;
    let mut held = Vec::new();
    let reads = app.state.db.admission().clone();
    while let Ok(p) = reads.acquire(Duration::ZERO).await {
        held.push(p);
        assert!(held.len() <= 1000, "database reads have no limit");
    }
    let reply = app.get("user/index", Some(&token)).await;
    assert_eq!(reply.errno(), 721, "{}", reply.raw);
    assert!(reply.body["data"]["retryAfterMs"].as_u64().is_some());
    drop(held);
    let reply = app.get("user/index", Some(&token)).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

/// Every database thread is stuck behind a lock and every place for reads is taken: an admitted
/// login's statement still gets its turn (it is not refused as overloaded after its code was
/// exchanged) and completes once the database moves again.
#[actix_rt::test]
async fn an_admitted_login_completes_while_reads_fill_a_stalled_database() {
    let app = TestApp::spawn().await;

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let db_url = app.db_url.clone();
    let holder = std::thread::spawn(move || {
        let mut conn = PgConnection::establish(&db_url).expect("connect");
        conn.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query("LOCK TABLE meeting IN ACCESS EXCLUSIVE MODE").execute(c)?;
            locked_tx.send(()).expect("signal");
            std::thread::sleep(Duration::from_millis(1200));
            Ok(())
        })
        .expect("lock held");
    });
    locked_rx.recv().expect("locked");

    // As many reads as the database handle lets in flight (4 per pooled connection, pool 3). The
    // home page's, since user/index reads of one user would share one statement.
    let reads = (0..12).map(|_| app.get("home/index", None));
    let login = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.login("admitted-while-stalled").await
    };
    let (reads, login) =
        futures_util::future::join(futures_util::future::join_all(reads), login).await;
    holder.join().expect("lock holder");

    assert_eq!(login.errno(), 0, "{}", login.raw);
    for r in reads {
        assert!([0, 721].contains(&r.errno()), "{}", r.raw);
    }
    let openid = app.fake.openid_for("admitted-while-stalled");
    let user = app.user_by_openid(&openid).expect("user stored");
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM user_session WHERE user_id = {}",
                user.id
            )
        ),
        1
    );
}

/// The connection dies while the login's session is being inserted: the user created by the
/// same login is not kept either (and no session exists without its user).
#[actix_rt::test]
async fn a_login_and_its_session_are_one_transaction() {
    let app = TestApp::spawn().await;
    let mut conn = app.db();
    diesel::sql_query(
        "CREATE FUNCTION die_on_session() RETURNS trigger AS $$
         BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$
         LANGUAGE plpgsql",
    )
    .execute(&mut conn)
    .expect("function");
    diesel::sql_query(
        "CREATE TRIGGER die_on_session BEFORE INSERT ON user_session
         FOR EACH ROW EXECUTE FUNCTION die_on_session()",
    )
    .execute(&mut conn)
    .expect("trigger");

    let reply = app.login("cut-off").await;
    assert_ne!(reply.errno(), 0, "{}", reply.raw);
    let openid = app.fake.openid_for("cut-off");
    assert!(
        app.user_by_openid(&openid).is_none(),
        "no user without the session of its login"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM user_session s
              WHERE NOT EXISTS (SELECT 1 FROM wx_user u WHERE u.id = s.user_id)"
        ),
        0
    );
    assert_eq!(count(&app, "SELECT count(*) AS n FROM user_session"), 0);

    diesel::sql_query("DROP TRIGGER die_on_session ON user_session")
        .execute(&mut conn)
        .expect("drop trigger");
    // The pool replaces the dead connection; the next login is whole.
    let mut last = None;
    for _ in 0..5 {
        let reply = app.login("cut-off").await;
        if reply.errno() == 0 {
            last = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        last.is_some(),
        "logins work again once the connection is replaced"
    );
    let user = app.user_by_openid(&openid).expect("user");
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM user_session WHERE user_id = {}",
                user.id
            )
        ),
        1
    );
}

/// login_log rows are gathered and written together, not one commit per attempt.
#[actix_rt::test]
async fn login_log_rows_are_gathered_and_written_in_one_batch() {
    let app = TestApp::builder()
        .config(|c| c.retention.login_log_flush = Duration::from_secs(60))
        .spawn()
        .await;
    for i in 0..5 {
        app.login_ok(&format!("batched-{i}")).await;
    }
    assert_eq!(
        app.state.login_log.pending(),
        5,
        "gathered, not yet written"
    );
    assert_eq!(app.state.login_log.flush().await, 5);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM login_log"), 5);
    assert_eq!(app.state.login_log.pending(), 0);
}
