//! Start-up: the database is created and migrated by the server itself, safely when two
//! instances start at once; bad configuration stops the binary with the variable's name; and
//! no secret ever reaches a response or a log line.

use diesel::prelude::*;
use serde_json::json;
use wxauth::db::setup;

use crate::binary::{BinaryApp, free_port};
use crate::database::{DropDb, pg_url};
use crate::helpers::{TestApp, captured_logs, captured_logs_in_every_format};

#[test]
fn two_instances_preparing_one_new_database_at_once_both_succeed() {
    let name = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(name.clone());
    let url = pg_url(&name);

    let handles: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || setup::prepare(&url, 1).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().expect("thread").expect("prepare succeeds");
    }

    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = PgConnection::establish(&url).expect("db exists");
    let tables: N =
        diesel::sql_query("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'wx_user'")
            .get_result(&mut conn)
            .expect("query");
    assert_eq!(tables.n, 1);
    let runs: N = diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
        .get_result(&mut conn)
        .expect("query");
    let embedded =
        diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&setup::MIGRATIONS)
            .expect("embedded migrations")
            .len();
    assert_eq!(runs.n as usize, embedded, "each migration ran once");
}

#[test]
fn invalid_configuration_stops_the_binary_naming_the_variable() {
    for (var, value) in [
        ("BIND_ADDR", "nowhere"),
        ("TOKEN_TTL_SECS", "forever"),
        ("DB_POOL_SIZE", "0"),
        ("TOKEN_HEADER", "X OA Token"),
    ] {
        let out = BinaryApp::builder()
            .env(var, value)
            .env("DATABASE_URL", pg_url("wxauth_never_created"))
            .run();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

/// The binary's exit code and stderr for this environment (production unless `dev`).
fn start_with(pairs: &[(&str, &str)], production: bool) -> (Option<i32>, String) {
    let mut binary = BinaryApp::builder()
        // Nothing listens there: a start that gets past the configuration ends at the database.
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/wxauth?connect_timeout=2",
        )
        .env("BIND_ADDR", format!("127.0.0.1:{}", free_port()));
    if production {
        binary = binary.envs(&[
            ("WECHAT_APPID", "wx1234567890abcdef"),
            ("WECHAT_SECRET", "app-secret-of-the-test"),
            ("JWT_SECRET", "jwt-secret-of-the-test-0123456789abcdef"),
        ]);
    }
    let out = binary.envs(pairs).run();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unsafe_settings_stop_the_binary_saying_why_and_what_to_set() {
    for (var, value, why, what) in [
        (
            "TRUSTED_PROXIES",
            "0.0.0.0/0",
            "every address",
            "10.0.0.0/8",
        ),
        (
            "TRUSTED_PROXIES",
            "127.0.0.1,::/0",
            "every address",
            "10.0.0.0/8",
        ),
        (
            "WECHAT_API_BASE",
            "http://api.weixin.qq.com",
            "clear text",
            "https://",
        ),
        (
            "WECHAT_API_BASE",
            "http://10.1.2.3:8080/",
            "clear text",
            "https://",
        ),
        (
            "WECOM_API_BASE",
            "http://qyapi.weixin.qq.com",
            "clear text",
            "https://",
        ),
        ("TOKEN_HEADER", "Authorization", "proxy", "set another name"),
        ("TOKEN_HEADER", "User-Agent", "browser", "set another name"),
        (
            "TOKEN_HEADER",
            "X-Forwarded-Host",
            "proxy",
            "set another name",
        ),
        (
            "TOKEN_HEADER",
            "Accept-Language",
            "proxy",
            "set another name",
        ),
        ("TOKEN_HEADER", "Referer", "proxy", "set another name"),
    ] {
        let (code, stderr) = start_with(&[(var, value)], true);
        assert_eq!(code, Some(2), "{var}={value}: {stderr}");
        for needle in [var, why, what] {
            assert!(
                stderr.contains(needle),
                "{var}={value}: {needle:?} in {stderr}"
            );
        }
        assert!(!stderr.contains("app-secret-of-the-test"), "{stderr}");
    }
    // Dev mode's upstream is its own fake, never configured: WECHAT_API_BASE is not read there.
    let (code, stderr) = start_with(&[("WECHAT_API_BASE", "http://api.weixin.qq.com")], false);
    assert_eq!(code, Some(1), "dev mode ends at the database: {stderr}");
}

#[test]
fn placeholder_secrets_are_warned_about_once_at_start_without_their_value() {
    let (_, stderr) = start_with(
        &[
            ("JWT_SECRET", &"x".repeat(40)),
            (
                "WECHAT_SECRET",
                "the-appsecret-from-the-mini-program-admin-console",
            ),
            ("ADMIN_TOKEN", "admin-token-of-the-startup-test"),
            ("RUST_LOG", "warn"),
        ],
        true,
    );
    for var in ["JWT_SECRET", "WECHAT_SECRET"] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(&format!("{var} is a placeholder")))
            .collect();
        assert_eq!(lines.len(), 1, "{var}: {stderr}");
    }
    assert!(!stderr.contains("ADMIN_TOKEN is a placeholder"), "{stderr}");
    assert!(!stderr.contains(&"x".repeat(40)), "{stderr}");
    assert!(!stderr.contains("the-appsecret-from"), "{stderr}");
}

