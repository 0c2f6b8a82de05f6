//! Background work: the upkeep that runs beside the requests on every instance, and `start`, the
//! one place it is started.
//!
//! Each job is a tick run at once and then every period (`Jobs::every`), on the current actix
//! system. A job's ticks never overlap: one due while the last is still running is skipped. The
//! jobs stop when the server has stopped, before the last writes are flushed, or with the system.
//! The database work among them goes through the `DbHandle`'s background lane, never the lanes of
//! logins and reads.

pub(crate) mod deletion;
pub mod login_log;
pub(crate) mod reminder;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;

use crate::api::AppState;
use crate::config::Config;
use crate::log_throttle::{ERRORS, OVERLOAD};
use crate::sessions;

/// How often the rate limits forget the clients they have not seen for a while.
const PRUNE_LIMITS_EVERY: Duration = Duration::from_secs(60);

/// The running jobs.
#[must_use = "dropping the jobs leaves them running; stop them at shutdown"]
pub(crate) struct Jobs(Vec<JoinHandle<()>>);

impl Jobs {
    /// Runs `tick` now, then every `period`, until stopped.
    fn every<F, Fut>(&mut self, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.0.push(actix_web::rt::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                tick().await;
            }
        }));
    }

    /// Stops every job; a tick in progress ends at its next await.
    pub(crate) fn stop(self) {
        for job in self.0 {
            job.abort();
        }
    }
}

/// Starts the background work of the instance whose `state` is built from `config`.
pub(crate) fn start(config: &Config, state: &AppState) -> Jobs {
    let mut jobs = Jobs(Vec::new());

    let writer = state.login_log.clone();
    jobs.every(config.login_log_flush, move || {
        let writer = writer.clone();
        async move { writer.flush_if_idle().await }
    });
    let (db, retention) = (state.db.clone(), config.login_log_retention);
    jobs.every(login_log::PRUNE_EVERY, move || {
        let db = db.clone();
        async move { login_log::prune(&db, retention).await }
    });

    let actor = state.sessions.clone();
    jobs.every(sessions::TOUCH_EVERY, move || {
        let actor = actor.clone();
        async move { sessions::write_last_seen(&actor).await }
    });
    let db = state.db.clone();
    jobs.every(sessions::SWEEP_EVERY, move || {
        let db = db.clone();
        async move { sessions::sweep_expired(&db).await }
    });

    let db = state.db.clone();
    jobs.every(deletion::SWEEP_EVERY, move || {
        let db = db.clone();
        async move { deletion::sweep(&db).await }
    });

    if let Some(sender) = reminder::ReminderSender::new(
        &state.db,
        &state.apps,
        &config.reminders,
        state.metrics.clone(),
    ) {
        sender.announce();
        let sender = Arc::new(sender);
        jobs.every(sender.every(), move || {
            let sender = sender.clone();
            async move { sender.tick().await }
        });
    }

    let limits = state.limits.clone();
    jobs.every(PRUNE_LIMITS_EVERY, move || {
        limits.prune();
        std::future::ready(())
    });

    // Each throttle is looked at every second (or every interval, if shorter), so a summary of
    // repeated lines comes at most that late.
    for throttle in [&ERRORS, &OVERLOAD] {
        jobs.every(throttle.interval().min(Duration::from_secs(1)), move || {
            throttle.flush();
            std::future::ready(())
        });
    }
    jobs
}
