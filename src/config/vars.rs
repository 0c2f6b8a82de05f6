//! Every variable wxauth reads, each declared once: its name, its default, the values it accepts
//! and what it means. `Config` reads each value through its declaration, the error for a refused
//! value says what the declaration accepts, and the README's table and `.env.example` are made
//! from `SECTIONS` (a test says when they are stale and how to make them again).

use super::{AccessTokenMode, CheckFailure, ConfigError, LogFormat, MiniprogramState, invalid};

/// Where the values come from: the process environment, or a test's map.
pub(super) struct Source<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Source<'_> {
    /// The trimmed value; `None` when unset or empty.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

/// A whole number within `min..=max`.
pub(crate) struct Number {
    pub(crate) name: &'static str,
    pub(crate) default: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
    /// What is counted; follows the range in the error message and the README.
    pub(crate) unit: &'static str,
    pub(crate) help: &'static str,
    /// `.env.example`'s comment above the variable; empty: none.
    pub(crate) comment: &'static str,
}

impl Number {
    pub(super) fn read<T: TryFrom<u64>>(&self, src: &Source) -> Result<T, ConfigError> {
        let n = match src.get(self.name) {
            None => self.default,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| invalid(self.name, format!("expected a whole number, got {v:?}")))?,
        };
        let out_of_range = || {
            invalid(
                self.name,
                format!("expected {}..={} {}", self.min, self.max, self.unit),
            )
        };
        if !(self.min..=self.max).contains(&n) {
            return Err(out_of_range());
        }
        T::try_from(n).map_err(|_| out_of_range())
    }
}

/// One of a few words, each standing for a value; the first is the default.
pub(crate) struct Choice<T: 'static> {
    pub(crate) name: &'static str,
    pub(crate) values: &'static [(&'static str, T)],
    pub(crate) help: &'static str,
    /// `.env.example`'s comment above the variable; empty: none.
    pub(crate) comment: &'static str,
}

/// `0` (the default) or `1`.
const OFF_ON: &[(&str, bool)] = &[("0", false), ("1", true)];

impl<T: Copy> Choice<T> {
    pub(super) fn read(&self, src: &Source) -> Result<T, ConfigError> {
        let wanted = src.get(self.name);
        self.values
            .iter()
            .find(|(word, _)| wanted.as_deref().is_none_or(|w| w == *word))
            .map(|(_, value)| *value)
            .ok_or_else(|| invalid(self.name, format!("expected {}", self.words(""))))
    }

    /// `stable or plain`, each word between `quote`s.
    fn words(&self, quote: &str) -> String {
        let words: Vec<String> = self
            .values
            .iter()
            .map(|(word, _)| format!("{quote}{word}{quote}"))
            .collect();
        words.join(" or ")
    }
}

/// Any other value: its own parser in `Config` checks it.
pub struct Text {
    pub name: &'static str,
    /// The value when unset; empty: none.
    pub default: &'static str,
    /// For the README: what being unset means, when the default value alone does not say it.
    pub(crate) default_note: &'static str,
    /// What a value must look like: a refused one gets `expected {expects}`.
    pub(crate) expects: &'static str,
    pub(crate) help: &'static str,
    /// `.env.example`'s comment above the variable; empty: none.
    pub(crate) comment: &'static str,
    /// A value `.env.example` sets (not commented out): one production has to set.
    pub(crate) example: Option<&'static str>,
}

impl Text {
    /// The configured value, without the default.
    pub(super) fn raw(&self, src: &Source) -> Option<String> {
        src.get(self.name)
    }

    /// Set, but to nothing but blanks (`NAME=` in `.env`): for most variables the same as unset.
    pub(super) fn set_but_empty(&self, src: &Source) -> bool {
        (src.0)(self.name).is_some_and(|v| v.trim().is_empty())
    }

    /// The configured value, else the default.
    pub(super) fn value(&self, src: &Source) -> String {
        self.raw(src).unwrap_or_else(|| self.default.to_string())
    }

    /// The configured value, else the default, through `parse`.
    pub(super) fn parse<T>(
        &self,
        src: &Source,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        parse(&self.value(src)).ok_or_else(|| self.refused())
    }

    /// The configured value through `parse`; `None` when unset.
    pub(super) fn parse_set<T>(
        &self,
        src: &Source,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(src)
            .map(|v| parse(&v).ok_or_else(|| self.refused()))
            .transpose()
    }

    /// `expected {expects}`.
    pub(super) fn refused(&self) -> ConfigError {
        invalid(self.name, format!("expected {}", self.expects))
    }

    /// `expected {expects} ({why})`.
    pub(super) fn refused_because(&self, why: impl std::fmt::Display) -> ConfigError {
        invalid(self.name, format!("expected {} ({why})", self.expects))
    }
}

