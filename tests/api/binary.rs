//! The `wxauth` binary as an operator runs it: a child process with only the environment the
//! test gives it (and `PATH`), a fresh database of its own, its log read from stderr, asked over
//! HTTP and stopped with a signal. `TestApp` is the same for the in-process server.
//!
//! `tests/fault.rs` and `tests/failover.rs` include this file (with `database.rs` and
//! `reply.rs`) to start the release binary the same way.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awc::http::Method;
use serde_json::{Value, json};

use crate::database::{DropDb, pg_url};
use crate::reply::Reply;

/// How long a start may take to answer `/healthz`.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long `run` waits for the binary to end before it kills it.
const RUN_WITHIN: Duration = Duration::from_secs(20);

/// How to start the binary: its variables, arguments and directory, and the database it gets
/// unless DATABASE_URL says otherwise. `start` serves; `run` runs to the end.
#[derive(Clone)]
pub struct BinaryAppBuilder {
    env: BTreeMap<String, String>,
    args: Vec<String>,
    dir: Option<PathBuf>,
    /// Shared by every instance started from this builder: dropped when the last one goes.
    database: Arc<DropDb>,
}

impl BinaryAppBuilder {
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.insert(name.to_string(), value.into());
        self
    }

    pub fn envs(mut self, pairs: &[(&str, &str)]) -> Self {
        for (name, value) in pairs {
            self.env.insert(name.to_string(), value.to_string());
        }
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Started in `dir` instead of this package's root (where cargo runs tests).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// The fresh database, directly: what DATABASE_URL is unless the test sets it (to reach the
    /// database through a proxy, say).
    pub fn db_url(&self) -> String {
        pg_url(&self.database.0)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wxauth"));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", self.db_url())
            .envs(&self.env)
            .args(&self.args)
            .stdin(Stdio::null());
        command
    }

    /// Starts the server (on a free port unless BIND_ADDR names one) and waits until `/healthz`
    /// answers 200.
    pub async fn start(self) -> BinaryApp {
        let port = match self.env.get("BIND_ADDR") {
            Some(addr) => addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("BIND_ADDR with a port"),
            None => free_port(),
        };
        let (child, log) = self.spawn(port);
        let mut app = BinaryApp {
            child,
            base: format!("http://127.0.0.1:{port}"),
            db_url: self.db_url(),
            log,
            started_as: self,
        };
        app.wait_ready().await;
        app
    }

    fn spawn(&self, port: u16) -> (Child, Arc<Mutex<Vec<String>>>) {
        let mut command = self.command();
        if !self.env.contains_key("BIND_ADDR") {
            command.env("BIND_ADDR", format!("127.0.0.1:{port}"));
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        (child, log)
    }

    /// Runs the binary to its end (a command, or a start that fails); one still running after
    /// 20 s is killed, and its exit code is then `None`.
    pub fn run(self) -> Output {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        // Read while it runs: a full pipe would stop it.
        let stdout = read_to_end(child.stdout.take());
        let stderr = read_to_end(child.stderr.take());
        let started = Instant::now();
        while child.try_wait().expect("wait").is_none() && started.elapsed() < RUN_WITHIN {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        Output {
            status: child.wait().expect("wait"),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }
}

fn read_to_end<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The binary, serving.
pub struct BinaryApp {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The test's database, directly (even when the binary reaches it through a proxy).
    pub db_url: String,
    log: Arc<Mutex<Vec<String>>>,
    started_as: BinaryAppBuilder,
}

impl BinaryApp {
    /// A fresh database, a free port, and nothing of the developer's environment.
    pub fn builder() -> BinaryAppBuilder {
        BinaryAppBuilder {
            env: BTreeMap::new(),
            args: Vec::new(),
            dir: None,
            database: Arc::new(DropDb::fresh()),
        }
    }

    /// Another instance as this one was started, on the same database and on a new port unless
    /// BIND_ADDR names one (then it is the same deployment starting again): change it, then
    /// start it.
    pub fn again(&self) -> BinaryAppBuilder {
        self.started_as.clone()
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(healthz) = self.request(Method::GET, "/healthz", &[], None).await
                && healthz.status == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the binary ended ({status}) before it was ready; log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "binary not ready after {READY_WITHIN:?}; log:\n{}",
                self.log_text()
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line it wrote to stderr so far.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code (`None` when a signal ended it, or when it
    /// was still running after `limit` and was killed).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                return None;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A request to `path` (from the root: `/readyz`, `/oapro/wx/user/index`) on a connection
    /// of its own, as a client with no other business there makes it; an error when no answer
    /// came.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let http = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish();
        send(
            &http,
            method,
            &format!("{}{path}", self.base),
            headers,
            body,
        )
        .await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::GET, path, headers, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::POST, path, headers, Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// wx.login() against dev mode's own WeChat fake: a code for the named test user.
    pub async fn code(&self, user: &str) -> String {
        let minted = self
            .request(
                Method::POST,
                &format!("/__wechat/fake/code?user={user}"),
                &[],
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("mint a code: {e}"));
        minted.body["code"]
            .as_str()
            .unwrap_or_else(|| panic!("a code: {}", minted.raw))
            .to_string()
    }

    /// The client's login in dev mode: a code from the fake, then `auth/login_by_weixin`.
    pub async fn login(&self, user: &str) -> Reply {
        let code = self.code(user).await;
        self.post(
            "/oapro/wx/auth/login_by_weixin",
            &json!({ "code": code }),
            &[],
        )
        .await
    }
}

impl Drop for BinaryApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one request with `http` and reads its answer; an error when none came (refused,
/// timed out, cut off).
pub async fn send(
    http: &awc::Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Reply, String> {
    let mut request = http.request(method, url);
    for header in headers {
        request = request.insert_header(*header);
    }
    let response = match body {
        Some(body) => request.send_json(body).await,
        None => request.send().await,
    }
    .map_err(|e| e.to_string())?;
    Reply::read(response).await.map_err(|e| e.to_string())
}

/// A port that was free a moment ago (the binary must be told one: restarts reuse it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
