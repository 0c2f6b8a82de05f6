//! Staff inside WeCom: `auth/login_by_wecom` with a `wx.qy.login()` code, and `auth/link_wecom`
//! attaching that identity to an account. WeCom is the fake's, on the test's own port.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;
use wxauth::config::CheckFailure;
use wxauth::db::schema::{login_log, user_identity, user_session};
use wxauth::dev::fake_wechat::{CODE_TTL, Fault};
use wxauth::wechat::mask_openid;

use crate::helpers::{Reply, TEST_APPID, TEST_APPID2, TEST_CORPID, TestApp, id_of, meeting_body};

fn user_id_of(reply: &Reply) -> i64 {
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    reply.body["data"]["userInfo"]["userId"]
        .as_i64()
        .expect("userId")
}

/// (kind, app_id, subject, user_id) of every identity, in a stable order.
fn identities(app: &TestApp) -> Vec<(i16, String, String, i64)> {
    user_identity::table
        .order((user_identity::user_id, user_identity::kind))
        .select((
            user_identity::kind,
            user_identity::app_id,
            user_identity::subject,
            user_identity::user_id,
        ))
        .load(&mut app.db())
        .expect("identities")
}

/// (app_id, user_id, errno, openid_masked) of every login_log row, oldest first.
async fn login_rows(app: &TestApp) -> Vec<(String, Option<i64>, i32, String)> {
    app.state.login_log.flush().await;
    login_log::table
        .order(login_log::id)
        .select((
            login_log::app_id,
            login_log::user_id,
            login_log::errno,
            login_log::openid_masked,
        ))
        .load(&mut app.db())
        .expect("login_log")
}

fn wecom_calls(app: &TestApp) -> (u64, u64) {
    (
        app.fake.calls("gettoken"),
        app.fake.calls("wecom_jscode2session"),
    )
}

#[actix_web::test]
async fn staff_log_in_inside_wecom_as_their_corp_and_userid() {
    let app = TestApp::builder().wecom().spawn().await;
    let reply = app.login_wecom("zhangsan-of-sales").await;
    let user = user_id_of(&reply);
    let info = &reply.body["data"]["userInfo"];
    assert_eq!(info["corpId"], TEST_CORPID, "{}", reply.raw);
    assert_eq!(info["corpUserId"], "zhangsan-of-sales");
    assert_eq!(
        info["nickName"], "微信用户",
        "a new account's default profile"
    );
    assert!(reply.body["data"]["tokenExpire"].is_string());
    let token = reply.token();
    let index = app.get("user/index", Some(&token)).await;
    assert_eq!(index.errno(), 0, "{}", index.raw);

    // The session_key WeCom handed out stays here, sealed.
    let key = app
        .fake
        .wecom()
        .session_key_of(TEST_CORPID, "zhangsan-of-sales")
        .expect("WeCom issued a session_key");
    assert!(
        !reply.raw.contains(&key),
        "the session_key is never answered"
    );
    let sealed: Vec<(String, Vec<u8>)> = user_session::table
        .filter(user_session::user_id.eq(user))
        .select((user_session::app_id, user_session::session_key_enc))
        .load(&mut app.db())
        .expect("sessions");
    assert_eq!(sealed.len(), 1);
    assert_eq!(sealed[0].0, TEST_CORPID, "the session is the corp's");
    assert!(!sealed[0].1.is_empty());
    assert!(
        !String::from_utf8_lossy(&sealed[0].1).contains(&key),
        "not stored in clear"
    );

    // The same employee again: the same account, a session of its own.
    let again = app.login_wecom("zhangsan-of-sales").await;
    assert_eq!(user_id_of(&again), user);
    assert_ne!(again.token(), token);
    assert_eq!(app.get("user/index", Some(&token)).await.errno(), 0);
    assert_eq!(app.count_users(), 1);
    assert_eq!(
        identities(&app),
        [(
            2,
            TEST_CORPID.to_string(),
            "zhangsan-of-sales".to_string(),
            user
        )]
    );
    // Another employee is another account.
    let lisi = user_id_of(&app.login_wecom("lisi-of-support").await);
    assert_ne!(lisi, user);

    // login_log: the mini-program the login was for, the userid masked.
    let rows = login_rows(&app).await;
    let masked = mask_openid("zhangsan-of-sales");
    assert_eq!(
        rows,
        [
            (TEST_APPID.to_string(), Some(user), 0, masked.clone()),
            (TEST_APPID.to_string(), Some(user), 0, masked),
            (
                TEST_APPID.to_string(),
                Some(lisi),
                0,
                mask_openid("lisi-of-support")
            ),
        ]
    );
    let metrics = app.get_with(&format!("{}/metrics", app.base), &[]).await;
    assert!(
        metrics.raw.contains(&format!(
            r#"wxauth_app_logins_total{{app="{TEST_APPID}",errno="0"}} 3"#
        )),
        "{}",
        metrics.raw
    );
    assert_eq!(wecom_calls(&app), (1, 3), "one corp token for every login");
    assert_eq!(app.fake.calls("jscode2session"), 0, "WeChat not asked");
}