/// What the README's table and `.env.example` say about one variable.
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "besides the name, read by the tests that make the README's table and .env.example"
    )
)]
pub struct Doc {
    pub(crate) name: &'static str,
    /// The value `.env.example` shows commented out: the default, or empty when there is none.
    pub(crate) default: String,
    /// The README's default column (Markdown).
    pub(crate) default_shown: String,
    /// The README's accepts column (Markdown).
    pub(crate) accepts: String,
    pub(crate) help: &'static str,
    /// `.env.example`'s comment above the variable.
    pub(crate) comment: &'static str,
    /// `.env.example`'s `NAME=example`, set; `None`: `#NAME=default`, commented out.
    pub(crate) example: Option<&'static str>,
}

/// A declared variable, whatever its kind.
pub trait Declared {
    fn doc(&self) -> Doc;

    fn name(&self) -> &'static str {
        self.doc().name
    }
}

impl Declared for Number {
    fn doc(&self) -> Doc {
        Doc {
            name: self.name,
            default: self.default.to_string(),
            default_shown: format!("`{}`", self.default),
            accepts: format!("{}–{} {}", self.min, self.max, self.unit),
            help: self.help,
            comment: self.comment,
            example: None,
        }
    }
}

impl<T: Copy> Declared for Choice<T> {
    fn doc(&self) -> Doc {
        let first = self.values.first().map_or("", |(word, _)| *word);
        Doc {
            name: self.name,
            default: first.to_string(),
            default_shown: format!("`{first}`"),
            accepts: self.words("`"),
            help: self.help,
            comment: self.comment,
            example: None,
        }
    }
}

impl Declared for Text {
    fn doc(&self) -> Doc {
        let default_shown = match (self.default, self.default_note) {
            ("", note) => note.to_string(),
            (value, "") => format!("`{value}`"),
            (value, note) => format!("`{value}` {note}"),
        };
        Doc {
            name: self.name,
            default: self.default.to_string(),
            default_shown,
            accepts: self.expects.to_string(),
            help: self.help,
            comment: self.comment,
            example: self.example,
        }
    }
}

/// The variables one part of wxauth reads: one heading of `.env.example`, one section of
/// `Config`.
pub struct Section {
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "read by the test that makes .env.example")
    )]
    pub(crate) title: &'static str,
    /// `.env.example`'s comment under the heading; empty: none.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "read by the test that makes .env.example")
    )]
    pub(crate) comment: &'static str,
    pub vars: &'static [&'static dyn Declared],
}

/// Every variable, section by section.
pub fn variables() -> impl Iterator<Item = &'static dyn Declared> {
    SECTIONS
        .iter()
        .flat_map(|section| section.vars.iter().copied())
}

/// Every variable, by the part of wxauth that reads it: the order of the README's table and
/// of `.env.example`, one heading of `.env.example` each.
pub const SECTIONS: &[Section] = &[
    DATABASE, HTTP, WECHAT, CONTENT, REMINDERS, SESSIONS, LIMITS, ADMIN, RETENTION, LOGGING,
];

pub const DATABASE: Section = Section {
    title: "Database",
    comment: "",
    vars: &[&DATABASE_URL, &DATABASE_LISTEN_URL, &DB_POOL_SIZE],
};

pub(crate) const DATABASE_URL: Text = Text {
    name: "DATABASE_URL",
    default: "postgres://postgres@127.0.0.1:5432/wxauth",
    default_note: "",
    expects: "postgres://user@host:port/dbname",
    help: "PostgreSQL, directly or through PgBouncer in transaction mode; the database is created \
           if missing (directly only) and migrated on start",
    comment: "Through PgBouncer in transaction mode if you use one \
              (deploy/pgbouncer/pgbouncer.ini).",
    example: None,
};

pub(crate) const DATABASE_LISTEN_URL: Text = Text {
    name: "DATABASE_LISTEN_URL",
    default: "",
    default_note: "`DATABASE_URL`",
    expects: "postgres://user@host:port/dbname (a direct connection, not through a transaction \
              pooler)",
    help: "the NOTIFY listener's own connection; must reach PostgreSQL directly (set it when \
           `DATABASE_URL` goes through a transaction pooler: LISTEN needs a session)",
    comment: "The NOTIFY listener's own connection: must reach PostgreSQL directly, never a \
              transaction pool.\n\
              Default: DATABASE_URL.",
    example: None,
};

pub(crate) const DB_POOL_SIZE: Number = Number {
    name: "DB_POOL_SIZE",
    default: 10,
    min: 1,
    max: 200,
    unit: "connections",
    help: "PostgreSQL connections, and DbExecutor threads",
    comment: "Connections per instance, and DbExecutor threads (1-200).",
};

pub const HTTP: Section = Section {
    title: "HTTP",
    comment: "",
    vars: &[
        &BIND_ADDR,
        &CONTEXT_PATH,
        &HTTP_WORKERS,
        &TOKEN_HEADER,
        &METRICS_BIND_ADDR,
        &ALLOW_DEV_MODE_ON_NETWORK,
        &BENCH_ENDPOINTS,
        &SHUTDOWN_DRAIN_SECS,
    ],
};

