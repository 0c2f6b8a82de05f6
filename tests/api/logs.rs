//! `LOG_FORMAT=json`: the binary's stderr is one JSON object per line, and every line a request
//! caused, in its handler or in an actor, carries the id the answer's `X-Request-Id` names.

use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::BinaryApp;
use crate::database::pg_url;

const JWT_SECRET: &str = "jwt-secret-of-the-json-log-test-0123456789";
const ADMIN_TOKEN: &str = "admin-token-of-the-json-log-test";

/// Checks one stderr line; its fields.
fn parse_line(line: &str) -> serde_json::Map<String, Value> {
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    let Value::Object(fields) = value else {
        panic!("not a JSON object: {line}");
    };
    for key in fields.keys() {
        assert!(
            ["time", "level", "target", "message", "request_id"].contains(&key.as_str()),
            "unexpected field {key}: {line}"
        );
    }
    let time = fields["time"].as_str().expect("time is a string");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "time is RFC 3339: {line}"
    );
    let level = fields["level"].as_str().expect("level is a string");
    assert!(
        ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
        "{line}"
    );
    assert!(
        fields["target"].as_str().is_some_and(|t| !t.is_empty()),
        "{line}"
    );
    assert!(fields["message"].is_string(), "{line}");
    if let Some(id) = fields.get("request_id") {
        let id = id.as_str().expect("request_id is a string");
        assert!(
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{line}"
        );
    }
    fields
}

#[actix_web::test]
async fn json_logs_are_one_object_per_line_and_carry_the_request_id_into_actor_work() {
    let mut app = BinaryApp::builder()
        .env("DB_POOL_SIZE", "2")
        .env("SHUTDOWN_DRAIN_SECS", "0")
        .env("LOG_FORMAT", "json")
        // The WeChat actor's exchange is logged at debug.
        .env("RUST_LOG", "info,wxauth=debug")
        .env("JWT_SECRET", JWT_SECRET)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .start()
        .await;
    let id_of = |reply: &crate::reply::Reply| {
        reply
            .header("x-request-id")
            .unwrap_or_else(|| panic!("no X-Request-Id: {:?}", reply.headers))
            .to_string()
    };

    let login = app.login("alice").await;
    let login_id = id_of(&login);
    assert_eq!(login.errno(), 0, "{}", login.raw);
    let token = login.token();
    let user_id = login.body["data"]["userInfo"]["userId"].clone();
    let with_token = ("X-OA-Token", token.as_str());

    let index = app
        .get(
            "/oapro/wx/user/index",
            &[with_token, ("X-Request-Id", "json-log-index-1")],
        )
        .await;
    let index_id = id_of(&index);
    assert_eq!(index_id, "json-log-index-1");
    assert_eq!(index.errno(), 0, "{}", index.raw);
    let logout = app
        .post(
            "/oapro/wx/auth/logout",
            &json!({}),
            &[with_token, ("X-Request-Id", "json-log-logout-1")],
        )
        .await;
    let logout_id = id_of(&logout);
    assert_eq!(logout_id, "json-log-logout-1");
    assert_eq!(logout.errno(), 0, "{}", logout.raw);
    // A bad request: the code of the wrong type.
    let bad = app
        .post("/oapro/wx/auth/login_by_weixin", &json!({ "code": 5 }), &[])
        .await;
    let bad_id = id_of(&bad);
    assert_eq!(bad.errno(), 402, "{}", bad.raw);
    let dead = app.get("/oapro/wx/user/index", &[with_token]).await;
    let dead_id = id_of(&dead);
    assert_eq!(dead.errno(), 501, "{}", dead.raw);

    app.signal("TERM");
    assert_eq!(app.wait_exit(Duration::from_secs(20)).await, Some(0));
    let stderr: Vec<String> = app.log_text().lines().map(str::to_string).collect();
    assert!(stderr.len() > 10, "{stderr:?}");
    let lines: Vec<_> = stderr.iter().map(|l| parse_line(l)).collect();

    let of = |id: &str| -> Vec<&serde_json::Map<String, Value>> {
        lines
            .iter()
            .filter(|l| l.get("request_id").and_then(Value::as_str) == Some(id))
            .collect()
    };
    let has = |lines: &[&serde_json::Map<String, Value>], target: &str, text: &str| {
        lines.iter().any(|l| {
            l["target"].as_str().is_some_and(|t| t.starts_with(target))
                && l["message"].as_str().is_some_and(|m| m.contains(text))
        })
    };
    let login_lines = of(&login_id);
    assert!(
        has(
            &login_lines,
            "wxauth::request",
            "POST /oapro/wx/auth/login_by_weixin 200 errno=0"
        ),
        "the request line: {login_lines:?}"
    );
    assert!(
        has(&login_lines, "wxauth::api::auth", "login ok"),
        "the handler's line: {login_lines:?}"
    );
    assert!(
        has(&login_lines, "wxauth::wechat::client", "jscode2session ok"),
        "the WeChat actor's line: {login_lines:?}"
    );
    let index_lines = of(&index_id);
    assert!(has(
        &index_lines,
        "wxauth::request",
        "GET /oapro/wx/user/index 200 errno=0"
    ));
    let logout_lines = of(&logout_id);
    assert!(
        has(
            &logout_lines,
            "wxauth::api::auth",
            &format!("logout: user {user_id}")
        ),
        "{logout_lines:?}"
    );
    assert!(has(&logout_lines, "wxauth::request", "errno=0"));
    let bad_lines = of(&bad_id);
    assert!(
        has(&bad_lines, "wxauth::error", "errno 402"),
        "the error's line: {bad_lines:?}"
    );
    assert!(has(&bad_lines, "wxauth::request", "errno=402"));
    assert!(has(&of(&dead_id), "wxauth::request", "errno=501"));
    // Every request line names its own id, and carries it.
    for line in &lines {
        if line["target"] == "wxauth::request" {
            let id = line["request_id"]
                .as_str()
                .expect("a request line has its id");
            let message = line["message"].as_str().unwrap_or_default();
            assert!(message.starts_with(id), "{line:?}");
        }
    }
    // Lines no request caused have no id.
    for text in ["DEV MODE", "wxauth stopped"] {
        let line = lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(text)))
            .unwrap_or_else(|| panic!("a line saying {text}"));
        assert!(line.get("request_id").is_none(), "{line:?}");
    }
    for line in &stderr {
        for secret in [JWT_SECRET, ADMIN_TOKEN, token.as_str()] {
            assert!(
                !line.contains(secret),
                "a log line holds a secret: {line:.80}"
            );
        }
    }
}

