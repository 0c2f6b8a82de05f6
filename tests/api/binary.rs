//! The `wxauth` binary as a user runs it: a child process with an environment, its log read
//! from stderr, stopped with a signal.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Binary {
    child: Child,
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts the binary and waits until `/healthz` answers 200.
    pub fn start(exe: &str, env: &HashMap<String, String>) -> Binary {
        Binary::start_in(exe, env, None)
    }

    /// The same, started in `cwd` (the default: this package's root, as cargo runs tests).
    pub fn start_in(exe: &str, env: &HashMap<String, String>, cwd: Option<&Path>) -> Binary {
        let port = env
            .get("BIND_ADDR")
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
            .expect("BIND_ADDR with a fixed port");
        let mut command = Command::new(exe);
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let mut child = command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let bin = Binary {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        bin.wait_ready(Duration::from_secs(30));
        bin
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(out) = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("{}/healthz", self.base),
                ])
                .output()
                && out.stdout == b"200"
            {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "binary not ready after {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the binary must be told one: restarts reuse it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
