//! The operator's side: the admin API's token rules, the status JSON, the page's files, `/metrics`,
//! `/readyz`, and the `login_log` rows behind the page (written for every attempt, pruned by age).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use wxauth::db::login_log;
use wxauth::db::models::LoginLogRow;
use wxauth::db::schema::{login_log as login_log_table, wx_user};
use wxauth::wechat::mask_openid;

use crate::helpers::{TEST_APPID, TestApp, captured_logs_in_every_format};

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

async fn admin_app() -> TestApp {
    TestApp::builder().admin_token(ADMIN_TOKEN).spawn().await
}

async fn status(app: &TestApp, authorization: Option<&str>) -> crate::helpers::Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    app.get_with(&format!("{}/admin/api/status", app.base), &headers)
        .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `login_log` rows, oldest attempt first, once at least `n` are there: the handler does not wait
/// for its row, so it lands a moment after the answer (and rows may land out of order).
async fn login_log_rows(app: &TestApp, n: usize) -> Vec<LoginLogRow> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows: Vec<LoginLogRow> = login_log_table::table
            .order(login_log_table::add_time.asc())
            .select(LoginLogRow::as_select())
            .load(&mut app.db())
            .expect("query");
        if rows.len() >= n || Instant::now() > deadline {
            return rows;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- the token rules ----

#[actix_web::test]
async fn admin_api_answers_401_without_a_token_403_with_a_wrong_one_and_200_with_the_right_one() {
    let app = admin_app().await;

    let none = status(&app, None).await;
    assert_eq!(none.status, 401, "{}", none.raw);
    assert!(
        none.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    assert!(
        none.body.get("errno").is_none(),
        "plain HTTP, not the envelope"
    );

    for not_bearer in ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer   ", ADMIN_TOKEN] {
        let reply = status(&app, Some(not_bearer)).await;
        assert_eq!(reply.status, 401, "{not_bearer:?}: {}", reply.raw);
    }

    let wrong = status(&app, Some(&bearer("admin-token-for-tests-0123456780"))).await;
    assert_eq!(wrong.status, 403, "{}", wrong.raw);
    assert_eq!(wrong.body["error"], "wrong admin token");
    let prefix = status(&app, Some(&bearer(&ADMIN_TOKEN[..20]))).await;
    assert_eq!(prefix.status, 403, "a prefix of the token is not the token");

    let right = status(&app, Some(&bearer(ADMIN_TOKEN))).await;
    assert_eq!(right.status, 200, "{}", right.raw);
    assert_eq!(right.body["status"], "ok", "{}", right.raw);
    let lower_scheme = status(&app, Some(&format!("bearer {ADMIN_TOKEN}"))).await;
    assert_eq!(lower_scheme.status, 200, "the scheme is case-insensitive");
    assert_eq!(right.header("cache-control"), Some("no-store"));

    // Unknown admin paths need the token too: nobody learns which endpoints exist without it.
    let unknown = format!("{}/admin/api/users", app.base);
    assert_eq!(app.get_with(&unknown, &[]).await.status, 401);
    let auth = bearer(ADMIN_TOKEN);
    let known = app.get_with(&unknown, &[("authorization", &auth)]).await;
    assert_eq!(known.status, 404);

    for reply in [&none, &wrong, &right] {
        assert!(!reply.raw.contains(ADMIN_TOKEN));
    }
    for line in captured_logs_in_every_format() {
        assert!(
            !line.contains(ADMIN_TOKEN) && !line.contains("0123456780"),
            "a log line holds an admin token: {line:.80}"
        );
    }
}

#[actix_web::test]
async fn without_admin_token_in_production_the_admin_side_is_404() {
    // The harness default is production mode (WECHAT_APPID set) with no ADMIN_TOKEN.
    let app = TestApp::spawn().await;
    for auth in [None, Some(bearer(ADMIN_TOKEN))] {
        let reply = status(&app, auth.as_deref()).await;
        assert_eq!(reply.status, 404, "{}", reply.raw);
        assert!(
            reply.body.get("errno").is_none(),
            "plain HTTP, not the envelope"
        );
    }
    for path in ["/admin/", "/admin", "/admin/index.html", "/admin/admin.js"] {
        let reply = app.get_with(&format!("{}{path}", app.base), &[]).await;
        assert_eq!(reply.status, 404, "{path}");
    }
}

#[actix_web::test]
async fn dev_mode_turns_the_admin_side_on_with_a_generated_token() {
    let app = TestApp::builder().dev_mode().spawn().await;
    assert_eq!(status(&app, None).await.status, 401, "on, and guarded");
    assert_eq!(
        status(&app, Some(&bearer(ADMIN_TOKEN))).await.status,
        403,
        "a token nobody configured is not accepted"
    );
}

// ---- the status JSON ----

#[actix_web::test]
async fn status_shows_sessions_logins_wechat_and_database_without_secrets() {
    let app = admin_app().await;
    let token = app.login_ok("alice").await;
    let openid = app.fake.openid_for("alice");
    let bad = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": "0never-issued" }),
            None,
        )
        .await;
    assert_eq!(bad.errno(), 710);
    login_log_rows(&app, 2).await;

    let reply = status(&app, Some(&bearer(ADMIN_TOKEN))).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let s = &reply.body;
    assert_eq!(s["status"], "ok", "{}", reply.raw);
    assert_eq!(s["problems"], json!([]));
    assert_eq!(s["up"], true);
    assert_eq!(s["ready"], true);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["mode"], "production");
    assert!(s["uptime_secs"].as_u64().is_some());
    assert!(
        s["started_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T'))
    );

    let db = &s["database"];
    assert_eq!(db["reachable"], true);
    assert_eq!(db["migrations_applied"], true);
    assert_eq!(db["pool"]["max"], 3, "DB_POOL_SIZE of the harness");
    assert!(db["pool"]["in_use"].as_u64().is_some());
    assert!(db["latency_ms"].as_f64().is_some());

    let wx = &s["wechat"];
    assert_eq!(wx["calls_total"], 2);
    assert_eq!(wx["errors_by_errcode"], json!({ "40029": 1 }));
    assert_eq!(wx["last_hour"]["calls"], 2);
    assert_eq!(wx["last_hour"]["error_rate"], 0.5);
    // The bad code is the user's: WeChat answered correctly, no fault of its own.
    assert_eq!(wx["last_hour_user_errors"], 1);
    assert_eq!(wx["last_hour_faults"], 0);
    assert_eq!(wx["last_hour_fault_rate"], 0.0);
    assert_eq!(wx["last_outcome"], "40029");
    assert!(wx["last_latency_ms"].as_u64().is_some());
    assert!(
        wx.get("access_token_age_secs").is_some_and(Value::is_null),
        "present, and null until an access token exists"
    );
    // One app: its own numbers are the totals.
    let apps = wx["by_app"].as_array().expect("by_app");
    assert_eq!(apps.len(), 1, "{wx}");
    assert_eq!(apps[0]["appid"], TEST_APPID);
    assert_eq!(apps[0]["name"], "");
    assert_eq!(apps[0]["answered"], true);
    for field in [
        "calls_total",
        "errors_by_errcode",
        "last_hour",
        "last_outcome",
        "last_hour_user_errors",
        "last_hour_faults",
    ] {
        assert_eq!(apps[0][field], wx[field], "{field}");
    }
    assert_eq!(s["accounts_merged"], 0);

    assert_eq!(s["sessions"]["live"], 1);

    let logins = &s["logins"];
    assert_eq!(
        logins["by_app"],
        json!([{ "appid": TEST_APPID, "name": "", "success": 1, "failure": 1 }])
    );
    for window in ["last_minute", "last_hour"] {
        assert_eq!(logins[window]["success"], 1, "{window}");
        assert_eq!(logins[window]["failure"], 1, "{window}");
        assert_eq!(logins[window]["failure_by_errno"], json!({ "710": 1 }));
    }
    let per_minute = logins["per_minute"].as_array().expect("per_minute");
    assert_eq!(per_minute.len(), 60);
    let sum = |field: &str| -> i64 { per_minute.iter().filter_map(|m| m[field].as_i64()).sum() };
    assert_eq!((sum("success"), sum("failure")), (1, 1));
    assert!(
        per_minute[..58]
            .iter()
            .all(|m| m["success"] == 0 && m["failure"] == 0),
        "the logins are in the newest minutes (the last one, or the one before at a minute's turn)"
    );
    let recent = logins["recent"].as_array().expect("recent");
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0]["errno"], 710, "newest first");
    assert_eq!(recent[0]["user_id"], Value::Null);
    let user = app.user_by_openid(&openid).expect("alice");
    assert_eq!(recent[1]["errno"], 0);
    assert_eq!(recent[1]["user_id"], user.id);
    assert_eq!(recent[1]["openid"], mask_openid(&openid));
    assert_eq!(recent[1]["ip"], "127.0.0.1");
    // The page labels outcomes with the server's words, so every errno has its label there.
    for spec in wxauth::error::CATALOGUE {
        assert_eq!(
            s["errnos"][spec.errno.to_string()],
            spec.label,
            "errno {}",
            spec.errno
        );
    }
    // And WeChat's outcomes with the server's names for its errcodes.
    assert_eq!(s["errcodes"]["40029"], "invalid code");
    assert_eq!(s["errcodes"]["timeout"], "no answer in time");
    assert_eq!(
        s["user_side_errcodes"],
        serde_json::json!(["40029", "40163", "45011", "40226"])
    );

    let session_key = app.fake.session_key_of(&openid).expect("a session_key");
    for secret in [
        openid.as_str(),
        token.as_str(),
        session_key.as_str(),
        app.jwt_secret.as_str(),
        app.wechat_secret.as_str(),
        ADMIN_TOKEN,
    ] {
        assert!(!reply.raw.contains(secret), "the status holds a secret");
    }
}

