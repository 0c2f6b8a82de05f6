//! Sessions that survive restarts and scale out: two instances on one database behave as one.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;
use wxauth::china_time::china_time;
use wxauth::db::schema::{user_session, wx_user};
use wxauth::sessions::CachedSessions;
use wxauth::sessions::listener::APPLICATION_NAME;

use crate::helpers::TestApp;

#[actix_web::test]
async fn every_login_is_a_session_row_and_logout_marks_it_revoked() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("alice").await;
    let user_id = app
        .user_by_openid(&app.fake.openid_for("alice"))
        .expect("row")
        .id;

    let rows: Vec<(i64, Option<chrono::DateTime<chrono::Utc>>, String)> = user_session::table
        .select((
            user_session::user_id,
            user_session::revoked_at,
            user_session::client_ip,
        ))
        .load(&mut app.db())
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, user_id);
    assert!(rows[0].1.is_none());
    assert_eq!(rows[0].2, "127.0.0.1");

    assert_eq!(
        app.post("auth/logout", &json!({}), Some(&token))
            .await
            .errno(),
        0
    );
    let revoked: Option<chrono::DateTime<chrono::Utc>> = user_session::table
        .select(user_session::revoked_at)
        .first(&mut app.db())
        .expect("row");
    assert!(revoked.is_some());
}

#[actix_web::test]
async fn a_token_issued_before_a_restart_still_works_and_bind_phone_still_has_the_key() {
    let before = TestApp::spawn().await;
    let openid = before.fake.openid_for("bob");
    let token = before.login_ok("bob").await;
    before.stop().await;

    // Same JWT_SECRET and database, fresh memory: as a new process would have.
    let after = before.sibling().await;

    assert_eq!(after.get("user/index", Some(&token)).await.errno(), 0);
    let bound = after
        .bind_phone_encrypted(&openid, "13800138000", &token)
        .await;
    assert_eq!(bound.errno(), 0, "{}", bound.raw);
}

#[actix_web::test]
async fn a_login_on_one_instance_works_on_the_other_and_a_logout_there_kills_it_here() {
    let a = TestApp::spawn().await;
    let b = a.sibling().await;
    let token = a.login_ok("carol").await;
    assert_eq!(b.get("user/index", Some(&token)).await.errno(), 0);
    // Both caches hold it now; after a few uses A's workers answer it from their per-thread
    // memo, which the revocation must void as well.
    for _ in 0..4 {
        assert_eq!(a.get("user/index", Some(&token)).await.errno(), 0);
    }

    assert_eq!(
        b.post("auth/logout", &json!({}), Some(&token))
            .await
            .errno(),
        0
    );

    assert_eq!(
        b.get("user/index", Some(&token)).await.errno(),
        501,
        "dead at once where it was revoked"
    );
    let took = a.errno_within(&token, 501, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1));
}

#[actix_web::test]
async fn refresh_rotates_the_token() {
    let a = TestApp::spawn().await;
    let b = a.sibling().await;
    let old = a.login_ok("dave").await;
    assert_eq!(b.get("user/index", Some(&old)).await.errno(), 0);

    let reply = a.post("auth/refresh", &json!({}), Some(&old)).await;

    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let new = reply.token();
    assert_ne!(new, old);
    assert!(reply.body["data"]["tokenExpire"].as_str().is_some());
    assert_eq!(a.get("user/index", Some(&old)).await.errno(), 501);
    assert_eq!(a.get("user/index", Some(&new)).await.errno(), 0);
    b.errno_within(&old, 501, Duration::from_secs(1)).await;
    assert_eq!(b.get("user/index", Some(&new)).await.errno(), 0);
    // The old token cannot be refreshed again, and the new session keeps the session_key.
    assert_eq!(
        a.post("auth/refresh", &json!({}), Some(&old)).await.errno(),
        501
    );
    let openid = a.fake.openid_for("dave");
    let bound = a.bind_phone_encrypted(&openid, "13800138001", &new).await;
    assert_eq!(bound.errno(), 0, "{}", bound.raw);
}

