//! Configuration, read once at start from the environment (and an optional `.env`) into one typed
//! struct that is passed down. Every variable is declared once, in `vars`; every invalid value
//! stops the start with a message naming the variable, so a typo in a deployment fails loudly
//! instead of running with a silent default.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod vars;

pub use vars::*;

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the WeChatClient gets its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTokenMode {
    /// `POST /cgi-bin/stable_token`: the same token for every instance (the default).
    Stable,
    /// `GET /cgi-bin/token`: each fetch invalidates the previous token; for accounts that need it.
    Plain,
}

/// Where the WeChatClient sends its requests.
#[derive(Debug, Clone)]
pub enum WeChatMode {
    /// `WECHAT_APPID` is set: talk to `api_base` (WeChat itself, or any compatible server).
    Upstream {
        appid: String,
        secret: Secret,
        api_base: String,
    },
    /// `WECHAT_APPID` is unset: serve the built-in fake and point the client at it.
    Dev,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// The NOTIFY listener's connection: `DATABASE_URL` unless `DATABASE_LISTEN_URL` is set. LISTEN
    /// needs a session of its own, which a transaction pooler in `DATABASE_URL` cannot give.
    pub database_listen_url: String,
    pub(crate) bind_addr: SocketAddr,
    /// Normalised: empty, or a leading `/` without a trailing one (`/oapro`).
    pub context_path: String,
    pub wechat: WeChatMode,
    pub wechat_timeout: Duration,
    pub access_token_mode: AccessTokenMode,
    pub(crate) jwt_secret: Secret,
    /// True when no `JWT_SECRET` was configured and one was generated for this process.
    pub(crate) jwt_secret_generated: bool,
    pub token_ttl: Duration,
    /// How long a session may live from its login, however often it is refreshed.
    pub session_max_lifetime: Duration,
    pub db_pool_size: u32,
    /// How many sessions the SessionActor keeps in memory.
    pub session_cache_capacity: usize,
    /// AES-256 key for session_keys at rest; `None`: derived from the JWT secret.
    pub(crate) session_encryption_key: Option<[u8; 32]>,
    /// Login attempts per client IP per minute (0: off).
    pub rate_login_per_ip: u32,
    /// Login attempts per openid per minute (0: off).
    pub rate_login_per_openid: u32,
    /// bindPhone calls per user per minute (0: off).
    pub rate_bindphone_per_user: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// HTTP worker threads; 0 means one per core (actix-web's default).
    pub workers: usize,
    /// Bearer token for `/admin/api/*`; `None` switches the admin page and API off.
    pub admin_token: Option<Secret>,
    /// True when no `ADMIN_TOKEN` was configured and dev mode generated one for this process.
    pub admin_token_generated: bool,
    /// Where the admin page's files are (`index.html`, CSS, JS).
    pub admin_static_dir: PathBuf,
    /// `None`: `/metrics` is on the main listener. `Some`: only on this address.
    pub metrics_bind_addr: Option<SocketAddr>,
    /// `login_log` rows older than this are deleted.
    pub(crate) login_log_retention: Duration,
    /// How often the gathered login_log rows are written (one statement per batch).
    pub login_log_flush: Duration,
    /// Serve the comparison routes under `/bench/` that `scripts/bench` measures against.
    pub bench_endpoints: bool,
    /// How long after `auth/deactivate` the account's data is erased; a login before then restores
    /// the account. Zero: erased at once.
    pub account_deletion_grace: Duration,
    /// Dev mode listening on a non-loopback address, allowed by `ALLOW_DEV_MODE_ON_NETWORK=1`.
    pub(crate) dev_mode_on_network: bool,
    /// The request header that carries the mini-program's token.
    pub token_header: actix_web::http::header::HeaderName,
    /// `TOKEN_HEADER` as written (`X-OA-Token`): `HeaderName` keeps only the lower case, and
    /// the docs show the name as a developer will type it. See `token_header_shown`.
    pub token_header_written: String,
    /// After SIGTERM/SIGINT: how long to keep serving while `/readyz` answers 503 and every answer
    /// closes its connection, before the listener closes.
    pub(crate) shutdown_drain: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    pub(crate) var: &'static str,
    pub(crate) reason: String,
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

/// HS256 keys shorter than the hash output (32 bytes) weaken the signature; in production a
/// shorter `JWT_SECRET` is refused.
pub(crate) const MIN_JWT_SECRET_LEN: usize = 32;
/// Shorter admin tokens are refused: the token is the only thing between the internet and the
/// status page, and it is compared without rate limiting.
pub(crate) const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// Headers that cannot carry the token: HTTP itself, the server or a proxy consumes or rewrites
/// them, or another part of wxauth already gives them a meaning.
const RESERVED_TOKEN_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "host",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    "x-request-id",
];