#[actix_web::test]
async fn status_says_why_when_wechat_is_down() {
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .wechat_api_base("http://127.0.0.1:9")
        .spawn()
        .await;
    assert_eq!(app.login("alice").await.errno(), 714);
    let reply = status(&app, Some(&bearer(ADMIN_TOKEN))).await;
    assert_eq!(reply.body["status"], "degraded", "{}", reply.raw);
    assert_eq!(reply.body["ready"], true, "the database is fine");
    let problems = reply.body["problems"].to_string();
    assert!(
        problems.contains("WeChat") && problems.contains("unreachable"),
        "{problems}"
    );
    assert_eq!(
        reply.body["wechat"]["errors_by_errcode"],
        json!({ "unreachable": 1 })
    );
    let wx = &reply.body["wechat"];
    assert_eq!(wx["last_hour_faults"], 1, "{wx}");
    assert_eq!(wx["last_hour_user_errors"], 0, "{wx}");
    assert_eq!(wx["last_hour_fault_rate"], 1.0, "{wx}");
}

// ---- the page's files ----

#[actix_web::test]
async fn the_page_is_served_at_admin_slash_without_directory_listings() {
    let app = admin_app().await;
    let admin = app.get_with(&format!("{}/admin", app.base), &[]).await;
    assert!(matches!(admin.status, 301 | 302 | 307 | 308));
    assert_eq!(admin.header("location"), Some("/admin/"));

    let page = app.get_with(&format!("{}/admin/", app.base), &[]).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert!(page.raw.contains("admin.js") && page.raw.contains("sessions-live"));
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.contains("default-src 'none'")),
        "the page loads nothing from elsewhere"
    );
    assert!(
        !page.raw.contains("http://") && !page.raw.contains("https://"),
        "no CDN: the page works offline"
    );
    for file in ["admin.js", "admin.css"] {
        let reply = app
            .get_with(&format!("{}/admin/{file}", app.base), &[])
            .await;
        assert_eq!(reply.status, 200, "{file}");
    }
    let missing = app
        .get_with(&format!("{}/admin/nothing-here.js", app.base), &[])
        .await;
    assert_eq!(missing.status, 404);
}

