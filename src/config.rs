//! Configuration, read once at start from the environment (and an optional `.env`) into one typed
//! struct of sections, one per part of wxauth (database, HTTP, WeChat, sessions, limits ...), each
//! handed to the part that reads it. Every variable is declared once, in `vars`, in the section
//! whose reader reads it; every invalid value stops the start with a message naming the variable,
//! so a typo in a deployment fails loudly instead of running with a silent default.

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

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// env_logger's own lines, for people.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

impl LogFormat {
    /// `LOG_FORMAT` from the environment, for the logger that starts before `Config` is read; an
    /// invalid value gives `Text` here, and `Config::from_env` then refuses it.
    pub fn from_env() -> LogFormat {
        LOG_FORMAT
            .read(&Source(&|name| std::env::var(name).ok()))
            .unwrap_or_default()
    }
}

/// What a meeting gets when WeChat's content check cannot be made (`CONTENT_CHECK_ON_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFailure {
    /// Refused with WeChat's errno (714/715/716); nothing stored.
    Refuse,
    /// Stored pending an admin's review.
    Review,
}

/// The `miniprogram_state` a reminder opens (`REMINDER_MINIPROGRAM_STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiniprogramState {
    Formal,
    Trial,
    Developer,
}

impl MiniprogramState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MiniprogramState::Formal => "formal",
            MiniprogramState::Trial => "trial",
            MiniprogramState::Developer => "developer",
        }
    }
}

/// A meeting's value a reminder template key shows (`REMINDER_FIELDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingField {
    Title,
    Content,
    Location,
    Start,
    End,
    Publisher,
}

impl MeetingField {
    fn parse(word: &str) -> Option<MeetingField> {
        Some(match word {
            "title" => MeetingField::Title,
            "content" => MeetingField::Content,
            "location" => MeetingField::Location,
            "start" => MeetingField::Start,
            "end" => MeetingField::End,
            "publisher" => MeetingField::Publisher,
            _ => return None,
        })
    }
}

/// Meeting reminders by subscribe message (`REMINDER_*`). Which template each app's reminders
/// use is the app's (`MiniProgram::reminder_template`): a template id is one mini-program's.
#[derive(Debug, Clone)]
pub struct Reminders {
    /// Template keys and the meeting value each shows, in order.
    pub fields: Vec<(String, MeetingField)>,
    /// The page a reminder opens; `{id}` stands for the meeting id.
    pub page: String,
    /// How long before its start a meeting's reminders go out.
    pub lead: Duration,
    /// How often the sender looks for due reminders.
    pub tick: Duration,
    pub miniprogram_state: MiniprogramState,
}

/// The most keys a template has (WeChat's have at most five; this leaves room).
const MAX_REMINDER_FIELDS: usize = 10;

/// `thing1=title,time2=start`: keys are WeChat's (a kind, then digits); a `time` or `date` key
/// shows `start` or `end`.
fn parse_reminder_fields(raw: &str) -> Option<Vec<(String, MeetingField)>> {
    let mut fields = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, field) = pair.split_once('=')?;
        let (key, field) = (key.trim(), MeetingField::parse(field.trim())?);
        let kind = key.trim_end_matches(|c: char| c.is_ascii_digit());
        let well_formed = !kind.is_empty()
            && kind.len() < key.len()
            && key.len() <= 32
            && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        let is_time = matches!(field, MeetingField::Start | MeetingField::End);
        let time_key = matches!(kind, "time" | "date");
        if !well_formed || (time_key && !is_time) || fields.iter().any(|(k, _)| k == key) {
            return None;
        }
        fields.push((key.to_string(), field));
    }
    (!fields.is_empty() && fields.len() <= MAX_REMINDER_FIELDS).then_some(fields)
}

fn parse_template_id(raw: &str) -> Option<String> {
    (raw.len() <= 128 && raw.chars().all(|c| c.is_ascii_graphic())).then(|| raw.to_string())
}

fn parse_reminder_page(raw: &str) -> Option<String> {
    let ok = raw.len() <= 512 && !raw.starts_with('/') && raw.chars().all(|c| c.is_ascii_graphic());
    ok.then(|| raw.to_string())
}

/// Where the WeChatClient sends its requests.
#[derive(Debug, Clone)]
pub enum WeChatMode {
    /// `WECHAT_APPID` or `WECHAT_APPS_FILE` is set: talk to `api_base` (WeChat itself, or any
    /// compatible server) for every mini-program.
    Upstream { api_base: String },
    /// Neither is set: serve the built-in fake and point the client at it.
    Dev,
}

/// One mini-program wxauth logs users in for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniProgram {
    pub appid: String,
    pub secret: Secret,
    /// For people: the status page shows it. Empty when not given.
    pub name: String,
    /// The subscribe message template of this app's meeting reminders; `None`: this app's
    /// reminders are off. `REMINDER_TEMPLATE_ID` in the one-app form, `reminder_template` in
    /// the apps file.
    pub reminder_template: Option<String>,
}

/// A WeCom (企业微信) corp whose staff open the mini-program `appid` inside WeCom.
pub use crate::wechat::wecom::WeComApp;

/// The apps configured, dev mode's demo apps included.
#[derive(Debug, Clone)]
pub struct Apps {
    /// Never empty; the first is the default app (a login that names no app is for it).
    pub miniprograms: Vec<MiniProgram>,
    pub wecom: Vec<WeComApp>,
}

impl Apps {
    pub fn default_app(&self) -> &MiniProgram {
        &self.miniprograms[0]
    }

    pub fn miniprogram(&self, appid: &str) -> Option<&MiniProgram> {
        self.miniprograms.iter().find(|app| app.appid == appid)
    }
}

/// Dev mode's demo apps: two mini-programs of one company (the demo users have the same unionid
/// in both) and a corp whose staff open the first one inside WeCom. Their secrets are made up
/// per process; only the built-in fake ever sees them.
pub const DEV_APPIDS: [&str; 2] = ["wxdevfake00000000", "wxdevfake00000001"];
pub const DEV_APP_NAMES: [&str; 2] = ["会议OA (demo)", "活动 (demo)"];
pub const DEV_CORPID: &str = "wwdevfake00000000";

fn dev_apps() -> Apps {
    Apps {
        miniprograms: DEV_APPIDS
            .iter()
            .zip(DEV_APP_NAMES)
            .map(|(appid, name)| MiniProgram {
                appid: appid.to_string(),
                secret: Secret::new(crate::random::token_hex(16)),
                name: name.to_string(),
                reminder_template: None,
            })
            .collect(),
        wecom: vec![WeComApp {
            corpid: DEV_CORPID.to_string(),
            corpsecret: Secret::new(crate::random::token_hex(16)),
            appid: DEV_APPIDS[0].to_string(),
        }],
    }
}

/// Everything wxauth is configured with, section by section as `vars::SECTIONS` declares the
/// variables: each part of wxauth is handed the section it reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub wechat: WeChatConfig,
    pub content: ContentConfig,
    pub reminders: Reminders,
    pub sessions: SessionConfig,
    pub limits: LimitsConfig,
    pub admin: AdminConfig,
    pub retention: RetentionConfig,
    pub logging: LoggingConfig,
}

/// `vars::DATABASE`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    /// The NOTIFY listener's connection: `DATABASE_URL` unless `DATABASE_LISTEN_URL` is set. LISTEN
    /// needs a session of its own, which a transaction pooler in `DATABASE_URL` cannot give.
    pub listen_url: String,
    /// Connections, and DbExecutor threads.
    pub pool_size: u32,
}