/// `static` in the working directory; failing that, the `static` of the source tree the binary was
/// built from, so that `target/release/wxauth` started from another directory of the machine it
/// was built on still shows the page. A deployment elsewhere sets `ADMIN_STATIC_DIR`.
fn default_admin_static_dir() -> PathBuf {
    let here = PathBuf::from(ADMIN_STATIC_DIR.default);
    if here.join("index.html").is_file() {
        return here;
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join(ADMIN_STATIC_DIR.default);
    if built_from.join("index.html").is_file() {
        built_from
    } else {
        here
    }
}

impl Config {
    /// Loads `.env` into the process environment when one exists; variables already set in the
    /// environment win over it. The binary does this before its logger starts, so that `RUST_LOG`
    /// works from `.env` as every other variable does.
    pub fn load_dotenv() -> Result<(), ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => Ok(()),
            Err(e) if e.not_found() => Ok(()),
            Err(e) => Err(invalid(".env", e.to_string())),
        }
    }

    /// Reads the process environment (with `.env` in it once `load_dotenv` ran).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::read(&Source(&|name| std::env::var(name).ok()))
    }

    /// Builds a config from explicit values; unset or empty variables take their defaults.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::read(&Source(&|name| vars.get(name).cloned()))
    }

    /// Each value through its declaration in `vars`, then the rules that join several.
    fn read(src: &Source) -> Result<Config, ConfigError> {
        let database_url = DATABASE_URL.parse(src, postgres_url)?;
        let database_listen_url = DATABASE_LISTEN_URL
            .parse_set(src, postgres_url)?
            .unwrap_or_else(|| database_url.clone());
        let bind_addr = socket_addr(&BIND_ADDR, &BIND_ADDR.value(src))?;
        // An empty value would read as unset (the default, /oapro) while looking like "no
        // prefix": the two readings put the API at different URLs, so neither is guessed.
        if CONTEXT_PATH.set_but_empty(src) {
            return Err(CONTEXT_PATH.refused_because(
                "it is empty: set CONTEXT_PATH=/ for the API at /wx/, or leave it out for /oapro",
            ));
        }
        let context_path = CONTEXT_PATH.parse(src, normalise_context_path)?;
        let wechat = wechat_mode(src)?;
        let production = matches!(wechat, WeChatMode::Upstream { .. });
        let wechat_timeout = Duration::from_millis(WECHAT_TIMEOUT_MS.read(src)?);
        let access_token_mode = WECHAT_TOKEN_MODE.read(src)?;
        let (jwt_secret, jwt_secret_generated) = jwt_secret(src, production)?;
        let token_ttl = Duration::from_secs(TOKEN_TTL_SECS.read(src)?);
        let session_max_lifetime = Duration::from_secs(SESSION_MAX_LIFETIME_SECS.read(src)?);
        let db_pool_size = DB_POOL_SIZE.read(src)?;
        let session_cache_capacity = SESSION_CACHE_CAPACITY.read(src)?;
        let session_encryption_key = SESSION_ENCRYPTION_KEY.parse_set(src, parse_hex_key)?;
        let rate_login_per_ip = RATE_LOGIN_PER_IP.read(src)?;
        let rate_login_per_openid = RATE_LOGIN_PER_OPENID.read(src)?;
        let rate_bindphone_per_user = RATE_BINDPHONE_PER_USER.read(src)?;
        let trusted_proxies = TRUSTED_PROXIES
            .parse_set(src, parse_proxies)?
            .unwrap_or_default();
        let workers = HTTP_WORKERS.read(src)?;
        let (admin_token, admin_token_generated) = admin_token(src, !production)?;
        let admin_static_dir = ADMIN_STATIC_DIR
            .raw(src)
            .map(PathBuf::from)
            .unwrap_or_else(default_admin_static_dir);
        let metrics_bind_addr = METRICS_BIND_ADDR
            .raw(src)
            .map(|v| socket_addr(&METRICS_BIND_ADDR, &v))
            .transpose()?;
        if metrics_bind_addr.is_some_and(|m| m == bind_addr && m.port() != 0) {
            return Err(invalid(
                METRICS_BIND_ADDR.name,
                "must differ from BIND_ADDR (leave it unset to serve /metrics on BIND_ADDR)",
            ));
        }
        let login_log_retention = days(LOGIN_LOG_RETENTION_DAYS.read(src)?);
        let login_log_flush = Duration::from_millis(LOGIN_LOG_FLUSH_MS.read(src)?);
        let bench_endpoints = BENCH_ENDPOINTS.read(src)?;
        let account_deletion_grace = days(ACCOUNT_DELETION_GRACE_DAYS.read(src)?);
        let dev_mode_on_network = dev_mode_on_network(src, !production, bind_addr)?;
        let token_header_written = TOKEN_HEADER.value(src).trim().to_string();
        let token_header = parse_token_header(&token_header_written)?;
        let shutdown_drain = Duration::from_secs(SHUTDOWN_DRAIN_SECS.read(src)?);

        Ok(Config {
            database_url,
            database_listen_url,
            bind_addr,
            context_path,
            wechat,
            wechat_timeout,
            access_token_mode,
            jwt_secret,
            jwt_secret_generated,
            token_ttl,
            session_max_lifetime,
            db_pool_size,
            session_cache_capacity,
            session_encryption_key,
            rate_login_per_ip,
            rate_login_per_openid,
            rate_bindphone_per_user,
            trusted_proxies,
            workers,
            admin_token,
            admin_token_generated,
            admin_static_dir,
            metrics_bind_addr,
            login_log_retention,
            login_log_flush,
            bench_endpoints,
            account_deletion_grace,
            dev_mode_on_network,
            token_header,
            token_header_written,
            shutdown_drain,
        })
    }

    pub(crate) fn is_dev_mode(&self) -> bool {
        matches!(self.wechat, WeChatMode::Dev)
    }

    /// The token header's name for people: as written in `TOKEN_HEADER`, or, when `token_header`
    /// was set without it, each dash-separated part capitalised (`X-Litemall-Token`).
    pub fn token_header_shown(&self) -> String {
        if self
            .token_header_written
            .eq_ignore_ascii_case(self.token_header.as_str())
        {
            return self.token_header_written.clone();
        }
        self.token_header
            .as_str()
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The mini-program API root path, e.g. `/oapro/wx`.
    pub fn api_root(&self) -> String {
        format!("{}/wx", self.context_path)
    }
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 3600)
}

