//! Upkeep of `login_log`: writing attempts in batches without making the login wait, and
//! pruning old rows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use crate::db::DbHandle;
use crate::db::login_log::MAX_BATCH_ROWS;
use crate::domain::LoginAttempt;
use crate::log_throttle::OVERLOAD;
use crate::metrics::Metrics;

/// Rows waiting for their batch beyond this are dropped (and counted): a database that stalls
/// must not turn every failed login into memory that is never given back.
pub(crate) const MAX_PENDING_ROWS: usize = 20_000;

/// How often old rows are deleted. Hourly keeps each delete small.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Records login attempts in `login_log`. The login handler calls `record` after it has its
/// answer and does not wait for the row: the client's 3 s budget belongs to WeChat and the
/// login's own statement, and a lost log row (database down at that moment) costs less than a
/// slower login. Rows are gathered here and written every `LOGIN_LOG_FLUSH_MS` (each batch
/// is one statement and one commit, whatever the number of logins in it) with one multi-row
/// insert per `MAX_BATCH_ROWS` (`flush_if_idle`, a background job); `flush` writes what is
/// gathered now, and the graceful shutdown calls it after the last request has been answered,
/// so no row is lost to a deploy.
#[derive(Clone)]
pub struct LoginLogWriter {
    inner: Arc<Inner>,
}

struct Inner {
    db: DbHandle,
    rows: Mutex<Vec<LoginAttempt>>,
    /// One flush at a time: the final one waits for the periodic one in progress, so that the
    /// process does not exit under it.
    flushing: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

impl LoginLogWriter {
    /// Writes through `db`'s background lane.
    pub(crate) fn new(db: &DbHandle, metrics: Arc<Metrics>) -> Self {
        LoginLogWriter {
            inner: Arc::new(Inner {
                db: db.background(),
                rows: Mutex::new(Vec::new()),
                flushing: tokio::sync::Mutex::new(()),
                metrics,
            }),
        }
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<LoginAttempt>> {
        self.inner.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn record(&self, entry: LoginAttempt) {
        let mut rows = self.rows();
        if rows.len() >= MAX_PENDING_ROWS {
            drop(rows);
            self.inner.metrics.login_log_dropped.inc();
            OVERLOAD.log(
                log::Level::Warn,
                "login_log: rows dropped, too many waiting for the database",
                None,
            );
            return;
        }
        rows.push(entry);
    }

    /// Rows gathered and not yet written.
    pub fn pending(&self) -> usize {
        self.rows().len()
    }

    /// Writes every row gathered so far; answers how many were written. Waits for a flush
    /// already in progress first.
    pub async fn flush(&self) -> usize {
        let _turn = self.inner.flushing.lock().await;
        self.write_gathered().await
    }

    /// The periodic flush: skipped while another one (the final one) is still writing.
    pub(crate) async fn flush_if_idle(&self) {
        if let Ok(_turn) = self.inner.flushing.try_lock() {
            self.write_gathered().await;
        }
    }

    async fn write_gathered(&self) -> usize {
        let mut rest = std::mem::take(&mut *self.rows());
        let mut written = 0;
        while !rest.is_empty() {
            let batch: Vec<_> = rest.drain(..rest.len().min(MAX_BATCH_ROWS)).collect();
            let n = batch.len();
            match self.inner.db.record_logins(batch).await {
                Ok(w) => written += w,
                Err(e) => {
                    self.lost(n);
                    log::warn!("login_log: a batch of {n} rows not written: {e}");
                }
            }
        }
        written
    }

    fn lost(&self, n: usize) {
        self.inner.metrics.login_log_dropped.inc_by(n as u64);
    }
}

/// Deletes `login_log` rows older than `retention`, through `db`'s background lane. A background
/// job runs it once at start, then every `PRUNE_EVERY`.
pub async fn prune(db: &DbHandle, retention: Duration) {
    let Ok(retention) = chrono::TimeDelta::from_std(retention) else {
        return;
    };
    let cutoff = Utc::now() - retention;
    match db.background().prune_login_log(cutoff).await {
        Ok(0) => {}
        Ok(n) => log::info!("login_log: pruned {n} rows older than {cutoff}"),
        Err(e) => log::warn!("login_log: prune failed: {e}"),
    }
}