/// `vars::HTTP`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub(crate) bind_addr: SocketAddr,
    /// Normalised: empty, or a leading `/` without a trailing one (`/oapro`).
    pub context_path: String,
    /// HTTP worker threads; 0 means one per core (actix-web's default).
    pub workers: usize,
    /// The request header that carries the mini-program's token.
    pub token_header: actix_web::http::header::HeaderName,
    /// `TOKEN_HEADER` as written (`X-OA-Token`): `HeaderName` keeps only the lower case, and
    /// the docs show the name as a developer will type it. See `token_header_shown`.
    pub token_header_written: String,
    /// `None`: `/metrics` is on the main listener. `Some`: only on this address.
    pub metrics_bind_addr: Option<SocketAddr>,
    /// Dev mode listening on a non-loopback address, allowed by `ALLOW_DEV_MODE_ON_NETWORK=1`.
    pub(crate) dev_mode_on_network: bool,
    /// Serve the comparison routes under `/bench/` that `scripts/bench` measures against.
    pub bench_endpoints: bool,
    /// After SIGTERM/SIGINT: how long to keep serving while `/readyz` answers 503 and every answer
    /// closes its connection, before the listener closes.
    pub(crate) shutdown_drain: Duration,
}

/// `vars::WECHAT`.
#[derive(Debug, Clone)]
pub struct WeChatConfig {
    pub mode: WeChatMode,
    pub apps: Apps,
    /// WeCom's API for staff login; in dev mode the built-in fake is used instead.
    pub wecom_api_base: String,
    pub timeout: Duration,
    pub access_token_mode: AccessTokenMode,
}

/// `vars::CONTENT`.
#[derive(Debug, Clone)]
pub struct ContentConfig {
    /// `CONTENT_CHECK`: user text others will see goes through WeChat's msgSecCheck.
    pub check: bool,
    /// `CONTENT_CHECK_ON_ERROR`.
    pub on_error: CheckFailure,
}

/// `vars::SESSIONS`.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub(crate) jwt_secret: Secret,
    /// True when no `JWT_SECRET` was configured and one was generated for this process.
    pub(crate) jwt_secret_generated: bool,
    /// AES-256 key for session_keys at rest; `None`: derived from the JWT secret.
    pub(crate) encryption_key: Option<[u8; 32]>,
    pub token_ttl: Duration,
    /// How long a session may live from its login, however often it is refreshed.
    pub max_lifetime: Duration,
    /// How many sessions the SessionActor keeps in memory.
    pub cache_capacity: usize,
}

/// `vars::LIMITS`.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Login attempts per client IP per minute (0: off).
    pub login_per_ip: u32,
    /// Login attempts per openid per minute (0: off).
    pub login_per_openid: u32,
    /// bindPhone calls per user per minute (0: off).
    pub bindphone_per_user: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `vars::ADMIN`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Bearer token for `/admin/api/*`; `None` switches the admin page and API off.
    pub token: Option<Secret>,
    /// True when no `ADMIN_TOKEN` was configured and dev mode generated one for this process.
    pub token_generated: bool,
    /// Where the admin page's files are (`index.html`, CSS, JS).
    pub static_dir: PathBuf,
}

/// `vars::RETENTION`.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// `login_log` rows older than this are deleted.
    pub(crate) login_log: Duration,
    /// How often the gathered login_log rows are written (one statement per batch).
    pub login_log_flush: Duration,
    /// How long after `auth/deactivate` the account's data is erased; a login before then restores
    /// the account. Zero: erased at once.
    pub account_deletion_grace: Duration,
}

/// `vars::LOGGING`.
#[derive(Debug, Clone)]
pub struct LoggingConfig {
    /// How the binary's log lines look (its logger is set up before `Config` is read: this
    /// copy makes an invalid value stop the start like any other). `RUST_LOG` is the logger's.
    pub format: LogFormat,
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
/// Headers that cannot carry the token: HTTP itself, a proxy or a browser sets, consumes or
/// rewrites them, or another part of wxauth already gives them a meaning (the admin side reads
/// `Authorization`, the client's address comes from `X-Forwarded-For`). A name ending in `-*`
/// stands for every header that starts with what precedes the `*`. The README lists this.
pub(crate) const RESERVED_TOKEN_HEADERS: &[&str] = &[
    "accept",
    "accept-*",
    "authorization",
    "cache-control",
    "connection",
    "content-*",
    "cookie",
    "date",
    "expect",
    "forwarded",
    "host",
    "if-*",
    "keep-alive",
    "max-forwards",
    "origin",
    "pragma",
    "proxy-*",
    "range",
    "referer",
    "sec-*",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "true-client-ip",
    "upgrade",
    "user-agent",
    "via",
    "x-client-ip",
    "x-forwarded-*",
    "x-real-ip",
    "x-request-id",
];

/// Whether `name` (lower case, as `HeaderName` keeps it) is one of `RESERVED_TOKEN_HEADERS`.
fn is_reserved_token_header(name: &str) -> bool {
    RESERVED_TOKEN_HEADERS
        .iter()
        .any(|reserved| match reserved.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *reserved,
        })
}

/// Secret values published in the README or `.env.example`, or so common that a scanner tries
/// them first. Starting with one is allowed (a test setup may), but warned about.
const EXAMPLE_SECRETS: &[&str] = &[
    "the-appsecret-from-the-mini-program-admin-console",
    "changeme",
    "change-me",
    "secret",
    "password",
];

/// Whether the key, as its 64 hex characters were written, is one character repeated (a byte
/// repeated whose two hex digits are the same: `00…`, `aa…`).
fn is_placeholder_key(key: &[u8; 32]) -> bool {
    let first = key[0];
    first >> 4 == first & 0x0f && key.iter().all(|b| *b == first)
}

/// Whether a secret is a placeholder: one character repeated, or a published example.
fn is_placeholder_secret(value: &[u8]) -> bool {
    let repeated = value.first().is_some_and(|c| value.iter().all(|b| b == c));
    repeated
        || EXAMPLE_SECRETS
            .iter()
            .any(|example| example.as_bytes().eq_ignore_ascii_case(value))
}

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

    /// Each section through its declarations in `vars`, then the rules that join sections.
    fn read(src: &Source) -> Result<Config, ConfigError> {
        let database = DatabaseConfig::read(src)?;
        let wechat = WeChatConfig::read(src)?;
        let production = !wechat.is_dev_mode();
        let http = HttpConfig::read(src, production)?;
        Ok(Config {
            database,
            http,
            wechat,
            content: ContentConfig::read(src)?,
            reminders: Reminders::read(src)?,
            sessions: SessionConfig::read(src, production)?,
            limits: LimitsConfig::read(src)?,
            admin: AdminConfig::read(src, production)?,
            retention: RetentionConfig::read(src)?,
            logging: LoggingConfig::read(src)?,
        })
    }

    /// The secret variables whose values are placeholders (`is_placeholder_secret`): worth a
    /// warning at start, never the value itself.
    pub(crate) fn placeholder_secrets(&self) -> Vec<&'static str> {
        let mut weak = Vec::new();
        if !self.is_dev_mode()
            && self
                .wechat
                .apps
                .miniprograms
                .iter()
                .any(|app| is_placeholder_secret(app.secret.expose().as_bytes()))
        {
            weak.push(WECHAT_SECRET.name);
        }
        let sessions = &self.sessions;
        if !sessions.jwt_secret_generated
            && is_placeholder_secret(sessions.jwt_secret.expose().as_bytes())
        {
            weak.push(JWT_SECRET.name);
        }
        if sessions
            .encryption_key
            .is_some_and(|key| is_placeholder_key(&key))
        {
            weak.push(SESSION_ENCRYPTION_KEY.name);
        }
        if let Some(token) = self
            .admin
            .token
            .as_ref()
            .filter(|_| !self.admin.token_generated)
            && is_placeholder_secret(token.expose().as_bytes())
        {
            weak.push(ADMIN_TOKEN.name);
        }
        weak
    }

    pub(crate) fn is_dev_mode(&self) -> bool {
        self.wechat.is_dev_mode()
    }
}

