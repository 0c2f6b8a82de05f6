//! Background work: the upkeep that runs beside the requests on every instance, and `Jobs`, the
//! way it runs (`crate::startup` starts it all in one place, `startup/background.rs`).
//!
//! Each job is a tick run at once and then every period (`Jobs::every`), on the current actix
//! system. A job's ticks never overlap: one due while the last is still running is skipped. The
//! jobs stop when the server has stopped (no tick starts after that), or with the system.
//! The database work among them goes through the `DbHandle`'s background lane, never the lanes of
//! logins and reads.

pub(crate) mod deletion;
pub mod login_log;
pub(crate) mod reminder;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The running jobs.
#[must_use = "dropping the jobs leaves them running; stop them at shutdown"]
#[derive(Default)]
pub(crate) struct Jobs {
    stopped: Arc<AtomicBool>,
}

impl Jobs {
    /// Runs `tick` on a clone of `with` now, then every `period`, until stopped.
    pub(crate) fn every<T, F, Fut>(&mut self, period: Duration, with: T, tick: F)
    where
        T: Clone + 'static,
        F: Fn(T) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let stopped = self.stopped.clone();
        actix_web::rt::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                if stopped.load(Ordering::Acquire) {
                    break;
                }
                tick(with.clone()).await;
            }
        });
    }

    /// Starts no tick after this. A tick in progress is not cut short: a batch of login_log
    /// rows half written would be lost, and the final flush waits for it instead.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }
}
