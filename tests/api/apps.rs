//! Several mini-programs in one service: which app a login is for, one person across apps.

use diesel::prelude::*;
use serde_json::{Value, json};
use wxauth::db::schema::{user_identity, user_session, wx_user};

use crate::helpers::{TEST_APPID, TEST_APPID2, TestApp, id_of, meeting_body};

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
    let a = bare_login(&app, TEST_APPID, "carol").await;
    let b = bare_login(&app, TEST_APPID2, "carol").await;
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
    // Every migration from the identities one on.
    loop {
        let reverted = conn
            .revert_last_migration(wxauth::db::setup::MIGRATIONS)
            .expect("revert a migration");
        let version: String = reverted
            .to_string()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if version.as_str() <= "20261206000100" {
            break;
        }
    }
    let identities_table: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM pg_tables WHERE tablename = 'user_identity')",
    ))
    .get_result(&mut conn)
    .expect("query");
    assert_eq!(identities_table, 0, "the schema of the release before");
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

#[actix_web::test]
async fn logout_ends_one_apps_session_and_logout_all_every_apps() {
    let app = TestApp::builder().two_apps().spawn().await;
    let in_oa = app.login_in(TEST_APPID, "alice").await.token();
    let in_shop = app.login_in(TEST_APPID2, "alice").await.token();
    assert_eq!(app.get("user/index", Some(&in_oa)).await.errno(), 0);
    assert_eq!(app.get("user/index", Some(&in_shop)).await.errno(), 0);

    assert_eq!(
        app.post("auth/logout", &json!({}), Some(&in_shop))
            .await
            .errno(),
        0
    );
    assert_eq!(app.get("user/index", Some(&in_shop)).await.errno(), 501);
    assert_eq!(
        app.get("user/index", Some(&in_oa)).await.errno(),
        0,
        "the other app stays"
    );

    let in_shop = app.login_in(TEST_APPID2, "alice").await.token();
    assert_eq!(
        app.post("auth/logout_all", &json!({}), Some(&in_oa))
            .await
            .errno(),
        0
    );
    assert_eq!(app.get("user/index", Some(&in_oa)).await.errno(), 501);
    assert_eq!(app.get("user/index", Some(&in_shop)).await.errno(), 501);
    let live: i64 = user_session::table
        .filter(user_session::revoked_at.is_null())
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(live, 0);
}

#[actix_web::test]
async fn deactivation_ends_the_sessions_of_every_app() {
    let app = TestApp::builder().two_apps().spawn().await;
    let in_oa = app.login_in(TEST_APPID, "bob").await.token();
    let in_shop = app.login_in(TEST_APPID2, "bob").await.token();
    let reply = app
        .post("auth/deactivate", &json!({}), Some(&in_shop))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(app.get("user/index", Some(&in_oa)).await.errno(), 501);
    assert_eq!(app.get("user/index", Some(&in_shop)).await.errno(), 501);
}

#[actix_web::test]
async fn bind_phone_uses_the_tokens_app() {
    let app = TestApp::builder().two_apps().spawn().await;
    let in_oa = app.login_in(TEST_APPID, "carol").await.token();
    let in_shop = app.login_in(TEST_APPID2, "carol").await.token();
    let shop_openid = app.fake.openid_in(TEST_APPID2, "carol");

    // A phone code from the shop's button: the OA's access token cannot exchange it.
    let code = app
        .fake
        .mint_phone_code_in(TEST_APPID2, &shop_openid, "13800138000");
    assert_eq!(app.bind_phone_code(&code, &in_oa).await.errno(), 718);
    let reply = app.bind_phone_code(&code, &in_shop).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["phone"], "13800138000");
    let user = app.user_by_openid(&app.fake.openid_in(TEST_APPID, "carol"));
    assert_eq!(user.expect("carol").mobile, "13800138000");

    // An old client's encrypted data: sealed with the shop's session_key and stamped with the
    // shop's appid, it is the shop token's data, not the OA token's.
    let (data, iv) = app
        .fake
        .encrypted_phone(&shop_openid, "13900139000", TEST_APPID2)
        .expect("carol has a shop session_key");
    let wrong = app.bind_phone_open_data(&data, &iv, &in_oa).await;
    assert_ne!(wrong.errno(), 0, "{}", wrong.raw);
    let right = app.bind_phone_open_data(&data, &iv, &in_shop).await;
    assert_eq!(right.errno(), 0, "{}", right.raw);
    assert_eq!(right.body["data"]["phone"], "13900139000");
    // Stamped for the OA, though sealed with the shop's key: another app's data.
    let (data, iv) = app
        .fake
        .encrypted_phone(&shop_openid, "13700137000", TEST_APPID)
        .expect("key");
    assert_eq!(
        app.bind_phone_open_data(&data, &iv, &in_shop).await.errno(),
        717
    );
}

