//! The binary itself: SIGTERM lets requests in flight finish, then it exits cleanly.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::{Binary, free_port};
use crate::helpers::PG_SERVER;

struct DropDb(String);

impl Drop for DropDb {
    fn drop(&mut self) {
        use diesel::prelude::*;
        if let Ok(mut conn) = PgConnection::establish(&format!("{PG_SERVER}/postgres")) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.0
            ))
            .execute(&mut conn);
        }
    }
}

fn curl_json(args: &[&str]) -> Value {
    let out = std::process::Command::new("curl")
        .arg("-s")
        .args(args)
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn post_json(url: &str, body: &Value) -> Value {
    curl_json(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        &body.to_string(),
        url,
    ])
}

#[test]
fn sigterm_finishes_the_login_in_flight_then_exits_cleanly() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let env: HashMap<String, String> = [
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("127.0.0.1:{}", free_port())),
        ("DB_POOL_SIZE", "2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut bin = Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env);
    let base = bin.base.clone();
    assert!(
        bin.log_text().contains("DEV MODE"),
        "zero configuration is loudly dev mode"
    );

    let minted = curl_json(&[
        "-X",
        "POST",
        &format!("{base}/__wechat/fake/code?user=alice"),
    ]);
    let code = minted["code"].as_str().expect("code").to_string();
    post_json(
        &format!("{base}/__wechat/fake/fault"),
        &json!({ "mode": "slow", "delay_ms": 1200 }),
    );
    let login = std::thread::spawn(move || {
        post_json(
            &format!("{base}/oapro/wx/auth/login_by_weixin"),
            &json!({ "code": code }),
        )
    });
    std::thread::sleep(Duration::from_millis(400));

    bin.signal("TERM");

    let answer = login.join().expect("login thread");
    assert_eq!(answer["errno"], 0, "the login in flight finished: {answer}");
    assert_eq!(
        bin.wait_exit(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        bin.log_text()
    );
    let log = bin.log_text();
    assert!(log.contains("graceful shutdown"), "{log}");
    assert!(log.contains("wxauth stopped"), "{log}");
}

#[test]
fn sigterm_writes_the_login_log_rows_not_yet_flushed() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let env: HashMap<String, String> = [
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("127.0.0.1:{}", free_port())),
        ("DB_POOL_SIZE", "2".to_string()),
        // No periodic write during the test: only the shutdown can write the rows.
        ("LOGIN_LOG_FLUSH_MS", "60000".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut bin = Binary::start(env!("CARGO_BIN_EXE_wxauth"), &env);
    let base = bin.base.clone();
    for user in ["log-a", "log-b", "log-c"] {
        let minted = curl_json(&[
            "-X",
            "POST",
            &format!("{base}/__wechat/fake/code?user={user}"),
        ]);
        let code = minted["code"].as_str().expect("code").to_string();
        let answer = post_json(
            &format!("{base}/oapro/wx/auth/login_by_weixin"),
            &json!({ "code": code }),
        );
        assert_eq!(answer["errno"], 0, "{answer}");
    }

    bin.signal("TERM");
    assert_eq!(
        bin.wait_exit(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        bin.log_text()
    );

    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = PgConnection::establish(&format!("{PG_SERVER}/{db}")).expect("connect");
    let rows = diesel::sql_query("SELECT count(*) AS n FROM login_log WHERE errno = 0")
        .get_result::<N>(&mut conn)
        .expect("count")
        .n;
    assert_eq!(rows, 3, "log:\n{}", bin.log_text());
}

#[test]
fn started_from_another_directory_the_release_layout_still_serves_the_status_page() {
    let db = format!("wxauth_t_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = DropDb(db.clone());
    let elsewhere =
        std::env::temp_dir().join(format!("wxauth-cwd-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let env: HashMap<String, String> = [
        ("DATABASE_URL", format!("{PG_SERVER}/{db}")),
        ("BIND_ADDR", format!("127.0.0.1:{}", free_port())),
        ("DB_POOL_SIZE", "2".to_string()),
        ("ADMIN_TOKEN", "admin-token-for-the-cwd-test".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bin = Binary::start_in(env!("CARGO_BIN_EXE_wxauth"), &env, Some(&elsewhere));

    let page = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("{}/admin/", bin.base),
        ])
        .output()
        .expect("curl runs");
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(page.ends_with("\n200"), "{page}");
    assert!(page.contains("<html"), "the page itself: {page}");
    let log = bin.log_text();
    assert!(!log.contains("admin page: no index.html"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    let _ = std::fs::remove_dir_all(&elsewhere);
}
