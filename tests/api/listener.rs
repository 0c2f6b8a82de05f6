//! The NOTIFY listener when its connection hangs without closing: two instances on one database,
//! B connected directly and D through a proxy that can freeze D's listener connection. A frozen
//! listener must not keep revoked tokens alive on D.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{Value, json};
use wxauth::config::{Config, Secret};
use wxauth::sessions::CachedSessions;

use crate::db_proxy::DbProxy;
use crate::helpers::{TestApp, id_of, meeting_body};

/// B (direct) and D (through the proxy) on one database.
async fn two_instances() -> (TestApp, TestApp, DbProxy) {
    let b = TestApp::spawn().await;
    let proxy = DbProxy::start();
    let d = b
        .sibling_with(|c| through(c, proxy.url_for(&b.db_url)))
        .await;
    (b, d, proxy)
}

/// Both connections through `url`: the pool's and the listener's, as `DATABASE_URL` alone sets.
fn through(c: &mut Config, url: String) {
    c.database.listen_url = url.clone();
    c.database.url = url;
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
    let took = d.errno_within(&token, 501, Duration::from_secs(5)).await;
    println!("logout on B refused on D after {took:?}");
}

const ADMIN_TOKEN: &str = "admin-token-for-listener-tests-0123";

async fn readyz(app: &TestApp) -> crate::helpers::Reply {
    app.get_abs("/readyz").await
}