#[actix_web::test]
async fn a_directory_without_index_is_404_not_a_listing() {
    let dir = std::env::temp_dir().join(format!("wxauth-static-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("index.html"), "<!doctype html><title>t</title>").expect("write");
    std::fs::write(dir.join("sub/file.txt"), "listed?").expect("write");
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .config({
            let dir = dir.clone();
            |c| c.admin.static_dir = dir
        })
        .spawn()
        .await;
    let sub = app.get_with(&format!("{}/admin/sub/", app.base), &[]).await;
    assert_eq!(sub.status, 404);
    assert!(!sub.raw.contains("file.txt"));
    let file = app
        .get_with(&format!("{}/admin/sub/file.txt", app.base), &[])
        .await;
    assert_eq!(file.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn without_its_directory_the_page_is_404_and_the_admin_api_still_works() {
    let missing =
        std::env::temp_dir().join(format!("wxauth-none-{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .config(move |c| c.admin.static_dir = missing)
        .spawn()
        .await;
    let page = app.get_with(&format!("{}/admin/", app.base), &[]).await;
    assert_eq!(page.status, 404);
    let index = app
        .get_with(&format!("{}/admin/index.html", app.base), &[])
        .await;
    assert_eq!(index.status, 404);
    let api = status(&app, Some(&bearer(ADMIN_TOKEN))).await;
    assert_eq!(api.status, 200);
}

// ---- /metrics ----

/// Checks every line of a Prometheus text exposition and answers its samples, keyed
/// `name{label="value",...}` with the labels sorted.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            let kind = words.next().unwrap_or_default();
            if kind == "HELP" || kind == "TYPE" {
                assert!(words.next().is_some_and(is_name), "bad comment: {line}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a float: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(is_name(&key), "bad label name {key:?} in {line}");
                    assert_eq!(chars.next(), Some('"'), "label value quoted in {line}");
                    let mut val = String::new();
                    loop {
                        match chars.next().expect("closing quote") {
                            '\\' => val.push(chars.next().expect("escaped char")),
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    labels.push(format!("{key}=\"{val}\""));
                    match chars.next() {
                        None | Some(',') => {}
                        Some(c) => panic!("unexpected {c:?} after a label in {line}"),
                    }
                }
                labels.sort();
                (name, labels)
            }
        };
        assert!(is_name(name), "bad metric name {name:?}");
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        samples.insert(key, value);
    }
    samples
}

async fn scrape(app: &TestApp, base: &str) -> BTreeMap<String, f64> {
    let reply = app.get_with(&format!("{base}/metrics"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        reply.header("content-type")
    );
    parse_prometheus(&reply.raw)
}

const LOGIN_ROUTE_OK: &str = r#"wxauth_http_requests_total{errno="0",method="POST",route="/oapro/wx/auth/login_by_weixin",status="200"}"#;

#[actix_web::test]
async fn metrics_parse_as_prometheus_text_and_count_a_login() {
    let app = TestApp::spawn().await;
    let before = scrape(&app, &app.base).await;
    let logins_before = before
        .get(r#"wxauth_logins_total{errno="0"}"#)
        .copied()
        .unwrap_or(0.0);
    assert_eq!(before.get("wxauth_db_pool_max_connections"), Some(&3.0));

    app.login_ok("alice").await;
    app.get("no/such/api/12345", None).await;
    let after = scrape(&app, &app.base).await;

    assert_eq!(
        after.get(r#"wxauth_logins_total{errno="0"}"#).copied(),
        Some(logins_before + 1.0)
    );
    assert_eq!(after.get(LOGIN_ROUTE_OK).copied(), Some(1.0));
    assert_eq!(
        after
            .get(r#"wxauth_http_request_duration_seconds_count{errno="0",route="/oapro/wx/auth/login_by_weixin"}"#)
            .copied(),
        Some(1.0)
    );
    assert_eq!(after.get("wxauth_sessions_live").copied(), Some(1.0));
    // The one app's round trip, under its appid.
    assert_eq!(
        after
            .get(&format!(
                r#"wxauth_wechat_requests_total{{app="{TEST_APPID}"}}"#
            ))
            .copied(),
        Some(1.0)
    );
    assert_eq!(
        after
            .get(&format!(
                r#"wxauth_wechat_request_duration_seconds_count{{app="{TEST_APPID}"}}"#
            ))
            .copied(),
        Some(1.0)
    );
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("wxauth_http_requests_total")
                && k.contains(r#"route="unmatched""#)),
        "an unknown path counts as unmatched"
    );
    assert!(
        !after.keys().any(|k| k.contains("12345")),
        "raw paths never become labels"
    );
}

#[actix_web::test]
async fn metrics_count_wechat_errors_by_errcode() {
    let app = TestApp::spawn().await;
    app.fake
        .set_fault(wxauth::dev::fake_wechat::Fault::Errcode { errcode: 45011 });
    assert_eq!(app.login("alice").await.errno(), 712);
    let samples = scrape(&app, &app.base).await;
    assert_eq!(
        samples
            .get(&format!(
                r#"wxauth_wechat_errors_total{{app="{TEST_APPID}",errcode="45011"}}"#
            ))
            .copied(),
        Some(1.0)
    );
    assert_eq!(
        samples.get(r#"wxauth_logins_total{errno="712"}"#).copied(),
        Some(1.0)
    );
}

#[actix_web::test]
async fn metrics_bind_addr_moves_metrics_off_the_main_listener() {
    let app = TestApp::builder()
        .config(|c| c.http.metrics_bind_addr = Some(([127, 0, 0, 1], 0).into()))
        .spawn()
        .await;
    let metrics_base = app.metrics_base.clone().expect("a metrics listener");
    let main = app.get_with(&format!("{}/metrics", app.base), &[]).await;
    assert_eq!(main.status, 404, "not on the main listener any more");
    app.login_ok("alice").await;
    let samples = scrape(&app, &metrics_base).await;
    assert_eq!(samples.get(LOGIN_ROUTE_OK).copied(), Some(1.0));
    let other = app.get_with(&format!("{metrics_base}/healthz"), &[]).await;
    assert_eq!(
        other.status, 404,
        "the metrics listener serves /metrics only"
    );
}

// ---- /readyz ----

#[actix_web::test]
async fn readyz_is_200_when_migrated_and_503_when_a_migration_is_missing() {
    let app = admin_app().await;
    let ready = app.get_abs("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.raw);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["migrations"], "ok");

    diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = '20261126000200'")
        .execute(&mut app.db())
        .expect("forget a migration");
    let not_ready = app.get_abs("/readyz").await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.raw);
    assert_eq!(not_ready.body["migrations"], "pending");
    assert_eq!(not_ready.body["pending"], json!(["20261126000200"]));
    assert_eq!(app.get_abs("/healthz").await.status, 200, "still alive");

    let reply = status(&app, Some(&bearer(ADMIN_TOKEN))).await;
    assert_eq!(reply.body["status"], "down", "{}", reply.raw);
    assert_eq!(reply.body["ready"], false);
    assert_eq!(reply.body["database"]["migrations_applied"], false);
    assert!(
        reply.body["problems"]
            .to_string()
            .contains("migrations not applied: 20261126000200")
    );
}

// ---- login_log ----

#[actix_web::test]
async fn every_login_attempt_past_argument_checks_is_logged() {
    let app = TestApp::spawn().await;
    let long_agent = format!("MicroMessenger/8.0 {}", "x".repeat(400));

    let code = app.code_for("alice").code;
    let ok = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": code }),
            &[("user-agent", &long_agent)],
        )
        .await;
    assert_eq!(ok.errno(), 0, "{}", ok.raw);
    let bad_code = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": "0never-issued" }),
            None,
        )
        .await;
    assert_eq!(bad_code.errno(), 710);
    // Argument errors are not login attempts: no row.
    assert_eq!(
        app.post("auth/login_by_weixin", &json!({}), None)
            .await
            .errno(),
        401
    );
    // A disabled user: the attempt fails, and the row knows who it was.
    let openid = app.fake.openid_for("alice");
    let user = app.user_by_openid(&openid).expect("alice");
    diesel::update(wx_user::table.find(user.id))
        .set(wx_user::status.eq(1))
        .execute(&mut app.db())
        .expect("disable");
    assert_eq!(app.login("alice").await.errno(), 700);

    let rows = login_log_rows(&app, 3).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let (success, failure, disabled) = (&rows[0], &rows[1], &rows[2]);

    assert_eq!(success.errno, 0);
    assert_eq!(success.user_id, Some(user.id));
    assert_eq!(success.openid_masked, mask_openid(&openid));
    assert_eq!(success.ip, "127.0.0.1");
    assert_eq!(success.user_agent.chars().count(), 256, "cut to 256");
    assert!(success.user_agent.starts_with("MicroMessenger/8.0 x"));
    assert!((Utc::now() - success.add_time) < TimeDelta::minutes(1));

    assert_eq!(failure.errno, 710);
    assert_eq!(failure.user_id, None, "WeChat refused the code: no user");
    assert_eq!(failure.openid_masked, "");
    assert_eq!(failure.ip, "127.0.0.1");

    assert_eq!(disabled.errno, 700);
    assert_eq!(disabled.user_id, Some(user.id));
    assert_eq!(disabled.openid_masked, mask_openid(&openid));

    let stored: Vec<String> = login_log_table::table
        .select(login_log_table::openid_masked)
        .load(&mut app.db())
        .expect("query");
    assert!(
        !stored.contains(&openid),
        "the raw openid is never stored here"
    );
}

fn insert_log_row(app: &TestApp, age: &str) {
    diesel::sql_query(format!(
        "INSERT INTO login_log (ip, errno, add_time) VALUES ('10.0.0.1', 0, now() - interval '{age}')"
    ))
    .execute(&mut app.db())
    .expect("insert");
}

fn log_row_count(app: &TestApp) -> i64 {
    login_log_table::table
        .count()
        .get_result(&mut app.db())
        .expect("count")
}

#[actix_web::test]
async fn pruning_deletes_rows_older_than_the_retention() {
    let app = TestApp::spawn().await;
    insert_log_row(&app, "40 days");
    insert_log_row(&app, "31 days");
    insert_log_row(&app, "29 days");
    insert_log_row(&app, "1 minute");

    let cutoff = Utc::now() - TimeDelta::days(30);
    let pruned = login_log::prune(&mut app.db(), cutoff).expect("prune");
    assert_eq!(pruned, 2);
    assert_eq!(log_row_count(&app), 2);
    assert_eq!(
        login_log::prune(&mut app.db(), cutoff).expect("prune"),
        0,
        "nothing left to prune"
    );

    // The background job does the same with LOGIN_LOG_RETENTION_DAYS, at start and hourly.
    insert_log_row(&app, "3 days");
    wxauth::background::login_log::prune(&app.state.db, Duration::from_secs(2 * 24 * 3600)).await;
    assert_eq!(
        log_row_count(&app),
        1,
        "only the row from a minute ago is left"
    );
}

#[actix_web::test]
async fn status_shows_the_access_token_age_once_one_is_used() {
    let app = admin_app().await;
    let before = status(&app, Some(&bearer(ADMIN_TOKEN))).await;
    assert!(
        before.body["wechat"]["access_token_age_secs"].is_null(),
        "{}",
        before.raw
    );

    let token = app.login_ok("bob").await;
    let code = app
        .fake
        .mint_phone_code(&app.fake.openid_for("bob"), "13800138000");
    let bound = app.bind_phone_code(&code, &token).await;
    assert_eq!(bound.errno(), 0, "{}", bound.raw);

    let after = status(&app, Some(&bearer(ADMIN_TOKEN))).await;
    let age = after.body["wechat"]["access_token_age_secs"].as_u64();
    assert!(age.is_some_and(|a| a < 60), "{}", after.raw);
    assert!(
        !after.raw.contains("ACCESS_"),
        "the token itself is never shown"
    );
}

#[actix_web::test]
async fn the_status_page_shows_user_agents_without_invisible_or_reordering_characters() {
    let app = admin_app().await;
    let agent = "Mozilla/5.0 \u{202E}gnp.exe\u{200B}\u{FEFF} MicroMessenger";
    let code = app.code_for("vera").code;
    let reply = app
        .post_with(
            "auth/login_by_weixin",
            &json!({ "code": code }),
            &[("user-agent", agent)],
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let rows = login_log_rows(&app, 1).await;
    assert_eq!(rows.len(), 1);
    let cleaned = "Mozilla/5.0 gnp.exe MicroMessenger";
    assert_eq!(rows[0].user_agent, cleaned, "stored clean");

    let page = status(&app, Some(&bearer(ADMIN_TOKEN))).await;
    assert_eq!(page.status, 200, "{}", page.raw);
    assert_eq!(page.body["logins"]["recent"][0]["user_agent"], cleaned);
}
