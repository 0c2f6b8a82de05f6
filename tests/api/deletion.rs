//! Deleting one's account (auth/deactivate, the grace period, restore by login, the sweeper, the
//! admin's deletion) and a copy of one's data (auth/export).

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{Value, json};
use wxauth::db::deletion::{self, STAND_IN_NICKNAME};
use wxauth::db::schema::{
    account_deletion, login_log, meeting, meeting_member, user_session, wx_user,
};
use wxauth::dev::fake_wechat::Fault;
use wxauth::wechat::mask_openid;

use crate::helpers::{Reply, TestApp, id_of, meeting_body};

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

/// Everything that identifies one test user, to look for after the deletion.
struct Person {
    name: String,
    openid: String,
    unionid: String,
    nickname: String,
    phone: String,
    ip: String,
    user_agent: String,
}

impl Person {
    fn new(app: &TestApp, name: &str, ip: &str) -> Person {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let digits: u64 = u64::from_str_radix(tag, 16).unwrap_or(1) % 100_000_000;
        Person {
            name: name.to_string(),
            openid: app.fake.openid_for(name),
            unionid: format!("union-{name}-{tag}"),
            nickname: format!("昵称{name}{tag}"),
            phone: format!("139{digits:08}"),
            ip: ip.to_string(),
            user_agent: format!("Agent-{name}-{tag}/1.0"),
        }
    }

    /// What must not be found anywhere once the account is erased.
    fn traces(&self) -> Vec<String> {
        vec![
            self.openid.clone(),
            mask_openid(&self.openid),
            self.unionid.clone(),
            self.nickname.clone(),
            self.phone.clone(),
            self.ip.clone(),
            self.user_agent.clone(),
        ]
    }
}

/// An app that believes X-Forwarded-For from the test client, so each person has their own IP,
/// with the admin API on and no login rate limits.
async fn deletion_app() -> TestApp {
    TestApp::builder()
        .trust_forwarded_for()
        .admin_token(ADMIN_TOKEN)
        // These tests log the same user in many times in a row.
        .config(|c| {
            c.limits.login_per_openid = 0;
            c.limits.login_per_ip = 0;
        })
        .spawn()
        .await
}

async fn login_as(app: &TestApp, p: &Person) -> Reply {
    let code = app
        .fake
        .mint_code_for(&p.openid, Some(&p.unionid), Duration::ZERO)
        .code;
    app.post_with(
        "auth/login_by_weixin",
        &json!({ "code": code }),
        &[
            ("x-forwarded-for", p.ip.as_str()),
            ("user-agent", p.user_agent.as_str()),
        ],
    )
    .await
}

async fn login_ok_as(app: &TestApp, p: &Person) -> (String, i64) {
    let reply = login_as(app, p).await;
    assert_eq!(reply.errno(), 0, "login of {}: {}", p.name, reply.raw);
    (reply.token(), user_id_of(&reply))
}

fn user_id_of(reply: &Reply) -> i64 {
    reply.body["data"]["userInfo"]["userId"]
        .as_i64()
        .expect("userId")
}

/// Login, a nickname, a phone number: a user the service knows something about.
async fn full_user(app: &TestApp, p: &Person) -> (String, i64) {
    let (token, id) = login_ok_as(app, p).await;
    let named = app
        .post(
            "auth/profile",
            &json!({ "nickname": p.nickname }),
            Some(&token),
        )
        .await;
    assert_eq!(named.errno(), 0, "{}", named.raw);
    let code = app.fake.mint_phone_code(&p.openid, &p.phone);
    let bound = app.bind_phone_code(&code, &token).await;
    assert_eq!(bound.errno(), 0, "{}", bound.raw);
    (token, id)
}

async fn publish(app: &TestApp, token: &str, title: &str) -> i64 {
    id_of(&app.publish(token, &meeting_body(title, 24)).await)
}