#[actix_web::test]
async fn a_wecom_login_and_a_wechat_login_are_two_accounts_until_linked() {
    let app = TestApp::builder().wecom().spawn().await;
    let staff = user_id_of(&app.login_wecom("wangwu").await);
    let person = user_id_of(&app.login("wangwu").await);
    assert_ne!(
        staff, person,
        "WeCom gives no unionid: nothing says they are one"
    );
    assert_eq!(app.count_users(), 2);
}

#[actix_web::test]
async fn used_expired_unknown_and_missing_wecom_codes_are_refused() {
    let app = TestApp::builder().wecom().spawn().await;
    let code = app.wecom_code("zhaoliu");
    let first = app
        .post("auth/login_by_wecom", &json!({ "code": code }), None)
        .await;
    assert_eq!(first.errno(), 0, "{}", first.raw);
    let used = app
        .post("auth/login_by_wecom", &json!({ "code": code }), None)
        .await;
    assert_eq!(used.errno(), 710, "WeCom's 40029 for a used code");
    let expired = app
        .fake
        .wecom()
        .mint_code_aged(TEST_CORPID, "zhaoliu", CODE_TTL + Duration::from_secs(1))
        .expect("known corp")
        .code;
    for code in [expired.as_str(), "qnotacodewecomissued"] {
        let reply = app
            .post("auth/login_by_wecom", &json!({ "code": code }), None)
            .await;
        assert_eq!(reply.errno(), 710, "{code}: {}", reply.raw);
    }
    // A mini-program's wx.login() code is not WeCom's.
    let wechat_code = app.code_for("zhaoliu").code;
    let reply = app
        .post("auth/login_by_wecom", &json!({ "code": wechat_code }), None)
        .await;
    assert_eq!(reply.errno(), 710, "{}", reply.raw);
    let calls = wecom_calls(&app);
    for (body, errno) in [
        (json!({}), 401),
        (json!({ "code": "  " }), 401),
        (json!({ "code": 42 }), 402),
        (json!({ "code": "has a space" }), 402),
    ] {
        let reply = app.post("auth/login_by_wecom", &body, None).await;
        assert_eq!(reply.errno(), errno, "{body}: {}", reply.raw);
    }
    let missing = app.post("auth/login_by_wecom", &json!({}), None).await;
    assert!(
        missing.raw.contains("wx.qy.login()"),
        "the reason names WeCom's call: {}",
        missing.raw
    );
    assert_eq!(wecom_calls(&app), calls, "WeCom not asked for a bad body");
    assert_eq!(app.count_users(), 1);
    let errnos: Vec<i32> = login_rows(&app).await.iter().map(|r| r.2).collect();
    assert_eq!(errnos, [0, 710, 710, 710, 710]);
}

#[actix_web::test]
async fn an_answer_for_a_corp_this_service_does_not_serve_is_refused() {
    let app = TestApp::builder().wecom().spawn().await;
    // Another corp's app is linked to the same mini-program in WeCom, but not configured here:
    // WeCom answers its employee's code with that corp, whoever's token exchanged it.
    app.fake
        .wecom()
        .add_corp("wwstrangercorpxyzw", "stranger-secret", TEST_APPID);
    let code = app
        .fake
        .wecom()
        .mint_code("wwstrangercorpxyzw", "spy")
        .expect("known to the fake")
        .code;
    let reply = app
        .post("auth/login_by_wecom", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.errno(), 710, "{}", reply.raw);
    assert_eq!(
        app.fake.calls("wecom_jscode2session"),
        1,
        "WeCom did answer"
    );
    assert_eq!(app.count_users(), 0);
    assert!(identities(&app).is_empty());
}