impl DatabaseConfig {
    fn read(src: &Source) -> Result<DatabaseConfig, ConfigError> {
        let url = DATABASE_URL.parse(src, postgres_url)?;
        let listen_url = DATABASE_LISTEN_URL
            .parse_set(src, postgres_url)?
            .unwrap_or_else(|| url.clone());
        Ok(DatabaseConfig {
            url,
            listen_url,
            pool_size: DB_POOL_SIZE.read(src)?,
        })
    }
}

impl HttpConfig {
    fn read(src: &Source, production: bool) -> Result<HttpConfig, ConfigError> {
        let bind_addr = socket_addr(&BIND_ADDR, &BIND_ADDR.value(src))?;
        // An empty value would read as unset (the default, /oapro) while looking like "no
        // prefix": the two readings put the API at different URLs, so neither is guessed.
        if CONTEXT_PATH.set_but_empty(src) {
            return Err(CONTEXT_PATH.refused_because(
                "it is empty: set CONTEXT_PATH=/ for the API at /wx/, or leave it out for /oapro",
            ));
        }
        let context_path = CONTEXT_PATH.parse(src, normalise_context_path)?;
        let workers = HTTP_WORKERS.read(src)?;
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
        let bench_endpoints = BENCH_ENDPOINTS.read(src)?;
        let dev_mode_on_network = dev_mode_on_network(src, !production, bind_addr)?;
        let token_header_written = TOKEN_HEADER.value(src).trim().to_string();
        let token_header = parse_token_header(&token_header_written)?;
        let shutdown_drain = Duration::from_secs(SHUTDOWN_DRAIN_SECS.read(src)?);
        Ok(HttpConfig {
            bind_addr,
            context_path,
            workers,
            token_header,
            token_header_written,
            metrics_bind_addr,
            dev_mode_on_network,
            bench_endpoints,
            shutdown_drain,
        })
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

impl WeChatConfig {
    fn read(src: &Source) -> Result<WeChatConfig, ConfigError> {
        let (mode, mut apps) = wechat_mode(src)?;
        default_app_reminder_template(src, &mut apps)?;
        let wecom_api_base = WECOM_API_BASE.parse(src, http_base)?;
        if let WeChatMode::Upstream { api_base, .. } = &mode {
            // Only production sends real secrets upstream: dev mode's fakes are local.
            refuse_clear_text_upstreams(&[
                (WECHAT_API_BASE.name, api_base),
                (WECOM_API_BASE.name, &wecom_api_base),
            ])?;
        }
        Ok(WeChatConfig {
            mode,
            apps,
            wecom_api_base,
            timeout: Duration::from_millis(WECHAT_TIMEOUT_MS.read(src)?),
            access_token_mode: WECHAT_TOKEN_MODE.read(src)?,
        })
    }

    pub(crate) fn is_dev_mode(&self) -> bool {
        matches!(self.mode, WeChatMode::Dev)
    }
}

impl ContentConfig {
    fn read(src: &Source) -> Result<ContentConfig, ConfigError> {
        Ok(ContentConfig {
            check: CONTENT_CHECK.read(src)?,
            on_error: CONTENT_CHECK_ON_ERROR.read(src)?,
        })
    }
}

impl Reminders {
    /// `REMINDER_TEMPLATE_ID` is the default app's, read with the apps (`WeChatConfig`).
    fn read(src: &Source) -> Result<Reminders, ConfigError> {
        Ok(Reminders {
            fields: REMINDER_FIELDS.parse(src, parse_reminder_fields)?,
            page: REMINDER_PAGE.parse(src, parse_reminder_page)?,
            lead: Duration::from_secs(60 * REMINDER_LEAD_MINS.read::<u64>(src)?),
            tick: Duration::from_secs(REMINDER_TICK_SECS.read(src)?),
            miniprogram_state: REMINDER_MINIPROGRAM_STATE.read(src)?,
        })
    }
}

impl SessionConfig {
    fn read(src: &Source, production: bool) -> Result<SessionConfig, ConfigError> {
        let (jwt_secret, jwt_secret_generated) = jwt_secret(src, production)?;
        Ok(SessionConfig {
            jwt_secret,
            jwt_secret_generated,
            encryption_key: SESSION_ENCRYPTION_KEY.parse_set(src, parse_hex_key)?,
            token_ttl: Duration::from_secs(TOKEN_TTL_SECS.read(src)?),
            max_lifetime: Duration::from_secs(SESSION_MAX_LIFETIME_SECS.read(src)?),
            cache_capacity: SESSION_CACHE_CAPACITY.read(src)?,
        })
    }
}

impl LimitsConfig {
    fn read(src: &Source) -> Result<LimitsConfig, ConfigError> {
        let trusted_proxies = TRUSTED_PROXIES
            .parse_set(src, parse_proxies)?
            .unwrap_or_default();
        refuse_trust_in_everyone(&trusted_proxies)?;
        Ok(LimitsConfig {
            login_per_ip: RATE_LOGIN_PER_IP.read(src)?,
            login_per_openid: RATE_LOGIN_PER_OPENID.read(src)?,
            bindphone_per_user: RATE_BINDPHONE_PER_USER.read(src)?,
            trusted_proxies,
        })
    }
}

impl AdminConfig {
    fn read(src: &Source, production: bool) -> Result<AdminConfig, ConfigError> {
        let (token, token_generated) = admin_token(src, !production)?;
        Ok(AdminConfig {
            token,
            token_generated,
            static_dir: ADMIN_STATIC_DIR
                .raw(src)
                .map(PathBuf::from)
                .unwrap_or_else(default_admin_static_dir),
        })
    }
}

impl RetentionConfig {
    fn read(src: &Source) -> Result<RetentionConfig, ConfigError> {
        Ok(RetentionConfig {
            login_log: days(LOGIN_LOG_RETENTION_DAYS.read(src)?),
            login_log_flush: Duration::from_millis(LOGIN_LOG_FLUSH_MS.read(src)?),
            account_deletion_grace: days(ACCOUNT_DELETION_GRACE_DAYS.read(src)?),
        })
    }
}

impl LoggingConfig {
    fn read(src: &Source) -> Result<LoggingConfig, ConfigError> {
        Ok(LoggingConfig {
            format: LOG_FORMAT.read(src)?,
        })
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

/// An http(s) URL without its trailing slash, so that paths can be appended.
fn http_base(base: &str) -> Option<String> {
    let base = base.trim_end_matches('/');
    (base.starts_with("http://") || base.starts_with("https://")).then(|| base.to_string())
}

/// Upstream when `WECHAT_APPID` (which then needs `WECHAT_SECRET`) or `WECHAT_APPS_FILE` is set;
/// dev mode otherwise.
fn wechat_mode(src: &Source) -> Result<(WeChatMode, Apps), ConfigError> {
    let appid =
        WECHAT_APPID.parse_set(src, |appid| valid_appid(appid).then(|| appid.to_string()))?;
    let apps_file = WECHAT_APPS_FILE.raw(src);
    let apps = match (appid, apps_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                WECHAT_APPS_FILE.name,
                "set either WECHAT_APPID (one app) or WECHAT_APPS_FILE (several), not both",
            ));
        }
        (None, None) => return Ok((WeChatMode::Dev, dev_apps())),
        (Some(appid), None) => {
            let secret = WECHAT_SECRET
                .raw(src)
                .ok_or_else(|| invalid(WECHAT_SECRET.name, "required when WECHAT_APPID is set"))?;
            Apps {
                miniprograms: vec![MiniProgram {
                    appid,
                    secret: Secret::new(secret),
                    name: String::new(),
                    reminder_template: None,
                }],
                wecom: Vec::new(),
            }
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid(WECHAT_APPS_FILE.name, format!("cannot read {path}: {e}")))?;
            apps_file::parse(&text, &|name| (src.0)(name))
                .map_err(|why| invalid(WECHAT_APPS_FILE.name, format!("{path}: {why}")))?
        }
    };
    let api_base = WECHAT_API_BASE.parse(src, |base| {
        let base = base.trim_end_matches('/');
        (base.starts_with("http://") || base.starts_with("https://")).then(|| base.to_string())
    })?;
    Ok((WeChatMode::Upstream { api_base }, apps))
}