async fn join(app: &TestApp, token: &str, id: i64) {
    let reply = app
        .post("meeting/join", &json!({ "id": id }), Some(token))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

async fn deactivate(app: &TestApp, token: &str) -> Reply {
    app.post("auth/deactivate", &json!({}), Some(token)).await
}

/// Waits until the login_log writer has written what it was given. `pending` alone is not
/// enough: a periodic flush takes the rows out before its write is committed, so `flush` (which
/// waits for a flush under way) writes the rest and returns once both are done.
async fn login_log_settled(app: &TestApp) {
    // `pending()` drops to 0 when a flush takes the rows, before its insert commits; `flush`
    // waits for a flush in progress, then writes what is left.
    app.state.login_log.flush().await;
}

fn status_of(app: &TestApp, user_id: i64) -> Option<i16> {
    wx_user::table
        .find(user_id)
        .select(wx_user::status)
        .first(&mut app.db())
        .optional()
        .expect("query")
}

fn pending_requests(app: &TestApp, user_id: i64) -> i64 {
    account_deletion::table
        .filter(account_deletion::user_id.eq(user_id))
        .filter(account_deletion::completed_at.is_null())
        .count()
        .get_result(&mut app.db())
        .expect("count")
}

fn live_sessions(app: &TestApp, user_id: i64) -> i64 {
    user_session::table
        .filter(user_session::user_id.eq(user_id))
        .filter(user_session::revoked_at.is_null())
        .count()
        .get_result(&mut app.db())
        .expect("count")
}

#[derive(QueryableByName)]
struct TextColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

#[derive(QueryableByName)]
struct Hits {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Every text column of every table in the database that holds `needle`, as `table.column`.
fn columns_containing(app: &TestApp, needle: &str) -> Vec<String> {
    let mut conn = app.db();
    let columns: Vec<TextColumn> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name \
         FROM information_schema.columns \
         WHERE table_schema = 'public' \
           AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')",
    )
    .load(&mut conn)
    .expect("columns");
    assert!(
        columns.iter().any(|c| c.table_name == "wx_user"),
        "the scan sees the tables"
    );
    let mut found = Vec::new();
    for c in columns {
        let hits: Hits = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM \"{}\" WHERE strpos(\"{}\"::text, $1) > 0",
            c.table_name, c.column_name
        ))
        .bind::<Text, _>(needle)
        .get_result(&mut conn)
        .expect("scan");
        if hits.n > 0 {
            found.push(format!("{}.{}", c.table_name, c.column_name));
        }
    }
    found
}

// ---- the whole story ----

