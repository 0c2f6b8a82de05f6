//! `GET /admin/api/status`: the JSON the status page draws, gathered from the actors, the
//! database and the listener, with what is wrong said in words.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::admission::AdmissionStats;
use crate::api::AppState;
use crate::domain::LoginSummary;
use crate::error::ErrnoLabels;
use crate::sessions::CountSessions;
use crate::sessions::listener::{ListenerReport, ListenerState};
use crate::wechat::client::{GetUpstreamStats, UpstreamStats, UpstreamWindow};
use crate::wechat::errcode;

/// How long the status waits for each part before reporting it unknown: the page must answer
/// fastest exactly when something is stuck.
const PART_TIMEOUT: Duration = Duration::from_secs(2);
/// Rows in the page's recent-logins list.
const RECENT_LOGINS: i64 = 20;

#[derive(Debug, Serialize)]
struct StatusView {
    /// `ok`, `degraded` (logins work but something is wrong) or `down` (logins cannot work).
    status: &'static str,
    /// Why the status is not `ok`, one sentence each.
    problems: Vec<String>,
    /// Always true: an answer means the process is up.
    up: bool,
    /// Database reachable and fully migrated, as `/readyz` says.
    ready: bool,
    version: &'static str,
    /// `dev` (built-in WeChat fake) or `production`.
    mode: &'static str,
    /// RFC 3339, UTC, like every time in this answer.
    started_at: String,
    uptime_secs: u64,
    generated_at: String,
    database: DatabaseView,
    /// Every configured app's round trips together, and each app's in `by_app`; `None` when no
    /// app's WeChatClient answered in time.
    wechat: Option<WeChatTotals>,
    sessions: SessionsView,
    /// The NOTIFY listener, as `/readyz` shows it.
    listener: ListenerReport,
    /// `None` when the database could not be asked.
    logins: Option<LoginsView>,
    admission: AdmissionView,
    /// Account deletions users asked for (or the admin made); `None` when the database could not
    /// be asked.
    deletions: Option<DeletionsView>,
    /// Meetings waiting for an admin's review (content security), oldest first; `None` when the
    /// database could not be asked.
    pending_review: Option<Vec<PendingMeeting>>,
    /// Meeting reminders by subscribe message.
    reminders: RemindersView,
    /// Accounts merged into an older one because a login showed they were one person; `None`
    /// when the database could not be asked.
    accounts_merged: Option<i64>,
    /// What each errno means (`{"710": "WeChat: invalid code", …}`), for the logins' outcomes.
    errnos: ErrnoLabels,
    /// What WeChat's errcodes (and the other labels of `wechat.errors_by_errcode`) mean.
    errcodes: crate::wechat::LabelNames,
    /// Those of `errcodes` that are about the user or the code, not WeChat's health
    /// (`is_upstream_fault`): the page shows them apart and never red.
    user_side_errcodes: Vec<String>,
}

/// WeChat's round trips, with the last hour's errors split by whose they are: a user's bad or
/// reused code (40029, 40163), rate limit or risk flag is WeChat working as it should, and only
/// its faults (busy, timeouts, bad replies, refused credentials) say something about its health.
#[derive(Debug, Serialize)]
struct WeChatView {
    #[serde(flatten)]
    stats: UpstreamStats,
    /// Last hour: WeChat's or our configuration's faults (`is_upstream_fault`).
    last_hour_faults: u64,
    /// Last hour: answers about the user or the code (40029, 40163, 45011, 40226, ...).
    last_hour_user_errors: u64,
    /// `last_hour_faults` / calls; `None` without calls.
    last_hour_fault_rate: Option<f64>,
}

impl WeChatView {
    fn new(stats: UpstreamStats) -> WeChatView {
        let faults = last_hour_faults(&stats);
        let calls = stats.last_hour.calls;
        WeChatView {
            last_hour_faults: faults,
            last_hour_user_errors: stats.last_hour.errors.saturating_sub(faults),
            last_hour_fault_rate: (calls > 0).then(|| faults as f64 / calls as f64),
            stats,
        }
    }
}

fn last_hour_faults(stats: &UpstreamStats) -> u64 {
    stats
        .last_hour
        .errors_by_errcode
        .iter()
        .filter(|(label, _)| is_upstream_fault(label))
        .map(|(_, n)| n)
        .sum()
}

/// WeChat for the whole service: the configured apps' round trips summed, the newest call's
/// outcome over all apps, and the default app's access token (the one field that cannot be
/// summed), as before there were several apps; then each app's own.
#[derive(Debug, Serialize)]
struct WeChatTotals {
    #[serde(flatten)]
    all: WeChatView,
    /// Every configured app, the default app first.
    by_app: Vec<AppWeChat>,
}

