//! Hostile input against every endpoint: generated (proptest) and hand-picked malformed bodies,
//! headers, query strings and tokens. Whatever arrives: no 5xx, no panic, no hang, and an errno
//! that fits (401/402/501, or WeChat's verdict on a made-up code); nothing stored is disturbed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// One mini-program route.
struct Route {
    method: String,
    /// Under the API root, without the leading `/`.
    path: String,
    needs_token: bool,
}

/// Every mini-program route, from the router's own table.
fn routes() -> Vec<Route> {
    wxauth::api::operations()
        .into_iter()
        .map(|op| Route {
            method: op.method.to_string(),
            path: op.path.trim_start_matches('/').to_string(),
            needs_token: op.auth,
        })
        .collect()
}

/// Routes that end the caller's session (or account): fuzzed only without a valid token.
const ENDS_SESSION: &[&str] = &[
    "auth/logout",
    "auth/logout_all",
    "auth/refresh",
    "auth/deactivate",
];

/// Errnos that fit hostile input: argument errors, not logged in, and the verdicts WeChat (the
/// fake) gives on made-up codes. 0 for endpoints that accept anything (public reads).
const FITTING: &[i64] = &[0, 401, 402, 501, 705, 710, 711, 717, 718, 719];

/// A wxauth on its own thread and actix system, so proptest's synchronous cases can talk to it
/// over plain sockets; stopped (and its database dropped) when the test ends.
struct Background {
    host: String,
    token: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start() -> Background {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let app = TestApp::builder()
                    .config(|c| {
                        c.limits.login_per_ip = 0;
                        c.limits.login_per_openid = 0;
                        c.limits.bindphone_per_user = 0;
                    })
                    .spawn()
                    .await;
                let token = app.login_ok("alice").await;
                let host = app.base.trim_start_matches("http://").to_string();
                let _ = ready_tx.send((host, token));
                while stop_rx.try_recv().is_err() {
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                }
                drop(app);
            });
        });
        let (host, token) = ready_rx.recv().expect("background app started");
        Background {
            host,
            token,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Sends raw request bytes; answers the status and body, or panics on a hang.
    fn raw(&self, request: &[u8]) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(&self.host).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(request).expect("write");
        let mut out = Vec::new();
        if let Err(e) = stream.read_to_end(&mut out) {
            assert!(!out.is_empty(), "no answer within 5 s: {e}");
        }
        let text = String::from_utf8_lossy(&out);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {text:.200}"));
        let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => out[at + 4..].to_vec(),
            None => Vec::new(),
        };
        (status, body)
    }

    fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.host
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(&bytes)
    }

    /// Asserts the answer is a fitting envelope; returns its errno.
    fn check(&self, what: &str, (status, body): (u16, Vec<u8>)) -> i64 {
        assert!(status < 500, "{what}: HTTP {status}");
        if status == 400 || status == 413 || status == 431 {
            // Refused by the HTTP layer itself (malformed request line or headers): no 5xx, fine.
            return -400;
        }
        let envelope: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!("{what}: not JSON: {:.200}", String::from_utf8_lossy(&body))
        });
        let errno = envelope["errno"]
            .as_i64()
            .unwrap_or_else(|| panic!("{what}: no errno"));
        assert!(
            envelope.get("errmsg").is_some() && envelope.get("data").is_some(),
            "{what}: {envelope}"
        );
        if status == 404 || status == 405 {
            // No such API, or not with this method: the envelope says the same as the status.
            assert_eq!(errno, i64::from(status), "{what}");
        } else {
            assert_eq!(status, 200, "{what}");
            assert!(
                FITTING.contains(&errno),
                "{what}: errno {errno}: {envelope}"
            );
        }
        errno
    }

    fn still_healthy(&self) {
        let (status, _) = self.request("GET", "/healthz", &[], b"");
        assert_eq!(status, 200);
        let (_, body) = self.request(
            "GET",
            "/oapro/wx/user/index",
            &[("X-OA-Token", &self.token)],
            b"",
        );
        let envelope: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            envelope["errno"], 0,
            "alice's session survived the onslaught"
        );
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// JSON values with the field names the API reads, holding anything.
fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,80}".prop_map(Value::String),
        "[0-9a-zA-Z+/=]{0,64}".prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("code"),
        Just("userInfo"),
        Just("nickName"),
        Just("nickname"),
        Just("avatar"),
        Just("avatarUrl"),
        Just("gender"),
        Just("rawData"),
        Just("signature"),
        Just("encryptedData"),
        Just("iv"),
        Just("id"),
        Just("title"),
        Just("content"),
        Just("location"),
        Just("startTime"),
        Just("endTime"),
        Just("cover"),
        Just("x"),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