#[test]
fn an_unknown_log_format_stops_the_start_naming_the_variable() {
    let out = BinaryApp::builder()
        .env("LOG_FORMAT", "xml")
        .env("DATABASE_URL", pg_url("wxauth_never_created"))
        .run();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LOG_FORMAT") && stderr.contains("text or json"),
        "{stderr}"
    );
}

#[test]
fn in_json_a_start_error_is_a_json_line_too() {
    let out = BinaryApp::builder()
        .env("LOG_FORMAT", "json")
        .env("BIND_ADDR", "nowhere")
        .env("DATABASE_URL", pg_url("wxauth_never_created"))
        .run();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = stderr.lines().map(parse_line).collect();
    assert!(
        lines.iter().any(|l| l["level"] == "ERROR"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("BIND_ADDR"))),
        "{stderr}"
    );
}

/// In process, through the harness's log capture: the access token a bindPhone needs is fetched
/// by the WeChat actor on its own task, and its line still names the bindPhone's request.
#[actix_web::test]
async fn an_access_token_fetched_for_a_request_is_logged_with_its_id() {
    let app = crate::helpers::TestApp::spawn().await;
    let token = app.login_ok("json-log-phone").await;
    let code = app
        .fake
        .mint_phone_code(&app.fake.openid_for("json-log-phone"), "13800138000");
    let reply = app.bind_phone_code(&code, &token).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let id = reply
        .header("x-request-id")
        .expect("a request id")
        .to_string();
    let lines: Vec<Value> = crate::helpers::captured_json_logs()
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .filter(|l: &Value| l["request_id"] == id.as_str())
        .collect();
    assert!(
        lines.iter().any(|l| {
            l["target"] == "wxauth::wechat::client::access_token"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("fetched a WeChat access token"))
        }),
        "the actor's line carries the request's id: {lines:?}"
    );
}