fn postgres_url(url: &str) -> Option<String> {
    crate::db::setup::split_database_url(url).map(|_| url.to_string())
}

fn socket_addr(var: &Text, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.parse().map_err(|e| var.refused_because(e))
}

/// Upstream when `WECHAT_APPID` is set, which then needs `WECHAT_SECRET`; dev mode otherwise.
fn wechat_mode(src: &Source) -> Result<WeChatMode, ConfigError> {
    let appid = WECHAT_APPID.parse_set(src, |appid| {
        appid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            .then(|| appid.to_string())
    })?;
    let Some(appid) = appid else {
        return Ok(WeChatMode::Dev);
    };
    let secret = WECHAT_SECRET
        .raw(src)
        .ok_or_else(|| invalid(WECHAT_SECRET.name, "required when WECHAT_APPID is set"))?;
    let api_base = WECHAT_API_BASE.parse(src, |base| {
        let base = base.trim_end_matches('/');
        (base.starts_with("http://") || base.starts_with("https://")).then(|| base.to_string())
    })?;
    Ok(WeChatMode::Upstream {
        appid,
        secret: Secret::new(secret),
        api_base,
    })
}

/// The configured secret, long enough in production; in dev mode one is generated when unset.
fn jwt_secret(src: &Source, production: bool) -> Result<(Secret, bool), ConfigError> {
    match JWT_SECRET.raw(src) {
        Some(s) if production && s.len() < MIN_JWT_SECRET_LEN => Err(invalid(
            JWT_SECRET.name,
            format!(
                "must be at least {MIN_JWT_SECRET_LEN} bytes when WECHAT_APPID is set \
                 (got {}); generate one with: openssl rand -hex 32",
                s.len()
            ),
        )),
        Some(s) => Ok((Secret::new(s), false)),
        // A generated secret would log everyone out on each restart and make the instances
        // behind one load balancer refuse each other's tokens.
        None if production => Err(invalid(
            JWT_SECRET.name,
            "required when WECHAT_APPID is set (a generated one would not survive a \
             restart nor be shared by other instances); generate one with: openssl rand -hex 32",
        )),
        None => Ok((Secret::new(crate::random::token_hex(32)), true)),
    }
}