#[test]
fn generated_bodies_tokens_and_queries_never_break_an_endpoint() {
    let app = Background::start();
    let config = ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let routes = routes();
    let route = 0..routes.len();

    proptest!(config, |(r in route.clone(), body in hostile_json(), with_token in any::<bool>())| {
        let Route { method, path, .. } = &routes[r];
        let use_token = with_token && !ENDS_SESSION.contains(&path.as_str());
        let mut headers = vec![("Content-Type", "application/json")];
        if use_token {
            headers.push(("X-OA-Token", app.token.as_str()));
        }
        let bytes = body.to_string();
        app.check(&format!("{method} {path} {bytes:.120}"), app.request(method, &format!("/oapro/wx/{path}"), &headers, bytes.as_bytes()));
    });

    proptest!(config, |(r in route.clone(), body in prop::collection::vec(any::<u8>(), 0..2048))| {
        let Route { method, path, .. } = &routes[r];
        app.check(&format!("{method} {path} raw bytes"), app.request(method, &format!("/oapro/wx/{path}"), &[("Content-Type", "application/json")], &body));
    });

    proptest!(config, |(r in route.clone(), token in "[ -~]{0,300}")| {
        let Route { method, path, needs_token } = &routes[r];
        let errno = app.check(&format!("{method} {path} token {token:.40}"), app.request(method, &format!("/oapro/wx/{path}"), &[("X-OA-Token", token.trim())], b"{}"));
        if *needs_token && errno != -400 {
            prop_assert_eq!(errno, 501, "a made-up token is never a login");
        }
    });

    proptest!(config, |(path in prop_oneof![Just("meeting/list"), Just("meeting/detail")], query in "[a-z=&%0-9+.-]{0,60}")| {
        let target = format!("/oapro/wx/{path}?{query}");
        let errno = app.check(&target, app.request("GET", &target, &[], b""));
        prop_assert!([0, 401, 402].contains(&errno) || errno == -400, "{} → {}", target, errno);
    });

    app.still_healthy();
}

#[test]
fn a_corpus_of_malformed_requests_gets_clear_answers() {
    let app = Background::start();
    let deep = "[".repeat(5000);
    let long_string = format!(r#"{{"code":"{}"}}"#, "a".repeat(15_000));
    let bodies: Vec<&[u8]> = vec![
        b"",
        b"null",
        b"[]",
        b"{\"code\":\"\\ud800\"}",
        b"{\"code\":\"abc\\u0000def\"}",
        b"\xef\xbb\xbf{\"code\":\"abc\"}",
        b"{\"code\":\"a\",\"code\":\"b\"}",
        b"{\"code\": 1e999}",
        b"{\"id\": 99999999999999999999999}",
        b"{\"id\": -1}",
        b"{\"id\": 1.5}",
        b"{\"userInfo\": {\"gender\": 1e3}, \"code\": \"x\"}",
        b"\xff\xfe\xfd",
        deep.as_bytes(),
        long_string.as_bytes(),
    ];
    for Route { method, path, .. } in routes() {
        for body in &bodies {
            for token in [None, Some(app.token.as_str())] {
                if token.is_some() && ENDS_SESSION.contains(&path.as_str()) {
                    continue;
                }
                let mut headers = vec![("Content-Type", "application/json")];
                if let Some(t) = token {
                    headers.push(("X-OA-Token", t));
                }
                let what = format!("{method} {path} {:.60}", String::from_utf8_lossy(body));
                app.check(
                    &what,
                    app.request(&method, &format!("/oapro/wx/{path}"), &headers, body),
                );
            }
        }
    }

    // Oversized bodies, headers and odd requests.
    let huge = vec![b'x'; 64 * 1024];
    let errno = app.check(
        "64 KiB body",
        app.request(
            "POST",
            "/oapro/wx/auth/login_by_weixin",
            &[("Content-Type", "application/json")],
            &huge,
        ),
    );
    assert_eq!(errno, 402);
    let big_token = "t".repeat(20_000);
    app.check(
        "20 KB token",
        app.request(
            "GET",
            "/oapro/wx/user/index",
            &[("X-OA-Token", &big_token)],
            b"",
        ),
    );
    let doubled = app.request(
        "GET",
        "/oapro/wx/user/index",
        &[("X-OA-Token", "a.b.c"), ("X-OA-Token", &app.token)],
        b"",
    );
    app.check("two tokens", doubled);
    for target in [
        "/oapro/wx/meeting/list?page=0",
        "/oapro/wx/meeting/list?page=-1",
        "/oapro/wx/meeting/list?limit=101",
        "/oapro/wx/meeting/list?limit=abc",
        "/oapro/wx/meeting/list?page=99999999999999999999",
        "/oapro/wx/meeting/list?state=%FF",
        "/oapro/wx/meeting/detail?id=",
        "/oapro/wx/meeting/detail?id=%00",
        "/oapro/wx/meeting/detail?id=1&id=2",
        "/oapro/wx/../../etc/passwd",
        "/oapro/wx/auth/login_by_weixin?code=abc",
        "/oapro/wx/%2e%2e/admin",
    ] {
        app.check(target, app.request("GET", target, &[], b""));
    }
    // A body that never arrives: the server must not wait forever for it.
    let stalled = format!(
        "POST /oapro/wx/auth/login_by_weixin HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"co",
        app.host
    );
    let mut stream = TcpStream::connect(&app.host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    stream.write_all(stalled.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    // Either an answer or a closed connection, within the read timeout: never a hang.
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains(" 500 "), "{text:.200}");

    app.still_healthy();
}