#[actix_web::test]
async fn deactivate_restore_erase_and_start_over() {
    let a = deletion_app().await;
    let b = a.sibling().await;
    let alice = Person::new(&a, "alice", "203.0.113.71");
    let bob = Person::new(&a, "bob", "198.51.100.22");

    let (token, alice_id) = full_user(&a, &alice).await;
    let (bob_token, bob_id) = login_ok_as(&a, &bob).await;
    let alices_meeting = publish(&a, &token, "Alice的周会").await;
    let bobs_meeting = publish(&a, &bob_token, "Bob的周会").await;
    join(&a, &bob_token, alices_meeting).await;
    join(&a, &token, bobs_meeting).await;
    assert_eq!(
        b.get("user/index", Some(&token)).await.errno(),
        0,
        "the second instance knows the token"
    );

    // Deactivate: the token dies here at once and on the other instance within a second.
    let asked = deactivate(&a, &token).await;
    assert_eq!(asked.errno(), 0, "{}", asked.raw);
    assert_eq!(asked.body["data"]["deleted"], json!(false));
    let due = asked.body["data"]["deleteAt"].as_str().expect("deleteAt");
    let expected_day = (Utc::now() + TimeDelta::days(7) + TimeDelta::hours(8))
        .format("%Y-%m-%d")
        .to_string();
    assert!(due.starts_with(&expected_day), "{due}: seven days' grace");
    assert_eq!(a.get("user/index", Some(&token)).await.errno(), 501);
    b.errno_within(&token, 501, Duration::from_secs(1)).await;
    assert_eq!(status_of(&a, alice_id), Some(2));
    assert_eq!(pending_requests(&a, alice_id), 1);
    assert_eq!(live_sessions(&a, alice_id), 0);
    assert_eq!(
        b.get("auth/export", Some(&token)).await.errno(),
        501,
        "a pending deletion is good for nothing but restore"
    );

    // Logging in within the grace period restores the account, once.
    let back = login_as(&b, &alice).await;
    assert_eq!(back.errno(), 0, "{}", back.raw);
    assert_eq!(back.body["data"]["restored"], json!(true));
    assert_eq!(user_id_of(&back), alice_id, "the same account");
    assert_eq!(
        back.body["data"]["userInfo"]["nickName"],
        json!(alice.nickname)
    );
    assert_eq!(status_of(&a, alice_id), Some(0));
    assert_eq!(pending_requests(&a, alice_id), 0);
    let again = login_as(&a, &alice).await;
    assert_eq!(again.errno(), 0);
    assert!(
        again.body["data"].get("restored").is_none(),
        "an ordinary login says nothing about restoring: {}",
        again.raw
    );

    // An instance configured without grace period erases at once.
    let c = a
        .sibling_with(|c| c.retention.account_deletion_grace = Duration::ZERO)
        .await;
    let token = again.token();
    let gone = deactivate(&c, &token).await;
    assert_eq!(gone.errno(), 0, "{}", gone.raw);
    assert_eq!(gone.body["data"]["deleted"], json!(true));
    login_log_settled(&a).await;
    login_log_settled(&b).await;
    login_log_settled(&c).await;
    assert_eq!(status_of(&a, alice_id), None, "the row is gone");
    for trace in alice.traces() {
        let found = columns_containing(&a, &trace);
        assert!(found.is_empty(), "{trace:?} still in {found:?}");
    }
    for trace in [&bob.openid, &bob.ip] {
        assert!(
            !columns_containing(&a, trace).is_empty(),
            "the scan does find what is there: {trace}"
        );
    }

    // The meeting Alice published stays for Bob, published by nobody in particular.
    let detail = a
        .get(
            &format!("meeting/detail?id={alices_meeting}"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(detail.errno(), 0, "{}", detail.raw);
    let shown = &detail.body["data"];
    assert_eq!(
        shown["publisherNickname"]
            .as_str()
            .or(shown["meeting"]["publisherNickname"].as_str()),
        Some(STAND_IN_NICKNAME),
        "{}",
        detail.raw
    );
    let publisher: i64 = meeting::table
        .find(alices_meeting)
        .select(meeting::publisher_id)
        .first(&mut a.db())
        .expect("the meeting stays");
    assert_ne!(publisher, alice_id);
    let members: Vec<(i64, i64)> = meeting_member::table
        .select((meeting_member::meeting_id, meeting_member::user_id))
        .load(&mut a.db())
        .expect("members");
    assert!(members.iter().all(|(_, u)| *u != alice_id), "{members:?}");
    assert!(
        members.contains(&(alices_meeting, bob_id)),
        "Bob is still a member of it"
    );
    let anonymous: i64 = login_log::table
        .filter(login_log::user_id.is_null())
        .filter(login_log::ip.eq(""))
        .count()
        .get_result(&mut a.db())
        .expect("count");
    assert!(
        anonymous >= 3,
        "Alice's logins are still counted: {anonymous}"
    );

    // The same WeChat user logging in again gets a new, empty account.
    let fresh = login_as(&b, &alice).await;
    assert_eq!(fresh.errno(), 0, "{}", fresh.raw);
    assert_ne!(user_id_of(&fresh), alice_id);
    assert!(fresh.body["data"].get("restored").is_none());
    assert_ne!(
        fresh.body["data"]["userInfo"]["nickName"],
        json!(alice.nickname)
    );
    assert!(
        fresh.body["data"]["userInfo"].get("phone").is_none(),
        "{}",
        fresh.raw
    );
    let counts = a.get("user/index", Some(&fresh.token())).await;
    assert_eq!(counts.errno(), 0, "{}", counts.raw);
}

// ---- export ----

#[actix_web::test]
async fn export_is_the_users_own_data_and_nothing_else() {
    let app = deletion_app().await;
    let alice = Person::new(&app, "alice", "203.0.113.5");
    let bob = Person::new(&app, "bob", "198.51.100.9");
    let (token, alice_id) = full_user(&app, &alice).await;
    let (bob_token, _) = full_user(&app, &bob).await;
    let mine = publish(&app, &token, "我的会议").await;
    let theirs = publish(&app, &bob_token, "别人的会议").await;
    join(&app, &bob_token, mine).await;
    join(&app, &token, theirs).await;
    login_log_settled(&app).await;

    let reply = app.get("auth/export", Some(&token)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let disposition = reply.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename=\"wxauth-personal-data-")
            && disposition.ends_with(".json\""),
        "{disposition}"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let d = &reply.body["data"];
    assert_eq!(d["profile"]["userId"], json!(alice_id));
    assert_eq!(d["profile"]["nickName"], json!(alice.nickname));
    assert_eq!(d["mobile"], json!(alice.phone));
    assert_eq!(d["wechat"]["hasUnionid"], json!(true));
    assert_eq!(
        d["wechat"]["openidMasked"],
        json!(mask_openid(&alice.openid))
    );
    assert_eq!(d["lastLoginIp"], json!(alice.ip));
    assert!(d["registeredAt"].as_str().is_some_and(|t| t.len() == 19));
    let sessions = d["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{}", reply.raw);
    assert_eq!(sessions[0]["ip"], json!(alice.ip));
    assert_eq!(sessions[0]["userAgent"], json!(alice.user_agent));
    assert_eq!(sessions[0]["current"], json!(true));
    let logins = d["loginHistory"].as_array().expect("loginHistory");
    assert_eq!(logins.len(), 1, "{}", reply.raw);
    assert_eq!(logins[0]["errno"], json!(0));
    assert_eq!(logins[0]["ip"], json!(alice.ip));
    let published: Vec<i64> = d["meetingsPublished"]
        .as_array()
        .expect("published")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    assert_eq!(published, vec![mine]);
    let joined: Vec<i64> = d["meetingsJoined"]
        .as_array()
        .expect("joined")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    assert_eq!(joined, vec![theirs]);
    assert!(d["meetingsJoined"][0]["joinedAt"].is_string());

    // No secrets, no identifier in full, nothing of Bob's.
    let session_key = app
        .fake
        .session_key_of(&alice.openid)
        .expect("a session_key");
    for leak in [
        token.as_str(),
        session_key.as_str(),
        alice.openid.as_str(),
        alice.unionid.as_str(),
        bob.openid.as_str(),
        bob.unionid.as_str(),
        bob.nickname.as_str(),
        bob.phone.as_str(),
        bob.ip.as_str(),
        bob.user_agent.as_str(),
        bob_token.as_str(),
    ] {
        assert!(!reply.raw.contains(leak), "the export holds {leak:?}");
    }
    assert!(!reply.raw.contains(&mask_openid(&bob.openid)));

    // Without a token, or with a dead one: the usual 501.
    assert_eq!(app.get("auth/export", None).await.errno(), 501);
    assert_eq!(
        app.get("auth/export", Some("not-a-token")).await.errno(),
        501
    );
    let posted = app.post("auth/export", &json!({}), Some(&token)).await;
    assert_eq!(posted.status, 405, "GET only");
    assert_eq!(posted.errno(), 405, "GET only");
    assert_eq!(posted.header("allow"), Some("GET"));
    assert_eq!(
        app.post("auth/logout", &json!({}), Some(&token))
            .await
            .errno(),
        0
    );
    assert_eq!(app.get("auth/export", Some(&token)).await.errno(), 501);
}

// ---- bad input and races ----

#[actix_web::test]
async fn deactivating_twice_is_one_request() {
    let app = deletion_app().await;
    let alice = Person::new(&app, "alice", "203.0.113.8");
    let (token, id) = login_ok_as(&app, &alice).await;

    let replies = futures_util::future::join_all((0..5).map(|_| deactivate(&app, &token))).await;
    let accepted: Vec<&Reply> = replies.iter().filter(|r| r.errno() == 0).collect();
    assert!(!accepted.is_empty());
    for r in &replies {
        assert!(
            [0, 501].contains(&r.errno()),
            "either the same request, or the token is already dead: {}",
            r.raw
        );
    }
    let due = &accepted[0].body["data"]["deleteAt"];
    assert!(accepted.iter().all(|r| &r.body["data"]["deleteAt"] == due));
    assert_eq!(pending_requests(&app, id), 1);
    // Afterwards the token is dead, as after logout.
    assert_eq!(deactivate(&app, &token).await.errno(), 501);
    assert_eq!(
        app.post("auth/deactivate", &json!({}), None).await.errno(),
        501
    );

    // Asking again while a request is pending answers the pending one.
    let mut conn = app.db();
    let first = deletion::request(&mut conn, id, TimeDelta::days(7)).expect("query");
    let second = deletion::request(&mut conn, id, TimeDelta::days(1)).expect("query");
    assert!(first.is_some());
    assert_eq!(first, second);
    assert_eq!(pending_requests(&app, id), 1);
}

#[actix_web::test]
async fn a_login_racing_a_deactivation_leaves_the_account_pending_without_sessions() {
    let app = deletion_app().await;
    let alice = Person::new(&app, "alice", "203.0.113.9");
    let (token, id) = login_ok_as(&app, &alice).await;

    // The login is under way (waiting for WeChat) when the deactivation lands.
    app.fake
        .set_fault_on("jscode2session", Fault::Slow { delay_ms: 600 });
    let (login, asked) = futures_util::future::join(login_as(&app, &alice), async {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        deactivate(&app, &token).await
    })
    .await;
    app.fake.set_fault_on("jscode2session", Fault::None);
    assert_eq!(asked.errno(), 0, "{}", asked.raw);
    assert_eq!(login.errno(), 700, "the deletion wins: {}", login.raw);
    assert_eq!(status_of(&app, id), Some(2));
    assert_eq!(pending_requests(&app, id), 1);
    assert_eq!(live_sessions(&app, id), 0);

    // A login that begins afterwards restores it.
    let back = login_as(&app, &alice).await;
    assert_eq!(back.body["data"]["restored"], json!(true), "{}", back.raw);

    // Whatever the interleaving, never a pending account with a live session.
    for offset_ms in [0u64, 3, 7, 12, 20, 30] {
        let (token, _) = login_ok_as(&app, &alice).await;
        let (login, asked) = futures_util::future::join(login_as(&app, &alice), async {
            actix_web::rt::time::sleep(Duration::from_millis(offset_ms)).await;
            deactivate(&app, &token).await
        })
        .await;
        assert_eq!(asked.errno(), 0, "{}", asked.raw);
        assert!([0, 700].contains(&login.errno()), "{}", login.raw);
        let pending = pending_requests(&app, id) == 1;
        let live = live_sessions(&app, id);
        assert!(
            !(pending && live > 0),
            "offset {offset_ms} ms: pending with {live} live sessions"
        );
        if pending {
            assert_eq!(status_of(&app, id), Some(2));
            let back = login_as(&app, &alice).await;
            assert_eq!(back.body["data"]["restored"], json!(true), "{}", back.raw);
        }
    }
}

#[actix_web::test]
async fn two_logins_within_grace_restore_exactly_once() {
    let a = deletion_app().await;
    let b = a.sibling().await;
    let alice = Person::new(&a, "alice", "203.0.113.10");
    for _ in 0..3 {
        let (token, id) = login_ok_as(&a, &alice).await;
        assert_eq!(deactivate(&a, &token).await.errno(), 0);
        let (one, two) =
            futures_util::future::join(login_as(&a, &alice), login_as(&b, &alice)).await;
        assert_eq!(one.errno(), 0, "{}", one.raw);
        assert_eq!(two.errno(), 0, "{}", two.raw);
        let restored = [&one, &two]
            .iter()
            .filter(|r| r.body["data"]["restored"] == json!(true))
            .count();
        assert_eq!(restored, 1, "{} / {}", one.raw, two.raw);
        assert_eq!(user_id_of(&one), id);
        assert_eq!(user_id_of(&two), id);
        assert_eq!(status_of(&a, id), Some(0));
        assert_eq!(pending_requests(&a, id), 0);
    }
}

#[actix_web::test]
async fn a_disabled_account_can_be_deleted_but_not_restored() {
    let app = deletion_app().await;
    let alice = Person::new(&app, "alice", "203.0.113.11");
    let (token, id) = login_ok_as(&app, &alice).await;
    assert_eq!(deactivate(&app, &token).await.errno(), 0);

    // The admin disables it during the grace period: it stays pending, and a login neither
    // restores it nor gets in.
    let disabled = app
        .admin_post(&format!("users/{id}/disable"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.raw);
    assert_eq!(disabled.body["status"], json!(2));
    let refused = login_as(&app, &alice).await;
    assert_eq!(refused.errno(), 700, "{}", refused.raw);
    assert_eq!(pending_requests(&app, id), 1);
    assert_eq!(live_sessions(&app, id), 0);

    // Enabled again, the user can restore it.
    assert_eq!(
        app.admin_post(&format!("users/{id}/enable"), Some(ADMIN_TOKEN))
            .await
            .status,
        200
    );
    assert_eq!(status_of(&app, id), Some(2), "still pending");
    let back = login_as(&app, &alice).await;
    assert_eq!(back.body["data"]["restored"], json!(true), "{}", back.raw);

    // A disabled account (never pending) is deleted by the admin.
    assert_eq!(
        app.admin_post(&format!("users/{id}/disable"), Some(ADMIN_TOKEN))
            .await
            .status,
        200
    );
    assert_eq!(status_of(&app, id), Some(1));
    let deleted = app
        .admin_post(&format!("users/{id}/delete"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.raw);
    assert_eq!(status_of(&app, id), None);
}

// ---- the sweeper ----

fn make_due(app: &TestApp, user_id: i64) {
    diesel::update(account_deletion::table.filter(account_deletion::user_id.eq(user_id)))
        .set(account_deletion::due_at.eq(Utc::now() - TimeDelta::minutes(1)))
        .execute(&mut app.db())
        .expect("update");
}

#[actix_web::test]
async fn sweepers_on_several_instances_erase_each_due_account_once() {
    let a = deletion_app().await;
    let b = a.sibling().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let p = Person::new(&a, &format!("user{i}"), "203.0.113.20");
        let (token, id) = full_user(&a, &p).await;
        publish(&a, &token, &format!("会议{i}")).await;
        assert_eq!(deactivate(&a, &token).await.errno(), 0);
        ids.push(id);
    }
    let not_due = ids[5];
    for id in &ids[..5] {
        make_due(&a, *id);
    }

    // Another transaction holds one of them (as an instance that crashed mid-erasure would have
    // until its connection dropped): the sweepers skip it, and erase it the next time.
    let held = ids[0];
    let mut holder = a.db();
    diesel::sql_query("BEGIN")
        .execute(&mut holder)
        .expect("begin");
    diesel::sql_query(format!(
        "SELECT id FROM wx_user WHERE id = {held} FOR UPDATE"
    ))
    .execute(&mut holder)
    .expect("lock");

    let (one, two) = futures_util::future::join(
        a.state.db.background().sweep_deletions(50),
        b.state.db.background().sweep_deletions(50),
    )
    .await;
    let (one, two) = (one.expect("swept"), two.expect("swept"));
    assert_eq!(one.erased + two.erased, 4, "{one:?} {two:?}");
    assert!(one.skipped + two.skipped >= 1, "{one:?} {two:?}");
    for id in &ids[1..5] {
        assert_eq!(status_of(&a, *id), None);
    }
    assert_eq!(status_of(&a, held), Some(2), "untouched while held");
    assert_eq!(status_of(&a, not_due), Some(2), "not due yet");

    diesel::sql_query("ROLLBACK")
        .execute(&mut holder)
        .expect("rollback");
    // The instances' own sweepers may come by first, or hold the request while this sweep
    // skips it: either way it is erased exactly once (the count of completed deletions below).
    let mut erased = 0;
    for _ in 0..50 {
        let again = a
            .state
            .db
            .background()
            .sweep_deletions(50)
            .await
            .expect("swept");
        erased += again.erased;
        if status_of(&a, held).is_none() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(erased <= 1, "erased {erased} times");
    assert_eq!(status_of(&a, held), None);
    let completed: i64 = account_deletion::table
        .filter(account_deletion::completed_at.is_not_null())
        .filter(account_deletion::user_id.is_null())
        .count()
        .get_result(&mut a.db())
        .expect("count");
    assert_eq!(completed, 5);
    let stand_ins: i64 = wx_user::table
        .filter(wx_user::nickname.eq(STAND_IN_NICKNAME))
        .count()
        .get_result(&mut a.db())
        .expect("count");
    assert_eq!(stand_ins, 1, "one stand-in publisher for all");
}

#[actix_web::test]
async fn a_login_after_the_grace_period_gets_a_new_account() {
    let app = deletion_app().await;
    let alice = Person::new(&app, "alice", "203.0.113.12");
    let (token, id) = full_user(&app, &alice).await;
    assert_eq!(deactivate(&app, &token).await.errno(), 0);
    make_due(&app, id);

    let fresh = login_as(&app, &alice).await;
    assert_eq!(fresh.errno(), 0, "{}", fresh.raw);
    assert_ne!(user_id_of(&fresh), id);
    assert!(fresh.body["data"].get("restored").is_none());
    assert_eq!(status_of(&app, id), None, "erased, not restored");
    assert!(fresh.body["data"]["userInfo"].get("phone").is_none());
}

// ---- admin ----

async fn deletion_counts(app: &TestApp) -> Value {
    let status = app
        .get_with(
            &format!("{}/admin/api/status", app.base),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.raw);
    status.body["deletions"].clone()
}

#[actix_web::test]
async fn the_admin_deletes_at_once_and_the_status_page_counts_deletions() {
    let app = deletion_app().await;
    assert_eq!(
        deletion_counts(&app).await,
        json!({"pending": 0, "completed": 0})
    );
    let alice = Person::new(&app, "alice", "203.0.113.13");
    let bob = Person::new(&app, "bob", "203.0.113.14");
    let (alice_token, _) = login_ok_as(&app, &alice).await;
    let (bob_token, bob_id) = full_user(&app, &bob).await;
    let sibling = app.sibling().await;
    assert_eq!(sibling.get("user/index", Some(&bob_token)).await.errno(), 0);

    assert_eq!(deactivate(&app, &alice_token).await.errno(), 0);
    assert_eq!(
        deletion_counts(&app).await,
        json!({"pending": 1, "completed": 0})
    );

    let deleted = app
        .admin_post(&format!("users/{bob_id}/delete"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.raw);
    assert_eq!(deleted.body, json!({"id": bob_id, "deleted": true}));
    assert_eq!(app.get("user/index", Some(&bob_token)).await.errno(), 501);
    sibling
        .errno_within(&bob_token, 501, Duration::from_secs(1))
        .await;
    assert_eq!(status_of(&app, bob_id), None);
    assert_eq!(
        deletion_counts(&app).await,
        json!({"pending": 1, "completed": 1})
    );

    let again = app
        .admin_post(&format!("users/{bob_id}/delete"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(again.status, 404, "{}", again.raw);
    for bad in ["abc", "0", "-3", "99999999999999999999"] {
        let reply = app
            .admin_post(&format!("users/{bad}/delete"), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.raw);
    }
    let anonymous = app
        .admin_post(&format!("users/{bob_id}/delete"), None)
        .await;
    assert_eq!(anonymous.status, 401);

    // The stand-in publisher is nobody's account.
    let p = Person::new(&app, "carol", "203.0.113.15");
    let (carol, carol_id) = login_ok_as(&app, &p).await;
    publish(&app, &carol, "会议").await;
    assert_eq!(
        app.admin_post(&format!("users/{carol_id}/delete"), Some(ADMIN_TOKEN))
            .await
            .status,
        200
    );
    let stand_in: i64 = wx_user::table
        .filter(wx_user::nickname.eq(STAND_IN_NICKNAME))
        .select(wx_user::id)
        .first(&mut app.db())
        .expect("stand-in");
    assert_eq!(
        app.admin_post(&format!("users/{stand_in}/delete"), Some(ADMIN_TOKEN))
            .await
            .status,
        404
    );
}

// ---- the session guard ----

fn new_session(user_id: i64) -> wxauth::db::sessions::NewSession {
    wxauth::db::sessions::NewSession {
        id: uuid::Uuid::new_v4().simple().to_string(),
        user_id,
        session_key: wxauth::wechat::SessionKey::new("c2Vzc2lvbi1rZXktMTIzNA==".into()),
        expires_at: Utc::now() + TimeDelta::hours(1),
        client_ip: "203.0.113.30".into(),
        user_agent: "test".into(),
    }
}

#[actix_web::test]
async fn a_session_is_not_stored_once_the_account_stops_being_usable_even_mid_login() {
    let app = deletion_app().await;
    let alice = Person::new(&app, "alice", "203.0.113.31");
    let (_, id) = login_ok_as(&app, &alice).await;
    let cipher = wxauth::db::sealed::SessionKeyCipher::new(&[7u8; 32]);
    let mut conn = app.db();
    assert!(wxauth::db::sessions::insert(&mut conn, &cipher, &new_session(id)).expect("insert"));

    // The deletion request is in flight (its transaction has set status 2, and its trigger has
    // revoked the sessions it could see) while the login stores its session.
    let mut deleting = app.db();
    diesel::sql_query("BEGIN")
        .execute(&mut deleting)
        .expect("begin");
    diesel::sql_query(format!("UPDATE wx_user SET status = 2 WHERE id = {id}"))
        .execute(&mut deleting)
        .expect("update");
    let url = app.db_url.clone();
    let login = std::thread::spawn(move || {
        let mut conn = PgConnection::establish(&url).expect("connect");
        let cipher = wxauth::db::sealed::SessionKeyCipher::new(&[7u8; 32]);
        wxauth::db::sessions::insert(&mut conn, &cipher, &new_session(id)).expect("insert")
    });
    std::thread::sleep(Duration::from_millis(300));
    diesel::sql_query("COMMIT")
        .execute(&mut deleting)
        .expect("commit");
    let stored = login.join().expect("thread");
    assert!(
        !stored,
        "the session waited for the request and then was refused"
    );
    assert_eq!(live_sessions(&app, id), 0);

    assert!(
        !wxauth::db::sessions::insert(&mut conn, &cipher, &new_session(id)).expect("insert"),
        "nor afterwards"
    );
}

#[actix_web::test]
async fn failed_logins_before_the_openid_was_known_outlive_the_erasure_only_until_the_retention() {
    let app = deletion_app().await;
    let p = Person::new(&app, "uma", "198.51.100.23");
    // A code WeChat refuses: the attempt is logged before anyone knows whose it was.
    let refused = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": "0bogus-code-of-uma" }),
            &[
                ("x-forwarded-for", p.ip.as_str()),
                ("user-agent", p.user_agent.as_str()),
            ],
        )
        .await;
    assert_ne!(refused.errno(), 0, "{}", refused.raw);
    let (_, id) = login_ok_as(&app, &p).await;
    login_log_settled(&app).await;
    let erased = app
        .admin_post(&format!("users/{id}/delete"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(erased.status, 200, "{}", erased.raw);

    // What survives: the anonymous attempt, with its IP and user agent and nothing that names
    // the account.
    let kept: Vec<(Option<i64>, String, String, String)> = login_log::table
        .filter(login_log::ip.eq(&p.ip))
        .select((
            login_log::user_id,
            login_log::openid_masked,
            login_log::ip,
            login_log::user_agent,
        ))
        .load(&mut app.db())
        .expect("rows");
    assert_eq!(
        kept,
        vec![(None, String::new(), p.ip.clone(), p.user_agent.clone())],
        "only the attempt made before the openid was known keeps IP and user agent"
    );

    // For as long as LOGIN_LOG_RETENTION_DAYS, like every other row.
    let retention = TimeDelta::days(30);
    diesel::update(login_log::table.filter(login_log::ip.eq(&p.ip)))
        .set(login_log::add_time.eq(Utc::now() - retention - TimeDelta::minutes(1)))
        .execute(&mut app.db())
        .expect("age the row");
    wxauth::db::login_log::prune(&mut app.db(), Utc::now() - retention).expect("prune");
    let left: i64 = login_log::table
        .filter(login_log::ip.eq(&p.ip))
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(left, 0, "gone after the retention");
}