pub(crate) const BIND_ADDR: Text = Text {
    name: "BIND_ADDR",
    default: "127.0.0.1:8080",
    default_note: "",
    expects: "host:port",
    help: "where to listen (`0.0.0.0:8080` for all interfaces; in dev mode only loopback, see \
           above)",
    comment: "deploy/systemd sets this per instance; set it here only for a single instance.",
    example: None,
};

pub(crate) const CONTEXT_PATH: Text = Text {
    name: "CONTEXT_PATH",
    default: "/oapro",
    default_note: "",
    expects: "a path such as /oapro (letters, digits, - _ . / only)",
    help: "the API lives at `{CONTEXT_PATH}/wx/`; `/` keeps litemall's root `/wx/`; an empty value \
           stops the start (it would read as unset, the default)",
    comment: "",
    example: None,
};

pub(crate) const HTTP_WORKERS: Number = Number {
    name: "HTTP_WORKERS",
    default: 0,
    min: 0,
    max: 256,
    unit: "(0 = one per core)",
    help: "actix-web worker threads",
    comment: "0: one worker per core.",
};

pub(crate) const TOKEN_HEADER: Text = Text {
    name: "TOKEN_HEADER",
    default: "X-OA-Token",
    default_note: "",
    expects: "an HTTP header name such as X-OA-Token (ASCII letters, digits, -; no spaces or \
              colon)",
    help: "the request header that carries the token; only this header is read. \
           `X-Litemall-Token` lets a litemall-derived mini-program switch to wxauth by changing \
           only its API root. Any HTTP header name except those HTTP, proxies, browsers or \
           wxauth already use (`Host`, `Authorization`, `User-Agent`, `X-Forwarded-*`, …: the \
           list is below the table); one of those stops the start (exit 2)",
    comment: "The header that carries the token.",
    example: None,
};

pub(crate) const METRICS_BIND_ADDR: Text = Text {
    name: "METRICS_BIND_ADDR",
    default: "",
    default_note: "unset → `/metrics` on `BIND_ADDR`",
    expects: "host:port",
    help: "set (e.g. `127.0.0.1:9100`, not `BIND_ADDR`) → `/metrics` is served only there, and \
           no longer on `BIND_ADDR`",
    comment: "Serve /metrics only here (e.g. 127.0.0.1:9100) instead of on BIND_ADDR.",
    example: None,
};

pub(crate) const ALLOW_DEV_MODE_ON_NETWORK: Choice<bool> = Choice {
    name: "ALLOW_DEV_MODE_ON_NETWORK",
    values: OFF_ON,
    help: "`1` lets dev mode (no `WECHAT_APPID`) listen on a non-loopback `BIND_ADDR`; anyone \
           who reaches it can log in as any user",
    comment: "Dev mode (no WECHAT_APPID) is refused on a non-loopback BIND_ADDR unless this is 1.",
};

pub(crate) const BENCH_ENDPOINTS: Choice<bool> = Choice {
    name: "BENCH_ENDPOINTS",
    values: OFF_ON,
    help: "`1` serves `GET /bench/plain` and `GET /bench/auth` (same fixed body, the second \
           behind the token check) for `scripts/bench`; logged as a warning; never in production",
    comment: "Never in production.",
};

pub(crate) const SHUTDOWN_DRAIN_SECS: Number = Number {
    name: "SHUTDOWN_DRAIN_SECS",
    // Longer than a proxy's idle keep-alive towards wxauth (deploy/nginx sets 4 s), so every
    // pooled connection has been used and closed, or dropped by the proxy, before the listener
    // closes.
    default: 5,
    min: 0,
    max: 60,
    unit: "seconds",
    help: "after SIGTERM/SIGINT, keep serving this long while `/readyz` answers 503 and every \
           answer closes its connection, then stop (see [Deploying](#deploying))",
    comment: "After SIGTERM: keep serving this long while /readyz answers 503 and every answer \
              closes its\n\
              connection (0-60). Longer than the proxy's upstream keepalive_timeout.",
};

pub const WECHAT: Section = Section {
    title: "WeChat",
    comment: "Production needs WECHAT_APPID and WECHAT_SECRET, or WECHAT_APPS_FILE.",
    vars: &[
        &WECHAT_APPID,
        &WECHAT_SECRET,
        &WECHAT_APPS_FILE,
        &WECHAT_API_BASE,
        &WECOM_API_BASE,
        &WECHAT_TIMEOUT_MS,
        &WECHAT_TOKEN_MODE,
    ],
};

pub(crate) const WECHAT_APPID: Text = Text {
    name: "WECHAT_APPID",
    default: "",
    default_note: "unset → dev mode",
    expects: "an appid such as wx1234567890abcdef",
    help: "the mini-program's appid; unset means the built-in WeChat fake is used",
    comment: "Without WECHAT_APPID wxauth runs in DEV MODE with a fake WeChat: never in \
              production.",
    example: Some("wx0123456789abcdef"),
};

