//! `DbExecutor`: the query functions of `crate::db` run on pooled connections on a `SyncArbiter`,
//! so that blocking Diesel never stalls the HTTP workers. Private to `db`: `DbHandle` is the only
//! way to it, and bounds what is sent (the arbiter's mailbox is unbounded).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use diesel::PgConnection;
use tokio::sync::OwnedSemaphorePermit;

use super::sealed::SessionKeyCipher;
use super::{DbError, PgPool};
use crate::admission::Permit;

pub(super) struct DbExecutor {
    pool: PgPool,
    cipher: Arc<SessionKeyCipher>,
}

impl Actor for DbExecutor {
    type Context = SyncContext<Self>;
}

/// Starts `threads` executors on `pool`, each with the `cipher` that seals stored session_keys.
pub(super) fn start(pool: PgPool, cipher: SessionKeyCipher, threads: usize) -> Addr<DbExecutor> {
    let cipher = Arc::new(cipher);
    SyncArbiter::start(threads, move || DbExecutor {
        pool: pool.clone(),
        cipher: cipher.clone(),
    })
}

type Job<T> = Box<dyn FnOnce(&mut PgConnection, &SessionKeyCipher) -> Result<T, DbError> + Send>;

/// A query run on a pooled connection.
///
/// Its place in a lane is freed when the executor is done with it, not when its caller stops
/// waiting (a request past its deadline): the lanes bound the messages at the executor.
pub(super) struct Run<T> {
    pub(super) job: Job<T>,
    pub(super) read: Option<Permit>,
    pub(super) _upkeep: Option<OwnedSemaphorePermit>,
}

impl<T: 'static> Message for Run<T> {
    type Result = Result<T, DbError>;
}

impl<T: Send + 'static> Handler<Run<T>> for DbExecutor {
    type Result = Result<T, DbError>;

    fn handle(&mut self, run: Run<T>, _: &mut Self::Context) -> Self::Result {
        let answer = (run.job)(&mut *self.pool.get()?, &self.cipher);
        if let (Ok(_), Some(mut permit)) = (&answer, run.read) {
            permit.succeeded(Duration::ZERO);
        }
        answer
    }
}