#[actix_web::test]
async fn logout_all_kills_every_token_of_the_user_on_both_instances() {
    let a = TestApp::spawn().await;
    let b = a.sibling().await;
    let phone = a.login_ok("erin").await;
    let tablet = b.login_ok("erin").await;
    let someone_else = a.login_ok("frank").await;
    for t in [&phone, &tablet] {
        assert_eq!(a.get("user/index", Some(t)).await.errno(), 0);
        assert_eq!(b.get("user/index", Some(t)).await.errno(), 0);
    }

    assert_eq!(
        a.post("auth/logout_all", &json!({}), Some(&phone))
            .await
            .errno(),
        0
    );

    for t in [&phone, &tablet] {
        assert_eq!(a.get("user/index", Some(t)).await.errno(), 501);
        b.errno_within(t, 501, Duration::from_secs(1)).await;
    }
    assert_eq!(b.get("user/index", Some(&someone_else)).await.errno(), 0);
}

#[actix_web::test]
async fn revocations_still_propagate_after_the_listener_connection_is_killed() {
    let a = TestApp::spawn().await;
    let b = a.sibling().await;
    let token = a.login_ok("gina").await;
    assert_eq!(a.get("user/index", Some(&token)).await.errno(), 0);

    #[derive(QueryableByName)]
    struct Killed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count_listeners = |app: &TestApp| -> i64 {
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        )
        .bind::<diesel::sql_types::Text, _>(APPLICATION_NAME)
        .get_result::<Killed>(&mut app.db())
        .expect("query")
        .n
    };
    let killed: Killed = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind::<diesel::sql_types::Text, _>(APPLICATION_NAME)
    .get_result(&mut a.db())
    .expect("terminate");
    assert_eq!(killed.n, 2, "both instances' listeners were connected");

    // Served from the database meanwhile, never from a cache nobody keeps current.
    assert_eq!(a.get("user/index", Some(&token)).await.errno(), 0);
    let started = Instant::now();
    while count_listeners(&a) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "listeners did not reconnect"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.get("user/index", Some(&token)).await.errno(), 0);

    assert_eq!(
        b.post("auth/logout", &json!({}), Some(&token))
            .await
            .errno(),
        0
    );

    a.errno_within(&token, 501, Duration::from_secs(1)).await;
}

#[actix_web::test]
async fn the_session_key_column_holds_no_plaintext_key() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let openid = app.fake.openid_for("hank");
    app.login_ok("hank").await;
    let key = app.fake.session_key_of(&openid).expect("key");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .expect("b64");

    let stored: Vec<u8> = user_session::table
        .select(user_session::session_key_enc)
        .first(&mut app.db())
        .expect("row");

    assert!(stored.len() > raw.len(), "nonce and tag are there");
    assert!(
        !stored.windows(key.len()).any(|w| w == key.as_bytes()),
        "base64 text"
    );
    assert!(
        !stored.windows(raw.len()).any(|w| w == raw.as_slice()),
        "raw bytes"
    );
}

