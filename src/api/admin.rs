//! The operator's side: `/admin/api/*` (JSON for the status page in `static/`), behind
//! `Authorization: Bearer <ADMIN_TOKEN>`. Plain HTTP status codes here, not the mini-program
//! envelope: 401 without a token, 403 with a wrong one, 429 (with `Retry-After`) for the rest of
//! the minute after 10 wrong ones from one client, 404 when `ADMIN_TOKEN` is not configured.
//! The answers never hold a token, a session_key, a secret or a full openid.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use actix_files::Files;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::{Error, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::admission::AdmissionStats;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::actors::listener::{ListenerReport, ListenerState};
use crate::actors::session::CountSessions;
use crate::actors::wechat::{GetUpstreamStats, UpstreamStats};
use crate::config::Secret;
use crate::domain::LoginSummary;
use crate::error::ErrnoLabels;
use crate::log_throttle::ERRORS;
use crate::wechat::errcode;

/// How long the status waits for each part before reporting it unknown: the page must answer
/// fastest exactly when something is stuck.
const PART_TIMEOUT: Duration = Duration::from_secs(2);
/// Rows in the page's recent-logins list.
pub const RECENT_LOGINS: i64 = 20;

/// The configured admin token, kept as its SHA-256 so every comparison is over 32 bytes in
/// constant time: neither the content nor the length of the right token leaks through timing.
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    pub fn new(token: &Secret) -> Self {
        AdminToken {
            digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.digest).into()
    }
}

#[derive(Serialize)]
pub struct AdminError {
    pub error: &'static str,
}

fn refuse(status: StatusCode, error: &'static str) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    match status {
        StatusCode::UNAUTHORIZED => {
            res.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="wxauth-admin""#));
        }
        StatusCode::FORBIDDEN => {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                r#"Bearer realm="wxauth-admin", error="invalid_token""#,
            ));
        }
        _ => {}
    }
    res.json(AdminError { error })
}

/// Everything under `/admin` when the admin side is off, and unknown paths under `/admin/api`.
pub async fn not_found() -> HttpResponse {
    refuse(StatusCode::NOT_FOUND, "not found")
}