#[actix_web::test]
async fn a_busy_or_slow_wecom_is_714_or_715_and_the_next_login_works() {
    let app = TestApp::builder()
        .wecom()
        .config(|c| c.wechat.timeout = Duration::from_millis(300))
        .spawn()
        .await;
    app.fake.set_fault_on("wecom_jscode2session", Fault::Busy);
    assert_eq!(app.login_wecom("sunqi").await.errno(), 714);
    app.fake
        .set_fault_on("wecom_jscode2session", Fault::Errcode { errcode: 45009 });
    assert_eq!(
        app.login_wecom("sunqi").await.errno(),
        714,
        "the corp's quota"
    );
    app.fake
        .set_fault_on("wecom_jscode2session", Fault::Slow { delay_ms: 1000 });
    assert_eq!(app.login_wecom("sunqi").await.errno(), 715);
    app.fake
        .set_fault_on("wecom_jscode2session", Fault::Garbage);
    assert_eq!(app.login_wecom("sunqi").await.errno(), 716);
    app.fake.set_fault_on("wecom_jscode2session", Fault::None);
    assert_eq!(app.login_wecom("sunqi").await.errno(), 0);
    let errnos: Vec<i32> = login_rows(&app).await.iter().map(|r| r.2).collect();
    assert_eq!(errnos, [714, 714, 715, 716, 0]);
}

#[actix_web::test]
async fn a_mini_program_without_a_corp_refuses_wecom_login_without_asking_wecom() {
    let app = TestApp::builder().two_apps().wecom().spawn().await;
    let code = app.wecom_code("qianba");
    let referer = format!("https://servicewechat.com/{TEST_APPID2}/3/page-frame.html");
    for (body, headers) in [
        (json!({ "code": code, "appid": TEST_APPID2 }), vec![]),
        (json!({ "code": code }), vec![("Referer", referer.as_str())]),
    ] {
        let reply = app.post_with("auth/login_by_wecom", &body, &headers).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.errno(), 402, "{}", reply.raw);
        assert!(
            reply.body["data"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("WeCom")),
            "{}",
            reply.raw
        );
    }
    // An appid that is not configured at all: as login_by_weixin's.
    let reply = app
        .post(
            "auth/login_by_wecom",
            &json!({ "code": code, "appid": "wxnotconfigured00" }),
            None,
        )
        .await;
    assert_eq!(reply.errno(), 402, "{}", reply.raw);
    assert_eq!(wecom_calls(&app), (0, 0), "WeCom was not asked");
    assert_eq!(app.count_users(), 0);
    // The code was not spent: the mini-program with the corp takes it.
    let reply = app
        .post(
            "auth/login_by_wecom",
            &json!({ "code": code, "appid": TEST_APPID }),
            None,
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);

    // A service with no corp at all.
    let plain = TestApp::spawn().await;
    let reply = plain
        .post("auth/login_by_wecom", &json!({ "code": "qsomecode" }), None)
        .await;
    assert_eq!(reply.errno(), 402, "{}", reply.raw);
    assert_eq!(wecom_calls(&plain), (0, 0));
}

