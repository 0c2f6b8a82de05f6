//! What the binary tells its operator at start-up: the dev-mode banner (loud, because a fake
//! WeChat must never go unnoticed), where everything listens, and warnings about settings that
//! were filled in for them. Kept out of `main.rs` so that it stays a list of steps.

use std::net::SocketAddr;

use crate::config::Config;
use crate::startup::DEV_FAKE_PATH;

/// Read from the config before it is handed to `Application::build`.
pub struct Announcement {
    dev: bool,
    api_root: String,
    bind: SocketAddr,
    /// Shown once, in the dev banner; never logged in production.
    generated_admin_token: Option<String>,
    admin_on: bool,
    metrics_addr: Option<SocketAddr>,
}

impl Announcement {
    /// Also logs the warnings that do not wait for the server: settings filled in by wxauth.
    pub fn new(config: &Config) -> Announcement {
        if config.http.bench_endpoints {
            log::warn!(
                "BENCH_ENDPOINTS=1: serving benchmark comparison routes under /bench/; not for production"
            );
        }
        if config.sessions.jwt_secret_generated {
            log::warn!(
                "JWT_SECRET is not set: generated a random one for this process; tokens will not survive a restart"
            );
        }
        if !config.is_dev_mode() && config.sessions.encryption_key.is_none() {
            log::warn!(
                "SESSION_ENCRYPTION_KEY is not set: the key that encrypts session_keys at rest is derived from JWT_SECRET, so one leaked secret exposes both; set SESSION_ENCRYPTION_KEY (openssl rand -hex 32) in production"
            );
        }
        for var in config.placeholder_secrets() {
            log::warn!(
                "{var} is a placeholder (one repeated character, or an example value from the README or .env.example): anyone can guess it; set a random one (openssl rand -hex 32)"
            );
        }
        if config.http.dev_mode_on_network {
            log::warn!(
                "ALLOW_DEV_MODE_ON_NETWORK=1: dev mode listens on {}, and its fake WeChat lets anyone who reaches it log in as any user",
                config.http.bind_addr
            );
        }
        Announcement {
            dev: config.is_dev_mode(),
            api_root: config.http.api_root(),
            bind: config.http.bind_addr,
            generated_admin_token: config
                .admin
                .token
                .as_ref()
                .filter(|_| config.admin.token_generated)
                .map(|t| t.expose().to_string()),
            admin_on: config.admin.token.is_some(),
            metrics_addr: config.http.metrics_bind_addr,
        }
    }

    /// Once the sockets are bound: the ports are known.
    pub fn serving(&self, port: u16, metrics_port: Option<u16>) {
        if self.dev {
            let base = format!("http://127.0.0.1:{port}");
            log::warn!("==================================================================");
            log::warn!("DEV MODE: WECHAT_APPID is not set, so wxauth serves a FAKE WeChat");
            log::warn!(
                "at {base}{DEV_FAKE_PATH} and logs users in through it. Not for production."
            );
            log::warn!(
                "mint a login code: curl -s -X POST '{base}{DEV_FAKE_PATH}/fake/code?user=alice'"
            );
            if let Some(token) = &self.generated_admin_token {
                // The token is shown here once already; the link carries it in the fragment,
                // which the browser keeps to itself: the page reads it and clears it away.
                log::warn!(
                    "ADMIN_TOKEN is not set: generated one for this process. Status page, signed in:"
                );
                log::warn!("  {base}/admin/#token={token}");
                log::warn!("  (admin token: {token})");
            }
            log::warn!("==================================================================");
        }
        log::info!(
            "wxauth {} listening on {}:{port}, API at {}/, health at /healthz and /readyz",
            env!("CARGO_PKG_VERSION"),
            self.bind.ip(),
            self.api_root
        );
        match (metrics_port, self.metrics_addr) {
            (Some(mport), Some(addr)) => {
                log::info!("metrics at http://{}:{mport}/metrics", addr.ip())
            }
            _ => log::info!("metrics at /metrics"),
        }
        if self.admin_on {
            log::info!("admin status page at /admin/ (Authorization: Bearer ADMIN_TOKEN)");
        } else {
            log::info!("admin status page off: ADMIN_TOKEN is not set");
        }
    }
}
