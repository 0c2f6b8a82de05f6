//! `DbExecutor`: synchronous Diesel on an r2d2 pool, run on a `SyncArbiter` so blocking queries
//! never stall the HTTP workers. Each message is a thin wrapper over a function in `crate::db`.

use actix::prelude::*;
use diesel::prelude::*;

use chrono::{DateTime, Utc};

use crate::actors::login_log::PendingSlot;
use crate::db::login_log::{self, LoginSummary};
use crate::db::models::{NewLoginLogEntry, NewWxUser, WxUser};
use crate::db::{DbError, PgPool, setup, users};

pub struct DbExecutor {
    pool: PgPool,
}

impl DbExecutor {
    pub fn new(pool: PgPool) -> Self {
        DbExecutor { pool }
    }

    fn conn(
        &self,
    ) -> Result<
        diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<PgConnection>>,
        DbError,
    > {
        Ok(self.pool.get()?)
    }
}

impl Actor for DbExecutor {
    type Context = SyncContext<Self>;
}

/// Create or update the user on login.
#[derive(Message)]
#[rtype(result = "Result<WxUser, DbError>")]
pub struct UpsertOnLogin(pub NewWxUser);

impl Handler<UpsertOnLogin> for DbExecutor {
    type Result = Result<WxUser, DbError>;

    fn handle(&mut self, msg: UpsertOnLogin, _: &mut Self::Context) -> Self::Result {
        users::upsert_on_login(&mut *self.conn()?, &msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<Option<WxUser>, DbError>")]
pub struct FindUser(pub i64);

impl Handler<FindUser> for DbExecutor {
    type Result = Result<Option<WxUser>, DbError>;

    fn handle(&mut self, msg: FindUser, _: &mut Self::Context) -> Self::Result {
        users::find_by_id(&mut *self.conn()?, msg.0)
    }
}

/// Is the database reachable? For `/healthz`.
#[derive(Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct Ping;

impl Handler<Ping> for DbExecutor {
    type Result = Result<(), DbError>;

    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        diesel::sql_query("SELECT 1").execute(&mut *self.conn()?)?;
        Ok(())
    }
}

/// Which embedded migrations the database lacks. For `/readyz`.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, DbError>")]
pub struct PendingMigrations;

impl Handler<PendingMigrations> for DbExecutor {
    type Result = Result<Vec<String>, DbError>;

    fn handle(&mut self, _: PendingMigrations, _: &mut Self::Context) -> Self::Result {
        setup::pending_migrations(&mut *self.conn()?)
    }
}

/// Writes one `login_log` row. Sent with `do_send` through `LoginLogWriter`: nobody waits for the
/// answer, so a failure is logged here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordLogin {
    pub entry: NewLoginLogEntry,
    /// Frees its place in the writer's queue when this message is handled or dropped.
    pub slot: PendingSlot,
}

impl Handler<RecordLogin> for DbExecutor {
    type Result = ();

    fn handle(&mut self, msg: RecordLogin, _: &mut Self::Context) {
        let written = self
            .conn()
            .and_then(|mut conn| login_log::insert(&mut conn, &msg.entry));
        if let Err(e) = written {
            log::warn!(
                "login_log: attempt with errno {} not recorded: {e}",
                msg.entry.errno
            );
        }
        drop(msg.slot);
    }
}

/// Deletes `login_log` rows older than the cutoff; answers how many.
#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct PruneLoginLog {
    pub cutoff: DateTime<Utc>,
}

impl Handler<PruneLoginLog> for DbExecutor {
    type Result = Result<usize, DbError>;

    fn handle(&mut self, msg: PruneLoginLog, _: &mut Self::Context) -> Self::Result {
        login_log::prune(&mut *self.conn()?, msg.cutoff)
    }
}

/// The logins part of the admin status.
#[derive(Message)]
#[rtype(result = "Result<LoginSummary, DbError>")]
pub struct GetLoginSummary {
    pub now: DateTime<Utc>,
    pub recent: i64,
}

impl Handler<GetLoginSummary> for DbExecutor {
    type Result = Result<LoginSummary, DbError>;

    fn handle(&mut self, msg: GetLoginSummary, _: &mut Self::Context) -> Self::Result {
        login_log::summary(&mut *self.conn()?, msg.now, msg.recent)
    }
}