#[derive(Debug, Serialize)]
struct AppWeChat {
    appid: String,
    /// The name `WECHAT_APPS_FILE` gives it; empty when none.
    name: String,
    /// `false` when this app's WeChatClient did not answer in time: then no numbers follow, and
    /// the totals leave the app out.
    answered: bool,
    #[serde(flatten)]
    view: Option<WeChatView>,
}

impl WeChatTotals {
    /// `answers` holds each configured app's (appid, name) and stats, the default app first,
    /// with `None` where its client did not answer; `None` when none answered.
    fn new(answers: Vec<(&str, &str, Option<UpstreamStats>)>) -> Option<WeChatTotals> {
        let answered: Vec<&UpstreamStats> = answers.iter().filter_map(|a| a.2.as_ref()).collect();
        if answered.is_empty() {
            return None;
        }
        let mut total = UpstreamStats {
            calls_total: 0,
            errors_total: 0,
            errors_by_errcode: BTreeMap::new(),
            last_hour: UpstreamWindow {
                calls: 0,
                errors: 0,
                error_rate: None,
                errors_by_errcode: BTreeMap::new(),
            },
            last_latency_ms: None,
            last_call_at: None,
            last_outcome: None,
            access_token_age_secs: answers
                .first()
                .and_then(|(_, _, default)| default.as_ref())
                .and_then(|default| default.access_token_age_secs),
        };
        for stats in &answered {
            total.calls_total += stats.calls_total;
            total.errors_total += stats.errors_total;
            add_counts(&mut total.errors_by_errcode, &stats.errors_by_errcode);
            total.last_hour.calls += stats.last_hour.calls;
            total.last_hour.errors += stats.last_hour.errors;
            add_counts(
                &mut total.last_hour.errors_by_errcode,
                &stats.last_hour.errors_by_errcode,
            );
        }
        let calls = total.last_hour.calls;
        total.last_hour.error_rate =
            (calls > 0).then(|| total.last_hour.errors as f64 / calls as f64);
        // RFC 3339 UTC times of one format order as text do.
        if let Some(newest) = answered
            .iter()
            .filter(|s| s.last_call_at.is_some())
            .max_by(|a, b| a.last_call_at.cmp(&b.last_call_at))
        {
            total.last_latency_ms = newest.last_latency_ms;
            total.last_call_at = newest.last_call_at.clone();
            total.last_outcome = newest.last_outcome.clone();
        }
        let by_app = answers
            .into_iter()
            .map(|(appid, name, stats)| AppWeChat {
                appid: appid.to_string(),
                name: name.to_string(),
                answered: stats.is_some(),
                view: stats.map(WeChatView::new),
            })
            .collect();
        Some(WeChatTotals {
            all: WeChatView::new(total),
            by_app,
        })
    }
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (label, n) in from {
        *into.entry(label.clone()).or_default() += n;
    }
}