/// Polls `/readyz` until the listener's state is (`want`) or is not (`!want`) `ok`.
async fn listener_ok_within(app: &TestApp, want: bool, deadline: Duration) -> Value {
    let started = Instant::now();
    loop {
        let reply = readyz(app).await;
        assert_eq!(
            reply.status, 200,
            "a listener never makes /readyz fail: {}",
            reply.raw
        );
        let listener = reply.body["listener"].clone();
        if (listener["state"] == "ok") == want {
            return reply.body;
        }
        assert!(
            started.elapsed() < deadline,
            "listener still {listener} after {deadline:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get_abs("/metrics").await.raw;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[actix_web::test]
async fn after_a_freeze_the_listener_is_replaced_and_the_cache_is_used_again() {
    let (b, d, proxy) = two_instances().await;
    let first = b.login_ok("replaced-1").await;
    until_cached(&d, &first).await;
    listener_ok_within(&d, true, Duration::from_secs(5)).await;
    assert_eq!(metric(&d, "wxauth_session_listener_healthy").await, 1.0);

    assert_eq!(proxy.freeze_listeners(), 1);
    // New connections pass: the frozen one is given up and a new one takes over.
    let started = Instant::now();
    while proxy.listener_connections() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the frozen connection was not replaced"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = listener_ok_within(&d, true, Duration::from_secs(5)).await;
    assert!(
        ready["listener"]["last_heartbeat_ms_ago"]
            .as_u64()
            .expect("a heartbeat")
            < 2500
    );
    assert_eq!(ready["listener"]["replacements"], 1);
    assert_eq!(
        metric(&d, "wxauth_session_listener_replacements_total").await,
        1.0
    );

    // Cached again, and revocations arrive through the new connection at once.
    let second = b.login_ok("replaced-2").await;
    until_cached(&d, &second).await;
    assert_eq!(
        b.post("auth/logout", &json!({}), Some(&second))
            .await
            .errno(),
        0
    );
    d.errno_within(&second, 501, Duration::from_secs(1)).await;
}

#[actix_web::test]
async fn while_the_listener_stays_frozen_every_check_goes_to_postgresql_and_the_probes_say_so() {
    let b = TestApp::spawn().await;
    let proxy = DbProxy::start();
    let d = b
        .sibling_with(|c| {
            through(c, proxy.url_for(&b.db_url));
            c.admin.token = Some(Secret::new(ADMIN_TOKEN));
        })
        .await;
    let token = b.login_ok("stays-frozen").await;
    until_cached(&d, &token).await;

    proxy.freeze_new_listeners(true);
    assert_eq!(proxy.freeze_listeners(), 1);
    let ready = listener_ok_within(&d, false, Duration::from_secs(5)).await;
    assert_eq!(
        ready["status"], "ready",
        "still serving, from PostgreSQL: {ready}"
    );
    let state = ready["listener"]["state"]
        .as_str()
        .expect("a state")
        .to_string();
    assert!(state == "stale" || state == "down", "{ready}");

    // The cache is empty and stays so: each request asks the database.
    assert_eq!(cached_sessions(&d).await, 0);
    let other = b.login_ok("stays-frozen-2").await;
    for t in [&token, &other] {
        assert_eq!(d.get("user/index", Some(t)).await.errno(), 0);
    }
    assert_eq!(cached_sessions(&d).await, 0, "nothing cached meanwhile");
    assert_eq!(
        b.post("auth/logout", &json!({}), Some(&other))
            .await
            .errno(),
        0
    );
    assert_eq!(
        d.get("user/index", Some(&other)).await.errno(),
        501,
        "at once"
    );

    let status = d
        .get_with(
            &format!("{}/admin/api/status", d.base),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["status"], "degraded", "{}", status.raw);
    assert_ne!(status.body["listener"]["state"], "ok");
    assert!(
        status.body["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("session listener"))),
        "{}",
        status.raw
    );
    assert_eq!(metric(&d, "wxauth_session_listener_healthy").await, 0.0);

    // The network heals: a new connection gets through and the cache is trusted again.
    proxy.freeze_new_listeners(false);
    listener_ok_within(&d, true, Duration::from_secs(15)).await;
    assert_eq!(metric(&d, "wxauth_session_listener_healthy").await, 1.0);
    until_cached(&d, &token).await;
}

/// While the listener is down every token check reads `user_session`, through the database
/// handle's reads lane like any read. With the database stalled, checks beyond that lane's bound
/// are refused (errno 721) within the request's deadline instead of queuing at the executor
/// until it passes; once the database moves again the token works.
#[actix_web::test]
async fn token_checks_while_the_listener_is_down_are_bounded_when_the_database_stalls() {
    let b = TestApp::spawn().await;
    let proxy = DbProxy::start();
    proxy.freeze_new_listeners(true);
    let d = b
        .sibling_with(|c| through(c, proxy.url_for(&b.db_url)))
        .await;
    let token = b.login_ok("stalled-checks").await;
    assert_eq!(d.get("user/index", Some(&token)).await.errno(), 0);
    assert_eq!(
        cached_sessions(&d).await,
        0,
        "every check goes to PostgreSQL"
    );

    // Every read of user_session waits behind this lock until it is released.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let db_url = b.db_url.clone();
    let holder = std::thread::spawn(move || {
        let mut conn = PgConnection::establish(&db_url).expect("connect");
        conn.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query("LOCK TABLE user_session IN ACCESS EXCLUSIVE MODE").execute(c)?;
            locked_tx.send(()).expect("signal");
            let _ = release_rx.recv_timeout(Duration::from_secs(20));
            Ok(())
        })
        .expect("lock held");
    });
    locked_rx.recv().expect("locked");

    let bound = d.state.db.admission().stats().limit;
    let requests = bound * 6;
    let started = Instant::now();
    let replies = futures_util::future::join_all((0..requests).map(|_| async {
        let reply = d.get("user/index", Some(&token)).await;
        (reply.errno(), started.elapsed())
    }))
    .await;
    release_tx.send(()).expect("release");
    holder.join().expect("lock holder");

    let refused: Vec<Duration> = replies
        .iter()
        .filter(|(errno, _)| *errno == 721)
        .map(|(_, after)| *after)
        .collect();
    println!(
        "{} of {requests} checks refused, the first after {:?}, the last after {:?}",
        refused.len(),
        refused.iter().min(),
        refused.iter().max()
    );
    assert!(
        refused.len() >= requests - bound,
        "at most {bound} checks may wait for the stalled database: {replies:?}"
    );
    for (errno, _) in &replies {
        assert!([721, 502].contains(errno), "{replies:?}");
    }
    assert_eq!(d.get("user/index", Some(&token)).await.errno(), 0);
    // A place is given back when the executor is done with the message, which may be a moment
    // after its answer reached the handler: no place may stay taken.
    let released = Instant::now();
    while d.state.db.admission().stats().in_flight != 0 {
        assert!(
            released.elapsed() < Duration::from_secs(2),
            "a place in the database admission was never given back"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The user row, the user's sessions and memberships, and the meetings: what a refused write
/// must leave as it was.
fn snapshot(app: &TestApp, user_id: i64) -> String {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT row_to_json(u)::text AS row FROM wx_user u WHERE id = $1 \
         UNION ALL SELECT count(*)::text FROM user_session WHERE user_id = $1 \
         UNION ALL SELECT count(*)::text FROM user_session WHERE user_id = $1 AND revoked_at IS NULL \
         UNION ALL SELECT count(*)::text FROM meeting_member WHERE user_id = $1 \
         UNION ALL SELECT count(*)::text FROM meeting",
    )
    .bind::<diesel::sql_types::BigInt, _>(user_id)
    .load(&mut app.db())
    .expect("snapshot");
    rows.into_iter()
        .map(|r| r.row)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every write on the user's behalf, each of which must answer 501 for a user who may not act.
async fn every_write_is_refused(app: &TestApp, token: &str, openid: &str, joined: i64, other: i64) {
    let phone_code = app.fake.mint_phone_code(openid, "13800138000");
    let writes = [
        ("auth/profile", json!({ "nickname": "改了" })),
        ("meeting/publish", meeting_body("不该发布", 24)),
        ("meeting/join", json!({ "id": other })),
        ("meeting/leave", json!({ "id": joined })),
        ("auth/bindPhone", json!({ "code": phone_code })),
        ("auth/refresh", json!({})),
    ];
    for (path, body) in writes {
        let reply = app.post(path, &body, Some(token)).await;
        assert_eq!(reply.errno(), 501, "{path}: {}", reply.raw);
    }
}

#[actix_web::test]
async fn writes_refuse_a_user_disabled_or_deleted_behind_the_caches_back() {
    let app = TestApp::spawn().await;
    let publisher = app.login_ok("publisher").await;
    let joined = id_of(&app.publish(&publisher, &meeting_body("已加入", 24)).await);
    let other = id_of(&app.publish(&publisher, &meeting_body("未加入", 24)).await);

    for (who, change) in [
        ("quietly-disabled", "status = 1"),
        ("quietly-deleted", "deleted = true"),
    ] {
        let token = app.login_ok(who).await;
        let openid = app.fake.openid_for(who);
        let user_id = app.user_by_openid(&openid).expect("row").id;
        assert_eq!(
            app.post("meeting/join", &json!({ "id": joined }), Some(&token))
                .await
                .errno(),
            0
        );
        assert_eq!(app.get("user/index", Some(&token)).await.errno(), 0);

        // Changed without the trigger that revokes the sessions and notifies the instances, as
        // a lost notification would leave it: the session is live in memory and in the table.
        let mut conn = app.db();
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            &format!(
                "SET session_replication_role = replica; \
                 UPDATE wx_user SET {change} WHERE id = {user_id}"
            ),
        )
        .expect("update without triggers");
        assert_eq!(
            app.get("user/index", Some(&token)).await.errno(),
            0,
            "the session itself is still live"
        );

        let before = snapshot(&app, user_id);
        every_write_is_refused(&app, &token, &openid, joined, other).await;
        assert_eq!(snapshot(&app, user_id), before, "{who}: nothing changed");
    }
}

#[actix_web::test]
async fn a_user_disabled_in_sql_while_the_listener_is_frozen_cannot_write_there() {
    let (b, d, proxy) = two_instances().await;
    let publisher = b.login_ok("publisher").await;
    let joined = id_of(&b.publish(&publisher, &meeting_body("已加入", 24)).await);
    let other = id_of(&b.publish(&publisher, &meeting_body("未加入", 24)).await);
    let token = b.login_ok("disabled-in-sql").await;
    let openid = b.fake.openid_for("disabled-in-sql");
    let user_id = b.user_by_openid(&openid).expect("row").id;
    assert_eq!(
        d.post("meeting/join", &json!({ "id": joined }), Some(&token))
            .await
            .errno(),
        0
    );
    until_cached(&d, &token).await;

    proxy.freeze_new_listeners(true);
    assert_eq!(proxy.freeze_listeners(), 1);
    // With the trigger: the sessions are revoked and the instances told, but D does not hear.
    diesel::sql_query("UPDATE wx_user SET status = 1 WHERE id = $1")
        .bind::<diesel::sql_types::BigInt, _>(user_id)
        .execute(&mut b.db())
        .expect("disable");
    let before = snapshot(&b, user_id);
    every_write_is_refused(&d, &token, &openid, joined, other).await;
    assert_eq!(snapshot(&b, user_id), before, "nothing changed");
}