/// Headers for everything under `/admin`: the page loads only its own files, is never framed,
/// and neither it nor the API answers are cached or sent on as a referrer.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// Lets a request through to `/admin/api/*` and `/admin/users/*` only with the right bearer token.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.into_response(refuse(StatusCode::NOT_FOUND, "not found")));
    };
    let Some(admin) = state.admin.clone() else {
        return Ok(req.into_response(refuse(StatusCode::NOT_FOUND, "not found")));
    };
    let client = state.limits.client_ip_of(req.request());
    // Checked before the token is looked at, so a blocked client learns nothing from a guess,
    // not even a right one.
    if let Some(wait) =
        client.and_then(|ip| state.limits.admin_failures.blocked(ip, Instant::now()))
    {
        ERRORS.log(
            log::Level::Warn,
            "admin: refused a client over the wrong-token limit",
            client.as_ref().map(|ip| ip as &dyn std::fmt::Display),
        );
        // Whole seconds, rounded up: a client that waits exactly this long is served.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Ok(req.into_response(
            HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, secs.to_string()))
                .json(AdminError {
                    error: "too many wrong admin tokens from this address; try again later",
                }),
        ));
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
        .filter(|t| !t.is_empty());
    let Some(presented) = presented else {
        return Ok(req.into_response(refuse(
            StatusCode::UNAUTHORIZED,
            "admin token required: send Authorization: Bearer <ADMIN_TOKEN>",
        )));
    };
    if !admin.matches(&presented) {
        if let Some(ip) = client {
            state.limits.admin_failures.failed(ip, Instant::now());
        }
        ERRORS.log(
            log::Level::Warn,
            "admin: wrong token",
            client.as_ref().map(|ip| ip as &dyn std::fmt::Display),
        );
        return Ok(req.into_response(refuse(StatusCode::FORBIDDEN, "wrong admin token")));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The page's files answer a path they cannot serve as a plain 404, like any missing file:
/// actix-files would answer 400 with its path parser's message (`segment started with invalid
/// character`), telling a prober how paths are checked, and an I/O error as a 500.
async fn plain_file_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse, Error> {
    // No clone of the request before the call: the router must still be able to write the
    // matched path into it. actix-files answers its errors as responses, never as `Err`.
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let kept = status.is_success()
        || status.is_redirection()
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::METHOD_NOT_ALLOWED
        || status == StatusCode::PRECONDITION_FAILED
        || status == StatusCode::RANGE_NOT_SATISFIABLE;
    if kept {
        return Ok(res);
    }
    if status.is_server_error() {
        ERRORS.log(
            log::Level::Warn,
            "admin page: a file could not be served",
            Some(&status),
        );
    }
    let (http_req, _) = res.into_parts();
    Ok(ServiceResponse::new(http_req, not_found().await))
}

/// Mounts `/admin`: the page from `static_dir` and the API under `/admin/api`, or, with `None`
/// (no `ADMIN_TOKEN`), a plain 404 for everything under it.
pub fn configure(cfg: &mut web::ServiceConfig, static_dir: Option<&Path>) {
    let Some(static_dir) = static_dir else {
        cfg.service(
            web::scope("/admin")
                .wrap(security_headers())
                .default_service(web::to(not_found)),
        );
        return;
    };
    let scope = web::scope("/admin")
        .wrap(security_headers())
        // The token check wraps the whole API scope, unknown paths included: without the
        // token nobody learns which admin endpoints exist.
        .service(
            web::scope("/api")
                .wrap(from_fn(require_admin))
                .route("/status", web::get().to(status))
                .default_service(web::to(not_found)),
        )
        .service(
            web::scope("/users")
                .wrap(from_fn(require_admin))
                .route("/{id}/disable", web::post().to(super::admin_users::disable))
                .route("/{id}/enable", web::post().to(super::admin_users::enable))
                .route("/{id}/delete", web::post().to(super::admin_users::delete))
                .default_service(web::to(not_found)),
        );
    // No `show_files_listing()`: a directory without index.html is a 404. `/admin` redirects to
    // `/admin/` so the page's relative links resolve under it. Without the directory (start-up
    // warned about it) the page is a 404 rather than an error logged per worker.
    let scope = if static_dir.is_dir() {
        scope.service(
            web::scope("").wrap(from_fn(plain_file_errors)).service(
                Files::new("", static_dir)
                    .index_file("index.html")
                    .redirect_to_slash_directory()
                    .default_handler(web::to(not_found)),
            ),
        )
    } else {
        scope.default_service(web::to(not_found))
    };
    cfg.service(scope);
}

#[derive(Debug, Serialize)]
pub struct StatusView {
    /// `ok`, `degraded` (logins work but something is wrong) or `down` (logins cannot work).
    pub status: &'static str,
    /// Why the status is not `ok`, one sentence each.
    pub problems: Vec<String>,
    /// Always true: an answer means the process is up.
    pub up: bool,
    /// Database reachable and fully migrated, as `/readyz` says.
    pub ready: bool,
    pub version: &'static str,
    /// `dev` (built-in WeChat fake) or `production`.
    pub mode: &'static str,
    /// RFC 3339, UTC, like every time in this answer.
    pub started_at: String,
    pub uptime_secs: u64,
    pub generated_at: String,
    pub database: DatabaseView,
    /// `None` when the WeChatClient did not answer in time.
    pub wechat: Option<UpstreamStats>,
    pub sessions: SessionsView,
    /// The NOTIFY listener, as `/readyz` shows it.
    pub listener: ListenerReport,
    /// `None` when the database could not be asked.
    pub logins: Option<LoginsView>,
    pub admission: AdmissionView,
    /// Account deletions users asked for (or the admin made); `None` when the database could not
    /// be asked.
    pub deletions: Option<DeletionsView>,
    /// What each errno means (`{"710": "WeChat: invalid code", …}`), for the logins' outcomes.
    pub errnos: ErrnoLabels,
}

/// What is let in, what waits and what is refused with errno 721 (server busy).
#[derive(Debug, Serialize)]
pub struct AdmissionView {
    /// Logins in progress (limit adaptive), before any WeChat call.
    pub logins: AdmissionStats,
    /// Other database work (limit fixed).
    pub reads: AdmissionStats,
    /// Refusals since start, by what was full: `login`, `read`, `wechat`.
    pub refused: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct DeletionsView {
    /// Requested; the grace period is not over, or the sweeper has not come by yet.
    pub pending: i64,
    /// Personal data erased.
    pub completed: i64,
}

#[derive(Debug, Serialize)]
pub struct DatabaseView {
    pub reachable: bool,
    pub migrations_applied: Option<bool>,
    pub pending_migrations: Vec<String>,
    /// Round trip of the readiness query through the DbExecutor.
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
    pub pool: PoolView,
    /// login_log rows gathered and not yet written (they are written in batches).
    pub login_log_pending_writes: usize,
}

#[derive(Debug, Serialize)]
pub struct PoolView {
    pub max: u32,
    pub connections: u32,
    pub idle: u32,
    pub in_use: u32,
}

#[derive(Debug, Serialize)]
pub struct SessionsView {
    /// `None` when the SessionActor did not answer in time.
    pub live: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct LoginsView {
    pub last_minute: LoginWindow,
    pub last_hour: LoginWindow,
    /// One entry per minute of the last hour, oldest first.
    pub per_minute: Vec<MinuteView>,
    /// Newest first.
    pub recent: Vec<RecentLogin>,
}

#[derive(Debug, Default, Serialize)]
pub struct LoginWindow {
    pub success: i64,
    pub failure: i64,
    /// Failures by errno (as a string key, for JSON).
    pub failure_by_errno: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize)]
pub struct MinuteView {
    pub minute: String,
    pub success: i64,
    pub failure: i64,
}

#[derive(Debug, Serialize)]
pub struct RecentLogin {
    pub time: String,
    pub user_id: Option<i64>,
    /// Masked when stored: `oGZU****VJJE`.
    pub openid: String,
    pub ip: String,
    pub user_agent: String,
    pub errno: i32,
}

impl From<LoginSummary> for LoginsView {
    fn from(s: LoginSummary) -> Self {
        let mut last_minute = LoginWindow::default();
        let mut last_hour = LoginWindow::default();
        for row in &s.by_errno {
            for (window, n) in [
                (&mut last_minute, row.last_minute),
                (&mut last_hour, row.last_hour),
            ] {
                if n == 0 {
                    continue;
                }
                if row.errno == 0 {
                    window.success += n;
                } else {
                    window.failure += n;
                    *window
                        .failure_by_errno
                        .entry(row.errno.to_string())
                        .or_default() += n;
                }
            }
        }
        LoginsView {
            last_minute,
            last_hour,
            per_minute: s
                .per_minute
                .into_iter()
                .map(|m| MinuteView {
                    minute: rfc3339(m.minute),
                    success: m.success,
                    failure: m.failure,
                })
                .collect(),
            recent: s
                .recent
                .into_iter()
                .map(|r| RecentLogin {
                    time: rfc3339(r.add_time),
                    user_id: r.user_id,
                    openid: r.openid_masked,
                    ip: r.ip,
                    user_agent: r.user_agent,
                    errno: r.errno,
                })
                .collect(),
        }
    }
}

/// `2026-11-26T03:04:05Z`: what `new Date()` in the page parses.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Errcode labels that mean WeChat (or our configuration) failed, as opposed to a user's bad or
/// reused code, rate limit or risk flag, which say nothing about the upstream's health.
fn is_upstream_fault(label: &str) -> bool {
    match label {
        "timeout" | "unreachable" | "bad_response" => true,
        other => other
            .parse::<i64>()
            .is_ok_and(|c| c == errcode::SYSTEM_BUSY || errcode::is_configuration_error(c)),
    }
}

/// `GET /admin/api/status`: everything the status page shows, gathered concurrently, each part
/// bounded by `PART_TIMEOUT` so one stuck actor shows up as a problem instead of a hung page.
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    let now = Utc::now();
    let ready_started = Instant::now();
    let (ready, logins, wechat, sessions, deletions) = futures_util::future::join5(
        tokio::time::timeout(PART_TIMEOUT, state.db.pending_migrations()),
        tokio::time::timeout(PART_TIMEOUT, state.db.login_summary(now, RECENT_LOGINS)),
        tokio::time::timeout(PART_TIMEOUT, state.wechat.send(GetUpstreamStats)),
        tokio::time::timeout(PART_TIMEOUT, state.sessions.send(CountSessions)),
        tokio::time::timeout(PART_TIMEOUT, state.db.deletion_counts()),
    )
    .await;
    let mut problems = Vec::new();
    let mut down = false;

    let pool_state = state.db.pool().state();
    let pool = PoolView {
        max: state.db.pool().max_size(),
        connections: pool_state.connections,
        idle: pool_state.idle_connections,
        in_use: pool_state
            .connections
            .saturating_sub(pool_state.idle_connections),
    };
    let (reachable, pending, latency_ms, db_error) = match ready {
        Ok(Ok(pending)) => (
            true,
            Some(pending),
            Some(ready_started.elapsed().as_secs_f64() * 1000.0),
            None,
        ),
        Ok(Err(e)) => (false, None, None, Some(e.to_string())),
        Err(_) => (
            false,
            None,
            None,
            Some(format!("no answer within {PART_TIMEOUT:?}")),
        ),
    };
    if let Some(e) = &db_error {
        down = true;
        problems.push(format!("database unreachable: {e}"));
    }
    if let Some(p) = pending.as_ref().filter(|p| !p.is_empty()) {
        down = true;
        problems.push(format!("migrations not applied: {}", p.join(", ")));
    }
    if pool.max > 0 && pool.in_use >= pool.max {
        problems.push(format!(
            "database pool fully in use ({} of {})",
            pool.in_use, pool.max
        ));
    }

    let wechat = match wechat {
        Ok(Ok(stats)) => Some(stats),
        _ => {
            problems.push("WeChat client did not answer".into());
            None
        }
    };
    if let Some(w) = &wechat
        && let Some(last) = w.last_outcome.as_deref().filter(|l| is_upstream_fault(l))
    {
        problems.push(format!(
            "WeChat: newest call failed ({last}); {} of {} calls failed in the last hour",
            w.last_hour.errors, w.last_hour.calls
        ));
    }

    let live = match sessions {
        Ok(Ok(n)) => Some(n),
        _ => {
            problems.push("session store did not answer".into());
            None
        }
    };

    let listener = state.listener.report();
    if listener.state != ListenerState::Ok && !listener.starting {
        let heard = match listener.last_heartbeat_ms_ago {
            Some(ms) => format!("last heartbeat heard {:.1} s ago", ms as f64 / 1000.0),
            None => "no heartbeat heard yet".to_string(),
        };
        problems.push(format!(
            "session listener {} ({heard}): every token check goes to PostgreSQL, revocations still take effect",
            if listener.state == ListenerState::Stale {
                "stale"
            } else {
                "down"
            }
        ));
    }

    let logins = match logins {
        Ok(Ok(summary)) => Some(LoginsView::from(summary)),
        _ => None,
    };

    let deletions = match deletions {
        Ok(Ok(counts)) => Some(DeletionsView {
            pending: counts.pending,
            completed: counts.completed,
        }),
        _ => None,
    };

    let ready = reachable && pending.as_ref().is_some_and(Vec::is_empty);
    let view = StatusView {
        status: if down {
            "down"
        } else if problems.is_empty() {
            "ok"
        } else {
            "degraded"
        },
        problems,
        up: true,
        ready,
        version: env!("CARGO_PKG_VERSION"),
        mode: if state.dev_mode { "dev" } else { "production" },
        started_at: rfc3339(state.started.at),
        uptime_secs: state.started.instant.elapsed().as_secs(),
        generated_at: rfc3339(now),
        database: DatabaseView {
            reachable,
            migrations_applied: pending.as_ref().map(Vec::is_empty),
            pending_migrations: pending.unwrap_or_default(),
            latency_ms,
            error: db_error,
            pool,
            login_log_pending_writes: state.login_log.pending(),
        },
        wechat,
        sessions: SessionsView { live },
        listener,
        logins,
        deletions,
        errnos: ErrnoLabels,
        admission: AdmissionView {
            logins: state.login_admission.stats(),
            reads: state.db.admission().stats(),
            refused: ["login", "read", "wechat"]
                .into_iter()
                .map(|kind| (kind, state.metrics.refused.with_label_values(&[kind]).get()))
                .collect(),
        },
    };
    HttpResponse::Ok().json(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_matches_only_itself() {
        let token = AdminToken::new(&Secret::new("admin-token-value-0123"));
        assert!(token.matches("admin-token-value-0123"));
        assert!(!token.matches("admin-token-value-0124"));
        assert!(!token.matches("admin-token-value-012"));
        assert!(!token.matches(""));
    }

    #[test]
    fn user_side_errcodes_are_not_upstream_faults() {
        for fault in ["-1", "timeout", "unreachable", "bad_response", "40125"] {
            assert!(is_upstream_fault(fault), "{fault}");
        }
        for user_side in ["40029", "40163", "45011", "40226"] {
            assert!(!is_upstream_fault(user_side), "{user_side}");
        }
    }
}