#[actix_web::test]
async fn link_wecom_attaches_the_staff_identity_to_the_callers_account() {
    let app = TestApp::builder().wecom().spawn().await;
    let reply = app.login("alice").await;
    let alice = user_id_of(&reply);
    let token = reply.token();
    let code = app.wecom_code("alice-at-work");
    let linked = app
        .post("auth/link_wecom", &json!({ "code": code }), Some(&token))
        .await;
    assert_eq!(user_id_of(&linked), alice, "{}", linked.raw);
    assert_eq!(linked.body["data"]["userInfo"]["corpId"], TEST_CORPID);
    assert_eq!(
        linked.body["data"]["userInfo"]["corpUserId"],
        "alice-at-work"
    );
    assert_eq!(app.count_users(), 1);
    assert_eq!(
        identities(&app),
        [
            (
                1,
                TEST_APPID.to_string(),
                app.fake.openid_for("alice"),
                alice
            ),
            (
                2,
                TEST_CORPID.to_string(),
                "alice-at-work".to_string(),
                alice
            ),
        ]
    );
    // Inside WeCom now, the login finds the account; the token from before still works.
    assert_eq!(user_id_of(&app.login_wecom("alice-at-work").await), alice);
    assert_eq!(app.get("user/index", Some(&token)).await.errno(), 0);
    // Linking it again changes nothing.
    let code = app.wecom_code("alice-at-work");
    let again = app
        .post("auth/link_wecom", &json!({ "code": code }), Some(&token))
        .await;
    assert_eq!(user_id_of(&again), alice);
    assert_eq!(identities(&app).len(), 2);
}

