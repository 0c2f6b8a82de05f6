//! Bad input: a clear errno in an HTTP 200 envelope, nothing stored, and the user's code not
//! burned at WeChat (the client can retry with it).

use serde_json::json;

use crate::helpers::TestApp;

#[actix_web::test]
async fn missing_or_empty_code_is_401() {
    let app = TestApp::spawn().await;
    for body in [
        json!({}),
        json!({ "code": "" }),
        json!({ "code": "   " }),
        json!({ "code": null }),
    ] {
        let reply = app.post("auth/login_by_weixin", &body, None).await;
        assert_eq!(reply.status, 200, "{body}");
        assert_eq!(reply.errno(), 401, "{body}: {}", reply.raw);
        assert_eq!(reply.body["errmsg"], "参数不对");
        assert!(
            reply.body["data"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("code"))
        );
    }
    assert_eq!(app.count_users(), 0);
    assert_eq!(app.fake.calls("jscode2session"), 0);
}

#[actix_web::test]
async fn malformed_json_and_empty_body_are_401() {
    let app = TestApp::spawn().await;
    for raw in [
        "",
        "   ",
        "{",
        "{\"code\":",
        "not json",
        "{\"code\":\"abc\",}",
    ] {
        let reply = app.post_raw("auth/login_by_weixin", raw, None).await;
        assert_eq!(reply.status, 200, "{raw:?}");
        assert_eq!(reply.errno(), 401, "{raw:?}: {}", reply.raw);
    }
    assert_eq!(app.count_users(), 0);
}