pub(crate) const WECHAT_SECRET: Text = Text {
    name: "WECHAT_SECRET",
    default: "",
    default_note: "— (required with `WECHAT_APPID`)",
    expects: "the AppSecret",
    help: "the mini-program's AppSecret; never logged",
    comment: "",
    example: Some("the-appsecret-from-the-mini-program-admin-console"),
};

pub(crate) const WECHAT_APPS_FILE: Text = Text {
    name: "WECHAT_APPS_FILE",
    default: "",
    default_note: "unset → the one app of `WECHAT_APPID`",
    expects: "the path of a readable TOML file",
    help: "several apps in one service: a TOML file of `[[miniprogram]]` (`appid`, `secret` or \
           `secret_env`, `name`, `reminder_template`) and `[[wecom]]` (`corpid`, `corpsecret` or `corpsecret_env`, \
           `appid`) entries; the first mini-program is the default app. Set it instead of \
           `WECHAT_APPID`; it means production",
    comment: "Several mini-programs (and WeCom corps) instead: a TOML file; then leave \
              WECHAT_APPID unset.",
    example: None,
};

pub(crate) const WECHAT_API_BASE: Text = Text {
    name: "WECHAT_API_BASE",
    default: "https://api.weixin.qq.com",
    default_note: "",
    expects: "an http(s):// URL; in production http:// only to this machine (127.0.0.1, [::1], localhost)",
    help: "WeChat's API, or any compatible server. In production (`WECHAT_APPID` or `WECHAT_APPS_FILE` set), plain http:// to \
           another machine stops the start (exit 2): the AppSecret would travel in clear text",
    comment: "",
    example: None,
};

pub(crate) const WECOM_API_BASE: Text = Text {
    name: "WECOM_API_BASE",
    default: "https://qyapi.weixin.qq.com",
    default_note: "",
    expects: "an http(s):// URL; in production http:// only to this machine (127.0.0.1, [::1], localhost)",
    help: "WeCom's API (staff login inside WeCom), or any compatible server; in dev mode the \
           built-in fake serves it. In production (`WECHAT_APPID` or `WECHAT_APPS_FILE` set), plain http:// to another machine \
           stops the start (exit 2): the corpsecret would travel in clear text",
    comment: "",
    example: None,
};

pub(crate) const WECHAT_TIMEOUT_MS: Number = Number {
    name: "WECHAT_TIMEOUT_MS",
    // Below the mini-program's 3000 ms `wx.request` timeout, leaving room for the database.
    default: 2000,
    min: 1,
    max: 60_000,
    unit: "milliseconds",
    help: "per WeChat call, whole round trip; below the client's 3000 ms",
    comment: "",
};

pub(crate) const WECHAT_TOKEN_MODE: Choice<AccessTokenMode> = Choice {
    name: "WECHAT_TOKEN_MODE",
    values: &[
        ("stable", AccessTokenMode::Stable),
        ("plain", AccessTokenMode::Plain),
    ],
    help: "how the access token is fetched: `stable` (`POST /cgi-bin/stable_token`, safe with \
           several instances; a server without that endpoint, answering HTTP 404 or 405, is \
           switched to `GET /cgi-bin/token` with a warning) or `plain` (`GET /cgi-bin/token`, for \
           accounts that need it)",
    comment: "stable (POST /cgi-bin/stable_token, safe with several instances) or plain.",
};

pub const CONTENT: Section = Section {
    title: "Content security",
    comment: "",
    vars: &[&CONTENT_CHECK, &CONTENT_CHECK_ON_ERROR],
};

pub(crate) const CONTENT_CHECK: Choice<bool> = Choice {
    name: "CONTENT_CHECK",
    values: &[("on", true), ("off", false)],
    help: "`on`: every text other users will see (meeting `title`, `content`, `location`; \
           `nickName`) goes through WeChat's `msgSecCheck` (version 2) before it is stored; \
           `off`: nothing is checked (see [Content security](#content-security))",
    comment: "on: meeting title/content/location and nicknames go through WeChat's msgSecCheck; \
              or off.",
};

pub(crate) const CONTENT_CHECK_ON_ERROR: Choice<CheckFailure> = Choice {
    name: "CONTENT_CHECK_ON_ERROR",
    values: &[
        ("refuse", CheckFailure::Refuse),
        ("review", CheckFailure::Review),
    ],
    help: "when the check cannot be made (WeChat busy, slow, garbage, 61010, over 4000 checks a \
           minute): `refuse` answers errno 714/715/716 and stores nothing; `review` stores the \
           meeting pending an admin's review (a nickname is refused either way)",
    comment: "When the check cannot be made: refuse (errno 714/715/716) or review (stored \
              pending review).",
};

