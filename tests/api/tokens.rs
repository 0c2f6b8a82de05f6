//! Every way a token can be wrong ends in errno 501 with HTTP 200, so the client logs in again.

use std::time::Duration;

use actix_web::http::header::HeaderName;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::helpers::{Reply, TestApp, captured_logs};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(secret: &str, claims: &serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&B64URL.decode(payload).expect("b64")).expect("json")
}

/// A 501 with `reason` in `data`, and its debug line naming the reason (never the token).
async fn assert_unlogin(app: &TestApp, token: Option<&str>, reason: &str, why: &str) {
    let reply = app.get("user/index", token).await;
    assert_unlogin_reply(&reply, reason, why);
    if let Some(token) = token.filter(|t| t.len() > 8) {
        let leaked = captured_logs().into_iter().find(|l| l.contains(token));
        assert!(leaked.is_none(), "{why}: the token was logged: {leaked:?}");
    }
}

fn assert_unlogin_reply(reply: &Reply, reason: &str, why: &str) {
    assert_eq!(reply.status, 200, "{why}");
    assert_eq!(reply.errno(), 501, "{why}: {}", reply.raw);
    assert_eq!(reply.body["errmsg"], "请登录", "{why}");
    assert_eq!(reply.body["data"], json!({ "reason": reason }), "{why}");
    let line = format!("errno 501: not logged in: {reason}");
    assert!(
        captured_logs().iter().any(|l| l.contains(&line)),
        "{why}: no debug line `{line}`"
    );
}

#[actix_web::test]
async fn missing_empty_and_garbage_tokens_are_501() {
    let app = TestApp::spawn().await;
    assert_unlogin(&app, None, "missing", "no header").await;
    assert_unlogin(&app, Some(""), "missing", "empty").await;
    assert_unlogin(&app, Some("garbage"), "malformed", "garbage").await;
    assert_unlogin(&app, Some("a.b.c"), "malformed", "three dots of nothing").await;
    assert_unlogin(&app, Some(&"x".repeat(3000)), "malformed", "oversized").await;
    assert_unlogin_reply(
        &app.post("auth/logout", &json!({}), None).await,
        "missing",
        "logout needs a token",
    );
}

#[actix_web::test]
async fn forged_tokens_are_501() {
    let app = TestApp::spawn().await;
    let real = app.login_ok("alice").await;
    let claims = claims_of(&real);

    // Payload changed to another user, signature kept.
    let mut other_user = claims.clone();
    other_user["sub"] = json!("999");
    let parts: Vec<&str> = real.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(other_user.to_string()),
        parts[2]
    );
    assert_unlogin(&app, Some(&tampered), "invalid", "tampered payload").await;

    // Signed with a secret that is not ours.
    assert_unlogin(
        &app,
        Some(&sign("not-the-server-secret-at-all", &claims)),
        "invalid",
        "wrong secret",
    )
    .await;

    // alg: none, no signature.
    let none = format!(
        "{}.{}.",
        B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64URL.encode(claims.to_string())
    );
    assert_unlogin(&app, Some(&none), "malformed", "alg none").await;

    // The right secret, but a session id the server never issued.
    let mut unknown = claims.clone();
    unknown["jti"] = json!("0123456789abcdef0123456789abcdef");
    assert_unlogin(
        &app,
        Some(&sign(&app.jwt_secret, &unknown)),
        "invalid",
        "unknown jti: told as a forgery is",
    )
    .await;

    // The right secret and a live jti, but presented for another user id.
    let mut swapped = claims.clone();
    swapped["sub"] = json!("999");
    assert_unlogin(
        &app,
        Some(&sign(&app.jwt_secret, &swapped)),
        "invalid",
        "live jti, other sub",
    )
    .await;

    // Wrong issuer.
    let mut foreign = claims.clone();
    foreign["iss"] = json!("someone-else");
    assert_unlogin(
        &app,
        Some(&sign(&app.jwt_secret, &foreign)),
        "invalid",
        "wrong iss",
    )
    .await;

    // Expired and forged: the expiry of a token that does not verify is not told.
    let mut old = claims.clone();
    old["exp"] = json!(now() - 3600);
    assert_unlogin(
        &app,
        Some(&sign("not-the-server-secret-at-all", &old)),
        "invalid",
        "expired and forged",
    )
    .await;

    // The real token still works: none of the above disturbed it.
    assert_eq!(app.get("user/index", Some(&real)).await.errno(), 0);
}

#[actix_web::test]
async fn expired_tokens_are_501() {
    let app = TestApp::spawn().await;
    let real = app.login_ok("bob").await;
    let mut expired = claims_of(&real);
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    assert_unlogin(
        &app,
        Some(&sign(&app.jwt_secret, &expired)),
        "expired",
        "expired",
    )
    .await;
}