#[actix_web::test]
async fn more_sessions_than_cache_capacity_all_stay_valid_in_bounded_memory() {
    let app = TestApp::builder()
        .config(|c| c.sessions.cache_capacity = 5)
        .spawn()
        .await;
    let mut tokens = Vec::new();
    for i in 0..12 {
        tokens.push(app.login_ok(&format!("user{i}")).await);
    }
    // A listener heartbeat that comes late (a loaded machine) empties the cache until the next
    // one: correct, but then nothing is cached for a moment, so the passes are repeated.
    let mut cached = 0;
    for _ in 0..10 {
        for _ in 0..2 {
            for t in &tokens {
                assert_eq!(app.get("user/index", Some(t)).await.errno(), 0);
            }
        }
        cached = app
            .state
            .sessions
            .send(CachedSessions)
            .await
            .expect("mailbox");
        assert!(cached <= 5, "{cached} sessions cached");
        if cached > 0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(cached > 0, "the cache is in use");
}

#[actix_web::test]
async fn expired_sessions_are_swept() {
    let app = TestApp::spawn().await;
    app.login_ok("ivy").await;
    let user_id = app
        .user_by_openid(&app.fake.openid_for("ivy"))
        .expect("row")
        .id;
    diesel::sql_query(
        "INSERT INTO user_session (id, user_id, session_key_enc, expires_at) VALUES ('old', $1, '\\x00', now() - interval '2 days')",
    )
    .bind::<diesel::sql_types::BigInt, _>(user_id)
    .execute(&mut app.db())
    .expect("insert");

    let swept = wxauth::db::sessions::sweep_expired(&mut app.db()).expect("sweep");

    assert_eq!(swept, 1);
    let left: i64 = user_session::table
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(left, 1, "the live session stays");
}

#[actix_web::test]
async fn disabling_or_deleting_a_user_kills_their_tokens_on_both_instances_and_refuses_login() {
    let a = TestApp::spawn().await;
    let b = a.sibling().await;
    let token = a.login_ok("jack").await;
    let other = a.login_ok("kate").await;
    assert_eq!(a.get("user/index", Some(&token)).await.errno(), 0);
    assert_eq!(b.get("user/index", Some(&token)).await.errno(), 0);
    let openid = a.fake.openid_for("jack");

    // However the account gets disabled (here: plain SQL), its sessions die everywhere.
    diesel::update(wx_user::table.filter(wx_user::weixin_openid.eq(&openid)))
        .set(wx_user::status.eq(1))
        .execute(&mut a.db())
        .expect("disable");

    a.errno_within(&token, 501, Duration::from_secs(1)).await;
    b.errno_within(&token, 501, Duration::from_secs(1)).await;
    assert_eq!(
        a.get("user/index", Some(&other)).await.errno(),
        0,
        "other users are untouched"
    );
    let refused = b.login("jack").await;
    assert_eq!(refused.errno(), 700, "{}", refused.raw);
    let live: i64 = user_session::table
        .filter(user_session::revoked_at.is_null())
        .inner_join(wx_user::table)
        .filter(wx_user::weixin_openid.eq(&openid))
        .count()
        .get_result(&mut a.db())
        .expect("count");
    assert_eq!(live, 0);

    // A deleted account's token is dead too.
    assert_eq!(b.get("user/index", Some(&other)).await.errno(), 0);
    diesel::update(wx_user::table.filter(wx_user::weixin_openid.eq(a.fake.openid_for("kate"))))
        .set(wx_user::deleted.eq(true))
        .execute(&mut a.db())
        .expect("delete");
    b.errno_within(&other, 501, Duration::from_secs(1)).await;
}

#[actix_web::test]
async fn the_admin_api_disables_a_user_everywhere_and_enables_them_again() {
    const ADMIN: &str = "admin-token-for-the-session-tests";
    let a = TestApp::builder().admin_token(ADMIN).spawn().await;
    let b = a.sibling().await;
    let token = a.login_ok("liam").await;
    let id = a
        .user_by_openid(&a.fake.openid_for("liam"))
        .expect("row")
        .id;
    assert_eq!(a.get("user/index", Some(&token)).await.errno(), 0);
    assert_eq!(b.get("user/index", Some(&token)).await.errno(), 0);
    let admin_post = |app: &TestApp, path: String, bearer: Option<&str>| {
        let mut req = app.http.post(format!("{}{path}", app.base));
        if let Some(t) = bearer {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        req.send()
    };

    // Without the token, or with a wrong one, nothing happens.
    let none = admin_post(&a, format!("/admin/users/{id}/disable"), None)
        .await
        .expect("request");
    assert_eq!(none.status().as_u16(), 401);
    let wrong = admin_post(
        &a,
        format!("/admin/users/{id}/disable"),
        Some("wrong-token-wrong-token"),
    )
    .await
    .expect("request");
    assert_eq!(wrong.status().as_u16(), 403);
    assert_eq!(a.get("user/index", Some(&token)).await.errno(), 0);

    let mut disabled = admin_post(&a, format!("/admin/users/{id}/disable"), Some(ADMIN))
        .await
        .expect("request");
    assert_eq!(disabled.status().as_u16(), 200);
    let body: serde_json::Value = disabled.json().await.expect("json");
    assert_eq!(body, json!({ "id": id, "status": 1 }));

    assert_eq!(
        a.get("user/index", Some(&token)).await.errno(),
        501,
        "dead at once here"
    );
    b.errno_within(&token, 501, Duration::from_secs(1)).await;
    assert_eq!(b.login("liam").await.errno(), 700);

    let enabled = admin_post(&a, format!("/admin/users/{id}/enable"), Some(ADMIN))
        .await
        .expect("request");
    assert_eq!(enabled.status().as_u16(), 200);
    assert_eq!(b.login("liam").await.errno(), 0, "welcome back");
    assert_eq!(
        a.get("user/index", Some(&token)).await.errno(),
        501,
        "old tokens stay dead"
    );

    let missing = admin_post(&a, "/admin/users/999999/disable".into(), Some(ADMIN))
        .await
        .expect("request");
    assert_eq!(missing.status().as_u16(), 404);
    let bad = admin_post(&a, "/admin/users/abc/disable".into(), Some(ADMIN))
        .await
        .expect("request");
    assert_eq!(bad.status().as_u16(), 400);
}

#[actix_web::test]
async fn without_admin_token_the_user_admin_api_is_off() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(format!("{}/admin/users/1/disable", app.base))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 404);
}