pub const REMINDERS: Section = Section {
    title: "Meeting reminders (subscribe messages)",
    comment: "",
    vars: &[
        &REMINDER_TEMPLATE_ID,
        &REMINDER_FIELDS,
        &REMINDER_PAGE,
        &REMINDER_LEAD_MINS,
        &REMINDER_TICK_SECS,
        &REMINDER_MINIPROGRAM_STATE,
    ],
};

pub(crate) const REMINDER_TEMPLATE_ID: Text = Text {
    name: "REMINDER_TEMPLATE_ID",
    default: "",
    default_note: "unset → reminders off",
    expects: "a subscribe message template id (at most 128 visible ASCII characters)",
    help: "the subscribe message template of meeting reminders in the one-app form: \
           `WECHAT_APPID`'s app, or in dev mode the default demo app (see [Meeting \
           reminders](#meeting-reminders)); `meeting/subscribe` accepts only this one. With \
           `WECHAT_APPS_FILE` each `[[miniprogram]]` has its own `reminder_template` instead, and \
           this variable stops the start (exit 2)",
    comment: "The subscribe message template of reminders (one app; with WECHAT_APPS_FILE, each \
              entry's\n\
              reminder_template instead); unset: reminders off.",
    example: None,
};

pub(crate) const REMINDER_FIELDS: Text = Text {
    name: "REMINDER_FIELDS",
    default: "thing1=title,time2=start,thing3=location",
    default_note: "",
    expects: "key=field pairs separated by commas; keys like thing1 or time2, fields title, \
              content, location, start, end or publisher (a time or date key takes start or end)",
    help: "which meeting value each template key shows; values are fitted to the key's rule \
           (`thing` at most 20 characters, cut with `…`; `time` as `2026年12月6日 09:30`, China \
           time)",
    comment: "Template keys and the meeting value each shows (title, content, location, start, \
              end, publisher).",
    example: None,
};

pub(crate) const REMINDER_PAGE: Text = Text {
    name: "REMINDER_PAGE",
    default: "pages/meeting/detail?id={id}",
    default_note: "",
    expects: "a mini-program page path without a leading / (at most 512 visible ASCII \
              characters); {id} is the meeting id",
    help: "the page a reminder opens",
    comment: "The page a reminder opens; {id} is the meeting id.",
    example: None,
};

pub(crate) const REMINDER_LEAD_MINS: Number = Number {
    name: "REMINDER_LEAD_MINS",
    default: 15,
    min: 1,
    max: 1440,
    unit: "minutes",
    help: "a meeting's reminders go out once it starts within this many minutes (never after it \
           started)",
    comment: "Reminders go out once the meeting starts within this many minutes (1-1440).",
};

pub(crate) const REMINDER_TICK_SECS: Number = Number {
    name: "REMINDER_TICK_SECS",
    default: 30,
    min: 1,
    max: 600,
    unit: "seconds",
    help: "how often each instance's sender looks for due reminders (and retries those WeChat \
           was too busy for)",
    comment: "How often each instance looks for due reminders (1-600 s).",
};

pub(crate) const REMINDER_MINIPROGRAM_STATE: Choice<MiniprogramState> = Choice {
    name: "REMINDER_MINIPROGRAM_STATE",
    values: &[
        ("formal", MiniprogramState::Formal),
        ("trial", MiniprogramState::Trial),
        ("developer", MiniprogramState::Developer),
    ],
    help: "which version of the mini-program a reminder opens",
    comment: "formal, trial or developer: which version of the mini-program a reminder opens.",
};

pub const SESSIONS: Section = Section {
    title: "Tokens and sessions",
    comment: "Production needs JWT_SECRET, and should have SESSION_ENCRYPTION_KEY.",
    vars: &[
        &JWT_SECRET,
        &SESSION_ENCRYPTION_KEY,
        &TOKEN_TTL_SECS,
        &SESSION_MAX_LIFETIME_SECS,
        &SESSION_CACHE_CAPACITY,
    ],
};

pub(crate) const JWT_SECRET: Text = Text {
    name: "JWT_SECRET",
    default: "",
    default_note: "dev mode: generated per process (logged as a warning); production: required",
    expects: "in production at least 32 bytes (openssl rand -hex 32)",
    help: "HS256 key for tokens, the same on every instance; a missing or shorter one in \
           production stops the start (exit 2)",
    comment: "HS256 key for tokens, the same on every instance, at least 32 bytes: openssl rand \
              -hex 32",
    example: Some(""),
};

pub(crate) const SESSION_ENCRYPTION_KEY: Text = Text {
    name: "SESSION_ENCRYPTION_KEY",
    default: "",
    default_note: "derived from `JWT_SECRET` (a warning in production)",
    expects: "64 hex characters (32 bytes)",
    help: "the AES-256-GCM key for session_keys at rest (`openssl rand -hex 32`); recommended in \
           production, so one leaked secret does not expose both. Setting or changing it leaves \
           the session_keys stored under the old key unreadable: `bindPhone` with \
           `encryptedData` then needs a new login",
    comment: "AES-256 key for session_keys at rest, 64 hex characters: openssl rand -hex 32\n\
              (default: derived from JWT_SECRET; set it so rotating JWT_SECRET keeps stored keys \
              readable)",
    example: Some(""),
};

