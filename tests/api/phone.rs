//! Binding the phone number after login: by the button's code (today's clients) and by
//! encryptedData + iv (old clients), with every way it can go wrong.

use diesel::prelude::*;
use serde_json::json;
use wxauth::config::AccessTokenMode;
use wxauth::db::schema::wx_user;
use wxauth::dev::fake_wechat::Fault;

use crate::helpers::{TEST_APPID, TestApp, captured_logs, captured_logs_in_every_format};

const PHONE: &str = "13800138000";

fn mobile_of(app: &TestApp, user: &str) -> String {
    app.user_by_openid(&app.fake.openid_for(user))
        .expect("row")
        .mobile
}

#[actix_web::test]
async fn a_phone_code_binds_the_phone_and_later_logins_show_it() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("alice").await;
    let code = app
        .fake
        .mint_phone_code(&app.fake.openid_for("alice"), PHONE);

    let reply = app.bind_phone_code(&code, &token).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["phone"], PHONE);
    assert_eq!(mobile_of(&app, "alice"), PHONE);
    let info = app.get("auth/info", Some(&token)).await;
    assert_eq!(info.body["data"]["mobile"], PHONE);
    let again = app.login("alice").await;
    assert_eq!(again.body["data"]["userInfo"]["phone"], PHONE);
}

#[actix_web::test]
async fn encrypted_data_is_decrypted_with_the_newest_session_key() {
    let app = TestApp::spawn().await;
    let openid = app.fake.openid_for("bob");
    app.login_ok("bob").await;
    // The second login hands the server a new session_key; data encrypted with it must work.
    let token = app.login_ok("bob").await;
    let reply = app.bind_phone_encrypted(&openid, PHONE, &token).await;

    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["phone"], PHONE);
    assert_eq!(mobile_of(&app, "bob"), PHONE);
    assert_eq!(
        app.fake.calls("checksession"),
        0,
        "no need to ask WeChat when decryption works"
    );
}

#[actix_web::test]
async fn a_session_key_wechat_replaced_asks_the_client_to_log_in_again() {
    let app = TestApp::spawn().await;
    let openid = app.fake.openid_for("carol");
    let token = app.login_ok("carol").await;
    // The phone called wx.login() on its own: WeChat now has a key the server never saw.
    app.fake.reset_session_key(&openid);
    let reply = app.bind_phone_encrypted(&openid, PHONE, &token).await;

    assert_eq!(reply.errno(), 501, "{}", reply.raw);
    assert_eq!(reply.body["data"]["reason"], "session_key", "{}", reply.raw);
    assert_eq!(app.fake.calls("checksession"), 1);
    assert_eq!(mobile_of(&app, "carol"), "");
    // Logging in again picks up WeChat's current key, and the bind works.
    let token = app.login_ok("carol").await;
    let reply = app.bind_phone_encrypted(&openid, PHONE, &token).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

#[actix_web::test]
async fn another_apps_watermark_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("dave").await;
    let (data, iv) = app
        .fake
        .encrypted_phone(&app.fake.openid_for("dave"), PHONE, "wxsomeoneelse000")
        .expect("payload");

    let reply = app.bind_phone_open_data(&data, &iv, &token).await;

    assert_eq!(reply.errno(), 717, "{}", reply.raw);
    assert_eq!(mobile_of(&app, "dave"), "");
}

#[actix_web::test]
async fn corrupt_base64_padding_and_truncation_are_402_and_store_nothing() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    let app = TestApp::spawn().await;
    let token = app.login_ok("erin").await;
    let (data, iv) = app
        .fake
        .encrypted_phone(&app.fake.openid_for("erin"), PHONE, TEST_APPID)
        .expect("payload");
    let bytes = B64.decode(&data).expect("b64");
    let truncated_to_block = B64.encode(&bytes[..16]);
    let not_whole_blocks = B64.encode(&bytes[..bytes.len() - 3]);
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    let bad_padding = B64.encode(&flipped);

    let cases = [
        json!({ "encryptedData": "%%%not base64%%%", "iv": iv }),
        json!({ "encryptedData": data, "iv": "!!" }),
        json!({ "encryptedData": data, "iv": "AAAA" }),
        json!({ "encryptedData": not_whole_blocks, "iv": iv }),
        json!({ "encryptedData": truncated_to_block, "iv": iv }),
        json!({ "encryptedData": bad_padding, "iv": iv }),
        json!({ "encryptedData": 42, "iv": iv }),
    ];
    for body in &cases {
        let reply = app.post("auth/bindPhone", body, Some(&token)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.errno(), 402, "{body}: {}", reply.raw);
    }
    assert_eq!(mobile_of(&app, "erin"), "");
    // The intact payload still binds: nothing above broke the user's state.
    let reply = app.bind_phone_open_data(&data, &iv, &token).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