/// `REMINDER_TEMPLATE_ID` is the one-app form: the template of `WECHAT_APPID`'s app, or in dev
/// mode of the default demo app. With `WECHAT_APPS_FILE` it is refused rather than given to the
/// default app: a template id is valid in one mini-program only, the file's entries would then
/// hold every app's settings but this one, and reordering the entries (the first is the default)
/// would quietly move it to another app, whose every reminder WeChat would refuse.
fn default_app_reminder_template(src: &Source, apps: &mut Apps) -> Result<(), ConfigError> {
    let Some(template) = REMINDER_TEMPLATE_ID.parse_set(src, parse_template_id)? else {
        return Ok(());
    };
    if WECHAT_APPS_FILE.raw(src).is_some() {
        let default = &apps.default_app().appid;
        return Err(invalid(
            REMINDER_TEMPLATE_ID.name,
            format!(
                "refused beside WECHAT_APPS_FILE, where each app's template goes in its \
                 [[miniprogram]] entry: write reminder_template = \"{template}\" in the entry of \
                 appid {default} (the default app), and unset REMINDER_TEMPLATE_ID"
            ),
        ));
    }
    apps.miniprograms[0].reminder_template = Some(template);
    Ok(())
}

/// Appids and corpids go into URLs, metric labels and a `VARCHAR(64)` column.
fn valid_appid(appid: &str) -> bool {
    (1..=64).contains(&appid.len())
        && appid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `WECHAT_APPS_FILE`'s format. Every refusal names the entry (`[[miniprogram]] 2`) and the key,
/// and never shows a secret.
mod apps_file {
    use serde::Deserialize;

    use super::{Apps, MiniProgram, Secret, WeComApp, parse_template_id, valid_appid};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        miniprogram: Vec<MiniProgramEntry>,
        #[serde(default)]
        wecom: Vec<WeComEntry>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MiniProgramEntry {
        appid: Option<String>,
        secret: Option<String>,
        secret_env: Option<String>,
        name: Option<String>,
        reminder_template: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WeComEntry {
        corpid: Option<String>,
        corpsecret: Option<String>,
        corpsecret_env: Option<String>,
        appid: Option<String>,
    }

    /// The status page shows it on one line.
    const MAX_NAME_CHARS: usize = 64;

    pub(super) fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Apps, String> {
        // toml's message names the line and the key; the offending text it quotes is the
        // file's, which may hold a secret, so only its first line (the position) is kept.
        let file: File = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            match e.span() {
                Some(span) => format!(
                    "line {}: {message}",
                    text[..span.start.min(text.len())].lines().count().max(1)
                ),
                None => message,
            }
        })?;
        if file.miniprogram.is_empty() {
            return Err("no [[miniprogram]] entry: the first one is the default app".into());
        }
        let mut miniprograms: Vec<MiniProgram> = Vec::new();
        for (i, entry) in file.miniprogram.into_iter().enumerate() {
            let at = |key: &str, why: &str| format!("[[miniprogram]] {}: {key}: {why}", i + 1);
            let appid = required_id(entry.appid, "appid", &at)?;
            if miniprograms.iter().any(|m| m.appid == appid) {
                return Err(at("appid", &format!("{appid} is listed twice")));
            }
            let secret = secret(entry.secret, entry.secret_env, "secret", env, &at)?;
            let name = entry.name.unwrap_or_default().trim().to_string();
            if name.chars().count() > MAX_NAME_CHARS {
                return Err(at("name", &format!("at most {MAX_NAME_CHARS} characters")));
            }
            let reminder_template = entry
                .reminder_template
                .map(|t| reminder_template(&t, &at))
                .transpose()?;
            miniprograms.push(MiniProgram {
                appid,
                secret,
                name,
                reminder_template,
            });
        }
        let mut wecom: Vec<WeComApp> = Vec::new();
        for (i, entry) in file.wecom.into_iter().enumerate() {
            let at = |key: &str, why: &str| format!("[[wecom]] {}: {key}: {why}", i + 1);
            let corpid = required_id(entry.corpid, "corpid", &at)?;
            if wecom.iter().any(|w| w.corpid == corpid) {
                return Err(at("corpid", &format!("{corpid} is listed twice")));
            }
            let corpsecret = secret(
                entry.corpsecret,
                entry.corpsecret_env,
                "corpsecret",
                env,
                &at,
            )?;
            let appid = required_id(entry.appid, "appid", &at)?;
            if !miniprograms.iter().any(|m| m.appid == appid) {
                return Err(at(
                    "appid",
                    &format!("{appid} is not the appid of a [[miniprogram]] entry"),
                ));
            }
            wecom.push(WeComApp {
                corpid,
                corpsecret,
                appid,
            });
        }
        Ok(Apps {
            miniprograms,
            wecom,
        })
    }

    fn required_id(
        value: Option<String>,
        key: &str,
        at: &dyn Fn(&str, &str) -> String,
    ) -> Result<String, String> {
        let value = value.map(|v| v.trim().to_string()).unwrap_or_default();
        if value.is_empty() {
            return Err(at(key, "required"));
        }
        if !valid_appid(&value) {
            return Err(at(key, "expected 1 to 64 letters, digits, '_' or '-'"));
        }
        Ok(value)
    }

    /// A template id as `REMINDER_TEMPLATE_ID` takes it. An empty one is refused rather than
    /// read as "off": leaving the key out says that, and an empty value is more often a
    /// template id that a deployment tool failed to fill in.
    fn reminder_template(value: &str, at: &dyn Fn(&str, &str) -> String) -> Result<String, String> {
        const KEY: &str = "reminder_template";
        let value = value.trim();
        if value.is_empty() {
            return Err(at(
                KEY,
                "empty: give the template id, or leave the key out for no reminders in this app",
            ));
        }
        parse_template_id(value)
            .ok_or_else(|| at(KEY, "expected at most 128 visible ASCII characters"))
    }

    /// The secret given outright, or read from the variable `{key}_env` names.
    fn secret(
        given: Option<String>,
        from_env: Option<String>,
        key: &str,
        env: &dyn Fn(&str) -> Option<String>,
        at: &dyn Fn(&str, &str) -> String,
    ) -> Result<Secret, String> {
        let env_key = format!("{key}_env");
        match (given.filter(|s| !s.trim().is_empty()), from_env) {
            (Some(_), Some(_)) => Err(at(key, &format!("give {key} or {env_key}, not both"))),
            (Some(secret), None) => Ok(Secret::new(secret.trim())),
            (None, Some(name)) => {
                let value = env(name.trim())
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty());
                value
                    .map(Secret::new)
                    .ok_or_else(|| at(&env_key, &format!("the variable {name} is not set")))
            }
            (None, None) => Err(at(key, &format!("required (or {env_key})"))),
        }
    }
}