/// A `user_session` row, as far as the maximum lifetime is concerned.
#[derive(Debug, Queryable)]
struct StoredSession {
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

/// The user's sessions, oldest first.
fn sessions_of(app: &TestApp, user_id: i64) -> Vec<StoredSession> {
    user_session::table
        .filter(user_session::user_id.eq(user_id))
        .order((
            user_session::created_at.asc(),
            user_session::expires_at.asc(),
        ))
        .select((
            user_session::created_at,
            user_session::expires_at,
            user_session::revoked_at,
        ))
        .load(&mut app.db())
        .expect("rows")
}

/// Stands in for time passing: the user's sessions were logged in this long ago.
fn logged_in_ago(app: &TestApp, user_id: i64, ago: &str) {
    diesel::sql_query(format!(
        "UPDATE user_session SET created_at = now() - interval '{ago}' WHERE user_id = $1"
    ))
    .bind::<diesel::sql_types::BigInt, _>(user_id)
    .execute(&mut app.db())
    .expect("update");
}

fn token_expire(at: DateTime<Utc>) -> String {
    china_time(at).format("%Y-%m-%d %H:%M:%S").to_string()
}

#[actix_web::test]
async fn a_session_dies_at_its_maximum_lifetime_however_often_it_was_refreshed() {
    let a = TestApp::spawn().await;
    let first = a.login_ok("mallory").await;
    let user_id = a
        .user_by_openid(&a.fake.openid_for("mallory"))
        .expect("row")
        .id;
    let second = a
        .post("auth/refresh", &json!({}), Some(&first))
        .await
        .token();
    let third = a
        .post("auth/refresh", &json!({}), Some(&second))
        .await
        .token();
    let rows = sessions_of(&a, user_id);
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.created_at == rows[0].created_at),
        "a refresh keeps the login's created_at: {rows:?}"
    );
    assert_eq!(a.get("user/index", Some(&third)).await.errno(), 0);

    // The default maximum is 30 days: a login 30 days and a minute ago is over, whatever the
    // refreshes set `expires_at` to. A fresh instance reads the session from the database.
    logged_in_ago(&a, user_id, "30 days 1 minute");
    let b = a.sibling().await;
    assert_eq!(b.get("user/index", Some(&third)).await.errno(), 501);
    assert_eq!(
        b.post("auth/refresh", &json!({}), Some(&third))
            .await
            .errno(),
        501,
        "a dead session cannot be refreshed"
    );
    assert_eq!(sessions_of(&b, user_id).len(), 3, "nothing was added");

    // A day short of the maximum the session is alive.
    logged_in_ago(&a, user_id, "29 days");
    let c = a.sibling().await;
    assert_eq!(c.get("user/index", Some(&third)).await.errno(), 0);
}

#[actix_web::test]
async fn refresh_never_extends_a_session_past_its_maximum_lifetime() {
    let app = TestApp::builder()
        .config(|c| c.sessions.max_lifetime = Duration::from_secs(86_400))
        .spawn()
        .await;
    let token = app.login_ok("trent").await;
    let user_id = app
        .user_by_openid(&app.fake.openid_for("trent"))
        .expect("row")
        .id;
    // Logged in a day ago less 5 seconds: a refresh may grant those 5 seconds, not 7 days.
    logged_in_ago(&app, user_id, "86395 seconds");
    let login_at = sessions_of(&app, user_id)[0].created_at;
    let end = login_at + chrono::Duration::seconds(86_400);

    let reply = app.post("auth/refresh", &json!({}), Some(&token)).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let refreshed = reply.token();
    let rows = sessions_of(&app, user_id);
    let new_row = rows
        .iter()
        .find(|r| r.revoked_at.is_none())
        .expect("the new session");
    assert_eq!(new_row.created_at, login_at, "the login's time is kept");
    assert_eq!(
        new_row.expires_at, end,
        "expiry cut to the maximum lifetime"
    );
    assert_eq!(reply.body["data"]["tokenExpire"], token_expire(end));

    // Alive until then, from the cache and the workers' memos, then dead everywhere.
    for _ in 0..3 {
        assert_eq!(app.get("user/index", Some(&refreshed)).await.errno(), 0);
    }
    app.errno_within(&refreshed, 501, Duration::from_secs(10))
        .await;
    assert_eq!(
        app.post("auth/refresh", &json!({}), Some(&refreshed))
            .await
            .errno(),
        501
    );
}