#[actix_web::test]
async fn login_log_status_and_metrics_count_by_configured_app_only() {
    let app = TestApp::builder()
        .two_apps()
        .admin_token("admin-token-for-apps-test")
        // Many attempts from the test's one address.
        .config(|c| c.limits.login_per_ip = 0)
        .spawn()
        .await;
    app.login_in(TEST_APPID, "dave").await.token();
    app.login_in(TEST_APPID2, "dave").await.token();
    app.login_in(TEST_APPID2, "erin").await.token();
    // Made-up appids, many of them: refused, and never a label.
    for i in 0..200 {
        let reply = app
            .post(
                "auth/login_by_weixin",
                &json!({ "code": "0123456789abcdef", "appid": format!("wxmadeup{i:08}") }),
                None,
            )
            .await;
        assert_eq!(reply.errno(), 402);
    }
    let metrics = app.get_with(&format!("{}/metrics", app.base), &[]).await;
    assert!(
        !metrics.raw.contains("wxmadeup"),
        "an unknown appid became a label"
    );
    let app_lines: Vec<&str> = metrics
        .raw
        .lines()
        .filter(|l| l.starts_with("wxauth_app_logins_total{"))
        .collect();
    assert_eq!(
        app_lines,
        [
            format!(r#"wxauth_app_logins_total{{app="{TEST_APPID}",errno="0"}} 1"#),
            format!(r#"wxauth_app_logins_total{{app="{TEST_APPID2}",errno="0"}} 2"#),
        ]
    );

    // login_log rows carry their app (written a moment after the login).
    let mut rows: Vec<String> = Vec::new();
    for _ in 0..100 {
        rows = wxauth::db::schema::login_log::table
            .select(wxauth::db::schema::login_log::app_id)
            .order(wxauth::db::schema::login_log::app_id)
            .load(&mut app.db())
            .expect("login_log");
        if rows.len() == 3 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows, [TEST_APPID, TEST_APPID2, TEST_APPID2]);

    let status = app
        .get_with(
            &format!("{}/admin/api/status", app.base),
            &[("authorization", "Bearer admin-token-for-apps-test")],
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.raw);
    assert_eq!(
        status.body["logins"]["by_app"],
        json!([
            { "appid": TEST_APPID, "name": "", "success": 1, "failure": 0 },
            { "appid": TEST_APPID2, "name": "商城", "success": 2, "failure": 0 },
        ]),
        "{}",
        status.raw
    );
}

#[actix_web::test]
async fn no_apps_secret_reaches_a_log_line() {
    let app = TestApp::builder().two_apps().spawn().await;
    let token = app.login_in(TEST_APPID2, "frank").await.token();
    let shop_openid = app.fake.openid_in(TEST_APPID2, "frank");
    let code = app
        .fake
        .mint_phone_code_in(TEST_APPID2, &shop_openid, "13600136000");
    assert_eq!(app.bind_phone_code(&code, &token).await.errno(), 0);
    let session_key = app.fake.session_key_of(&shop_openid).expect("key");
    let logs = crate::helpers::captured_logs().join("\n");
    for secret in [
        app.fake.secret_of(TEST_APPID).expect("first"),
        app.fake.secret_of(TEST_APPID2).expect("second"),
        session_key,
        token,
    ] {
        assert!(!logs.contains(&secret), "a secret in the logs");
    }
}

#[actix_web::test]
async fn a_login_revealing_one_person_in_two_accounts_merges_them_into_the_older() {
    let app = TestApp::builder()
        .two_apps()
        .admin_token("admin-token-for-merge-test")
        .spawn()
        .await;
    // The OA was not yet bound to the open platform: its login gave no unionid.
    let reply = bare_login(&app, TEST_APPID, "grace").await;
    let older = user_id_of(&reply);
    let older_token = reply.token();
    // The shop, bound, made a second account, with a meeting, a membership and a phone.
    let reply = app.login_in(TEST_APPID2, "grace").await;
    let newer = user_id_of(&reply);
    assert_ne!(newer, older);
    let newer_token = reply.token();
    let meeting = app
        .publish(&newer_token, &meeting_body("店铺周会", 24))
        .await;
    let meeting_id = id_of(&meeting);
    let join = app
        .post(
            "meeting/join",
            &json!({ "id": meeting_id }),
            Some(&newer_token),
        )
        .await;
    assert_eq!(join.errno(), 0, "{}", join.raw);
    let shop_openid = app.fake.openid_in(TEST_APPID2, "grace");
    let phone = app
        .fake
        .mint_phone_code_in(TEST_APPID2, &shop_openid, "13500135000");
    assert_eq!(app.bind_phone_code(&phone, &newer_token).await.errno(), 0);

    // Now the OA is bound too: its next login brings the unionid the shop's account holds.
    let reply = app.login_in(TEST_APPID, "grace").await;
    assert_eq!(user_id_of(&reply), older, "the older account survives");
    assert_eq!(reply.body["data"]["userInfo"]["phone"], "13500135000");
    let survivor_token = reply.token();

    // The merged account is gone; its sessions with it (501); the older ones stay.
    assert_eq!(app.get("user/index", Some(&newer_token)).await.errno(), 501);
    assert_eq!(app.get("user/index", Some(&older_token)).await.errno(), 0);
    assert_eq!(app.count_users(), 1);
    let index = app.get("user/index", Some(&survivor_token)).await;
    assert_eq!(index.body["data"]["metting_pubs"], 1, "{}", index.raw);
    assert_eq!(index.body["data"]["metting_joins"], 1, "{}", index.raw);
    let owners: Vec<i64> = identities(&app).into_iter().map(|(_, _, u)| u).collect();
    assert_eq!(owners, [older, older]);
    let unionid: Option<String> = wx_user::table
        .find(older)
        .select(wx_user::unionid)
        .first(&mut app.db())
        .expect("survivor");
    assert_eq!(unionid, Some(app.fake.unionid_for("grace")));
    // The shop's client logs in again and lands on the survivor.
    assert_eq!(user_id_of(&app.login_in(TEST_APPID2, "grace").await), older);

    // Counted, and in the survivor's export.
    let metrics = app.get_with(&format!("{}/metrics", app.base), &[]).await;
    assert!(
        metrics.raw.contains("wxauth_account_merges_total 1"),
        "{}",
        metrics.raw
    );
    let status = app
        .get_with(
            &format!("{}/admin/api/status", app.base),
            &[("authorization", "Bearer admin-token-for-merge-test")],
        )
        .await;
    assert_eq!(status.body["accounts_merged"], 1, "{}", status.raw);
    let export = app.get("auth/export", Some(&survivor_token)).await;
    assert_eq!(export.errno(), 0, "{}", export.raw);
    assert_eq!(
        export.body["data"]["mergedAccounts"][0]["userId"],
        json!(newer),
        "{}",
        export.raw
    );
    assert_eq!(
        export.body["data"]["mergedAccounts"][0]["reason"],
        "unionid"
    );
    assert_eq!(
        export.body["data"]["identities"].as_array().map(Vec::len),
        Some(2)
    );
}

/// A code without unionid: an app not bound to the open platform (or WeCom-like).
fn bare_code(app: &TestApp, appid: &str, user: &str) -> String {
    app.fake
        .mint_app_code(
            appid,
            &app.fake.openid_in(appid, user),
            None,
            std::time::Duration::ZERO,
        )
        .code
}

async fn bare_login(app: &TestApp, appid: &str, user: &str) -> crate::helpers::Reply {
    let code = bare_code(app, appid, user);
    app.post(
        "auth/login_by_weixin",
        &json!({ "code": code, "appid": appid }),
        None,
    )
    .await
}

#[actix_web::test]
async fn link_weixin_attaches_another_apps_identity_to_the_callers_account() {
    let app = TestApp::builder().two_apps().spawn().await;
    let reply = bare_login(&app, TEST_APPID, "henry").await;
    let henry = user_id_of(&reply);
    let token = reply.token();
    let code = bare_code(&app, TEST_APPID2, "henry");
    let linked = app
        .post(
            "auth/link_weixin",
            &json!({ "code": code, "appid": TEST_APPID2 }),
            Some(&token),
        )
        .await;
    assert_eq!(user_id_of(&linked), henry, "{}", linked.raw);
    assert_eq!(app.count_users(), 1);
    assert_eq!(identities(&app).len(), 2);
    // The shop's login, still without unionid, now finds the account.
    assert_eq!(
        user_id_of(&bare_login(&app, TEST_APPID2, "henry").await),
        henry
    );
}

#[actix_web::test]
async fn link_weixin_merges_the_account_that_had_the_identity_into_the_callers() {
    let app = TestApp::builder().two_apps().spawn().await;
    let reply = bare_login(&app, TEST_APPID, "ivan").await;
    let caller = user_id_of(&reply);
    let caller_token = reply.token();
    let reply = bare_login(&app, TEST_APPID2, "ivan").await;
    let other = user_id_of(&reply);
    let other_token = reply.token();
    assert_ne!(caller, other);
    app.publish(&other_token, &meeting_body("活动筹备", 24))
        .await;

    let code = bare_code(&app, TEST_APPID2, "ivan");
    let linked = app
        .post(
            "auth/link_weixin",
            &json!({ "code": code, "appid": TEST_APPID2 }),
            Some(&caller_token),
        )
        .await;
    assert_eq!(user_id_of(&linked), caller, "the caller's account stays");
    assert_eq!(app.get("user/index", Some(&other_token)).await.errno(), 501);
    let index = app.get("user/index", Some(&caller_token)).await;
    assert_eq!(index.body["data"]["metting_pubs"], 1, "{}", index.raw);
    assert_eq!(app.count_users(), 1);
    let owners: Vec<i64> = identities(&app).into_iter().map(|(_, _, u)| u).collect();
    assert_eq!(owners, [caller, caller]);
    let export = app.get("auth/export", Some(&caller_token)).await;
    assert_eq!(
        export.body["data"]["mergedAccounts"][0]["userId"],
        json!(other)
    );
    assert_eq!(export.body["data"]["mergedAccounts"][0]["reason"], "link");
}

#[actix_web::test]
async fn link_weixin_refuses_bad_arguments_and_foreign_codes() {
    let app = TestApp::builder().two_apps().spawn().await;
    let token = app.login_in(TEST_APPID, "judy").await.token();
    let shop_code = bare_code(&app, TEST_APPID2, "judy");
    let calls = app.fake.calls("jscode2session");
    for (body, errno) in [
        (json!({ "appid": TEST_APPID2 }), 401),
        (json!({ "code": shop_code }), 401),
        (
            json!({ "code": shop_code, "appid": "wxnotconfigured00" }),
            402,
        ),
    ] {
        let reply = app.post("auth/link_weixin", &body, Some(&token)).await;
        assert_eq!(reply.errno(), errno, "{body}: {}", reply.raw);
    }
    assert_eq!(
        app.fake.calls("jscode2session"),
        calls,
        "WeChat was not asked"
    );
    let reply = app
        .post(
            "auth/link_weixin",
            &json!({ "code": shop_code, "appid": TEST_APPID2 }),
            None,
        )
        .await;
    assert_eq!(reply.errno(), 501);
    // The shop's code, said to be the OA's: WeChat does not know it there.
    let reply = app
        .post(
            "auth/link_weixin",
            &json!({ "code": shop_code, "appid": TEST_APPID }),
            Some(&token),
        )
        .await;
    assert_eq!(reply.errno(), 710, "{}", reply.raw);
    assert_eq!(identities(&app).len(), 1);
}

/// The lines of one metric family whose labels start with `app`, in the order rendered.
fn family_lines<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}{{app=");
    metrics
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

async fn status_of(app: &TestApp, admin_token: &str) -> crate::helpers::Reply {
    let reply = app
        .get_with(
            &format!("{}/admin/api/status", app.base),
            &[("authorization", &format!("Bearer {admin_token}"))],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    reply
}

#[actix_web::test]
async fn wechat_metrics_and_status_are_split_by_configured_app_and_never_a_made_up_one() {
    let admin_token = "admin-token-for-wechat-by-app";
    let app = TestApp::builder()
        .two_apps()
        .admin_token(admin_token)
        // Many attempts from the test's one address.
        .config(|c| c.limits.login_per_ip = 0)
        .spawn()
        .await;
    // Before any call, each configured app is listed, at zero.
    let metrics = app.get_abs("/metrics").await.raw;
    assert_eq!(
        family_lines(&metrics, "wxauth_wechat_requests_total"),
        [
            format!(r#"wxauth_wechat_requests_total{{app="{TEST_APPID}"}} 0"#),
            format!(r#"wxauth_wechat_requests_total{{app="{TEST_APPID2}"}} 0"#),
        ]
    );

    // Dave in both apps, Erin in the shop, and a code WeChat never issued in the shop.
    let token = app.login_in(TEST_APPID, "dave").await.token();
    app.login_in(TEST_APPID2, "dave").await.token();
    app.login_in(TEST_APPID2, "erin").await.token();
    let bad = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": "0never-issued", "appid": TEST_APPID2 }),
            None,
        )
        .await;
    assert_eq!(bad.errno(), 710, "{}", bad.raw);
    // Made-up appids in a login's body, in its Referer and in a link: refused before WeChat.
    let calls = app.fake.calls("jscode2session");
    for i in 0..50 {
        let made_up = format!("wxmadeup{i:08}");
        let body = json!({ "code": "0123456789abcdef", "appid": made_up });
        assert_eq!(
            app.post("auth/login_by_weixin", &body, None).await.errno(),
            402
        );
        assert_eq!(
            app.post("auth/link_weixin", &body, Some(&token))
                .await
                .errno(),
            402
        );
        let reply = app
            .post_with(
                "auth/login_by_weixin",
                &json!({ "code": "0123456789abcdef" }),
                &[("Referer", &referer(&made_up))],
            )
            .await;
        assert_eq!(reply.errno(), 402);
    }
    assert_eq!(app.fake.calls("jscode2session"), calls);

    let metrics = app.get_abs("/metrics").await.raw;
    assert!(
        !metrics.contains("wxmadeup"),
        "an unknown appid became a label"
    );
    assert_eq!(
        family_lines(&metrics, "wxauth_wechat_requests_total"),
        [
            format!(r#"wxauth_wechat_requests_total{{app="{TEST_APPID}"}} 1"#),
            format!(r#"wxauth_wechat_requests_total{{app="{TEST_APPID2}"}} 3"#),
        ]
    );
    assert_eq!(
        family_lines(&metrics, "wxauth_wechat_request_duration_seconds_count"),
        [
            format!(r#"wxauth_wechat_request_duration_seconds_count{{app="{TEST_APPID}"}} 1"#),
            format!(r#"wxauth_wechat_request_duration_seconds_count{{app="{TEST_APPID2}"}} 3"#),
        ]
    );
    assert_eq!(
        family_lines(&metrics, "wxauth_wechat_errors_total"),
        [format!(
            r#"wxauth_wechat_errors_total{{app="{TEST_APPID2}",errcode="40029"}} 1"#
        )]
    );
    // No WeChat series without its app, and no app but the configured ones.
    for line in metrics.lines().filter(|l| l.starts_with("wxauth_wechat_")) {
        assert!(
            line.contains(&format!(r#"app="{TEST_APPID}""#))
                || line.contains(&format!(r#"app="{TEST_APPID2}""#)),
            "{line}"
        );
    }

    // The status page: the totals as before, then each app's own.
    let mut status = status_of(&app, admin_token).await;
    // login_log rows land a moment after the answers.
    for _ in 0..100 {
        let by_app = status.body["logins"]["by_app"].as_array().cloned();
        let counted: i64 = by_app
            .iter()
            .flatten()
            .map(|a| a["success"].as_i64().unwrap_or(0) + a["failure"].as_i64().unwrap_or(0))
            .sum();
        if counted >= 4 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        status = status_of(&app, admin_token).await;
    }
    let s = &status.body;
    assert!(!status.raw.contains("wxmadeup"), "{}", status.raw);
    assert_eq!(s["status"], "ok", "{}", status.raw);
    assert_eq!(
        s["logins"]["by_app"],
        json!([
            { "appid": TEST_APPID, "name": "", "success": 1, "failure": 0 },
            { "appid": TEST_APPID2, "name": "商城", "success": 2, "failure": 1 },
        ]),
        "{}",
        status.raw
    );
    let wx = &s["wechat"];
    assert_eq!(wx["calls_total"], 4, "{wx}");
    assert_eq!(wx["errors_by_errcode"], json!({ "40029": 1 }));
    assert_eq!(wx["last_hour"]["calls"], 4);
    assert_eq!(wx["last_hour"]["error_rate"], 0.25);
    assert_eq!(wx["last_hour_user_errors"], 1);
    assert_eq!(wx["last_hour_faults"], 0);
    assert_eq!(wx["last_outcome"], "40029", "the newest call of any app");
    let apps = wx["by_app"].as_array().expect("by_app");
    let summary: Vec<Value> = apps
        .iter()
        .map(|a| {
            json!([
                a["appid"],
                a["name"],
                a["answered"],
                a["calls_total"],
                a["last_hour"]["calls"],
                a["errors_by_errcode"],
                a["last_hour_user_errors"],
                a["last_hour_faults"],
                a["last_outcome"],
            ])
        })
        .collect();
    assert_eq!(
        summary,
        [
            json!([TEST_APPID, "", true, 1, 1, {}, 0, 0, "ok"]),
            json!([TEST_APPID2, "商城", true, 3, 3, { "40029": 1 }, 1, 0, "40029"]),
        ]
    );
}

#[actix_web::test]
async fn status_and_metrics_name_the_app_whose_wechat_calls_fail() {
    let admin_token = "admin-token-for-failing-app";
    let app = TestApp::builder()
        .two_apps()
        .admin_token(admin_token)
        // The shop's AppSecret is not the one WeChat knows: its calls are refused (40125).
        .config(|c| {
            c.wechat.apps.miniprograms[1].secret = wxauth::config::Secret::new("not-the-secret")
        })
        .spawn()
        .await;
    assert_eq!(app.login_in(TEST_APPID, "kate").await.errno(), 0);
    let refused = app.login_in(TEST_APPID2, "kate").await;
    assert_ne!(refused.errno(), 0, "{}", refused.raw);

    let metrics = app.get_abs("/metrics").await.raw;
    assert_eq!(
        family_lines(&metrics, "wxauth_wechat_errors_total"),
        [format!(
            r#"wxauth_wechat_errors_total{{app="{TEST_APPID2}",errcode="40125"}} 1"#
        )]
    );

    let status = status_of(&app, admin_token).await;
    let s = &status.body;
    assert_eq!(s["status"], "degraded", "{}", status.raw);
    assert_eq!(
        s["problems"],
        json!([format!(
            "WeChat for 商城 ({TEST_APPID2}): newest call failed (40125); 1 of 1 calls failed in the last hour"
        )]),
        "the problem names the app, and counts its calls only"
    );
    let apps = &s["wechat"]["by_app"];
    assert_eq!(apps[0]["last_hour_faults"], 0, "{apps}");
    assert_eq!(apps[0]["last_outcome"], "ok");
    assert_eq!(apps[1]["last_hour_faults"], 1, "{apps}");
    assert_eq!(apps[1]["last_hour_fault_rate"], 1.0);
    assert_eq!(s["wechat"]["last_hour_faults"], 1);
    assert_eq!(s["wechat"]["last_hour_fault_rate"], 0.5);
    assert!(!status.raw.contains("not-the-secret") && !metrics.contains("not-the-secret"));
}

#[actix_web::test]
async fn link_weixin_merges_both_accounts_when_the_identity_and_the_unionid_are_two_others() {
    let app = TestApp::builder().two_apps().spawn().await;
    // The shop's identity belongs to one account, made before the shop was bound (no
    // unionid); the person's unionid to another, made by the OA (bound).
    let reply = bare_login(&app, TEST_APPID2, "dora").await;
    let by_identity = user_id_of(&reply);
    let by_identity_token = reply.token();
    app.publish(&by_identity_token, &meeting_body("店铺盘点", 24))
        .await;
    let reply = app.login_in(TEST_APPID, "dora").await;
    let by_unionid = user_id_of(&reply);
    let by_unionid_token = reply.token();
    assert_ne!(by_identity, by_unionid);
    // A third account, the one the person is using, links the shop (now bound: the code
    // brings the unionid).
    let reply = bare_login(&app, TEST_APPID, "dora-elsewhere").await;
    let caller = user_id_of(&reply);
    let caller_token = reply.token();
    let code = app.fake.mint_code_in(TEST_APPID2, "dora").code;
    let linked = app
        .post(
            "auth/link_weixin",
            &json!({ "code": code, "appid": TEST_APPID2 }),
            Some(&caller_token),
        )
        .await;
    assert_eq!(user_id_of(&linked), caller, "{}", linked.raw);
    assert_eq!(app.count_users(), 1, "both others merged");
    for token in [&by_identity_token, &by_unionid_token] {
        assert_eq!(app.get("user/index", Some(token)).await.errno(), 501);
    }
    let unionid: Option<String> = wx_user::table
        .find(caller)
        .select(wx_user::unionid)
        .first(&mut app.db())
        .expect("caller");
    assert_eq!(unionid, Some(app.fake.unionid_for("dora")));
    let owners: Vec<i64> = identities(&app).into_iter().map(|(_, _, u)| u).collect();
    assert_eq!(owners, [caller, caller, caller]);
    let index = app.get("user/index", Some(&caller_token)).await;
    assert_eq!(index.body["data"]["metting_pubs"], 1, "{}", index.raw);
    let export = app.get("auth/export", Some(&caller_token)).await;
    let mut merged: Vec<i64> = export.body["data"]["mergedAccounts"]
        .as_array()
        .expect("merged")
        .iter()
        .filter_map(|m| m["userId"].as_i64())
        .collect();
    merged.sort();
    let mut expected = vec![by_identity, by_unionid];
    expected.sort();
    assert_eq!(merged, expected);
    let metrics = app.get_with(&format!("{}/metrics", app.base), &[]).await;
    assert!(
        metrics.raw.contains("wxauth_account_merges_total 2"),
        "{}",
        metrics.raw
    );
}

#[actix_web::test]
async fn logins_revealing_the_same_pair_at_once_all_land_on_the_survivor() {
    let app = TestApp::builder().two_apps().spawn().await;
    // The shop, bound, made the older account; the OA, not yet bound, a newer one.
    let older = user_id_of(&app.login_in(TEST_APPID2, "hana").await);
    let newer = user_id_of(&bare_login(&app, TEST_APPID, "hana").await);
    assert_ne!(older, newer);

    // The OA is bound now, and the person's phone sends several logins at once: each reveals
    // the pair, one merges it, and every answer is the survivor with a live session.
    let logins = (0..8).map(|_| app.login_in(TEST_APPID, "hana"));
    let replies = futures_util::future::join_all(logins).await;
    for reply in &replies {
        assert_eq!(user_id_of(reply), older, "{}", reply.raw);
        let index = app.get("user/index", Some(&reply.token())).await;
        assert_eq!(index.errno(), 0, "{}", index.raw);
    }
    assert_eq!(app.count_users(), 1);
    let owners: Vec<i64> = identities(&app).into_iter().map(|(_, _, u)| u).collect();
    assert_eq!(owners, [older, older]);
}