/// The configured secret, long enough in production; in dev mode one is generated when unset.
fn jwt_secret(src: &Source, production: bool) -> Result<(Secret, bool), ConfigError> {
    match JWT_SECRET.raw(src) {
        Some(s) if production && s.len() < MIN_JWT_SECRET_LEN => Err(invalid(
            JWT_SECRET.name,
            format!(
                "must be at least {MIN_JWT_SECRET_LEN} bytes when WECHAT_APPID or \
                 WECHAT_APPS_FILE is set (got {}); generate one with: openssl rand -hex 32",
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
    if is_reserved_token_header(name.as_str()) {
        return Err(invalid(
            TOKEN_HEADER.name,
            format!(
                "{} is a header HTTP, a proxy, a browser or wxauth already uses, which may \
                 change, drop or copy it; set another name, such as X-OA-Token (the README \
                 lists the names refused)",
                name.as_str()
            ),
        ));
    }
    Ok(name)
}

/// Refuses a list that trusts every address: each client could then name its own address in
/// `X-Forwarded-For`, and every per-client limit and log line would believe it.
fn refuse_trust_in_everyone(proxies: &[ipnet::IpNet]) -> Result<(), ConfigError> {
    match proxies.iter().find(|net| net.prefix_len() == 0) {
        Some(everyone) => Err(invalid(
            TRUSTED_PROXIES.name,
            format!(
                "{everyone} trusts every address, so every client could pick the address \
                 wxauth sees for it; list only your proxies' addresses (e.g. 127.0.0.1 or \
                 10.0.0.0/8)"
            ),
        )),
        None => Ok(()),
    }
}

/// Refuses an upstream base URL in plain `http://` to another machine: the requests carry the
/// app's secret (AppSecret, corpsecret) in their query, which anyone on the way could then read.
/// Each upstream is a `(variable name, base URL)` pair.
fn refuse_clear_text_upstreams(upstreams: &[(&'static str, &str)]) -> Result<(), ConfigError> {
    for (var, base) in upstreams {
        let Some(rest) = base.strip_prefix("http://") else {
            continue;
        };
        let host = url_host(rest);
        if !is_loopback_host(host) {
            return Err(invalid(
                var,
                format!(
                    "{base} is plain http:// to {host}, not this machine: the app's secret would \
                     travel in clear text; use https:// (plain http:// only to 127.0.0.1, [::1] \
                     or localhost)"
                ),
            ));
        }
    }
    Ok(())
}

/// The host of a URL's authority (what follows the scheme): without user info, port or path;
/// an IPv6 address without its brackets.
fn url_host(after_scheme: &str) -> &str {
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    }
}

/// `localhost` (and its subdomains, which resolvers keep on this machine) or a loopback address.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
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
        assert_eq!(c.database.url, DATABASE_URL.default);
        assert_eq!(c.http.bind_addr.to_string(), BIND_ADDR.default);
        assert_eq!(c.http.api_root(), "/oapro/wx");
        assert!(c.sessions.jwt_secret_generated);
        assert_eq!(c.sessions.jwt_secret.expose().len(), 64);
        assert!(c.wechat.timeout < Duration::from_millis(3000));
        assert!(!c.http.bench_endpoints);
        assert_eq!(c.http.token_header.as_str(), "x-oa-token");
        assert_eq!(
            c.http.token_header_shown(),
            "X-OA-Token",
            "as written, for the docs"
        );
        assert_eq!(c.database.listen_url, DATABASE_URL.default);
        assert_eq!(
            c.http.shutdown_drain,
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
        let declared: std::collections::BTreeSet<String> = variables()
            .map(|v| v.name().to_string())
            // The logger reads it, in `main`.
            .filter(|name| name != RUST_LOG.name)
            .collect();
        assert_eq!(asked.into_inner(), declared);
    }

    #[test]
    fn each_section_of_the_declarations_is_read_by_its_own_reader() {
        // Each reader, told whether WeChat is the real one (production).
        type Reader = fn(&Source, bool) -> Result<(), ConfigError>;
        let readers: [(&Section, Reader); 10] = [
            (&DATABASE, |s, _| DatabaseConfig::read(s).map(drop)),
            (&HTTP, |s, production| {
                HttpConfig::read(s, production).map(drop)
            }),
            (&WECHAT, |s, _| WeChatConfig::read(s).map(drop)),
            (&CONTENT, |s, _| ContentConfig::read(s).map(drop)),
            (&REMINDERS, |s, _| Reminders::read(s).map(drop)),
            (&SESSIONS, |s, production| {
                SessionConfig::read(s, production).map(drop)
            }),
            (&LIMITS, |s, _| LimitsConfig::read(s).map(drop)),
            (&ADMIN, |s, production| {
                AdminConfig::read(s, production).map(drop)
            }),
            (&RETENTION, |s, _| RetentionConfig::read(s).map(drop)),
            (&LOGGING, |s, _| LoggingConfig::read(s).map(drop)),
        ];
        assert_eq!(readers.len(), SECTIONS.len(), "a section without a reader");
        let production = vars(&[
            ("WECHAT_APPID", "wx123"),
            ("WECHAT_SECRET", "s"),
            ("JWT_SECRET", LONG_ENOUGH_JWT_SECRET),
        ]);
        for (section, read) in readers {
            let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
            for (set, is_production) in [(vars(&[]), false), (production.clone(), true)] {
                let lookup = |name: &str| {
                    asked.borrow_mut().insert(name.to_string());
                    set.get(name).cloned()
                };
                read(&Source(&lookup), is_production).expect("valid");
            }
            let mut own: std::collections::BTreeSet<String> = section
                .vars
                .iter()
                .map(|v| v.name().to_string())
                // The logger reads it, in `main`.
                .filter(|name| name != RUST_LOG.name)
                .collect();
            if section.title == WECHAT.title {
                // The one-app form of an app's reminder template is read with the apps.
                own.insert(REMINDER_TEMPLATE_ID.name.to_string());
            }
            if section.title == REMINDERS.title {
                own.remove(REMINDER_TEMPLATE_ID.name);
            }
            assert_eq!(asked.into_inner(), own, "{}", section.title);
        }
    }

    #[test]
    fn token_header_takes_any_header_name() {
        let c = Config::from_vars(&vars(&[("TOKEN_HEADER", " X-Litemall-Token ")])).expect("valid");
        assert_eq!(c.http.token_header.as_str(), "x-litemall-token");
        assert_eq!(c.http.token_header_shown(), "X-Litemall-Token");
        let mut c =
            Config::from_vars(&vars(&[("TOKEN_HEADER", "x-LITEMALL-token")])).expect("valid");
        assert_eq!(
            c.http.token_header_shown(),
            "x-LITEMALL-token",
            "as written"
        );
        c.http.token_header = actix_web::http::header::HeaderName::from_static("x-other-token");
        assert_eq!(
            c.http.token_header_shown(),
            "X-Other-Token",
            "set in code: capitalised"
        );
        let c = Config::from_vars(&vars(&[("TOKEN_HEADER", "X-Token")])).expect("valid");
        assert_eq!(c.http.token_header.as_str(), "x-token");
    }

    #[test]
    fn token_header_refuses_what_http_proxies_and_browsers_use() {
        for taken in [
            "User-Agent",
            "Authorization",
            "Via",
            "Forwarded",
            "X-Real-IP",
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "Accept",
            "Accept-Language",
            "Range",
            "Expect",
            "Origin",
            "Referer",
            "Set-Cookie",
            "Content-Encoding",
            "Sec-Fetch-Site",
            "If-None-Match",
            "Proxy-Connection",
        ] {
            let e = Config::from_vars(&vars(&[("TOKEN_HEADER", taken)])).expect_err(taken);
            assert_eq!(e.var, "TOKEN_HEADER");
            assert!(
                e.reason.contains("set another name"),
                "{taken}: {}",
                e.reason
            );
        }
        for free in ["X-OA-Token", "X-Litemall-Token", "X-Accepted", "Originator"] {
            assert!(
                Config::from_vars(&vars(&[("TOKEN_HEADER", free)])).is_ok(),
                "{free}"
            );
        }
    }

    #[test]
    fn the_readme_lists_every_refused_token_header() {
        let readme = include_str!("../README.md");
        let listed = readme
            .lines()
            .find(|l| l.starts_with("Refused as `TOKEN_HEADER`:"))
            .expect("the README lists the refused token headers");
        let names: Vec<String> = RESERVED_TOKEN_HEADERS
            .iter()
            .map(|n| format!("`{n}`"))
            .collect();
        assert_eq!(
            listed,
            format!("Refused as `TOKEN_HEADER`: {}.", names.join(", "))
        );
    }

    #[test]
    fn the_privacy_section_says_what_outlives_an_erasure_and_for_how_long() {
        let readme = include_str!("../README.md");
        let privacy = readme
            .split("\n## ")
            .find(|s| s.starts_with("Privacy"))
            .expect("a Privacy section");
        let survives = privacy
            .split("\n- ")
            .find(|item| item.starts_with("**What survives an erasure"))
            .expect("the Privacy section says what survives an erasure");
        for needle in [
            "login_log",
            "IP address and user agent",
            LOGIN_LOG_RETENTION_DAYS.name,
        ] {
            assert!(survives.contains(needle), "{needle}: {survives}");
        }
    }

    #[test]
    fn trusting_every_address_is_refused() {
        for everyone in ["0.0.0.0/0", "10.0.0.0/8, ::/0"] {
            let e = Config::from_vars(&vars(&[("TRUSTED_PROXIES", everyone)])).expect_err(everyone);
            assert_eq!(e.var, "TRUSTED_PROXIES");
            assert!(e.reason.contains("every address"), "{}", e.reason);
        }
        assert!(Config::from_vars(&vars(&[("TRUSTED_PROXIES", "0.0.0.0/1")])).is_ok());
    }

    #[test]
    fn clear_text_upstreams_are_refused_unless_on_this_machine() {
        for base in [
            "https://api.weixin.qq.com",
            "http://127.0.0.1:9",
            "http://127.8.9.1/",
            "http://[::1]:8080/x",
            "http://localhost:1234",
            "http://user@LOCALHOST.",
        ] {
            assert!(
                refuse_clear_text_upstreams(&[("WECHAT_API_BASE", base)]).is_ok(),
                "{base}"
            );
        }
        for base in [
            "http://api.weixin.qq.com",
            "http://10.0.0.5:8080",
            "http://[2001:db8::1]:80/",
            "http://127.0.0.1@evil.example/",
            "http://localhost.evil.example",
        ] {
            let e =
                refuse_clear_text_upstreams(&[("OK_BASE", "https://x"), ("WECHAT_API_BASE", base)])
                    .expect_err(base);
            assert_eq!(e.var, "WECHAT_API_BASE", "the variable is named");
            assert!(e.reason.contains("https://"), "{}", e.reason);
        }
    }

    #[test]
    fn placeholder_secrets_are_one_repeated_character_or_a_published_example() {
        assert!(is_placeholder_secret(
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ));
        assert!(is_placeholder_key(&[0u8; 32]));
        assert!(is_placeholder_key(&[0xaa; 32]), "aaaa…");
        assert!(
            !is_placeholder_key(&[0xab; 32]),
            "abab… is not one repeated character"
        );
        assert!(is_placeholder_secret(
            b"the-appsecret-from-the-mini-program-admin-console"
        ));
        assert!(!is_placeholder_secret(b"9f86d081884c7d659a2feaa0c55ad015"));
        let example = include_str!("../.env.example");
        for line in example.lines() {
            if let Some((name, value)) = line.split_once('=')
                && (name.ends_with("SECRET") || name.ends_with("TOKEN") || name.ends_with("KEY"))
                && !value.is_empty()
            {
                assert!(is_placeholder_secret(value.as_bytes()), "{line}");
            }
        }
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
        assert_eq!(c.database.url, "postgres://app@127.0.0.1:6432/wxauth");
        assert_eq!(
            c.database.listen_url,
            "postgres://app@127.0.0.1:5432/wxauth"
        );
        assert_eq!(c.http.shutdown_drain, Duration::ZERO);
    }

    #[test]
    fn bench_endpoints_are_off_unless_asked_for() {
        let on = Config::from_vars(&vars(&[("BENCH_ENDPOINTS", "1")])).expect("valid");
        assert!(on.http.bench_endpoints);
        let off = Config::from_vars(&vars(&[("BENCH_ENDPOINTS", "0")])).expect("valid");
        assert!(!off.http.bench_endpoints);
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
        assert!(dev.admin.token_generated);
        assert!(
            dev.admin
                .token
                .as_ref()
                .is_some_and(|t| t.expose().len() >= MIN_ADMIN_TOKEN_LEN)
        );
        assert_eq!(dev.retention.login_log, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(
            dev.retention.account_deletion_grace,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(dev.http.metrics_bind_addr, None);

        let production = [
            ("WECHAT_APPID", "wx123"),
            ("WECHAT_SECRET", "s"),
            ("JWT_SECRET", LONG_ENOUGH_JWT_SECRET),
        ];
        let off = Config::from_vars(&vars(&production)).expect("valid");
        assert!(
            off.admin.token.is_none(),
            "production without a token: admin off"
        );
        assert!(!off.admin.token_generated);

        let mut with_token = production.to_vec();
        with_token.push(("ADMIN_TOKEN", "admin-token-value-0123"));
        let on = Config::from_vars(&vars(&with_token)).expect("valid");
        assert_eq!(
            on.admin.token.as_ref().map(Secret::expose),
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
            assert!(c.is_dev_mode() && !c.http.dev_mode_on_network, "{loopback}");
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
            assert!(allowed.http.dev_mode_on_network, "{network}");
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
            assert!(!production.http.dev_mode_on_network);
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
        assert!(!ok.sessions.jwt_secret_generated);

        // Dev mode keeps working with no secret, or a short one, as a developer's laptop does.
        assert!(
            Config::from_vars(&vars(&[]))
                .expect("dev")
                .sessions
                .jwt_secret_generated
        );
        assert!(Config::from_vars(&vars(&[("JWT_SECRET", "short")])).is_ok());
    }

    #[test]
    fn session_max_lifetime_defaults_to_30_days_within_a_day_and_a_year() {
        let c = Config::from_vars(&vars(&[])).expect("valid");
        assert_eq!(c.sessions.max_lifetime, Duration::from_secs(30 * 24 * 3600));
        for (value, secs) in [("86400", 86_400), ("31536000", 31_536_000)] {
            let c = Config::from_vars(&vars(&[("SESSION_MAX_LIFETIME_SECS", value)]))
                .expect("in range");
            assert_eq!(c.sessions.max_lifetime, Duration::from_secs(secs));
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
        match &c.wechat.mode {
            WeChatMode::Upstream { api_base } => assert_eq!(api_base, "http://127.0.0.1:9"),
            WeChatMode::Dev => panic!("expected upstream mode"),
        }
        assert_eq!(c.wechat.apps.miniprograms.len(), 1);
        assert_eq!(c.wechat.apps.default_app().appid, "wx123");
        assert!(c.wechat.apps.wecom.is_empty());
        let shown = format!("{c:?}");
        assert!(!shown.contains("app-secret-value"));
        assert!(!shown.contains(LONG_ENOUGH_JWT_SECRET));
        assert!(!c.sessions.jwt_secret_generated);
    }

    #[test]
    fn wecom_api_base_defaults_to_wecom_and_must_be_http() {
        let c = Config::from_vars(&vars(&[])).expect("valid");
        assert_eq!(c.wechat.wecom_api_base, "https://qyapi.weixin.qq.com");
        let c =
            Config::from_vars(&vars(&[("WECOM_API_BASE", "http://127.0.0.1:9/")])).expect("valid");
        assert_eq!(c.wechat.wecom_api_base, "http://127.0.0.1:9");
        let err = Config::from_vars(&vars(&[("WECOM_API_BASE", "qyapi.weixin.qq.com")]))
            .expect_err("no scheme");
        assert_eq!(err.var, "WECOM_API_BASE");
    }

    #[test]
    fn proxies_are_ips_or_ranges() {
        let c = Config::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]))
            .expect("valid");
        assert_eq!(c.limits.trusted_proxies.len(), 3);
        assert!(
            c.limits.trusted_proxies[0]
                .contains(&"10.1.2.3".parse::<std::net::IpAddr>().expect("ip"))
        );
        assert_eq!(c.limits.login_per_ip, 120);
        assert_eq!(c.limits.login_per_openid, 20);
        assert_eq!(c.limits.bindphone_per_user, 10);
    }

    #[test]
    fn reminder_fields_are_template_keys_and_meeting_values() {
        let parsed = parse_reminder_fields("thing1=title, time2=start,thing3=location")
            .expect("the default form");
        assert_eq!(
            parsed,
            vec![
                ("thing1".to_string(), MeetingField::Title),
                ("time2".to_string(), MeetingField::Start),
                ("thing3".to_string(), MeetingField::Location),
            ]
        );
        for bad in [
            "",
            "thing1",
            "thing1=body",
            "thing=title",
            "1=title",
            "Thing1=title",
            "time2=title",
            "thing1=title,thing1=location",
        ] {
            assert_eq!(parse_reminder_fields(bad), None, "{bad:?}");
        }
        let config = Config::from_vars(&vars(&[("REMINDER_FIELDS", "time9=end")]));
        assert!(config.is_ok());
        let refused = Config::from_vars(&vars(&[("REMINDER_LEAD_MINS", "0")]));
        assert_eq!(refused.map_err(|e| e.var).err(), Some("REMINDER_LEAD_MINS"));
        let off = Config::from_vars(&vars(&[])).expect("defaults");
        assert!(
            off.wechat
                .apps
                .miniprograms
                .iter()
                .all(|app| app.reminder_template.is_none())
        );
        assert_eq!(off.reminders.lead, Duration::from_secs(900));
        assert_eq!(off.reminders.page, "pages/meeting/detail?id={id}");
    }

    #[test]
    fn context_path_is_normalised() {
        assert_eq!(normalise_context_path("oapro/").as_deref(), Some("/oapro"));
        assert_eq!(normalise_context_path("/").as_deref(), Some(""));
        assert_eq!(normalise_context_path("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(normalise_context_path("/a//b"), None);
    }

    fn apps_file(text: &str, env: &[(&str, &str)]) -> Result<Apps, String> {
        let env = vars(env);
        apps_file::parse(text, &|name| env.get(name).cloned())
    }

    const TWO_APPS: &str = r#"
        [[miniprogram]]
        appid = "wx1111111111111111"
        secret = "oa-secret-value"
        name = "会议OA"

        [[miniprogram]]
        appid = "wx2222222222222222"
        secret_env = "SHOP_SECRET"
        reminder_template = " tmpl-shop-reminder "

        [[wecom]]
        corpid = "ww3333333333333333"
        corpsecret_env = "CORP_SECRET"
        appid = "wx1111111111111111"
    "#;

    #[test]
    fn the_apps_file_lists_apps_and_the_first_is_the_default() {
        let apps = apps_file(
            TWO_APPS,
            &[
                ("SHOP_SECRET", "shop-secret-value"),
                ("CORP_SECRET", "corp-secret-value"),
            ],
        )
        .expect("valid");
        assert_eq!(apps.default_app().appid, "wx1111111111111111");
        assert_eq!(apps.default_app().name, "会议OA");
        let shop = apps.miniprogram("wx2222222222222222").expect("second app");
        assert_eq!(shop.secret.expose(), "shop-secret-value");
        assert_eq!(shop.name, "");
        assert_eq!(
            shop.reminder_template.as_deref(),
            Some("tmpl-shop-reminder")
        );
        assert_eq!(
            apps.default_app().reminder_template,
            None,
            "reminders off in the OA"
        );
        assert_eq!(
            apps.wecom,
            vec![WeComApp {
                corpid: "ww3333333333333333".into(),
                corpsecret: Secret::new("corp-secret-value"),
                appid: "wx1111111111111111".into(),
            }]
        );
        let shown = format!("{apps:?}");
        for secret in ["oa-secret-value", "shop-secret-value", "corp-secret-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn a_bad_apps_file_names_the_entry_and_the_key_but_no_secret() {
        let env = [("SHOP_SECRET", "shop-secret-value"), ("CORP_SECRET", "c")];
        let one = |extra: &str| {
            format!("[[miniprogram]]\nappid = \"wx1\"\nsecret = \"s3cr3t-value\"\n{extra}")
        };
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no [[miniprogram]]"),
            (
                "[[wecom]]\ncorpid = \"ww1\"\ncorpsecret = \"x\"\nappid = \"wx1\"".into(),
                "no [[miniprogram]]",
            ),
            (one("name = 5"), "line 4"),
            (one("colour = \"red\""), "colour"),
            (
                "[[miniprogram]]\nsecret = \"s3cr3t-value\"".into(),
                "[[miniprogram]] 1: appid: required",
            ),
            (
                "[[miniprogram]]\nappid = \"wx 1\"\nsecret = \"s3cr3t-value\"".into(),
                "[[miniprogram]] 1: appid",
            ),
            (
                "[[miniprogram]]\nappid = \"wx1\"".into(),
                "[[miniprogram]] 1: secret: required",
            ),
            (
                one("secret_env = \"SHOP_SECRET\""),
                "[[miniprogram]] 1: secret: give secret or secret_env",
            ),
            (
                format!(
                    "{}\n[[miniprogram]]\nappid = \"wx2\"\nsecret_env = \"NOT_SET\"",
                    one("")
                ),
                "[[miniprogram]] 2: secret_env: the variable NOT_SET is not set",
            ),
            (
                format!(
                    "{}\n[[miniprogram]]\nappid = \"wx1\"\nsecret = \"x\"",
                    one("")
                ),
                "[[miniprogram]] 2: appid: wx1 is listed twice",
            ),
            (
                one(&format!("name = \"{}\"", "长".repeat(65))),
                "[[miniprogram]] 1: name",
            ),
            (
                format!(
                    "{}\n[[miniprogram]]\nappid = \"wx2\"\nsecret = \"x\"\nreminder_template = \" \"",
                    one("")
                ),
                "[[miniprogram]] 2: reminder_template: empty",
            ),
            (
                one("reminder_template = \"tmpl reminder\""),
                "[[miniprogram]] 1: reminder_template: expected at most 128 visible ASCII",
            ),
            (
                one(&format!("reminder_template = \"{}\"", "t".repeat(129))),
                "[[miniprogram]] 1: reminder_template",
            ),
            (one("reminder_template = 7"), "line 4"),
            (
                format!(
                    "{}\n[[wecom]]\ncorpid = \"ww1\"\ncorpsecret_env = \"CORP_SECRET\"\nappid = \"wx9\"",
                    one("")
                ),
                "[[wecom]] 1: appid: wx9 is not the appid",
            ),
            (
                format!(
                    "{}\n[[wecom]]\ncorpsecret = \"x\"\nappid = \"wx1\"",
                    one("")
                ),
                "[[wecom]] 1: corpid: required",
            ),
            (
                format!("{}\n[[wecom]]\ncorpid = \"ww1\"\nappid = \"wx1\"", one("")),
                "[[wecom]] 1: corpsecret: required",
            ),
            (
                format!(
                    "{}\n[[wecom]]\ncorpid = \"ww1\"\ncorpsecret = \"x\"",
                    one("")
                ),
                "[[wecom]] 1: appid: required",
            ),
            (
                format!(
                    "{0}\n[[wecom]]\ncorpid = \"ww1\"\ncorpsecret = \"x\"\nappid = \"wx1\"\n[[wecom]]\ncorpid = \"ww1\"\ncorpsecret = \"x\"\nappid = \"wx1\"",
                    one("")
                ),
                "[[wecom]] 2: corpid: ww1 is listed twice",
            ),
            (
                "[[miniprogram]]\nappid = \"wx1\"\nsecret = \"s3cr3t-value".into(),
                "line",
            ),
        ];
        for (text, says) in cases {
            let why = apps_file(&text, &env).expect_err(&text);
            assert!(why.contains(says), "{text}\n→ {why}\n(expected {says:?})");
            assert!(!why.contains("s3cr3t-value"), "a secret in: {why}");
        }
    }

    #[test]
    fn the_apps_file_is_read_through_its_variable_and_means_production() {
        let dir = std::env::temp_dir().join(format!("wxauth-apps-{}", crate::random::token_hex(8)));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("apps.toml");
        std::fs::write(&path, TWO_APPS).expect("write");
        let path = path.to_string_lossy().to_string();
        let base = [
            ("WECHAT_APPS_FILE", path.as_str()),
            ("SHOP_SECRET", "s"),
            ("CORP_SECRET", "c"),
        ];
        let err = Config::from_vars(&vars(&base)).expect_err("production needs a JWT secret");
        assert_eq!(err.var, "JWT_SECRET");
        let mut with_jwt = base.to_vec();
        with_jwt.push(("JWT_SECRET", LONG_ENOUGH_JWT_SECRET));
        let c = Config::from_vars(&vars(&with_jwt)).expect("valid");
        assert!(!c.is_dev_mode());
        assert_eq!(c.wechat.apps.miniprograms.len(), 2);

        let mut both = with_jwt.clone();
        both.push(("WECHAT_APPID", "wx1"));
        both.push(("WECHAT_SECRET", "s"));
        let err = Config::from_vars(&vars(&both)).expect_err("both forms");
        assert_eq!(err.var, "WECHAT_APPS_FILE");

        let mut missing = with_jwt;
        missing[0].1 = "/nonexistent/apps.toml";
        let err = Config::from_vars(&vars(&missing)).expect_err("no file");
        assert_eq!(err.var, "WECHAT_APPS_FILE");
        assert!(err.to_string().contains("/nonexistent/apps.toml"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn reminder_template_id_is_the_one_app_form_and_refused_beside_an_apps_file() {
        let template = |c: &Config| -> Vec<Option<String>> {
            c.wechat
                .apps
                .miniprograms
                .iter()
                .map(|app| app.reminder_template.clone())
                .collect()
        };
        let one_app = Config::from_vars(&vars(&[
            ("WECHAT_APPID", "wx123"),
            ("WECHAT_SECRET", "s"),
            ("JWT_SECRET", LONG_ENOUGH_JWT_SECRET),
            ("REMINDER_TEMPLATE_ID", "tmpl-oa"),
        ]))
        .expect("valid");
        assert_eq!(template(&one_app), vec![Some("tmpl-oa".to_string())]);
        // Dev mode: the default demo app's; the other demo app has none.
        let dev = Config::from_vars(&vars(&[("REMINDER_TEMPLATE_ID", "tmpl-oa")])).expect("dev");
        assert_eq!(template(&dev), vec![Some("tmpl-oa".to_string()), None]);
        let err =
            Config::from_vars(&vars(&[("REMINDER_TEMPLATE_ID", "tmpl oa")])).expect_err("a space");
        assert_eq!(err.var, "REMINDER_TEMPLATE_ID");

        let dir = std::env::temp_dir().join(format!("wxauth-apps-{}", crate::random::token_hex(8)));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("apps.toml");
        std::fs::write(&path, TWO_APPS).expect("write");
        let path = path.to_string_lossy().to_string();
        let mut file = vec![
            ("WECHAT_APPS_FILE", path.as_str()),
            ("SHOP_SECRET", "s"),
            ("CORP_SECRET", "c"),
            ("JWT_SECRET", LONG_ENOUGH_JWT_SECRET),
        ];
        let from_file = Config::from_vars(&vars(&file)).expect("valid");
        assert_eq!(
            template(&from_file),
            vec![None, Some("tmpl-shop-reminder".to_string())]
        );
        file.push(("REMINDER_TEMPLATE_ID", "tmpl-oa"));
        let err = Config::from_vars(&vars(&file)).expect_err("both forms");
        assert_eq!(err.var, "REMINDER_TEMPLATE_ID");
        let why = err.to_string();
        for says in [
            "WECHAT_APPS_FILE",
            "[[miniprogram]]",
            "reminder_template = \"tmpl-oa\"",
            "wx1111111111111111",
        ] {
            assert!(why.contains(says), "{says}: {why}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dev_mode_has_two_demo_mini_programs_and_a_demo_corp() {
        let c = Config::from_vars(&vars(&[])).expect("valid");
        let appids: Vec<&str> = c
            .wechat
            .apps
            .miniprograms
            .iter()
            .map(|a| a.appid.as_str())
            .collect();
        assert_eq!(appids, DEV_APPIDS);
        assert_eq!(c.wechat.apps.wecom.len(), 1);
        assert_eq!(c.wechat.apps.wecom[0].corpid, DEV_CORPID);
        assert_eq!(c.wechat.apps.wecom[0].appid, DEV_APPIDS[0]);
    }
}