/// `CONTEXT_PATH=` (empty) would silently mean the default `/oapro` to a reader expecting the
/// root: it stops the start, saying what to write instead; `CONTEXT_PATH=/` is litemall's root.
#[actix_web::test]
async fn an_empty_context_path_is_refused_and_a_slash_serves_the_api_at_wx() {
    for empty in ["", " "] {
        let out = BinaryApp::builder()
            .env("CONTEXT_PATH", empty)
            .env("DATABASE_URL", pg_url("wxauth_never_created"))
            .run();
        assert_eq!(out.status.code(), Some(2), "{empty:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("CONTEXT_PATH") && stderr.contains("CONTEXT_PATH=/"),
            "{stderr}"
        );
    }

    let app = BinaryApp::builder()
        .env("DB_POOL_SIZE", "2")
        .env("CONTEXT_PATH", "/")
        .start()
        .await;
    let at_wx = app.get("/wx/home/index", &[]).await;
    assert_eq!(at_wx.status, 200, "the API at /wx/");
    assert_eq!(
        app.get("/oapro/wx/home/index", &[]).await.status,
        404,
        "and not under /oapro"
    );
}

#[actix_web::test]
async fn no_secret_reaches_a_response_or_a_log_line() {
    let app = TestApp::builder().wecom().spawn().await;
    let login = app.login("alice").await;
    let token = login.token();
    let index = app.get("user/index", Some(&token)).await;
    let bad = app
        .post("auth/login_by_weixin", &json!({ "code": "0unknown" }), None)
        .await;
    // Inside WeCom too: the corp's token fetched with the corpsecret, a staff session_key.
    let staff = app.login_wecom("alice-at-the-office").await;
    let staff_token = staff.token();
    let code = app.wecom_code("alice-at-the-office");
    let link = app
        .post("auth/link_wecom", &json!({ "code": code }), Some(&token))
        .await;
    let bad_staff = app
        .post("auth/login_by_wecom", &json!({ "code": "qunknown" }), None)
        .await;
    let logout = app.post("auth/logout", &json!({}), Some(&token)).await;
    let dead = app.get("user/index", Some(&token)).await;

    let session_key = app
        .fake
        .session_key_of(&app.fake.openid_for("alice"))
        .expect("WeChat issued a session_key");
    let staff_key = app
        .fake
        .wecom()
        .session_key_of(crate::helpers::TEST_CORPID, "alice-at-the-office")
        .expect("WeCom issued a session_key");
    let corpsecret = app.corpsecret();
    let secrets = [
        session_key.as_str(),
        staff_key.as_str(),
        corpsecret.as_str(),
        app.wechat_secret.as_str(),
        app.jwt_secret.as_str(),
    ];
    assert_eq!(link.errno(), 0, "{}", link.raw);
    for reply in [
        &login, &index, &bad, &staff, &link, &bad_staff, &logout, &dead,
    ] {
        for secret in secrets {
            assert!(!reply.raw.contains(secret), "a response holds a secret");
        }
    }
    let logs = captured_logs_in_every_format();
    assert!(
        logs.iter()
            .any(|l| l.contains("login ok") && l.starts_with('{')),
        "logging was captured, as JSON too"
    );
    for line in &logs {
        assert!(
            !line.contains("alice-at-the-office"),
            "a userid unmasked: {line:.60}"
        );
        for secret in secrets
            .iter()
            .chain([&token.as_str(), &staff_token.as_str()])
        {
            assert!(
                !line.contains(secret),
                "a log line holds a secret: {line:.60}"
            );
        }
    }
}

