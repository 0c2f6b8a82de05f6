//! The one place the background work is started (see `crate::background`).

use std::sync::Arc;
use std::time::Duration;

use crate::api::AppState;
use crate::background::{Jobs, deletion, login_log, reminder};
use crate::config::Config;
use crate::log_throttle::{ERRORS, OVERLOAD};
use crate::sessions;

/// How often the rate limits forget the clients they have not seen for a while.
const PRUNE_LIMITS_EVERY: Duration = Duration::from_secs(60);

/// Starts the background work of the instance whose `state` is built from `config`.
pub(super) fn start(config: &Config, state: &AppState) -> Jobs {
    let mut jobs = Jobs::default();
    jobs.every(
        config.retention.login_log_flush,
        state.login_log.clone(),
        |w| async move { w.flush_if_idle().await },
    );
    let retention = config.retention.login_log;
    jobs.every(
        login_log::PRUNE_EVERY,
        state.db.clone(),
        move |db| async move { login_log::prune(&db, retention).await },
    );
    jobs.every(
        sessions::TOUCH_EVERY,
        state.sessions.clone(),
        |s| async move { sessions::write_last_seen(&s).await },
    );
    jobs.every(sessions::SWEEP_EVERY, state.db.clone(), |db| async move {
        sessions::sweep_expired(&db).await
    });
    jobs.every(deletion::SWEEP_EVERY, state.db.clone(), |db| async move {
        deletion::sweep(&db).await
    });
    if let Some(sender) = reminder::ReminderSender::new(
        &state.db,
        &state.apps,
        &config.reminders,
        state.metrics.clone(),
    ) {
        sender.announce();
        jobs.every(sender.every(), Arc::new(sender), |s| async move {
            s.tick().await
        });
    }
    jobs.every(
        PRUNE_LIMITS_EVERY,
        state.limits.clone(),
        |limits| async move { limits.prune() },
    );
    // Each throttle is looked at every second (or every interval, if shorter), so a summary of
    // repeated lines comes at most that late.
    for throttle in [&ERRORS, &OVERLOAD] {
        let every = throttle.interval().min(Duration::from_secs(1));
        jobs.every(every, throttle, |t| async move { t.flush() });
    }
    jobs
}