#[actix_web::test]
async fn a_phone_bound_to_one_user_cannot_be_claimed_by_another() {
    let app = TestApp::spawn().await;
    let a = app.login_ok("frank").await;
    let b = app.login_ok("gina").await;
    let code_a = app
        .fake
        .mint_phone_code(&app.fake.openid_for("frank"), PHONE);
    let code_b = app
        .fake
        .mint_phone_code(&app.fake.openid_for("gina"), PHONE);
    assert_eq!(app.bind_phone_code(&code_a, &a).await.errno(), 0);

    let reply = app.bind_phone_code(&code_b, &b).await;

    assert_eq!(reply.errno(), 705, "{}", reply.raw);
    assert_eq!(mobile_of(&app, "frank"), PHONE);
    assert_eq!(mobile_of(&app, "gina"), "");
}

#[actix_web::test]
async fn invalid_used_and_foreign_phone_codes_are_718() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("hank").await;
    let mine = app
        .fake
        .mint_phone_code(&app.fake.openid_for("hank"), PHONE);
    let someone_elses = app
        .fake
        .mint_phone_code(&app.fake.openid_for("ivy"), "13900000000");

    assert_eq!(app.bind_phone_code("pnever", &token).await.errno(), 718);
    assert_eq!(
        app.bind_phone_code(&someone_elses, &token).await.errno(),
        718
    );
    // A wx.login code is not a phone code: the classic client mistake.
    let login_code = app.code_for("hank").code;
    assert_eq!(app.bind_phone_code(&login_code, &token).await.errno(), 718);
    assert_eq!(app.bind_phone_code(&mine, &token).await.errno(), 0);
    assert_eq!(
        app.bind_phone_code(&mine, &token).await.errno(),
        718,
        "used"
    );
}

#[actix_web::test]
async fn missing_arguments_and_missing_token() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("jack").await;
    for body in [
        json!({}),
        json!({ "code": "" }),
        json!({ "encryptedData": "abc" }),
        json!({ "iv": "abc" }),
    ] {
        let reply = app.post("auth/bindPhone", &body, Some(&token)).await;
        assert_eq!(reply.errno(), 401, "{body}: {}", reply.raw);
    }
    let code = app
        .fake
        .mint_phone_code(&app.fake.openid_for("jack"), PHONE);
    assert_eq!(
        app.post("auth/bindPhone", &json!({ "code": code }), None)
            .await
            .errno(),
        501
    );
    assert_eq!(mobile_of(&app, "jack"), "");
}

#[actix_web::test]
async fn wechat_busy_on_the_phone_endpoint_is_714() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("kate").await;
    app.fake.set_fault_on("getuserphonenumber", Fault::Busy);
    let code = app
        .fake
        .mint_phone_code(&app.fake.openid_for("kate"), PHONE);
    assert_eq!(app.bind_phone_code(&code, &token).await.errno(), 714);
    assert_eq!(mobile_of(&app, "kate"), "");
}

#[actix_web::test]
async fn fifty_concurrent_binds_fetch_the_access_token_once() {
    let app = TestApp::spawn().await;
    let mut requests = Vec::new();
    for i in 0..50 {
        let user = format!("user{i}");
        let token = app.login_ok(&user).await;
        let code = app
            .fake
            .mint_phone_code(&app.fake.openid_for(&user), &format!("1380000{i:04}"));
        requests.push((token, json!({ "code": code })));
    }

    let replies = futures_util::future::join_all(
        requests
            .iter()
            .map(|(token, body)| app.post("auth/bindPhone", body, Some(token))),
    )
    .await;

    for r in &replies {
        assert_eq!(r.errno(), 0, "{}", r.raw);
    }
    assert_eq!(app.fake.calls("stable_token"), 1);
    assert_eq!(app.fake.calls("getuserphonenumber"), 50);
    let bound: i64 = wx_user::table
        .filter(wx_user::mobile.ne(""))
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(bound, 50);
}