#[actix_web::test]
async fn every_request_gets_one_log_line_with_its_id_route_errno_and_latency() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("carol").await;

    let mut given = app
        .http
        .get(format!("{}/user/index", app.api))
        .insert_header(("X-Request-Id", "client-chose-this-1"))
        .insert_header(("X-OA-Token", token.as_str()))
        .send()
        .await
        .expect("request");
    assert_eq!(given.status().as_u16(), 200);
    assert_eq!(
        given
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-chose-this-1")
    );
    let _ = given.body().await;
    let generated = app
        .http
        .get(format!("{}/user/index?code=secret-looking-query", app.api))
        .insert_header(("X-Request-Id", "bad id with spaces"))
        .send()
        .await
        .expect("request");
    let id = generated
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an id")
        .to_string();
    assert_eq!(id.len(), 16, "a fresh id replaces an unusable one");

    let logs = captured_logs();
    let line = |needle: &str| logs.iter().find(|l| l.contains(needle)).cloned();
    let first = line("client-chose-this-1").expect("a line for the first request");
    assert!(
        first.contains("GET /oapro/wx/user/index 200 errno=0"),
        "{first}"
    );
    assert!(first.ends_with("ms"), "{first}");
    let second = line(&id).expect("a line for the second request");
    assert!(second.contains("errno=501"), "{second}");
    assert!(
        !second.contains("secret-looking-query"),
        "no query strings in logs"
    );
    assert!(
        logs.iter().all(|l| !l.contains(&token)),
        "no token in any log line"
    );
}

/// Runs the binary with exactly these variables (and `PATH`), from a directory without a
/// `.env`, against a database that is not there. A binary still running after 20 s is killed:
/// its exit code is then `None`.
fn run_with_only(env: &[(&str, &str)]) -> std::process::Output {
    run_with_dotenv(env, None)
}

/// The same, from a directory whose `.env` holds `dotenv` (none when `None`).
fn run_with_dotenv(env: &[(&str, &str)], dotenv: Option<&str>) -> std::process::Output {
    let empty = std::env::temp_dir().join(format!("wxauth-env-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&empty).expect("mkdir");
    if let Some(text) = dotenv {
        std::fs::write(empty.join(".env"), text).expect("write .env");
    }
    let out = BinaryApp::builder()
        .current_dir(&empty)
        // Nothing listens there: a start that gets past the configuration fails with exit 1.
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/wxauth_never_created",
        )
        .envs(env)
        .run();
    let _ = std::fs::remove_dir_all(&empty);
    out
}

#[test]
fn rust_log_in_dot_env_filters_the_log_as_in_the_environment() {
    // A start that fails on its configuration: the error goes to the log (unless filtered out)
    // and, always, to stderr as `wxauth: ...`.
    let bad = [("BIND_ADDR", "not-an-address")];
    let logged = run_with_dotenv(&bad, Some("DB_POOL_SIZE=4\n"));
    assert_eq!(logged.status.code(), Some(2), "{logged:?}");
    let stderr = String::from_utf8_lossy(&logged.stderr);
    assert!(
        stderr.contains("ERROR"),
        "logged at the default level: {stderr}"
    );

    let quiet = run_with_dotenv(&bad, Some("RUST_LOG=off\n"));
    assert_eq!(quiet.status.code(), Some(2), "{quiet:?}");
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(
        stderr.contains("wxauth: ") && stderr.contains("BIND_ADDR"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ERROR"),
        "RUST_LOG=off from .env: {stderr}"
    );
}

#[test]
fn dev_mode_refuses_to_listen_beyond_loopback() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let out = run_with_only(&[("BIND_ADDR", addr)]);
        assert_eq!(out.status.code(), Some(2), "{addr}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for says in [
            "BIND_ADDR",
            "not a loopback address",
            "lets anyone log in as any user",
            "WECHAT_APPID",
            "ALLOW_DEV_MODE_ON_NETWORK=1",
        ] {
            assert!(stderr.contains(says), "{addr}: {says}: {stderr}");
        }
    }
    let junk = run_with_only(&[
        ("BIND_ADDR", "0.0.0.0:0"),
        ("ALLOW_DEV_MODE_ON_NETWORK", "true"),
    ]);
    assert_eq!(junk.status.code(), Some(2), "{junk:?}");
    assert!(String::from_utf8_lossy(&junk.stderr).contains("ALLOW_DEV_MODE_ON_NETWORK"));
}

