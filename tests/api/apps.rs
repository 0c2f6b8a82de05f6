//! Several mini-programs in one service: which app a login is for, one person across apps.

use diesel::prelude::*;
use serde_json::json;
use wxauth::db::schema::{user_identity, user_session, wx_user};

use crate::helpers::{TEST_APPID, TEST_APPID2, TestApp};

fn referer(appid: &str) -> String {
    format!("https://servicewechat.com/{appid}/7/page-frame.html")
}

#[actix_web::test]
async fn a_login_is_for_the_app_in_its_body_else_its_referer_else_the_default() {
    let app = TestApp::builder().two_apps().spawn().await;

    // The body's appid.
    let reply = app.login_in(TEST_APPID2, "alice").await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);

    // The Referer's, when the body names none.
    let code = app.fake.mint_code_in(TEST_APPID2, "bob").code;
    let reply = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": code }),
            &[("Referer", &referer(TEST_APPID2))],
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);

    // The body wins over the Referer.
    let code = app.fake.mint_code_in(TEST_APPID, "carol").code;
    let reply = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": code, "appid": TEST_APPID }),
            &[("Referer", &referer(TEST_APPID2))],
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);

    // Neither: the default app, which does not know the second app's codes (40029 → 710).
    let code = app.fake.mint_code_in(TEST_APPID2, "dave").code;
    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.errno(), 710, "{}", reply.raw);
    // A Referer that is not a mini-program's says nothing about the app.
    let code = app.fake.mint_code_in(TEST_APPID, "erin").code;
    let reply = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": code }),
            &[("Referer", "https://example.com/wx1/7/page-frame.html")],
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

#[actix_web::test]
async fn an_appid_that_is_not_configured_is_refused_without_asking_wechat() {
    let app = TestApp::builder().two_apps().spawn().await;
    let code = app.fake.mint_code_in(TEST_APPID2, "frank").code;
    let before = app.fake.calls("jscode2session");
    let long = "x".repeat(100);
    for (body, headers) in [
        (
            json!({ "code": code, "appid": "wxnotconfigured00" }),
            vec![],
        ),
        (json!({ "code": code, "appid": long }), vec![]),
        (json!({ "code": code }), vec![referer("wxnotconfigured00")]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|r| ("Referer", r.as_str())).collect();
        let reply = app.post_with("auth/login_by_weixin", &body, &headers).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.errno(), 402, "{}", reply.raw);
        assert!(
            reply.body["errmsg"].as_str().is_some() && !reply.raw.contains("wxnotconfigured00"),
            "{}",
            reply.raw
        );
    }
    assert_eq!(
        app.fake.calls("jscode2session"),
        before,
        "WeChat was not asked"
    );
    assert_eq!(app.count_users(), 0);
    // The code was not spent: the right app still takes it.
    let reply = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": code, "appid": TEST_APPID2 }),
            None,
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

/// (app_id, subject, user_id) of every identity, in a stable order.
fn identities(app: &TestApp) -> Vec<(String, String, i64)> {
    user_identity::table
        .order((user_identity::user_id, user_identity::app_id))
        .select((
            user_identity::app_id,
            user_identity::subject,
            user_identity::user_id,
        ))
        .load(&mut app.db())
        .expect("identities")
}

fn user_id_of(reply: &crate::helpers::Reply) -> i64 {
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    reply.body["data"]["userInfo"]["userId"]
        .as_i64()
        .expect("userId")
}

#[actix_web::test]
async fn one_person_is_one_user_in_every_app_bound_by_unionid() {
    let app = TestApp::builder().two_apps().spawn().await;
    let in_oa = user_id_of(&app.login_in(TEST_APPID, "alice").await);
    let in_shop = user_id_of(&app.login_in(TEST_APPID2, "alice").await);
    assert_eq!(in_oa, in_shop, "the same userId in both apps");
    // Again in each: still one.
    assert_eq!(user_id_of(&app.login_in(TEST_APPID2, "alice").await), in_oa);
    assert_eq!(user_id_of(&app.login_in(TEST_APPID, "alice").await), in_oa);

    assert_eq!(app.count_users(), 1);
    assert_eq!(
        identities(&app),
        vec![
            (
                TEST_APPID.to_string(),
                app.fake.openid_in(TEST_APPID, "alice"),
                in_oa
            ),
            (
                TEST_APPID2.to_string(),
                app.fake.openid_in(TEST_APPID2, "alice"),
                in_oa
            ),
        ]
    );
    let unionid: Option<String> = wx_user::table
        .find(in_oa)
        .select(wx_user::unionid)
        .first(&mut app.db())
        .expect("user");
    assert_eq!(unionid, Some(app.fake.unionid_for("alice")));
    // Each session knows its app.
    let mut apps: Vec<String> = user_session::table
        .filter(user_session::user_id.eq(in_oa))
        .select(user_session::app_id)
        .load(&mut app.db())
        .expect("sessions");
    apps.sort();
    assert_eq!(apps, [TEST_APPID, TEST_APPID, TEST_APPID2, TEST_APPID2]);

    // Someone else is someone else.
    let bob = user_id_of(&app.login_in(TEST_APPID2, "bob").await);
    assert_ne!(bob, in_oa);
    assert_eq!(app.count_users(), 2);
}

