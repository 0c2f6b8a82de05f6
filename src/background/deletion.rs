//! The sweeper that erases accounts whose deletion grace period is over.

use std::time::Duration;

use actix::prelude::*;

use crate::db::DbHandle;

/// How often due deletions are looked for. Grace periods are counted in days; a few minutes
/// late is well inside what the user was told.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// Accounts erased per message: each is its own transaction, and a bounded batch keeps one sweep
/// from holding a DbExecutor thread for long while logins wait.
pub(crate) const SWEEP_BATCH: usize = 50;

/// Erases due accounts: once at start, then every `SWEEP_EVERY`. Every instance runs one; they
/// share the work through row locks (`db::deletion::sweep_due`), so each account is erased once.
pub(crate) struct DeletionSweeper {
    db: DbHandle,
}

impl DeletionSweeper {
    /// Sweeps through `db`'s background lane.
    pub(crate) fn new(db: &DbHandle) -> Self {
        DeletionSweeper {
            db: db.background(),
        }
    }

    fn sweep(&self) {
        let db = self.db.clone();
        actix::spawn(async move {
            loop {
                match db.sweep_deletions(SWEEP_BATCH).await {
                    Ok(swept) => {
                        if swept.erased > 0 {
                            log::info!(
                                "account deletion: erased {} accounts whose grace period is over",
                                swept.erased
                            );
                        }
                        // A full batch of erasures may mean more are due; skipped ones are
                        // another instance's, or the next sweep's.
                        if swept.erased < SWEEP_BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        log::warn!("account deletion: sweep failed: {e}");
                        break;
                    }
                }
            }
        });
    }
}

impl Actor for DeletionSweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.sweep();
        ctx.run_interval(SWEEP_EVERY, |act, _| act.sweep());
    }
}