#[test]
fn production_refuses_a_missing_or_short_jwt_secret() {
    let production = [
        ("WECHAT_APPID", "wx1234567890abcdef"),
        ("WECHAT_SECRET", "app-secret-of-the-test"),
        ("BIND_ADDR", "127.0.0.1:0"),
    ];
    let short = "0123456789abcdef0123456789abcde"; // 31 bytes
    for jwt in [None, Some(short)] {
        let mut env = production.to_vec();
        if let Some(jwt) = jwt {
            env.push(("JWT_SECRET", jwt));
        }
        let out = run_with_only(&env);
        assert_eq!(out.status.code(), Some(2), "{jwt:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("JWT_SECRET"), "{stderr}");
        assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
        assert!(
            !stderr.contains(short),
            "the secret is never echoed: {stderr}"
        );
    }
}

#[test]
fn a_bad_apps_file_stops_the_binary_naming_the_entry_and_the_key() {
    let dir = std::env::temp_dir().join(format!("wxauth-apps-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("apps.toml");
    std::fs::write(
        &path,
        "[[miniprogram]]\nappid = \"wx1111111111111111\"\nsecret = \"first-app-secret-value\"\n\n\
         [[miniprogram]]\nappid = \"wx2222222222222222\"\nsecret_env = \"SHOP_SECRET\"\n",
    )
    .expect("write");
    let path = path.to_string_lossy().to_string();
    let out = run_with_only(&[
        ("WECHAT_APPS_FILE", path.as_str()),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("BIND_ADDR", "127.0.0.1:0"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WECHAT_APPS_FILE"), "{stderr}");
    assert!(
        stderr.contains("[[miniprogram]] 2: secret_env: the variable SHOP_SECRET is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("first-app-secret-value"), "{stderr}");

    // With the variable set, the configuration is good: the start gets as far as the database
    // (not there: exit 1).
    let out = run_with_only(&[
        ("WECHAT_APPS_FILE", path.as_str()),
        ("SHOP_SECRET", "shop-secret-value"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("BIND_ADDR", "127.0.0.1:0"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in ["first-app-secret-value", "shop-secret-value"] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reminder_templates_in_the_apps_file_are_checked_and_the_one_app_variable_is_refused_beside_it() {
    let dir = std::env::temp_dir().join(format!("wxauth-apps-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("apps.toml");
    let file = |shop_template: &str| {
        format!(
            "[[miniprogram]]\nappid = \"wx1111111111111111\"\nsecret = \"first-app-secret-value\"\n\
             reminder_template = \"tmpl-oa\"\n\n\
             [[miniprogram]]\nappid = \"wx2222222222222222\"\nsecret = \"shop-secret-value\"\n\
             reminder_template = \"{shop_template}\"\n"
        )
    };
    let path_text = path.to_string_lossy().to_string();
    let production = [
        ("WECHAT_APPS_FILE", path_text.as_str()),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("BIND_ADDR", "127.0.0.1:0"),
    ];

    std::fs::write(&path, file("")).expect("write");
    let out = run_with_only(&production);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WECHAT_APPS_FILE"), "{stderr}");
    assert!(
        stderr.contains("[[miniprogram]] 2: reminder_template: empty"),
        "{stderr}"
    );
    for secret in ["first-app-secret-value", "shop-secret-value"] {
        assert!(!stderr.contains(secret), "{stderr}");
    }

    // A good file with the one-app variable beside it: which app it was meant for is not
    // guessed.
    std::fs::write(&path, file("tmpl-shop")).expect("write");
    let mut both = production.to_vec();
    both.push(("REMINDER_TEMPLATE_ID", "tmpl-oa"));
    let out = run_with_only(&both);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for says in [
        "REMINDER_TEMPLATE_ID",
        "WECHAT_APPS_FILE",
        "reminder_template",
        "wx1111111111111111",
    ] {
        assert!(stderr.contains(says), "{says}: {stderr}");
    }

    // Without it, the configuration is good: the start gets as far as the database (not there:
    // exit 1).
    let out = run_with_only(&production);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let _ = std::fs::remove_dir_all(dir);
}
