//! Start-up: the database is created and migrated by the server itself, safely when two
//! instances start at once; bad configuration stops the binary with the variable's name; and
//! no secret ever reaches a response or a log line.

use std::process::Command;

use diesel::prelude::*;
use serde_json::json;
use wxauth::db::setup;

use crate::helpers::{TestApp, captured_logs, pg_url};

struct DropDb(String);

impl Drop for DropDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&pg_url("postgres")) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.0
            ))
            .execute(&mut conn);
        }
    }
}

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
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wxauth"))
            .env(var, value)
            .env("DATABASE_URL", pg_url("wxauth_never_created"))
            .output()
            .expect("binary runs");
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

#[actix_web::test]
async fn no_secret_reaches_a_response_or_a_log_line() {
    let app = TestApp::spawn().await;
    let login = app.login("alice").await;
    let token = login.token();
    let index = app.get("user/index", Some(&token)).await;
    let bad = app
        .post("auth/login_by_weixin", &json!({ "code": "0unknown" }), None)
        .await;
    let logout = app.post("auth/logout", &json!({}), Some(&token)).await;
    let dead = app.get("user/index", Some(&token)).await;

    let session_key = app
        .fake
        .session_key_of(&app.fake.openid_for("alice"))
        .expect("WeChat issued a session_key");
    let secrets = [
        session_key.as_str(),
        app.wechat_secret.as_str(),
        app.jwt_secret.as_str(),
    ];
    for reply in [&login, &index, &bad, &logout, &dead] {
        for secret in secrets {
            assert!(!reply.raw.contains(secret), "a response holds a secret");
        }
    }
    let logs = captured_logs();
    assert!(
        logs.iter().any(|l| l.contains("login ok")),
        "logging was captured"
    );
    for line in &logs {
        for secret in secrets.iter().chain([&token.as_str()]) {
            assert!(
                !line.contains(secret),
                "a log line holds a secret: {line:.60}"
            );
        }
    }
}
