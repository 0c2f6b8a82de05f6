//! Upkeep of `login_log`: writing attempts without making the login wait, and pruning old rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::DbExecutor;
use super::db::{PruneLoginLog, RecordLogin};
use crate::db::models::NewLoginLogEntry;
use crate::metrics::Metrics;

/// Writes queued for the DbExecutor beyond this are dropped (and counted): the SyncArbiter's
/// mailbox is unbounded, and a database that stalls must not turn every failed login into memory
/// that is never given back.
pub const MAX_PENDING_WRITES: usize = 1000;

/// How often old rows are deleted. Hourly keeps each delete small.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A place in the write queue; dropping it frees the place.
pub struct PendingSlot(Arc<AtomicUsize>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Records login attempts in `login_log`. The login handler calls `record` after it has its
/// answer and does not wait for the row: the client's 3 s budget belongs to WeChat and the user
/// upsert, and a lost log row (database down at that moment) costs less than a slower login.
/// `do_send` rather than `send` and an ignored future: it is the same work without a reply
/// channel, and the handler logs its own failures.
#[derive(Clone)]
pub struct LoginLogWriter {
    db: Addr<DbExecutor>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl LoginLogWriter {
    pub fn new(db: Addr<DbExecutor>, metrics: Arc<Metrics>) -> Self {
        LoginLogWriter {
            db,
            pending: Arc::new(AtomicUsize::new(0)),
            metrics,
        }
    }

    pub fn record(&self, entry: NewLoginLogEntry) {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_WRITES {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.metrics.login_log_dropped.inc();
            log::warn!(
                "login_log: {MAX_PENDING_WRITES} writes already queued; attempt with errno {} not recorded",
                entry.errno
            );
            return;
        }
        let slot = PendingSlot(self.pending.clone());
        self.db.do_send(RecordLogin { entry, slot });
    }

    /// Writes queued and not yet done.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Waits until every queued write is done, at most `limit`: the last step before the process
    /// exits. True when nothing is left.
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.pending() > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// Deletes `login_log` rows older than the retention: once at start, then every `PRUNE_EVERY`.
pub struct LoginLogPruner {
    db: Addr<DbExecutor>,
    retention: Duration,
}

impl LoginLogPruner {
    pub fn new(db: Addr<DbExecutor>, retention: Duration) -> Self {
        LoginLogPruner { db, retention }
    }

    fn prune(&self) {
        let Ok(retention) = chrono::TimeDelta::from_std(self.retention) else {
            return;
        };
        let cutoff = Utc::now() - retention;
        let db = self.db.clone();
        actix::spawn(async move {
            match db.send(PruneLoginLog { cutoff }).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => log::info!("login_log: pruned {n} rows older than {cutoff}"),
                Ok(Err(e)) => log::warn!("login_log: prune failed: {e}"),
                Err(e) => log::warn!("login_log: prune not delivered: {e}"),
            }
        });
    }
}

impl Actor for LoginLogPruner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.prune();
        ctx.run_interval(PRUNE_EVERY, |act, _| act.prune());
    }
}