/// The configured token; unset, one is generated in dev mode, and production has no admin side.
fn admin_token(src: &Source, dev_mode: bool) -> Result<(Option<Secret>, bool), ConfigError> {
    let configured = ADMIN_TOKEN.parse_set(src, |token| {
        (token.len() >= MIN_ADMIN_TOKEN_LEN && token.chars().all(|c| c.is_ascii_graphic()))
            .then(|| Secret::new(token))
    })?;
    Ok(match configured {
        Some(token) => (Some(token), false),
        // A developer on their own machine should see the page without setting anything;
        // production keeps the page off until an operator chooses a token.
        None if dev_mode => (Some(Secret::new(crate::random::token_hex(16))), true),
        None => (None, false),
    })
}

/// Whether dev mode listens beyond loopback, which only `ALLOW_DEV_MODE_ON_NETWORK=1` allows.
fn dev_mode_on_network(
    src: &Source,
    dev_mode: bool,
    bind_addr: SocketAddr,
) -> Result<bool, ConfigError> {
    let allowed = ALLOW_DEV_MODE_ON_NETWORK.read(src)?;
    // The fake WeChat logs anyone in as any openid they name: reachable from the network,
    // that is every account for the taking.
    let on_network = dev_mode && !bind_addr.ip().to_canonical().is_loopback();
    if on_network && !allowed {
        return Err(invalid(
            BIND_ADDR.name,
            format!(
                "{bind_addr} is not a loopback address, and WECHAT_APPID is not set (dev mode): \
                 its fake WeChat lets anyone log in as any user. Set WECHAT_APPID and \
                 WECHAT_SECRET for production, or listen on 127.0.0.1 or [::1], or set \
                 ALLOW_DEV_MODE_ON_NETWORK=1 if a network you trust must reach dev mode"
            ),
        ));
    }
    Ok(on_network)
}

fn parse_token_header(raw: &str) -> Result<actix_web::http::header::HeaderName, ConfigError> {
    let name = actix_web::http::header::HeaderName::from_bytes(raw.as_bytes())
        .map_err(|_| TOKEN_HEADER.refused())?;
    // `HeaderName` lowercases; the check is on the name as HTTP compares it.
    if RESERVED_TOKEN_HEADERS.contains(&name.as_str()) {
        return Err(invalid(
            TOKEN_HEADER.name,
            format!("{} is a header HTTP or wxauth already uses", name.as_str()),
        ));
    }
    Ok(name)
}

fn parse_proxies(list: &str) -> Option<Vec<ipnet::IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| p.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
        })
        .collect()
}