pub(crate) const TOKEN_TTL_SECS: Number = Number {
    name: "TOKEN_TTL_SECS",
    default: 7 * 24 * 3600,
    min: 60,
    max: 90 * 24 * 3600,
    unit: "seconds",
    help: "token lifetime (7 days unless set); a login's or refresh's token never outlives \
           `SESSION_MAX_LIFETIME_SECS`",
    comment: "Token lifetime (60-7776000 s); 7 days.",
};

pub(crate) const SESSION_MAX_LIFETIME_SECS: Number = Number {
    name: "SESSION_MAX_LIFETIME_SECS",
    default: 30 * 24 * 3600,
    // Shorter than a day would log mobile users out mid-use.
    min: 24 * 3600,
    max: 365 * 24 * 3600,
    unit: "seconds (a day to a year)",
    help: "absolute session lifetime from the login, whatever refreshes did (30 days unless set)",
    comment: "No session lives longer than this after its login, however often it is refreshed; \
              30 days\n\
              (86400-31536000).",
};

pub(crate) const SESSION_CACHE_CAPACITY: Number = Number {
    name: "SESSION_CACHE_CAPACITY",
    default: 100_000,
    min: 1,
    max: 10_000_000,
    unit: "sessions",
    help: "sessions the SessionActor keeps in memory (an LRU in front of `user_session`)",
    comment: "",
};

pub const LIMITS: Section = Section {
    title: "Rate limits",
    comment: "Per instance, per minute; 0: off.",
    vars: &[
        &RATE_LOGIN_PER_IP,
        &RATE_LOGIN_PER_OPENID,
        &RATE_BINDPHONE_PER_USER,
        &TRUSTED_PROXIES,
    ],
};

pub(crate) const RATE_LOGIN_PER_IP: Number = Number {
    name: "RATE_LOGIN_PER_IP",
    default: 120,
    min: 0,
    max: u32::MAX as u64,
    unit: "per minute",
    help: "login attempts per client IP per minute (0: off); an IPv6 client is keyed by its /64",
    comment: "",
};

pub(crate) const RATE_LOGIN_PER_OPENID: Number = Number {
    name: "RATE_LOGIN_PER_OPENID",
    default: 20,
    min: 0,
    max: u32::MAX as u64,
    unit: "per minute",
    help: "logins per openid per minute (0: off)",
    comment: "",
};

pub(crate) const RATE_BINDPHONE_PER_USER: Number = Number {
    name: "RATE_BINDPHONE_PER_USER",
    default: 10,
    min: 0,
    max: u32::MAX as u64,
    unit: "per minute",
    help: "bindPhone calls per user per minute (0: off)",
    comment: "",
};

pub(crate) const TRUSTED_PROXIES: Text = Text {
    name: "TRUSTED_PROXIES",
    default: "",
    default_note: "none",
    expects: "a comma-separated list of IPs or CIDR ranges, e.g. 10.0.0.0/8,127.0.0.1",
    help: "peers whose `X-Forwarded-For` is believed: all its lines are read as one list, and \
           the rightmost hop that is not itself a trusted proxy is the client. A range that \
           holds every address (`0.0.0.0/0`, `::/0`) stops the start (exit 2)",
    comment: "The proxy in front (nginx): its address, so X-Forwarded-For is believed from it. \
              Default: none.",
    example: Some("127.0.0.1"),
};

pub const ADMIN: Section = Section {
    title: "Status page",
    comment: "",
    vars: &[&ADMIN_TOKEN, &ADMIN_STATIC_DIR],
};

pub(crate) const ADMIN_TOKEN: Text = Text {
    name: "ADMIN_TOKEN",
    default: "",
    default_note: "unset → admin side off (404); in dev mode generated and shown in the start \
                   banner",
    expects: "at least 16 visible ASCII characters without spaces (e.g. openssl rand -hex 24)",
    help: "bearer token for the status page and `/admin/api/*`; after 10 wrong tokens from one \
           client IP in a minute, that client gets 429 until the minute is over",
    comment: "The status page and /admin/api/*: off unless set (at least 16 characters): openssl \
              rand -hex 24",
    example: None,
};

pub(crate) const ADMIN_STATIC_DIR: Text = Text {
    name: "ADMIN_STATIC_DIR",
    default: "static",
    default_note: "in the working directory, else the `static/` of the source tree the binary \
                   was built from",
    expects: "a directory",
    help: "where the status page's files are",
    comment: "Where the status page's files are (deploy/systemd sets /opt/wxauth/static).",
    example: None,
};

pub const RETENTION: Section = Section {
    title: "Data kept",
    comment: "",
    vars: &[
        &LOGIN_LOG_RETENTION_DAYS,
        &LOGIN_LOG_FLUSH_MS,
        &ACCOUNT_DELETION_GRACE_DAYS,
    ],
};