#[actix_web::test]
async fn a_short_ttl_expires_the_session_itself() {
    let app = TestApp::builder()
        .config(|c| c.sessions.token_ttl = Duration::from_secs(60))
        .spawn()
        .await;
    let reply = app.login("carol").await;
    let expire = reply.body["data"]["tokenExpire"]
        .as_str()
        .expect("tokenExpire")
        .to_string();
    let claims = claims_of(&reply.token());
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        60
    );
    let shown =
        chrono::NaiveDateTime::parse_from_str(&expire, "%Y-%m-%d %H:%M:%S").expect("format");
    let exp_cst = chrono::DateTime::from_timestamp(claims["exp"].as_i64().expect("exp"), 0)
        .expect("ts")
        .naive_utc()
        + chrono::Duration::hours(8);
    assert_eq!(shown, exp_cst, "tokenExpire is exp in China Standard Time");
}

#[actix_web::test]
async fn future_iat_and_algorithm_confusion_are_501() {
    let app = TestApp::spawn().await;
    let real = app.login_ok("dave").await;
    let claims = claims_of(&real);

    // Issued an hour from now: no clock is that wrong, so it was forged with a stolen secret.
    let mut future = claims.clone();
    future["iat"] = json!(now() + 3600);
    future["exp"] = json!(now() + 7200);
    assert_unlogin(
        &app,
        Some(&sign(&app.jwt_secret, &future)),
        "invalid",
        "future iat",
    )
    .await;

    // HS/RS confusion: a header claiming RS256 over an HMAC made with the shared secret.
    let header = B64URL.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = B64URL.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let hs = sign(&app.jwt_secret, &claims);
    let hs_sig = hs.split('.').nth(2).expect("sig");
    assert_unlogin(
        &app,
        Some(&format!("{signing_input}.{hs_sig}")),
        "invalid",
        "RS256 header",
    )
    .await;
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(app.jwt_secret.as_bytes()),
    )
    .expect("sign");
    assert_unlogin(
        &app,
        Some(&hs512),
        "malformed",
        "HS512 is not what we issue",
    )
    .await;
    assert_eq!(app.get("user/index", Some(&real)).await.errno(), 0);
}

/// A litemall-derived client sends its token as `X-Litemall-Token`: with `TOKEN_HEADER` set to
/// that, its calls, refresh and logout work, and the default header no longer carries a token.
#[actix_web::test]
async fn token_header_names_the_only_header_that_carries_the_token() {
    use diesel::prelude::*;
    use wxauth::db::schema::user_session;

    let app = TestApp::builder()
        .config(|c| c.http.token_header = HeaderName::from_static("x-litemall-token"))
        .spawn()
        .await;
    let token = app.login_ok("alice").await;
    let litemall = |t: &str| vec![("X-Litemall-Token".to_string(), t.to_string())];

    let with = |headers: Vec<(String, String)>| {
        let mut req = app.http.get(format!("{}/user/index", app.api));
        for (name, value) in headers {
            req = req.insert_header((name, value));
        }
        async move {
            let mut res = req.send().await.expect("request");
            let body: serde_json::Value =
                serde_json::from_slice(&res.body().await.expect("body")).expect("json");
            body["errno"].as_i64().expect("errno")
        }
    };
    assert_eq!(with(litemall(&token)).await, 0, "the configured header");
    assert_eq!(
        with(litemall(&token.to_lowercase())).await,
        501,
        "the value is still checked"
    );
    assert_eq!(
        app.get("user/index", Some(&token)).await.errno(),
        501,
        "X-OA-Token is not read when another header is configured"
    );

    let refreshed = app
        .post_with("auth/refresh", &json!({}), &[("X-Litemall-Token", &token)])
        .await;
    assert_eq!(refreshed.errno(), 0, "{}", refreshed.raw);
    let token = refreshed.token();

    let refused = app.post("auth/logout", &json!({}), Some(&token)).await;
    assert_eq!(refused.errno(), 501, "logout through X-OA-Token is refused");
    assert_eq!(with(litemall(&token)).await, 0, "so the session lives on");
    let logout = app
        .post_with("auth/logout", &json!({}), &[("x-litemall-token", &token)])
        .await;
    assert_eq!(logout.errno(), 0, "header names are case-insensitive");
    assert_eq!(with(litemall(&token)).await, 501, "logged out");
    let live: i64 = user_session::table
        .filter(user_session::revoked_at.is_null())
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(live, 0, "the session row is revoked");
}

/// GET user/index with these headers, as sent.
async fn index_with(app: &TestApp, headers: &[(&str, &str)]) -> Reply {
    app.get_with(&format!("{}/user/index", app.api), headers)
        .await
}