fn parse_hex_key(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// `/oapro/` → `/oapro`, `oapro` → `/oapro`, `/` → ``. `None` for characters a path must not hold.
fn normalise_context_path(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Some(String::new());
    }
    let ok = trimmed
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !ok || trimmed.contains("//") {
        return None;
    }
    Some(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG_ENOUGH_JWT_SECRET: &str = "jwt-secret-value-of-32-bytes-ok!";

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_give_dev_mode_on_the_documented_addresses() {
        let c = Config::from_vars(&vars(&[])).expect("defaults are valid");
        assert!(c.is_dev_mode());
        assert_eq!(c.database_url, DATABASE_URL.default);
        assert_eq!(c.bind_addr.to_string(), BIND_ADDR.default);
        assert_eq!(c.api_root(), "/oapro/wx");
        assert!(c.jwt_secret_generated);
        assert_eq!(c.jwt_secret.expose().len(), 64);
        assert!(c.wechat_timeout < Duration::from_millis(3000));
        assert!(!c.bench_endpoints);
        assert_eq!(c.token_header.as_str(), "x-oa-token");
        assert_eq!(
            c.token_header_shown(),
            "X-OA-Token",
            "as written, for the docs"
        );
        assert_eq!(c.database_listen_url, DATABASE_URL.default);
        assert_eq!(
            c.shutdown_drain,
            Duration::from_secs(SHUTDOWN_DRAIN_SECS.default)
        );
    }

    /// From the environment `Config` reads exactly the variables it asks for: one it read without
    /// declaring it would work yet be missing from the README and `.env.example`.
    #[test]
    fn every_variable_read_is_declared_and_every_declared_one_is_read() {
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let production = vars(&[
            ("WECHAT_APPID", "wx123"),
            ("WECHAT_SECRET", "s"),
            ("JWT_SECRET", LONG_ENOUGH_JWT_SECRET),
        ]);
        for set in [vars(&[]), production] {
            let lookup = |name: &str| {
                asked.borrow_mut().insert(name.to_string());
                set.get(name).cloned()
            };
            Config::read(&Source(&lookup)).expect("valid");
        }
        let declared: std::collections::BTreeSet<String> = VARIABLES
            .iter()
            .map(|v| v.name().to_string())
            // The logger reads it, in `main`.
            .filter(|name| name != RUST_LOG.name)
            .collect();
        assert_eq!(asked.into_inner(), declared);
    }

    #[test]
    fn token_header_takes_any_header_name() {
        let c = Config::from_vars(&vars(&[("TOKEN_HEADER", " X-Litemall-Token ")])).expect("valid");
        assert_eq!(c.token_header.as_str(), "x-litemall-token");
        assert_eq!(c.token_header_shown(), "X-Litemall-Token");
        let mut c =
            Config::from_vars(&vars(&[("TOKEN_HEADER", "x-LITEMALL-token")])).expect("valid");
        assert_eq!(c.token_header_shown(), "x-LITEMALL-token", "as written");
        c.token_header = actix_web::http::header::HeaderName::from_static("x-other-token");
        assert_eq!(
            c.token_header_shown(),
            "X-Other-Token",
            "set in code: capitalised"
        );
        let c = Config::from_vars(&vars(&[("TOKEN_HEADER", "Authorization")])).expect("valid");
        assert_eq!(c.token_header, actix_web::http::header::AUTHORIZATION);
    }

    #[test]
    fn the_listener_gets_its_own_url_when_one_is_given() {
        let c = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://app@127.0.0.1:6432/wxauth"),
            (
                "DATABASE_LISTEN_URL",
                "postgres://app@127.0.0.1:5432/wxauth",
            ),
            ("SHUTDOWN_DRAIN_SECS", "0"),
        ]))
        .expect("valid");
        assert_eq!(c.database_url, "postgres://app@127.0.0.1:6432/wxauth");
        assert_eq!(
            c.database_listen_url,
            "postgres://app@127.0.0.1:5432/wxauth"
        );
        assert_eq!(c.shutdown_drain, Duration::ZERO);
    }

    #[test]
    fn bench_endpoints_are_off_unless_asked_for() {
        let on = Config::from_vars(&vars(&[("BENCH_ENDPOINTS", "1")])).expect("valid");
        assert!(on.bench_endpoints);
        let off = Config::from_vars(&vars(&[("BENCH_ENDPOINTS", "0")])).expect("valid");
        assert!(!off.bench_endpoints);
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        let cases = [
            ("BIND_ADDR", "not-an-address"),
            ("CONTEXT_PATH", "/o a"),
            ("CONTEXT_PATH", ""),
            ("CONTEXT_PATH", "  "),
            ("WECHAT_TIMEOUT_MS", "soon"),
            ("WECHAT_TIMEOUT_MS", "0"),
            ("TOKEN_TTL_SECS", "-5"),
            ("DB_POOL_SIZE", "0"),
            ("DATABASE_URL", "mysql://x"),
            ("HTTP_WORKERS", "many"),
            ("WECHAT_TOKEN_MODE", "sometimes"),
            ("SESSION_CACHE_CAPACITY", "0"),
            ("RATE_LOGIN_PER_IP", "lots"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"),
            ("SESSION_ENCRYPTION_KEY", "abcd"),
            ("BENCH_ENDPOINTS", "yes"),
            (
                "SESSION_ENCRYPTION_KEY",
                "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            ),
            ("ADMIN_TOKEN", "short"),
            ("ADMIN_TOKEN", "has spaces in the middle of it"),
            ("METRICS_BIND_ADDR", "port-nine"),
            ("METRICS_BIND_ADDR", BIND_ADDR.default),
            ("LOGIN_LOG_RETENTION_DAYS", "0"),
            ("LOGIN_LOG_RETENTION_DAYS", "a month"),
            ("ACCOUNT_DELETION_GRACE_DAYS", "31"),
            ("ACCOUNT_DELETION_GRACE_DAYS", "-1"),
            ("ACCOUNT_DELETION_GRACE_DAYS", "a week"),
            ("SESSION_MAX_LIFETIME_SECS", "86399"),
            ("SESSION_MAX_LIFETIME_SECS", "31536001"),
            ("SESSION_MAX_LIFETIME_SECS", "a month"),
            ("ALLOW_DEV_MODE_ON_NETWORK", "yes"),
            ("TOKEN_HEADER", "X OA Token"),
            ("TOKEN_HEADER", "X-OA-Token:"),
            ("TOKEN_HEADER", "X-令牌"),
            ("TOKEN_HEADER", "Content-Type"),
            ("TOKEN_HEADER", "Cookie"),
            ("DATABASE_LISTEN_URL", "mysql://x"),
            ("SHUTDOWN_DRAIN_SECS", "61"),
            ("SHUTDOWN_DRAIN_SECS", "-1"),
            ("SHUTDOWN_DRAIN_SECS", "soon"),
            ("LOGIN_LOG_FLUSH_MS", "0"),
            ("LOGIN_LOG_FLUSH_MS", "soon"),
        ];
        for (var, value) in cases {
            let err = Config::from_vars(&vars(&[(var, value)])).expect_err(var);
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn admin_token_is_generated_in_dev_mode_only() {
        let dev = Config::from_vars(&vars(&[])).expect("valid");
        assert!(dev.admin_token_generated);
        assert!(
            dev.admin_token
                .as_ref()
                .is_some_and(|t| t.expose().len() >= MIN_ADMIN_TOKEN_LEN)
        );
        assert_eq!(dev.login_log_retention, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(
            dev.account_deletion_grace,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(dev.metrics_bind_addr, None);

        let production = [
            ("WECHAT_APPID", "wx123"),
            ("WECHAT_SECRET", "s"),
            ("JWT_SECRET", LONG_ENOUGH_JWT_SECRET),
        ];
        let off = Config::from_vars(&vars(&production)).expect("valid");
        assert!(
            off.admin_token.is_none(),
            "production without a token: admin off"
        );
        assert!(!off.admin_token_generated);

        let mut with_token = production.to_vec();
        with_token.push(("ADMIN_TOKEN", "admin-token-value-0123"));
        let on = Config::from_vars(&vars(&with_token)).expect("valid");
        assert_eq!(
            on.admin_token.as_ref().map(Secret::expose),
            Some("admin-token-value-0123")
        );
        assert!(!format!("{on:?}").contains("admin-token-value-0123"));
    }

    #[test]
    fn dev_mode_listens_only_on_loopback_unless_allowed() {
        for loopback in [
            "127.0.0.1:8080",
            "127.8.9.10:0",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            let c = Config::from_vars(&vars(&[("BIND_ADDR", loopback)])).expect(loopback);
            assert!(c.is_dev_mode() && !c.dev_mode_on_network, "{loopback}");
        }
        for network in [
            "0.0.0.0:8080",
            "[::]:8080",
            "192.168.1.20:8080",
            "[2001:db8::1]:80",
        ] {
            let err = Config::from_vars(&vars(&[("BIND_ADDR", network)])).expect_err(network);
            assert_eq!(err.var, "BIND_ADDR", "{network}");
            let why = err.to_string();
            for says in ["loopback", "WECHAT_APPID", "ALLOW_DEV_MODE_ON_NETWORK=1"] {
                assert!(why.contains(says), "{network}: {why}");
            }

            let allowed = Config::from_vars(&vars(&[
                ("BIND_ADDR", network),
                ("ALLOW_DEV_MODE_ON_NETWORK", "1"),
            ]))
            .expect("explicitly allowed");
            assert!(allowed.dev_mode_on_network, "{network}");
            let refused = Config::from_vars(&vars(&[
                ("BIND_ADDR", network),
                ("ALLOW_DEV_MODE_ON_NETWORK", "0"),
            ]));
            assert!(refused.is_err(), "0 does not allow: {network}");

            // Production mode serves the real WeChat login: any address will do.
            let production = Config::from_vars(&vars(&[
                ("BIND_ADDR", network),
                ("WECHAT_APPID", "wx123"),
                ("WECHAT_SECRET", "s"),
                ("JWT_SECRET", LONG_ENOUGH_JWT_SECRET),
            ]))
            .expect("production on the network");
            assert!(!production.dev_mode_on_network);
        }
    }

    #[test]
    fn production_needs_a_jwt_secret_of_32_bytes() {
        let production = |jwt: Option<&str>| {
            let mut v = vars(&[("WECHAT_APPID", "wx123"), ("WECHAT_SECRET", "s")]);
            if let Some(jwt) = jwt {
                v.insert("JWT_SECRET".into(), jwt.into());
            }
            Config::from_vars(&v)
        };
        for weak in [
            None,
            Some(""),
            Some("short"),
            Some(&LONG_ENOUGH_JWT_SECRET[1..]),
        ] {
            let err = production(weak).expect_err("weak secret");
            assert_eq!(err.var, "JWT_SECRET", "{weak:?}");
            assert!(err.to_string().contains("openssl rand -hex 32"), "{err}");
            if let Some(weak) = weak.filter(|w| !w.is_empty()) {
                assert!(!err.to_string().contains(weak), "the secret is not echoed");
            }
        }
        let ok = production(Some(LONG_ENOUGH_JWT_SECRET)).expect("32 bytes");
        assert!(!ok.jwt_secret_generated);

        // Dev mode keeps working with no secret, or a short one, as a developer's laptop does.
        assert!(
            Config::from_vars(&vars(&[]))
                .expect("dev")
                .jwt_secret_generated
        );
        assert!(Config::from_vars(&vars(&[("JWT_SECRET", "short")])).is_ok());
    }

    #[test]
    fn session_max_lifetime_defaults_to_30_days_within_a_day_and_a_year() {
        let c = Config::from_vars(&vars(&[])).expect("valid");
        assert_eq!(c.session_max_lifetime, Duration::from_secs(30 * 24 * 3600));
        for (value, secs) in [("86400", 86_400), ("31536000", 31_536_000)] {
            let c = Config::from_vars(&vars(&[("SESSION_MAX_LIFETIME_SECS", value)]))
                .expect("in range");
            assert_eq!(c.session_max_lifetime, Duration::from_secs(secs));
        }
    }

    #[test]
    fn appid_without_secret_is_refused() {
        let err = Config::from_vars(&vars(&[("WECHAT_APPID", "wx123")])).expect_err("no secret");
        assert_eq!(err.var, "WECHAT_SECRET");
    }

    #[test]
    fn upstream_mode_keeps_base_without_trailing_slash_and_hides_secret() {
        let c = Config::from_vars(&vars(&[
            ("WECHAT_APPID", "wx123"),
            ("WECHAT_SECRET", "app-secret-value"),
            ("WECHAT_API_BASE", "http://127.0.0.1:9/"),
            ("JWT_SECRET", LONG_ENOUGH_JWT_SECRET),
        ]))
        .expect("valid");
        match &c.wechat {
            WeChatMode::Upstream { api_base, .. } => assert_eq!(api_base, "http://127.0.0.1:9"),
            WeChatMode::Dev => panic!("expected upstream mode"),
        }
        let shown = format!("{c:?}");
        assert!(!shown.contains("app-secret-value"));
        assert!(!shown.contains(LONG_ENOUGH_JWT_SECRET));
        assert!(!c.jwt_secret_generated);
    }

    #[test]
    fn proxies_are_ips_or_ranges() {
        let c = Config::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]))
            .expect("valid");
        assert_eq!(c.trusted_proxies.len(), 3);
        assert!(
            c.trusted_proxies[0].contains(&"10.1.2.3".parse::<std::net::IpAddr>().expect("ip"))
        );
        assert_eq!(c.rate_login_per_ip, 120);
        assert_eq!(c.rate_login_per_openid, 20);
        assert_eq!(c.rate_bindphone_per_user, 10);
    }

    #[test]
    fn context_path_is_normalised() {
        assert_eq!(normalise_context_path("oapro/").as_deref(), Some("/oapro"));
        assert_eq!(normalise_context_path("/").as_deref(), Some(""));
        assert_eq!(normalise_context_path("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(normalise_context_path("/a//b"), None);
    }
}