#[actix_web::test]
async fn a_login_token_never_outlives_the_maximum_lifetime() {
    let app = TestApp::builder()
        .config(|c| {
            c.sessions.token_ttl = Duration::from_secs(7_776_000);
            c.sessions.max_lifetime = Duration::from_secs(86_400);
        })
        .spawn()
        .await;
    let reply = app.login("peggy").await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let user_id = app
        .user_by_openid(&app.fake.openid_for("peggy"))
        .expect("row")
        .id;
    let rows = sessions_of(&app, user_id);
    let lifetime = rows[0].expires_at - rows[0].created_at;
    assert!(
        lifetime <= chrono::Duration::seconds(86_400),
        "a day, not 90: {lifetime}"
    );
    assert_eq!(
        reply.body["data"]["tokenExpire"],
        token_expire(rows[0].expires_at),
        "the token says so too"
    );
}

/// A token check that reads the session from the database while its revocation waits to commit
/// must not leave it cached as live: once logout, logout_all or refresh has answered, the old
/// token is dead on this instance, without waiting for the NOTIFY to come round.
#[actix_web::test]
async fn a_check_racing_a_revocation_does_not_outlive_it() {
    let app = TestApp::spawn().await;
    for (n, path) in ["auth/logout", "auth/logout_all", "auth/refresh"]
        .into_iter()
        .enumerate()
    {
        let token = app.login_ok(&format!("racer{n}")).await;
        let jti: String = user_session::table
            .filter(user_session::revoked_at.is_null())
            .order(user_session::created_at.desc())
            .select(user_session::id)
            .first(&mut app.db())
            .expect("the new session");
        // Holds the row, so the revocation's UPDATE waits for this transaction.
        let mut blocker = app.db();
        diesel::sql_query("BEGIN")
            .execute(&mut blocker)
            .expect("begin");
        diesel::sql_query("SELECT id FROM user_session WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(&jti)
            .execute(&mut blocker)
            .expect("lock the row");

        let empty = json!({});
        let revoke = app.post(path, &empty, Some(&token));
        let race = async {
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            // The revocation has started and waits for the row: this check reads it live.
            let during = app.get("user/index", Some(&token)).await.errno();
            diesel::sql_query("COMMIT")
                .execute(&mut blocker)
                .expect("release the row");
            during
        };
        let (revoked, during) = futures_util::future::join(revoke, race).await;
        assert_eq!(revoked.errno(), 0, "{path}: {}", revoked.raw);
        assert_eq!(during, 0, "{path}: not yet revoked while the check ran");
        assert_eq!(
            app.get("user/index", Some(&token)).await.errno(),
            501,
            "{path}: dead as soon as it answered"
        );
    }
}

/// Uses each token on `app` until `app` serves them all from its cache (its listener is trusted):
/// from then on only a notification can take them out.
async fn until_all_cached(app: &TestApp, tokens: &[&str]) {
    let started = Instant::now();
    loop {
        for token in tokens {
            assert_eq!(app.get("user/index", Some(token)).await.errno(), 0);
        }
        let cached = app
            .state
            .sessions
            .send(CachedSessions)
            .await
            .expect("mailbox");
        if cached >= tokens.len() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the session cache was never trusted"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn user_id_of(app: &TestApp, name: &str) -> i64 {
    app.user_by_openid(&app.fake.openid_for(name))
        .expect("row")
        .id
}

#[actix_web::test]
async fn a_session_revoked_or_deleted_in_sql_dies_on_every_instance_within_two_seconds() {
    let a = TestApp::spawn().await;
    let b = a.sibling().await;
    let revoked = a.login_ok("mia").await;
    let deleted = a.login_ok("noah").await;
    let untouched = a.login_ok("olga").await;
    let tokens = [revoked.as_str(), deleted.as_str(), untouched.as_str()];
    until_all_cached(&a, &tokens).await;
    until_all_cached(&b, &tokens).await;

    // What an operator does about a stolen token, behind the application's back.
    let n =
        diesel::update(user_session::table.filter(user_session::user_id.eq(user_id_of(&a, "mia"))))
            .set(user_session::revoked_at.eq(diesel::dsl::now))
            .execute(&mut a.db())
            .expect("revoke");
    assert_eq!(n, 1);
    let n = diesel::delete(
        user_session::table.filter(user_session::user_id.eq(user_id_of(&a, "noah"))),
    )
    .execute(&mut a.db())
    .expect("delete");
    assert_eq!(n, 1);

    for app in [&a, &b] {
        app.errno_within(&revoked, 501, Duration::from_secs(2))
            .await;
        app.errno_within(&deleted, 501, Duration::from_secs(2))
            .await;
        assert_eq!(
            app.get("user/index", Some(&untouched)).await.errno(),
            0,
            "other sessions stay"
        );
    }
    let left: i64 = user_session::table
        .filter(user_session::revoked_at.is_null())
        .count()
        .get_result(&mut a.db())
        .expect("count");
    assert_eq!(left, 1, "only olga's session is live");
}

#[actix_web::test]
async fn the_admin_api_logs_a_user_out_everywhere_and_the_account_stays_usable() {
    const ADMIN: &str = "admin-token-for-the-session-tests";
    let a = TestApp::builder().admin_token(ADMIN).spawn().await;
    let b = a.sibling().await;
    let phone = a.login_ok("pia").await;
    let tablet = b.login_ok("pia").await;
    let other = a.login_ok("quinn").await;
    let tokens = [phone.as_str(), tablet.as_str(), other.as_str()];
    until_all_cached(&a, &tokens).await;
    until_all_cached(&b, &tokens).await;
    let id = user_id_of(&a, "pia");
    let admin_post = |path: String, bearer: Option<&str>| {
        let mut req = a.http.post(format!("{}{path}", a.base));
        if let Some(t) = bearer {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        req.send()
    };
    let status_of = |res: awc::ClientResponse<_>| res.status().as_u16();

    // Without the token, or with a wrong one, nothing happens.
    let none = admin_post(format!("/admin/users/{id}/logout"), None)
        .await
        .expect("request");
    assert_eq!(status_of(none), 401);
    let wrong = admin_post(
        format!("/admin/users/{id}/logout"),
        Some("wrong-token-wrong-token"),
    )
    .await
    .expect("request");
    assert_eq!(status_of(wrong), 403);
    assert_eq!(a.get("user/index", Some(&phone)).await.errno(), 0);

    let mut done = admin_post(format!("/admin/users/{id}/logout"), Some(ADMIN))
        .await
        .expect("request");
    assert_eq!(done.status().as_u16(), 200);
    let body: serde_json::Value = done.json().await.expect("json");
    assert_eq!(body, json!({ "id": id, "sessions_ended": 2 }));

    for token in [&phone, &tablet] {
        assert_eq!(
            a.get("user/index", Some(token)).await.errno(),
            501,
            "dead at once here"
        );
        b.errno_within(token, 501, Duration::from_secs(2)).await;
    }
    assert_eq!(b.get("user/index", Some(&other)).await.errno(), 0);
    let live: Vec<Option<DateTime<Utc>>> = user_session::table
        .filter(user_session::user_id.eq(id))
        .select(user_session::revoked_at)
        .load(&mut a.db())
        .expect("rows");
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(Option::is_some), "both rows revoked");
    let status: i16 = wx_user::table
        .find(id)
        .select(wx_user::status)
        .first(&mut a.db())
        .expect("user");
    assert_eq!(status, 0, "the account stays usable");

    // The user logs in again, and that session works everywhere.
    let again = b.login_ok("pia").await;
    assert_eq!(a.get("user/index", Some(&again)).await.errno(), 0);
    assert_eq!(b.get("user/index", Some(&again)).await.errno(), 0);
    assert_eq!(
        a.get("user/index", Some(&phone)).await.errno(),
        501,
        "old tokens stay dead"
    );

    let mut twice = admin_post(format!("/admin/users/{id}/logout"), Some(ADMIN))
        .await
        .expect("request");
    let body: serde_json::Value = twice.json().await.expect("json");
    assert_eq!(body["sessions_ended"], 1, "the new session only");
    let missing = admin_post("/admin/users/999999/logout".into(), Some(ADMIN))
        .await
        .expect("request");
    assert_eq!(status_of(missing), 404);
    let bad = admin_post("/admin/users/abc/logout".into(), Some(ADMIN))
        .await
        .expect("request");
    assert_eq!(status_of(bad), 400);
}