#[actix_web::test]
async fn wrong_types_and_bad_values_are_402_and_do_not_burn_the_code() {
    let app = TestApp::spawn().await;
    let code = app.code_for("alice").code;
    let cases = [
        json!({ "code": 12345 }),
        json!({ "code": ["a"] }),
        json!([code]),
        json!("just a string"),
        json!({ "code": code, "userInfo": "me" }),
        json!({ "code": code, "userInfo": { "gender": "male" } }),
        json!({ "code": code, "userInfo": { "gender": 7 } }),
        json!({ "code": code, "userInfo": { "nickName": "x".repeat(65) } }),
        json!({ "code": code, "userInfo": { "avatarUrl": "javascript:alert(1)" } }),
        json!({ "code": code, "userInfo": { "avatarUrl": format!("https://a/{}", "x".repeat(600)) } }),
        json!({ "code": "has spaces in it" }),
        json!({ "code": "c".repeat(200) }),
    ];
    for body in &cases {
        let reply = app.post("auth/login_by_weixin", body, None).await;
        assert_eq!(reply.status, 200, "{body}");
        assert_eq!(reply.errno(), 402, "{body}: {}", reply.raw);
        assert_eq!(reply.body["errmsg"], "参数值不对");
    }
    assert_eq!(app.count_users(), 0);
    assert_eq!(
        app.fake.calls("jscode2session"),
        0,
        "no bad request reached WeChat"
    );

    // The code is still good.
    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

/// A value of the wrong type is refused naming its field, on every endpoint that reads a body,
/// and without echoing the value; nothing is stored.
#[actix_web::test]
async fn a_wrong_type_names_its_field() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("alice").await;
    let cases = [
        ("meeting/join", json!({ "id": "9" }), "id must be a number"),
        (
            "meeting/join",
            json!({ "id": 1.5 }),
            "id must be a whole number",
        ),
        (
            "meeting/leave",
            json!({ "id": true }),
            "id must be a number",
        ),
        ("meeting/join", json!("nine"), "the body must be an object"),
        (
            "meeting/publish",
            json!({ "title": 7, "content": "c", "location": "l" }),
            "title must be a string",
        ),
        (
            "auth/profile",
            json!({ "gender": "secret-value-1" }),
            "gender must be a number",
        ),
        (
            "auth/profile",
            json!({ "nickname": ["a"] }),
            "nickname must be a string",
        ),
        (
            "auth/login_by_weixin",
            json!({ "code": 12345 }),
            "code must be a string",
        ),
        (
            "auth/login_by_weixin",
            json!({ "code": "c", "userInfo": { "gender": "secret-value-2" } }),
            "userInfo.gender must be a number",
        ),
        (
            "auth/login_by_weixin",
            json!({ "code": "c", "userInfo": "me" }),
            "userInfo must be an object",
        ),
        (
            "auth/bindPhone",
            json!({ "code": {} }),
            "code must be a string",
        ),
    ];
    for (path, body, reason) in &cases {
        let reply = app.post(path, body, Some(&token)).await;
        assert_eq!(reply.status, 200, "{path} {body}");
        assert_eq!(reply.errno(), 402, "{path} {body}: {}", reply.raw);
        assert_eq!(reply.body["data"]["reason"], *reason, "{path} {body}");
        assert!(
            !reply.raw.contains("secret-value"),
            "the value is not echoed: {}",
            reply.raw
        );
        assert!(!reply.raw.contains("column"), "{}", reply.raw);
    }
    // Nothing was stored: no meeting published, the profile untouched.
    let user = app
        .user_by_openid(&app.fake.openid_for("alice"))
        .expect("row");
    assert_eq!(user.gender, 0);
    let info = app.get("auth/info", Some(&token)).await;
    assert_eq!(info.body["data"]["nickName"], "微信用户", "{}", info.raw);
    let published = app.get("meeting/list?page=1&limit=50", None).await;
    assert_eq!(
        published.body["data"]["total"], 0,
        "nothing published: {}",
        published.raw
    );

    // Broken JSON is still told by position (401), as before.
    let reply = app
        .post_raw("meeting/join", "{\"id\": 9", Some(&token))
        .await;
    assert_eq!(reply.errno(), 401, "{}", reply.raw);
    assert!(
        reply.body["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("request body is not valid JSON (line 1")),
        "{}",
        reply.raw
    );
    let trailing = app
        .post_raw("meeting/join", "{\"id\": 9} x", Some(&token))
        .await;
    assert_eq!(trailing.errno(), 401, "{}", trailing.raw);
}

#[actix_web::test]
async fn an_oversized_body_is_refused_with_402() {
    let app = TestApp::spawn().await;
    let body = json!({ "code": "abc", "padding": "x".repeat(40 * 1024) });
    let reply = app.post("auth/login_by_weixin", &body, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.errno(), 402, "{}", reply.raw);
    assert_eq!(app.count_users(), 0);
}

#[actix_web::test]
async fn unknown_codes_used_codes_and_expired_codes_have_their_own_errnos() {
    let app = TestApp::spawn().await;

    let invalid = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": "0never-issued" }),
            None,
        )
        .await;
    assert_eq!(invalid.status, 200);
    assert_eq!(invalid.errno(), 710, "{}", invalid.raw);

    let code = app.code_for("bob").code;
    assert_eq!(
        app.post("auth/login_by_weixin", &json!({ "code": code }), None)
            .await
            .errno(),
        0
    );
    let reused = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;
    assert_eq!(reused.errno(), 711, "{}", reused.raw);
    assert_ne!(reused.body["errmsg"], invalid.body["errmsg"]);

    let old = app.fake.mint_code_for(
        &app.fake.openid_for("carol"),
        None,
        wxauth::dev::fake_wechat::CODE_TTL + std::time::Duration::from_secs(5),
    );
    let expired = app
        .post("auth/login_by_weixin", &json!({ "code": old.code }), None)
        .await;
    assert_eq!(expired.errno(), 710, "{}", expired.raw);

    // Only bob has a row; the failures stored nothing.
    assert_eq!(app.count_users(), 1);
    assert!(app.user_by_openid(&app.fake.openid_for("carol")).is_none());
}

#[actix_web::test]
async fn unknown_paths_and_methods_answer_an_envelope() {
    let app = TestApp::spawn().await;
    let reply = app.get("no/such/api", None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.errno(), 404);
    assert_eq!(reply.body["errmsg"], "接口不存在");
    assert_eq!(reply.header("allow"), None);

    // The API exists, not with this method: 405, naming the method it takes.
    let wrong_method = app.get("meeting/publish", None).await;
    assert_eq!(wrong_method.status, 405, "{}", wrong_method.raw);
    assert_eq!(wrong_method.errno(), 405);
    assert_eq!(wrong_method.body["errmsg"], "请求方法不对");
    assert!(wrong_method.body["data"].is_null());
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    let posted = app.post("user/index", &serde_json::json!({}), None).await;
    assert_eq!(posted.status, 405, "{}", posted.raw);
    assert_eq!(posted.header("allow"), Some("GET"));
    let deleted = app.get_with_method("DELETE", "auth/login_by_weixin").await;
    assert_eq!(deleted.status, 405);
    assert_eq!(deleted.errno(), 405);
    assert_eq!(deleted.header("allow"), Some("POST"));
    assert_eq!(app.count_users(), 0, "nothing was done");

    // Every route of the table, with each method it does not take.
    for wxauth::api::Operation { path, method, .. } in wxauth::api::operations() {
        for other in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if other == method.as_str() {
                continue;
            }
            let reply = app
                .get_with_method(other, path.trim_start_matches('/'))
                .await;
            assert_eq!(reply.status, 405, "{other} {path}: {}", reply.raw);
            assert_eq!(reply.errno(), 405, "{other} {path}");
            assert_eq!(
                reply.header("allow"),
                Some(method.as_str()),
                "{other} {path}"
            );
        }
    }
}