/// What is let in, what waits and what is refused with errno 721 (server busy).
#[derive(Debug, Serialize)]
struct AdmissionView {
    /// Logins in progress (limit adaptive), before any WeChat call.
    logins: AdmissionStats,
    /// Other database work (limit fixed).
    reads: AdmissionStats,
    /// Refusals since start, by what was full: `login`, `read`, `wechat`.
    refused: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
struct RemindersView {
    /// Some app has a reminder template (`REMINDER_TEMPLATE_ID`, or `reminder_template` in the
    /// apps file).
    enabled: bool,
    /// Reminders by state over every instance: `waiting`, `sending`, `sent`, `refused` (43101),
    /// `failed`; `None` when the database could not be asked.
    counts: Option<crate::db::reminders::ReminderCounts>,
}

/// Pending meetings shown on the page.
const PENDING_SHOWN: i64 = 50;

#[derive(Debug, Serialize)]
struct PendingMeeting {
    id: i64,
    title: String,
    content: String,
    location: String,
    start_time: String,
    publisher_id: i64,
    publisher_nickname: String,
    add_time: String,
}

#[derive(Debug, Serialize)]
struct DeletionsView {
    /// Requested; the grace period is not over, or the sweeper has not come by yet.
    pending: i64,
    /// Personal data erased.
    completed: i64,
}

#[derive(Debug, Serialize)]
struct DatabaseView {
    reachable: bool,
    migrations_applied: Option<bool>,
    pending_migrations: Vec<String>,
    /// Round trip of the readiness query through the DbExecutor.
    latency_ms: Option<f64>,
    error: Option<String>,
    pool: PoolView,
    /// login_log rows gathered and not yet written (they are written in batches).
    login_log_pending_writes: usize,
}

#[derive(Debug, Serialize)]
struct PoolView {
    max: u32,
    connections: u32,
    idle: u32,
    in_use: u32,
}

#[derive(Debug, Serialize)]
struct SessionsView {
    /// `None` when the SessionActor did not answer in time.
    live: Option<usize>,
}

#[derive(Debug, Serialize)]
struct LoginsView {
    last_minute: LoginWindow,
    last_hour: LoginWindow,
    /// The last hour by configured app, the default app first.
    by_app: Vec<AppLogins>,
    /// One entry per minute of the last hour, oldest first.
    per_minute: Vec<MinuteView>,
    /// Newest first.
    recent: Vec<RecentLogin>,
}

#[derive(Debug, Serialize)]
struct AppLogins {
    appid: String,
    /// The name `WECHAT_APPS_FILE` gives it; empty when none.
    name: String,
    success: i64,
    failure: i64,
}

impl AppLogins {
    /// Every configured app, with its counts; rows of apps no longer configured are left out.
    fn of(apps: &crate::apps::ServedApps, counts: &[crate::domain::AppCount]) -> Vec<AppLogins> {
        let default = &apps.default_app().appid;
        apps.all()
            .iter()
            .map(|app| {
                let mine = counts.iter().filter(|c| {
                    c.app_id == app.appid || (c.app_id.is_empty() && app.appid == *default)
                });
                let (success, failure) =
                    mine.fold((0, 0), |(s, f), c| (s + c.success, f + c.failure));
                AppLogins {
                    appid: app.appid.clone(),
                    name: app.name.clone(),
                    success,
                    failure,
                }
            })
            .collect()
    }
}

#[derive(Debug, Default, Serialize)]
struct LoginWindow {
    success: i64,
    failure: i64,
    /// Failures by errno (as a string key, for JSON).
    failure_by_errno: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize)]
struct MinuteView {
    minute: String,
    success: i64,
    failure: i64,
}

#[derive(Debug, Serialize)]
struct RecentLogin {
    time: String,
    user_id: Option<i64>,
    /// Masked when stored: `oGZU****VJJE`.
    openid: String,
    ip: String,
    user_agent: String,
    errno: i32,
}

impl LoginsView {
    fn new(s: LoginSummary, apps: &crate::apps::ServedApps) -> Self {
        let by_app = AppLogins::of(apps, &s.by_app);
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
            by_app,
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
                    // Rows written before user agents were cleaned on the way in.
                    user_agent: crate::text::clean_for_display(&r.user_agent).collect(),
                    errno: r.errno,
                })
                .collect(),
        }
    }
}