pub(crate) const LOGIN_LOG_RETENTION_DAYS: Number = Number {
    name: "LOGIN_LOG_RETENTION_DAYS",
    default: 30,
    min: 1,
    max: 3650,
    unit: "days",
    help: "`login_log` rows older than this are deleted, at start and then hourly",
    comment: "",
};

pub(crate) const LOGIN_LOG_FLUSH_MS: Number = Number {
    name: "LOGIN_LOG_FLUSH_MS",
    default: 200,
    min: 10,
    max: 60_000,
    unit: "milliseconds",
    help: "how often the gathered `login_log` rows are written, one multi-row insert per batch; \
           a graceful shutdown writes the rest",
    comment: "How often the gathered login_log rows are written, one insert per batch (10-60000 \
              ms).",
};

pub(crate) const ACCOUNT_DELETION_GRACE_DAYS: Number = Number {
    name: "ACCOUNT_DELETION_GRACE_DAYS",
    default: 7,
    min: 0,
    // A longer wait would keep data the user asked to have deleted for longer than they would
    // expect.
    max: 30,
    unit: "days",
    help: "days between `auth/deactivate` and the erasure of the account's data; a login within \
           them restores the account (0 erases at once)",
    comment: "Days between auth/deactivate and the erasure of the account's data (0-30; 0 erases \
              at once).",
};

pub const LOGGING: Section = Section {
    title: "Logging",
    comment: "",
    vars: &[&LOG_FORMAT, &RUST_LOG],
};

/// Read by the logger in `main` (leniently: an invalid value logs as `text` until `Config`
/// refuses it with exit code 2).
pub(crate) const LOG_FORMAT: Choice<LogFormat> = Choice {
    name: "LOG_FORMAT",
    values: &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    help: "how log lines look on stderr: `text` (env_logger's lines, for people) or `json` (one \
           object per line: `time`, `level`, `target`, `message`, and `request_id` on every line \
           a request caused, for log pipelines)",
    comment: "text (for people) or json (one object per line, with the request id, for log \
              pipelines).",
};