#[actix_web::test]
async fn link_wecom_merges_the_account_the_staff_identity_had_into_the_callers() {
    // Staff text cannot be checked by WeChat (see below): the check is off here.
    let app = TestApp::builder()
        .wecom()
        .config(|c| c.content.check = false)
        .spawn()
        .await;
    // Inside WeCom first: an account with a meeting and a membership.
    let reply = app.login_wecom("bob-at-work").await;
    let staff = user_id_of(&reply);
    let staff_token = reply.token();
    let meeting = id_of(
        &app.publish(&staff_token, &meeting_body("部门例会", 24))
            .await,
    );
    let join = app
        .post(
            "meeting/join",
            &json!({ "id": meeting }),
            Some(&staff_token),
        )
        .await;
    assert_eq!(join.errno(), 0, "{}", join.raw);
    // Then in WeChat: another account, the one the person links from.
    let reply = app.login("bob").await;
    let caller = user_id_of(&reply);
    let caller_token = reply.token();
    assert!(caller > staff, "the staff account is the older one");

    let code = app.wecom_code("bob-at-work");
    let linked = app
        .post(
            "auth/link_wecom",
            &json!({ "code": code }),
            Some(&caller_token),
        )
        .await;
    assert_eq!(user_id_of(&linked), caller, "the caller's account survives");
    // The merged account's sessions end: its client logs in again and lands on the caller's.
    assert_eq!(app.get("user/index", Some(&staff_token)).await.errno(), 501);
    let index = app.get("user/index", Some(&caller_token)).await;
    assert_eq!(index.body["data"]["metting_pubs"], 1, "{}", index.raw);
    assert_eq!(index.body["data"]["metting_joins"], 1, "{}", index.raw);
    assert_eq!(app.count_users(), 1);
    let owners: Vec<i64> = identities(&app).into_iter().map(|i| i.3).collect();
    assert_eq!(owners, [caller, caller]);
    assert_eq!(user_id_of(&app.login_wecom("bob-at-work").await), caller);

    let export = app.get("auth/export", Some(&caller_token)).await;
    assert_eq!(export.errno(), 0, "{}", export.raw);
    assert_eq!(
        export.body["data"]["mergedAccounts"][0]["userId"],
        json!(staff)
    );
    assert_eq!(export.body["data"]["mergedAccounts"][0]["reason"], "link");
    let mut kinds: Vec<&str> = export.body["data"]["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["miniprogram", "wecom"], "{}", export.raw);
    let metrics = app.get_with(&format!("{}/metrics", app.base), &[]).await;
    assert!(
        metrics.raw.contains("wxauth_account_merges_total 1"),
        "{}",
        metrics.raw
    );
}

#[actix_web::test]
async fn link_wecom_needs_a_token_a_corp_and_a_good_code() {
    let app = TestApp::builder().two_apps().wecom().spawn().await;
    let token = app.login_ok("carol").await;
    let code = app.wecom_code("carol-at-work");
    let reply = app
        .post("auth/link_wecom", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.errno(), 501, "{}", reply.raw);
    for (body, errno) in [
        (json!({}), 401),
        (json!({ "code": code, "appid": TEST_APPID2 }), 402),
        (json!({ "code": code, "appid": "wxnotconfigured00" }), 402),
    ] {
        let reply = app.post("auth/link_wecom", &body, Some(&token)).await;
        assert_eq!(reply.errno(), errno, "{body}: {}", reply.raw);
    }
    assert_eq!(wecom_calls(&app), (0, 0), "WeCom was not asked");
    let reply = app
        .post(
            "auth/link_wecom",
            &json!({ "code": "qnotacodewecomissued" }),
            Some(&token),
        )
        .await;
    assert_eq!(reply.errno(), 710, "{}", reply.raw);
    assert_eq!(identities(&app).len(), 1, "nothing linked");
    // The code was not spent by the refusals.
    let reply = app
        .post("auth/link_wecom", &json!({ "code": code }), Some(&token))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

#[actix_web::test]
async fn a_wecom_session_has_no_wechat_phone_and_is_told_so_not_logged_out() {
    let app = TestApp::builder().wecom().spawn().await;
    let token = app.login_wecom("zhou-at-work").await.token();
    let reply = app.bind_phone_code("somephonecode", &token).await;
    assert_eq!(reply.errno(), 402, "{}", reply.raw);
    assert!(
        reply.body["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("WeCom")),
        "{}",
        reply.raw
    );
    assert_eq!(app.fake.calls("getuserphonenumber"), 0);
    assert_eq!(app.get("user/index", Some(&token)).await.errno(), 0);
}

#[actix_web::test]
async fn a_wecom_staffs_text_is_never_passed_unchecked() {
    // WeChat checks a text as an openid's; a WeCom login has none. With the default
    // CONTENT_CHECK_ON_ERROR=refuse such text is refused, with the reason, and the session stays.
    let app = TestApp::builder().wecom().spawn().await;
    let token = app.login_wecom("wu-at-work").await.token();
    let reply = app
        .post("meeting/publish", &meeting_body("周会", 24), Some(&token))
        .await;
    assert_eq!(reply.errno(), 402, "{}", reply.raw);
    assert!(reply.raw.contains("WeCom"), "{}", reply.raw);
    assert_eq!(app.get("user/index", Some(&token)).await.errno(), 0);
    assert_eq!(app.fake.calls("msg_sec_check"), 0, "nothing to ask WeChat");

    // With `review`, a staff's meeting waits for an admin; a nickname, which cannot wait, is
    // refused.
    let app = TestApp::builder()
        .wecom()
        .config(|c| c.content.on_error = CheckFailure::Review)
        .spawn()
        .await;
    let token = app.login_wecom("wu-at-work").await.token();
    let reply = app
        .post("meeting/publish", &meeting_body("周会", 24), Some(&token))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["review"], "pending", "{}", reply.raw);
    let reply = app
        .post("auth/profile", &json!({ "nickname": "小吴" }), Some(&token))
        .await;
    assert_eq!(reply.errno(), 402, "{}", reply.raw);
}

#[actix_web::test]
async fn staff_who_linked_their_wechat_are_checked_as_that_openid() {
    let app = TestApp::builder().wecom().spawn().await;
    let alice = app.login("alice").await.token();
    let code = app.wecom_code("alice-at-work");
    let linked = app
        .post("auth/link_wecom", &json!({ "code": code }), Some(&alice))
        .await;
    assert_eq!(linked.errno(), 0, "{}", linked.raw);
    let staff = app.login_wecom("alice-at-work").await.token();

    // Inside WeCom, her text is checked as her openid in the mini-program, and passes.
    let reply = app
        .post("meeting/publish", &meeting_body("周会", 24), Some(&staff))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_ne!(reply.body["data"]["review"], "pending", "{}", reply.raw);
    assert!(app.fake.calls("msg_sec_check") > 0);

    // It is that openid WeChat is asked about: when its checks fail, the staff's do too.
    app.fake
        .set_user_fault("msg_sec_check", &app.fake.openid_for("alice"), Fault::Busy);
    let reply = app
        .post("meeting/publish", &meeting_body("周会", 24), Some(&staff))
        .await;
    assert_eq!(reply.errno(), 714, "{}", reply.raw);
}
