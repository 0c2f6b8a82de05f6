//! The HTTP edge against an attacker: label values, log lines and per-client budgets stay bounded
//! whatever a client sends, and what it forges is not believed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use diesel::prelude::*;
use serde_json::{Value, json};
use wxauth::db::schema::login_log;

use crate::helpers::{Reply, TestApp, captured_logs, captured_logs_in_every_format};

const ADMIN_TOKEN: &str = "admin-token-for-edge-tests-0123456789";

/// Every `login_log.ip`, once at least `n` rows are there (rows land just after the answer).
async fn login_log_ips(app: &TestApp, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ips: Vec<String> = login_log::table
            .select(login_log::ip)
            .load(&mut app.db())
            .expect("query");
        if ips.len() >= n || Instant::now() > deadline {
            return ips;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A login whose request carries each of `forwarded_for` as its own `X-Forwarded-For` line.
async fn login_forwarded(app: &TestApp, user: &str, forwarded_for: &[&str]) -> Reply {
    let code = app.code_for(user).code;
    let mut req = app
        .http
        .post(format!("{}/auth/login_by_weixin", app.api))
        .insert_header(("content-type", "application/json"));
    for line in forwarded_for {
        req = req.append_header(("x-forwarded-for", *line));
    }
    let res = req
        .send_body(json!({ "code": code }).to_string())
        .await
        .expect("request");
    Reply::read(res).await.expect("body")
}

/// Sends raw bytes and reads one answer (head, then as many body bytes as it declares) without
/// waiting for the connection to close: the server may keep it open.
fn raw_exchange(host: &str, request: &[u8], within: Duration) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(within)).expect("timeout");
    stream.write_all(request).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..at]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if got.len() >= at + 4 + length {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("a status");
                let body =
                    serde_json::from_slice(&got[at + 4..at + 4 + length]).unwrap_or(Value::Null);
                return (status, head, body);
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "closed before a whole answer: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no whole answer within {within:?}: {e}"),
        }
    }
}

