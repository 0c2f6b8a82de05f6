//! Several mini-programs in one service: which app a login is for, one person across apps.

use serde_json::json;

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