/// A token under a header the server does not read is `wrong_header`, not `missing`: the
/// client is configured for another server and no login will help it.
#[actix_web::test]
async fn a_token_under_another_known_header_is_wrong_header() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("alice").await;
    let bearer = format!("Bearer {token}");
    for (name, value) in [
        ("Authorization", bearer.as_str()),
        ("authorization", &format!("bearer {token}")),
        ("X-Litemall-Token", &token),
    ] {
        let reply = index_with(&app, &[(name, value)]).await;
        assert_unlogin_reply(&reply, "wrong_header", name);
    }
    // Nothing token-shaped elsewhere: simply missing.
    for (name, value) in [
        ("Authorization", "Basic dXNlcjpwYXNz"),
        ("Authorization", "Bearer not-a-token"),
        ("X-Token", token.as_str()),
    ] {
        let reply = index_with(&app, &[(name, value)]).await;
        assert_unlogin_reply(&reply, "missing", &format!("{name}: {value:.12}"));
    }
    // The right header wins over any other.
    let both = index_with(&app, &[("X-OA-Token", &token), ("Authorization", &bearer)]).await;
    assert_eq!(both.errno(), 0, "{}", both.raw);

    // A server that reads litemall's header: the default one is now the wrong one.
    let litemall = TestApp::builder()
        .config(|c| c.http.token_header = HeaderName::from_static("x-litemall-token"))
        .spawn()
        .await;
    let token = litemall.login_ok("bob").await;
    assert_unlogin(
        &litemall,
        Some(&token),
        "wrong_header",
        "X-OA-Token to litemall",
    )
    .await;
    let reply = index_with(&litemall, &[("X-Litemall-Token", &token)]).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

/// Each way a verified token's session ends, one at a time, on the instance that ended it (its
/// cache) and on a sibling that reads the database.
#[actix_web::test]
async fn a_session_that_ended_says_how() {
    use diesel::prelude::*;
    use wxauth::db::schema::{user_session, wx_user};

    let a = TestApp::builder()
        .config(|c| c.sessions.max_lifetime = Duration::from_secs(86_400))
        .spawn()
        .await;
    let b = a.sibling().await;

    // Logout.
    let token = a.login_ok("alice").await;
    assert_eq!(
        a.post("auth/logout", &json!({}), Some(&token))
            .await
            .errno(),
        0
    );
    assert_unlogin(&a, Some(&token), "revoked", "logged out, same instance").await;
    assert_unlogin(&b, Some(&token), "revoked", "logged out, sibling").await;

    // Logout everywhere: the other device's token too.
    let phone = a.login_ok("bob").await;
    let tablet = a.login_ok("bob").await;
    assert_eq!(
        a.post("auth/logout_all", &json!({}), Some(&phone))
            .await
            .errno(),
        0
    );
    assert_unlogin(&a, Some(&tablet), "revoked", "logout_all").await;

    // A refresh replaces the token it was called with.
    let old = a.login_ok("carol").await;
    let refreshed = a.post("auth/refresh", &json!({}), Some(&old)).await;
    assert_eq!(refreshed.errno(), 0, "{}", refreshed.raw);
    assert_unlogin(&b, Some(&old), "revoked", "replaced by a refresh").await;
    let refreshed = refreshed.token();

    // Disabled by the operator: the reason is the account, not the revocation its trigger made.
    diesel::update(wx_user::table.filter(wx_user::weixin_openid.eq(a.fake.openid_for("carol"))))
        .set(wx_user::status.eq(1))
        .execute(&mut a.db())
        .expect("disable");
    a.errno_within(&refreshed, 501, Duration::from_secs(2))
        .await;
    assert_unlogin(&a, Some(&refreshed), "disabled", "disabled").await;
    assert_unlogin(&b, Some(&refreshed), "disabled", "disabled, sibling").await;

    // Deactivated by its user.
    let token = a.login_ok("dave").await;
    let asked = a.post("auth/deactivate", &json!({}), Some(&token)).await;
    assert_eq!(asked.errno(), 0, "{}", asked.raw);
    assert_unlogin(&a, Some(&token), "disabled", "deletion asked for").await;

    // Past the maximum lifetime while the token's own `exp` is days away: the sibling has not
    // cached it, so the database says why.
    let token = a.login_ok("erin").await;
    let user_id = a
        .user_by_openid(&a.fake.openid_for("erin"))
        .expect("row")
        .id;
    diesel::update(user_session::table.filter(user_session::user_id.eq(user_id)))
        .set(user_session::created_at.eq(chrono::Utc::now() - chrono::Duration::days(2)))
        .execute(&mut a.db())
        .expect("age the session");
    assert_unlogin(&b, Some(&token), "expired", "past its maximum lifetime").await;
    let live: i64 = user_session::table
        .filter(user_session::user_id.eq(user_id))
        .filter(user_session::revoked_at.is_null())
        .count()
        .get_result(&mut a.db())
        .expect("count");
    assert_eq!(live, 1, "expiry is read, nothing is written");
}