fn host_of(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

#[actix_web::test]
async fn made_up_methods_are_one_other_label_and_do_not_grow_metrics_or_logs() {
    let app = TestApp::spawn().await;
    let marker = format!("M{}", uuid::Uuid::new_v4().simple()).to_uppercase();
    for i in 0..200 {
        // A new 1 KB method per request, as an attacker would send.
        let method = format!("{marker}{i:04}{}", "X".repeat(1024));
        let method = Method::from_bytes(method.as_bytes()).expect("a method token");
        let res = app
            .http
            .request(
                method,
                format!("{}/oapro/wx/auth/login_by_weixin", app.base),
            )
            .send()
            .await
            .expect("request");
        assert!(
            res.status().is_client_error() || res.status().is_success(),
            "{}",
            res.status()
        );
    }
    let metrics = app.get_abs("/metrics").await.raw;
    assert!(
        metrics.len() < 32 * 1024,
        "metrics grew to {} bytes",
        metrics.len()
    );
    assert!(
        !metrics.contains(&marker),
        "a made-up method became a label"
    );
    assert!(
        metrics.contains(r#"method="other""#),
        "made-up methods are counted as other: {metrics}"
    );
    assert!(
        !captured_logs_in_every_format()
            .iter()
            .any(|l| l.contains(&marker)),
        "a made-up method reached the log"
    );
}

#[actix_web::test]
async fn a_forged_forwarded_for_line_before_the_proxys_own_line_is_not_believed() {
    let app = TestApp::builder()
        .config(|c| c.limits.login_per_ip = 5)
        .trust_forwarded_for()
        .spawn()
        .await;
    // As HAProxy forwards a client that sent its own header: the client's line first (a new
    // forged address each time), then the proxy's line with the address it saw.
    for i in 0..5 {
        let forged = format!("198.18.{i}.{}", i + 1);
        let r = login_forwarded(&app, &format!("xff{i}"), &[&forged, "203.0.113.77"]).await;
        assert_eq!(r.errno(), 0, "{}", r.raw);
    }
    let limited = login_forwarded(&app, "xff-last", &["198.18.99.99", "203.0.113.77"]).await;
    assert_eq!(
        limited.errno(),
        720,
        "the per-IP limit holds: {}",
        limited.raw
    );
    // The refused attempt is not a login attempt: no row.
    let ips = login_log_ips(&app, 5).await;
    assert_eq!(ips.len(), 5, "{ips:?}");
    assert!(
        ips.iter().all(|ip| ip == "203.0.113.77"),
        "login_log records the real client: {ips:?}"
    );
    let row = app
        .user_by_openid(&app.fake.openid_for("xff0"))
        .expect("row");
    assert_eq!(row.last_login_ip, "203.0.113.77");
}

#[actix_web::test]
async fn ipv6_clients_share_one_budget_per_64_through_a_trusted_proxy() {
    let app = TestApp::builder()
        .config(|c| c.limits.login_per_ip = 3)
        .trust_forwarded_for()
        .spawn()
        .await;
    for host in 1..=3 {
        let from = format!("2001:db8:7:7::{host}");
        let r = login_forwarded(&app, &format!("v6-{host}"), &[&from]).await;
        assert_eq!(r.errno(), 0, "{}", r.raw);
    }
    let same_64 = login_forwarded(&app, "v6-4", &["2001:db8:7:7:ffff:1:2:3"]).await;
    assert_eq!(
        same_64.errno(),
        720,
        "a new address in the same /64 is the same client: {}",
        same_64.raw
    );
    let next_64 = login_forwarded(&app, "v6-5", &["2001:db8:7:8::1"]).await;
    assert_eq!(next_64.errno(), 0, "{}", next_64.raw);
    let row = app
        .user_by_openid(&app.fake.openid_for("v6-1"))
        .expect("row");
    assert_eq!(
        row.last_login_ip, "2001:db8:7:7::1",
        "the full address is recorded; only the budget is per /64"
    );
}

#[actix_web::test]
async fn admin_token_guessing_is_refused_with_429_after_ten_wrong_tokens() {
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .trust_forwarded_for()
        .spawn()
        .await;
    let url = format!("{}/admin/api/status", app.base);
    let guesser = "192.0.2.66";
    let from = |ip: &'static str, token: &str| {
        vec![
            ("x-forwarded-for".to_string(), ip.to_string()),
            ("authorization".to_string(), format!("Bearer {token}")),
        ]
    };
    let get = |headers: Vec<(String, String)>| {
        let app = &app;
        let url = url.clone();
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            app.get_with(&url, &headers).await
        }
    };
    for i in 0..10 {
        let wrong = get(from(guesser, &format!("guess-{i:02}-0123456789abcdef"))).await;
        assert_eq!(wrong.status, 403, "guess {i}: {}", wrong.raw);
    }
    let refused = get(from(guesser, "guess-11-0123456789abcdef")).await;
    assert_eq!(refused.status, 429, "{}", refused.raw);
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        refused.body["error"],
        "too many wrong admin tokens from this address; try again later"
    );
    let right = get(from(guesser, ADMIN_TOKEN)).await;
    assert_eq!(
        right.status, 429,
        "a blocked client cannot tell a right token from a wrong one"
    );
    let other = get(from("192.0.2.67", ADMIN_TOKEN)).await;
    assert_eq!(other.status, 200, "another client is served: {}", other.raw);

    let lines = captured_logs()
        .into_iter()
        .filter(|l| l.contains(guesser) && l.contains("wrong"))
        .count();
    assert!(
        lines <= 2,
        "wrong tokens are logged in aggregate, not one line each ({lines} lines)"
    );
}

