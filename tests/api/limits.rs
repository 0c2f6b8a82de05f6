//! Rate limits: a flood from one client is slowed down with its own errno while others are
//! served; the client IP comes from X-Forwarded-For only behind a trusted proxy.

use serde_json::json;

use crate::helpers::TestApp;

#[actix_web::test]
async fn a_login_flood_from_one_ip_is_limited_while_another_ip_is_served() {
    let app = TestApp::builder()
        .config(|c| c.limits.login_per_ip = 5)
        .trust_forwarded_for()
        .spawn()
        .await;
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];

    for i in 0..5 {
        let code = app.code_for(&format!("flood{i}")).code;
        let r = app
            .post_with(
                "auth/login_by_weixin",
                &json!({ "code": code }),
                &from("203.0.113.5"),
            )
            .await;
        assert_eq!(r.errno(), 0, "{}", r.raw);
    }
    let first = app
        .user_by_openid(&app.fake.openid_for("flood0"))
        .expect("row");
    assert_eq!(
        first.last_login_ip, "203.0.113.5",
        "the proxy's client, not the proxy"
    );
    let code = app.code_for("flood-last").code;
    let limited = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": code }),
            &from("203.0.113.5"),
        )
        .await;
    assert_eq!(limited.status, 200);
    assert_eq!(limited.errno(), 720, "{}", limited.raw);
    assert_eq!(limited.body["errmsg"], "请求过于频繁，请稍后再试");

    let other = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": code }),
            &from("198.51.100.7"),
        )
        .await;
    assert_eq!(
        other.errno(),
        0,
        "the refused code was not spent: {}",
        other.raw
    );
    let row = app
        .user_by_openid(&app.fake.openid_for("flood-last"))
        .expect("row");
    assert_eq!(row.last_login_ip, "198.51.100.7");
}

#[actix_web::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = TestApp::builder()
        .config(|c| c.limits.login_per_ip = 2)
        .spawn()
        .await;
    for (i, ip) in ["1.1.1.1", "2.2.2.2"].iter().enumerate() {
        let code = app.code_for(&format!("u{i}")).code;
        let r = app
            .post_with(
                "auth/login_by_weixin",
                &json!({ "code": code }),
                &[("X-Forwarded-For", ip)],
            )
            .await;
        assert_eq!(r.errno(), 0);
    }
    // Both came from 127.0.0.1 really: a forged header does not buy a fresh budget.
    let code = app.code_for("u3").code;
    let r = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": code }),
            &[("X-Forwarded-For", "3.3.3.3")],
        )
        .await;
    assert_eq!(r.errno(), 720);
    assert_eq!(
        app.user_by_openid(&app.fake.openid_for("u0"))
            .expect("row")
            .last_login_ip,
        "127.0.0.1"
    );
}

#[actix_web::test]
async fn logins_of_one_openid_are_limited() {
    let app = TestApp::builder()
        .config(|c| c.limits.login_per_openid = 3)
        .spawn()
        .await;
    for _ in 0..3 {
        app.login_ok("alice").await;
    }
    assert_eq!(app.login("alice").await.errno(), 720);
    assert_eq!(app.login("bob").await.errno(), 0);
}

#[actix_web::test]
async fn bind_phone_is_limited_per_user_and_zero_turns_a_limit_off() {
    let app = TestApp::builder()
        .config(|c| {
            c.limits.bindphone_per_user = 2;
            c.limits.login_per_ip = 0;
        })
        .spawn()
        .await;
    let token = app.login_ok("carol").await;
    for _ in 0..2 {
        let r = app.bind_phone_code("pnever", &token).await;
        assert_eq!(r.errno(), 718);
    }
    let code = app
        .fake
        .mint_phone_code(&app.fake.openid_for("carol"), "13800138000");
    let r = app.bind_phone_code(&code, &token).await;
    assert_eq!(r.errno(), 720, "{}", r.raw);
    // RATE_LOGIN_PER_IP=0: no limit at all on logins from this IP.
    for i in 0..30 {
        assert_eq!(app.login(&format!("many{i}")).await.errno(), 0);
    }
}