/// `2026-11-26T03:04:05Z`: what `new Date()` in the page parses.
fn rfc3339(t: DateTime<Utc>) -> String {
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
pub(super) async fn status(state: web::Data<AppState>) -> HttpResponse {
    let now = Utc::now();
    let ready_started = Instant::now();
    let ((ready, logins, wechat, sessions, deletions), pending_review, reminder_counts) =
        futures_util::future::join3(
            futures_util::future::join5(
                tokio::time::timeout(PART_TIMEOUT, state.db.pending_migrations()),
                tokio::time::timeout(PART_TIMEOUT, state.db.login_summary(now, RECENT_LOGINS)),
                futures_util::future::join_all(state.apps.all().iter().map(|app| {
                    tokio::time::timeout(PART_TIMEOUT, app.wechat.send(GetUpstreamStats))
                })),
                tokio::time::timeout(PART_TIMEOUT, state.sessions.send(CountSessions)),
                tokio::time::timeout(PART_TIMEOUT, state.db.deletion_counts()),
            ),
            tokio::time::timeout(
                PART_TIMEOUT,
                state.db.meetings_pending_review(PENDING_SHOWN),
            ),
            tokio::time::timeout(PART_TIMEOUT, state.db.reminder_counts()),
        )
        .await;
    let pending_review = match pending_review {
        Ok(Ok(meetings)) => Some(
            meetings
                .into_iter()
                .map(|info| PendingMeeting {
                    id: info.meeting.id,
                    title: info.meeting.title,
                    content: info.meeting.content,
                    location: info.meeting.location,
                    start_time: rfc3339(info.meeting.start_time),
                    publisher_id: info.meeting.publisher_id,
                    publisher_nickname: info.publisher_nickname,
                    add_time: rfc3339(info.meeting.add_time),
                })
                .collect(),
        ),
        _ => None,
    };
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

    let wechat: Vec<Option<UpstreamStats>> = wechat
        .into_iter()
        .map(|answer| answer.ok().and_then(Result::ok))
        .collect();
    // With one app the problems read as they did before there were several.
    let several = state.apps.all().len() > 1;
    for (app, stats) in state.apps.all().iter().zip(&wechat) {
        let whose = |prefix: &str| {
            if !several {
                String::new()
            } else if app.name.is_empty() {
                format!("{prefix}{}", app.appid)
            } else {
                format!("{prefix}{} ({})", app.name, app.appid)
            }
        };
        let Some(stats) = stats else {
            problems.push(format!("WeChat client{} did not answer", whose(" of ")));
            continue;
        };
        if let Some(last) = stats
            .last_outcome
            .as_deref()
            .filter(|l| is_upstream_fault(l))
        {
            problems.push(format!(
                "WeChat{}: newest call failed ({last}); {} of {} calls failed in the last hour",
                whose(" for "),
                last_hour_faults(stats),
                stats.last_hour.calls
            ));
        }
    }
    let wechat = WeChatTotals::new(
        state
            .apps
            .all()
            .iter()
            .zip(wechat)
            .map(|(app, stats)| (app.appid.as_str(), app.name.as_str(), stats))
            .collect(),
    );

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
        Ok(Ok(summary)) => Some(LoginsView::new(summary, &state.apps)),
        _ => None,
    };

    let accounts_merged = deletions
        .as_ref()
        .ok()
        .and_then(|d| d.as_ref().ok())
        .map(|c| c.merged);
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
        pending_review,
        reminders: RemindersView {
            enabled: state.apps.reminders_on(),
            counts: reminder_counts.ok().and_then(Result::ok),
        },
        accounts_merged,
        errnos: ErrnoLabels,
        errcodes: crate::wechat::LabelNames,
        user_side_errcodes: crate::wechat::LABEL_NAMES
            .iter()
            .map(|(label, _)| label.label())
            .filter(|label| !is_upstream_fault(label))
            .collect(),
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

    fn stats(
        calls: u64,
        errors: &[(&str, u64)],
        last_call_at: &str,
        outcome: &str,
    ) -> UpstreamStats {
        let errors: BTreeMap<String, u64> =
            errors.iter().map(|(l, n)| (l.to_string(), *n)).collect();
        let failed = errors.values().sum();
        UpstreamStats {
            calls_total: calls,
            errors_total: failed,
            errors_by_errcode: errors.clone(),
            last_hour: UpstreamWindow {
                calls,
                errors: failed,
                error_rate: Some(failed as f64 / calls as f64),
                errors_by_errcode: errors,
            },
            last_latency_ms: Some(calls),
            last_call_at: Some(last_call_at.to_string()),
            last_outcome: Some(outcome.to_string()),
            access_token_age_secs: Some(calls * 10),
        }
    }

    #[test]
    fn wechat_totals_sum_the_apps_that_answered_and_mark_the_others() {
        let oa = stats(
            4,
            &[("40029", 1), ("timeout", 1)],
            "2026-12-06T05:00:01Z",
            "ok",
        );
        let shop = stats(2, &[("40029", 1)], "2026-12-06T05:00:09Z", "40029");
        let json = |answers| serde_json::to_value(WeChatTotals::new(answers)).expect("json");

        let both = json(vec![
            ("wx1", "OA", Some(oa.clone())),
            ("wx2", "", Some(shop.clone())),
            ("wx3", "", None),
        ]);
        assert_eq!(both["calls_total"], 6);
        assert_eq!(
            both["errors_by_errcode"],
            serde_json::json!({ "40029": 2, "timeout": 1 })
        );
        assert_eq!(both["last_hour"]["error_rate"], 0.5);
        assert_eq!(both["last_hour_faults"], 1);
        assert_eq!(both["last_hour_user_errors"], 2);
        assert_eq!(both["last_outcome"], "40029", "the newest call of any app");
        assert_eq!(both["last_latency_ms"], 2);
        assert_eq!(both["access_token_age_secs"], 40, "the default app's");
        assert_eq!(both["by_app"][0]["name"], "OA");
        assert_eq!(both["by_app"][1]["calls_total"], 2);
        assert_eq!(
            both["by_app"][2],
            serde_json::json!({ "appid": "wx3", "name": "", "answered": false }),
            "no numbers for an app that did not answer"
        );

        // The default app silent: no access token age, the others still summed.
        let without_default = json(vec![("wx1", "OA", None), ("wx2", "", Some(shop))]);
        assert_eq!(without_default["calls_total"], 2);
        assert!(without_default["access_token_age_secs"].is_null());

        assert!(WeChatTotals::new(vec![("wx1", "OA", None)]).is_none());
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