#[actix_web::test]
async fn wrong_tokens_from_ten_thousand_addresses_never_lock_the_right_token_out() {
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .trust_forwarded_for()
        .spawn()
        .await;
    let url = format!("{}/admin/api/status", app.base);
    let get = |ip: String, token: String| {
        let app = &app;
        let url = url.clone();
        async move {
            let auth = format!("Bearer {token}");
            app.get_with(&url, &[("x-forwarded-for", &ip), ("authorization", &auth)])
                .await
                .status
        }
    };
    // A guesser spends its own budget before the flood.
    for _ in 0..10 {
        let status = get("192.0.2.99".into(), "wrong-token-0123456789abcdef".into()).await;
        assert_eq!(status, 403);
    }
    // 10 050 /64s of one /48 and 200 IPv4 addresses, one wrong token each, 32 at a time.
    let guessers: Vec<String> = (0..10_050u32)
        .map(|n| format!("2001:db8:42:{n:x}::1"))
        .chain((0..200u32).map(|n| format!("198.18.{}.{}", n / 250, n % 250 + 1)))
        .collect();
    let mut refused = 0;
    for chunk in guessers.chunks(32) {
        let statuses = futures_util::future::join_all(
            chunk
                .iter()
                .map(|ip| get(ip.clone(), "wrong-token-0123456789abcdef".into())),
        )
        .await;
        for status in statuses {
            assert!(status == 403 || status == 429, "{status}");
            refused += usize::from(status == 429);
        }
    }
    assert!(refused > 0, "untracked guessers are told to wait");

    // The operator, from anywhere else and from inside that /48, is served.
    for operator in ["203.0.113.5", "2001:db8:77::1", "2001:db8:42:ffff::9"] {
        assert_eq!(
            get(operator.into(), ADMIN_TOKEN.into()).await,
            200,
            "{operator}"
        );
    }
    // A guesser over its own budget stays refused, right token or not.
    assert_eq!(get("192.0.2.99".into(), ADMIN_TOKEN.into()).await, 429);
}