#[actix_web::test]
async fn a_refused_access_token_is_refreshed_once_and_the_call_succeeds() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("leo").await;
    let openid = app.fake.openid_for("leo");
    let first = app.fake.mint_phone_code(&openid, PHONE);
    assert_eq!(app.bind_phone_code(&first, &token).await.errno(), 0);
    // Someone force-refreshed the token elsewhere: ours is now stale (40001).
    app.fake.invalidate_access_tokens();
    let second = app.fake.mint_phone_code(&openid, "13911112222");

    let reply = app.bind_phone_code(&second, &token).await;

    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(app.fake.calls("stable_token"), 2);
    assert_eq!(app.fake.calls("getuserphonenumber"), 3);
    assert_eq!(mobile_of(&app, "leo"), "13911112222");
}

#[actix_web::test]
async fn a_second_40001_is_a_clean_error_without_a_loop() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("mia").await;
    app.fake
        .set_fault_on("getuserphonenumber", Fault::Errcode { errcode: 40001 });
    let code = app.fake.mint_phone_code(&app.fake.openid_for("mia"), PHONE);

    let reply = app.bind_phone_code(&code, &token).await;

    assert_eq!(reply.errno(), 502, "{}", reply.raw);
    assert_eq!(
        app.fake.calls("getuserphonenumber"),
        2,
        "one try, one retry"
    );
    assert_eq!(app.fake.calls("stable_token"), 2, "one fetch, one refresh");
    assert_eq!(mobile_of(&app, "mia"), "");
}

#[actix_web::test]
async fn a_wechat_without_stable_token_gets_its_access_token_from_cgi_bin_token() {
    let app = TestApp::spawn().await;
    app.fake.set_fault_on("stable_token", Fault::Missing);
    let token = app.login_ok("olga").await;
    for phone in [PHONE, "13700000001"] {
        let code = app
            .fake
            .mint_phone_code(&app.fake.openid_for("olga"), phone);
        assert_eq!(app.bind_phone_code(&code, &token).await.errno(), 0);
    }
    assert_eq!(
        app.fake.calls("stable_token"),
        1,
        "asked once, then not again"
    );
    assert_eq!(
        app.fake.calls("token"),
        1,
        "the one token served both binds"
    );
    assert!(
        captured_logs()
            .iter()
            .any(|l| l.contains("has no /cgi-bin/stable_token")),
        "the switch is logged"
    );
}

#[actix_web::test]
async fn an_access_token_endpoint_answering_garbage_is_716_not_a_fallback() {
    let app = TestApp::spawn().await;
    app.fake.set_fault_on("stable_token", Fault::Garbage);
    let token = app.login_ok("pia").await;
    let code = app.fake.mint_phone_code(&app.fake.openid_for("pia"), PHONE);
    assert_eq!(app.bind_phone_code(&code, &token).await.errno(), 716);
    assert_eq!(
        app.fake.calls("token"),
        0,
        "only a missing endpoint switches"
    );
}

#[actix_web::test]
async fn plain_token_mode_uses_cgi_bin_token() {
    let app = TestApp::builder()
        .config(|c| c.wechat.access_token_mode = AccessTokenMode::Plain)
        .spawn()
        .await;
    let token = app.login_ok("nora").await;
    let code = app
        .fake
        .mint_phone_code(&app.fake.openid_for("nora"), PHONE);
    assert_eq!(app.bind_phone_code(&code, &token).await.errno(), 0);
    assert_eq!(app.fake.calls("token"), 1);
    assert_eq!(app.fake.calls("stable_token"), 0);
}

#[actix_web::test]
async fn session_keys_phone_numbers_and_access_tokens_stay_out_of_responses_and_logs() {
    let app = TestApp::spawn().await;
    let openid = app.fake.openid_for("olga");
    let token = app.login_ok("olga").await;
    let key = app.fake.session_key_of(&openid).expect("key");
    let (data, iv) = app
        .fake
        .encrypted_phone(&openid, "13712345678", TEST_APPID)
        .expect("payload");
    let reply = app.bind_phone_open_data(&data, &iv, &token).await;
    assert_eq!(reply.errno(), 0);
    assert!(!reply.raw.contains(&key));
    for line in captured_logs_in_every_format() {
        assert!(!line.contains(&key), "session_key in a log line");
        assert!(!line.contains("13712345678"), "phone number in a log line");
        assert!(!line.contains(&data), "encryptedData in a log line");
        assert!(!line.contains("ACCESS_"), "access token in a log line");
    }
}