/// Read by the logger in `main`, not by `Config`.
pub const RUST_LOG: Text = Text {
    name: "RUST_LOG",
    default: "info",
    default_note: "",
    expects: "an env_logger filter, e.g. wxauth=debug,info",
    help: "what is logged",
    comment: "",
    example: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// How to make README.md's table and `.env.example` again from the declarations.
    const REGENERATE: &str = "WXAUTH_REGENERATE=1 cargo test --lib config::vars";

    const TABLE_START: &str = "<!-- config-table:start -->";
    const TABLE_END: &str = "<!-- config-table:end -->";

    const ENV_EXAMPLE_HEAD: &str = "\
# wxauth's configuration: every variable it reads, with its default. Copy to /etc/wxauth/wxauth.env
# (deploy/systemd) or to .env next to the binary; the process environment wins over the file.
# A commented line shows the default; uncomment a line to change it. Empty counts as unset.
# A line that is not commented out is one production sets.
# The README's Configuration table says what each one means and which values are allowed.
";

    fn repository_path(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    fn repository_file(name: &str) -> String {
        let path = repository_path(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The README's configuration table as the declarations make it.
    fn readme_table() -> String {
        let mut table =
            "| variable | default | accepts | meaning |\n|---|---|---|---|\n".to_string();
        for d in variables().map(|var| var.doc()) {
            table.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                d.name, d.default_shown, d.accepts, d.help
            ));
        }
        table
    }

    /// `# text`, one line each.
    fn comment_lines(text: &str) -> String {
        text.lines().map(|line| format!("# {line}\n")).collect()
    }

    /// `.env.example` as the declarations make it.
    fn env_example() -> String {
        let mut out = ENV_EXAMPLE_HEAD.to_string();
        out.push_str(&format!("# Made from src/config/vars.rs: {REGENERATE}\n"));
        for section in SECTIONS {
            let heading = format!("# --- {} ", section.title);
            out.push_str(&format!("\n{heading:-<92}\n"));
            out.push_str(&comment_lines(section.comment));
            for d in section.vars.iter().map(|var| var.doc()) {
                out.push_str(&comment_lines(d.comment));
                match d.example {
                    Some(value) => out.push_str(&format!("{}={value}\n", d.name)),
                    None => out.push_str(&format!("#{}={}\n", d.name, d.default)),
                }
            }
        }
        out
    }

    /// README.md with its table replaced by `table`.
    fn readme_with(table: &str) -> String {
        let readme = repository_file("README.md");
        let (before, rest) = readme
            .split_once(&format!("{TABLE_START}\n"))
            .unwrap_or_else(|| panic!("README.md has no line {TABLE_START}"));
        let (_, after) = rest
            .split_once(TABLE_END)
            .unwrap_or_else(|| panic!("README.md has no {TABLE_END} after {TABLE_START}"));
        format!("{before}{TABLE_START}\n{table}{TABLE_END}{after}")
    }

    /// A line diff (`-` only in `old`, `+` only in `new`), from their longest common subsequence.
    fn diff(old: &[&str], new: &[&str]) -> String {
        let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
        for i in (0..old.len()).rev() {
            for j in (0..new.len()).rev() {
                common[i][j] = if old[i] == new[j] {
                    common[i + 1][j + 1] + 1
                } else {
                    common[i + 1][j].max(common[i][j + 1])
                };
            }
        }
        let (mut i, mut j, mut out) = (0, 0, String::new());
        while i < old.len() || j < new.len() {
            if i < old.len() && j < new.len() && old[i] == new[j] {
                i += 1;
                j += 1;
            } else if j == new.len() || (i < old.len() && common[i + 1][j] >= common[i][j + 1]) {
                out.push_str(&format!("- {}\n", old[i]));
                i += 1;
            } else {
                out.push_str(&format!("+ {}\n", new[j]));
                j += 1;
            }
        }
        out
    }

    /// Fails when the file `name` is not `made`; with `WXAUTH_REGENERATE=1`, writes it instead.
    fn holds_to_the_declarations(name: &str, made: &str) {
        let written = repository_file(name);
        if written == made {
            return;
        }
        if std::env::var("WXAUTH_REGENERATE").is_ok_and(|v| v == "1") {
            let path = repository_path(name);
            std::fs::write(&path, made).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return;
        }
        let (old, new): (Vec<&str>, Vec<&str>) =
            (written.lines().collect(), made.lines().collect());
        panic!(
            "{name} is stale: it differs from the declarations in src/config/vars.rs \
             (-: only in {name}, +: as declared):\n{}\nMake it again with: {REGENERATE}\n",
            diff(&old, &new)
        );
    }

    #[test]
    fn the_readme_table_is_made_from_the_declarations() {
        holds_to_the_declarations("README.md", &readme_with(&readme_table()));
    }

    #[test]
    fn env_example_is_made_from_the_declarations() {
        holds_to_the_declarations(".env.example", &env_example());
    }

    #[test]
    fn env_example_sets_only_what_production_needs() {
        let set: Vec<&str> = variables()
            .map(|var| var.doc())
            .filter(|d| d.example.is_some())
            .map(|d| d.name)
            .collect();
        assert_eq!(
            set,
            [
                "WECHAT_APPID",
                "WECHAT_SECRET",
                "JWT_SECRET",
                "SESSION_ENCRYPTION_KEY",
                "TRUSTED_PROXIES"
            ]
        );
    }

    #[test]
    fn names_are_unique_and_defaults_are_allowed() {
        let mut names: Vec<&str> = variables().map(|v| v.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            variables().count(),
            "a variable declared twice"
        );
        assert!(
            JWT_SECRET
                .expects
                .contains(&super::super::MIN_JWT_SECRET_LEN.to_string())
        );
        assert!(
            ADMIN_TOKEN
                .expects
                .contains(&super::super::MIN_ADMIN_TOKEN_LEN.to_string())
        );
    }

    #[test]
    fn refusals_say_what_the_declaration_accepts() {
        let map = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let lookup = map(&[
            ("WECHAT_TIMEOUT_MS", "0"),
            ("DB_POOL_SIZE", "many"),
            ("WECHAT_TOKEN_MODE", "sometimes"),
            ("BENCH_ENDPOINTS", "yes"),
            ("CONTEXT_PATH", "/o a"),
            ("HTTP_WORKERS", "257"),
        ]);
        let src = Source(&lookup);
        let reason = |e: ConfigError| e.reason;
        assert_eq!(
            reason(WECHAT_TIMEOUT_MS.read::<u64>(&src).unwrap_err()),
            "expected 1..=60000 milliseconds"
        );
        assert_eq!(
            reason(DB_POOL_SIZE.read::<u32>(&src).unwrap_err()),
            "expected a whole number, got \"many\""
        );
        assert_eq!(
            reason(WECHAT_TOKEN_MODE.read(&src).unwrap_err()),
            "expected stable or plain"
        );
        assert_eq!(
            reason(BENCH_ENDPOINTS.read(&src).unwrap_err()),
            "expected 0 or 1"
        );
        assert_eq!(
            reason(CONTEXT_PATH.parse(&src, |_| None::<()>).unwrap_err()),
            "expected a path such as /oapro (letters, digits, - _ . / only)"
        );
        assert_eq!(
            reason(HTTP_WORKERS.read::<usize>(&src).unwrap_err()),
            "expected 0..=256 (0 = one per core)"
        );
        assert_eq!(TOKEN_TTL_SECS.read::<u64>(&src).ok(), Some(604_800));
        assert_eq!(
            DATABASE_LISTEN_URL.parse_set(&src, |_| Some(())).ok(),
            Some(None)
        );
    }
}