/// A dev-mode request as a browser page would send it, with this `Host`: the status.
async fn with_host(app: &TestApp, method_and_path: &str, host_header: &str) -> (u16, Value) {
    let peer = host_of(app);
    let request = format!(
        "{method_and_path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    let (status, _, body) = actix_web::rt::task::spawn_blocking(move || {
        raw_exchange(&peer, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .expect("exchange");
    (status, body)
}

#[actix_web::test]
async fn dev_mode_answers_only_local_host_names_and_production_any() {
    let dev = TestApp::builder().dev_mode().spawn().await;
    let port = host_of(&dev).rsplit(':').next().expect("port").to_string();
    let mint = "POST /__wechat/fake/code?user=alice";
    let before = dev.count_users();
    for rebound in [
        "evil.example",
        &format!("evil.example:{port}"),
        "127.0.0.1.nip.io",
    ] {
        for target in [mint, "GET /oapro/wx/home/index", "GET /healthz"] {
            let (status, _) = with_host(&dev, target, rebound).await;
            assert_eq!(status, 421, "{target} with Host {rebound}");
        }
    }
    assert_eq!(dev.count_users(), before, "nothing was done for the page");
    let (status, body) = with_host(&dev, mint, &format!("127.0.0.1:{port}")).await;
    assert_eq!(status, 200, "the fake answers locally: {body}");
    for local in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
    ] {
        let (status, body) = with_host(&dev, "GET /oapro/wx/home/index", &local).await;
        assert_eq!(
            (status, body["errno"].as_i64()),
            (200, Some(0)),
            "Host {local}"
        );
    }

    let production = TestApp::spawn().await;
    let (status, body) =
        with_host(&production, "GET /oapro/wx/home/index", "api.example.com").await;
    assert_eq!(
        (status, body["errno"].as_i64()),
        (200, Some(0)),
        "production answers any Host"
    );
}

#[actix_web::test]
async fn a_declared_body_over_the_limit_is_refused_without_waiting_for_it() {
    let app = TestApp::spawn().await;
    let host = host_of(&app);
    let request = format!(
        "POST /oapro/wx/auth/login_by_weixin HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    );
    let started = Instant::now();
    let (status, _, body) = actix_web::rt::task::spawn_blocking(move || {
        raw_exchange(&host, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .expect("exchange");
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(body["errno"], 402, "{body}");
    assert_eq!(
        body["data"]["reason"],
        "request body is larger than 16384 bytes"
    );
    assert!(
        took < Duration::from_millis(1000),
        "answered in {took:?}, not at the deadline"
    );
}

#[actix_web::test]
async fn every_answer_says_nosniff() {
    let app = TestApp::builder()
        .config(|c| c.http.metrics_bind_addr = Some(([127, 0, 0, 1], 0).into()))
        .spawn()
        .await;
    let token = app.login_ok("sniff").await;
    let metrics_base = app.metrics_base.clone().expect("metrics listener");
    let answers = [
        ("healthz", app.get_abs("/healthz").await),
        ("readyz", app.get_abs("/readyz").await),
        ("envelope", app.get("user/index", Some(&token)).await),
        ("unlogin", app.get("user/index", None).await),
        ("unknown api", app.get("no/such/api", None).await),
        ("unmatched", app.get_abs("/no-such-path").await),
        (
            "bad body",
            app.post_raw("auth/login_by_weixin", "{", None).await,
        ),
        ("admin off", app.get_abs("/admin/").await),
        (
            "metrics",
            app.get_with(&format!("{metrics_base}/metrics"), &[]).await,
        ),
        (
            "metrics listener 404",
            app.get_with(&format!("{metrics_base}/other"), &[]).await,
        ),
    ];
    for (what, reply) in answers {
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{what}: HTTP {} {:?}",
            reply.status,
            reply.headers
        );
    }
}

#[actix_web::test]
async fn admin_paths_the_file_server_cannot_parse_are_a_plain_404() {
    let app = TestApp::builder().admin_token(ADMIN_TOKEN).spawn().await;
    let page = app.get_with(&format!("{}/admin/", app.base), &[]).await;
    assert_eq!(page.status, 200, "the page itself is served");
    for path in [
        "/admin/.env",
        "/admin/.git/config",
        "/admin/*",
        "/admin/x:",
        "/admin/a%3Cb%3E",
        "/admin/a%5Cb",
        "/admin/%FF",
        "/admin/%2e%2e/Cargo.toml",
    ] {
        let reply = app.get_with(&format!("{}{path}", app.base), &[]).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.raw);
        assert_eq!(reply.body, json!({ "error": "not found" }), "{path}");
        assert!(!reply.raw.contains("segment"), "{path}: {}", reply.raw);
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
}

#[actix_web::test]
async fn a_flood_of_missed_deadlines_writes_one_line_and_then_a_count() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("slowpoke").await;
    let host = host_of(&app);
    let kind = "/oapro/wx/auth/profile missed its 2800 ms deadline";
    let count_lines = || captured_logs().iter().filter(|l| l.contains(kind)).count();
    let before = count_lines();
    // Twenty slow bodies: each declares 100 bytes and sends none, so each misses the deadline.
    let request = format!(
        "POST /oapro/wx/auth/profile HTTP/1.1\r\nHost: {host}\r\nX-OA-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let host = host.clone();
            let request = request.clone();
            std::thread::spawn(move || {
                raw_exchange(&host, request.as_bytes(), Duration::from_secs(10))
            })
        })
        .collect();
    for handle in slow {
        let (status, _, body) = actix_web::rt::task::spawn_blocking(move || handle.join())
            .await
            .expect("join")
            .expect("thread");
        assert_eq!(status, 200);
        assert_eq!(body["errno"], 502, "{body}");
    }
    let during = count_lines() - before;
    assert!(
        during <= 1,
        "20 missed deadlines wrote {during} lines, not one"
    );
    // The rest are reported as a count once the interval is over.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let summary = captured_logs()
            .into_iter()
            .find(|l| l.contains(kind) && l.contains("more in the last 10 s"));
        if let Some(line) = summary {
            assert!(line.starts_with("ERROR"), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "no summary line with the count");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn errcodes_wechat_does_not_document_are_one_other_label() {
    let app = TestApp::spawn().await;
    for (i, errcode) in [61_234_567, 99_999_991, 12_345].into_iter().enumerate() {
        app.fake
            .set_fault(wxauth::dev::fake_wechat::Fault::Errcode { errcode });
        assert_eq!(app.login(&format!("odd{i}")).await.errno(), 716);
    }
    let metrics = app.get_abs("/metrics").await.raw;
    assert!(
        metrics.contains(&format!(
            r#"wxauth_wechat_errors_total{{app="{}",errcode="other"}} 3"#,
            crate::helpers::TEST_APPID
        )),
        "{metrics}"
    );
    for errcode in ["61234567", "99999991", "12345"] {
        assert!(
            !metrics.contains(errcode),
            "errcode {errcode} became a label"
        );
    }
}
