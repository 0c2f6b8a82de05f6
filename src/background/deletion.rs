//! The sweeper that erases accounts whose deletion grace period is over.

use std::time::Duration;

use crate::db::DbHandle;

/// How often due deletions are looked for. Grace periods are counted in days; a few minutes
/// late is well inside what the user was told.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// Accounts erased per message: each is its own transaction, and a bounded batch keeps one sweep
/// from holding a DbExecutor thread for long while logins wait.
pub(crate) const SWEEP_BATCH: usize = 50;

/// Erases the accounts due now, in batches while batches come back full. A background job runs
/// it once at start, then every `SWEEP_EVERY`, on every instance; they share the work through row
/// locks (`db::deletion::sweep_due`), so each account is erased once.
pub(crate) async fn sweep(db: &DbHandle) {
    let db = db.background();
    loop {
        match db.sweep_deletions(SWEEP_BATCH).await {
            Ok(swept) => {
                if swept.erased > 0 {
                    log::info!(
                        "account deletion: erased {} accounts whose grace period is over",
                        swept.erased
                    );
                }
                // A full batch of erasures may mean more are due; skipped ones are another
                // instance's, or the next sweep's.
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
}