#[actix_web::test]
async fn without_a_unionid_each_app_makes_its_own_user() {
    let app = TestApp::builder().two_apps().spawn().await;
    // Codes without the unionid: apps not (yet) bound to the open platform.
    let carol_oa = app.fake.mint_app_code(
        TEST_APPID,
        &app.fake.openid_in(TEST_APPID, "carol"),
        None,
        std::time::Duration::ZERO,
    );
    let carol_shop = app.fake.mint_app_code(
        TEST_APPID2,
        &app.fake.openid_in(TEST_APPID2, "carol"),
        None,
        std::time::Duration::ZERO,
    );
    let a = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": carol_oa.code, "appid": TEST_APPID }),
            None,
        )
        .await;
    let b = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": carol_shop.code, "appid": TEST_APPID2 }),
            None,
        )
        .await;
    assert_ne!(user_id_of(&a), user_id_of(&b));
    assert_eq!(app.count_users(), 2);
    assert_eq!(identities(&app).len(), 2);
}

#[actix_web::test]
async fn first_logins_of_one_person_in_two_apps_at_once_make_one_user() {
    let app = TestApp::builder().two_apps().spawn().await;
    let people: Vec<String> = (0..6).map(|i| format!("twin{i}")).collect();
    let mut bodies = Vec::new();
    for person in &people {
        for appid in [TEST_APPID, TEST_APPID2] {
            let code = app.fake.mint_code_in(appid, person).code;
            bodies.push(json!({ "code": code, "appid": appid }));
        }
    }
    let logins = bodies
        .iter()
        .map(|body| app.post("auth/login_by_weixin", body, None));
    let replies = futures_util::future::join_all(logins).await;
    for pair in replies.chunks(2) {
        assert_eq!(user_id_of(&pair[0]), user_id_of(&pair[1]));
    }
    assert_eq!(app.count_users(), people.len() as i64);
    let rows = identities(&app);
    assert_eq!(rows.len(), 2 * people.len());
    for person in &people {
        let owners: Vec<i64> = rows
            .iter()
            .filter(|(appid, subject, _)| *subject == app.fake.openid_in(appid, person))
            .map(|(_, _, user)| *user)
            .collect();
        assert_eq!(owners.len(), 2, "{person}");
        assert_eq!(owners[0], owners[1], "{person}");
    }
    // And each login has its session.
    let sessions: i64 = user_session::table
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(sessions, 2 * people.len() as i64);
}

#[actix_web::test]
async fn the_users_of_one_app_data_become_the_default_apps_with_their_ids() {
    use diesel_migrations::MigrationHarness;
    let before = TestApp::builder().two_apps().spawn().await;
    before.stop().await;
    // The database as the release before identities left it: its migrations, its rows.
    let mut conn = before.db();
    conn.revert_last_migration(wxauth::db::setup::MIGRATIONS)
        .expect("revert the identities migration");
    let alice_openid = before.fake.openid_in(TEST_APPID, "alice");
    let bob_openid = before.fake.openid_in(TEST_APPID, "bob");
    for (id, openid) in [(41, &alice_openid), (42, &bob_openid)] {
        diesel::sql_query(
            "INSERT INTO wx_user (id, username, nickname, weixin_openid) VALUES ($1, $2, $3, $4)",
        )
        .bind::<diesel::sql_types::BigInt, _>(id)
        .bind::<diesel::sql_types::Text, _>(format!("wx_old_{id}"))
        .bind::<diesel::sql_types::Text, _>(format!("old user {id}"))
        .bind::<diesel::sql_types::Text, _>(openid)
        .execute(&mut conn)
        .expect("a user of the previous release");
    }

    // The upgraded release: migrated, and the users adopted by the default app at its start.
    let after = before.sibling().await;
    assert_eq!(
        identities(&after),
        vec![
            (TEST_APPID.to_string(), alice_openid.clone(), 41),
            (TEST_APPID.to_string(), bob_openid.clone(), 42),
        ]
    );
    assert_eq!(user_id_of(&after.login_in(TEST_APPID, "alice").await), 41);
    // The same person in the second app joins the old account (unionid, now reported).
    assert_eq!(user_id_of(&after.login_in(TEST_APPID2, "alice").await), 41);

    // A user the previous release makes while both run has no identity; the default app's
    // login finds it by its openid all the same, and gives it its identity.
    let carol_openid = after.fake.openid_in(TEST_APPID, "carol");
    diesel::sql_query(
        "INSERT INTO wx_user (id, username, weixin_openid) VALUES (43, 'wx_old_43', $1)",
    )
    .bind::<diesel::sql_types::Text, _>(&carol_openid)
    .execute(&mut after.db())
    .expect("a user the previous release made");
    assert_eq!(user_id_of(&after.login_in(TEST_APPID, "carol").await), 43);
    assert_eq!(after.count_users(), 3);
    assert!(identities(&after).contains(&(TEST_APPID.to_string(), carol_openid, 43)));
}
