//! What `scripts/bench` relies on: the comparison routes exist only with `BENCH_ENDPOINTS=1`, and
//! then answer like a real authenticated route; the fake mints codes in bulk.

use serde_json::{Value, json};

use crate::helpers::TestApp;

/// GET an absolute path with an optional token: (HTTP status, JSON body).
async fn get_with_token(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = app.http.get(format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.insert_header(("X-OA-Token", t));
    }
    let mut response = req.send().await.expect("request");
    let bytes = response.body().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

#[actix_web::test]
async fn bench_routes_are_not_served_by_default() {
    let app = TestApp::spawn().await;
    for path in ["/bench/plain", "/bench/auth"] {
        let reply = app.get_abs(path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.errno(), 404, "{path}: {}", reply.raw);
    }
}

#[actix_web::test]
async fn bench_routes_answer_like_user_index_when_enabled() {
    let app = TestApp::builder()
        .config(|c| c.http.bench_endpoints = true)
        .spawn()
        .await;
    let fixed =
        json!({"errno": 0, "errmsg": "成功", "data": {"metting_pubs": 0, "metting_joins": 0}});

    let plain = app.get_abs("/bench/plain").await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, fixed);

    let (status, body) = get_with_token(&app, "/bench/auth", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["errno"], 501, "no token: {body}");

    let token = app.login_ok("alice").await;
    let (status, body) = get_with_token(&app, "/bench/auth", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body, fixed);

    app.post("auth/logout", &json!({}), Some(&token)).await;
    let (_, body) = get_with_token(&app, "/bench/auth", Some(&token)).await;
    assert_eq!(body["errno"], 501, "logged out: {body}");
}

#[actix_web::test]
async fn the_dev_fake_mints_codes_in_bulk_for_load_generators() {
    let app = TestApp::builder().dev_mode().spawn().await;
    let mut response = app
        .http
        .post(format!(
            "{}/__wechat/fake/codes?count=4&prefix=load-&users=2",
            app.base
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let text = String::from_utf8(response.body().await.expect("body").to_vec()).expect("utf-8");
    let codes: Vec<&str> = text.lines().collect();
    assert_eq!(codes.len(), 4);

    let users_before = app.count_users();
    for code in &codes {
        let reply = app
            .post("auth/login_by_weixin", &json!({ "code": code }), None)
            .await;
        assert_eq!(reply.errno(), 0, "{}", reply.raw);
    }
    assert!(app.user_by_openid("load-0").is_some());
    assert!(app.user_by_openid("load-1").is_some());
    assert_eq!(
        app.count_users() - users_before,
        2,
        "two users, each logged in twice"
    );

    let again = app
        .post("auth/login_by_weixin", &json!({ "code": codes[0] }), None)
        .await;
    assert_eq!(again.errno(), 711, "a code works once: {}", again.raw);

    let refused = app
        .http
        .post(format!("{}/__wechat/fake/codes?count=0&prefix=x", app.base))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status().as_u16(), 400);
}
