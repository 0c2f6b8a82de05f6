//! `DbExecutor`: synchronous Diesel on an r2d2 pool, run on a `SyncArbiter` so blocking queries
//! never stall the HTTP workers. Each message is a thin wrapper over a function in `crate::db`.
//! The users' and health messages are here; the meeting app's are in `db/meetings.rs`.

pub mod meetings;

use actix::prelude::*;
use diesel::prelude::*;

use crate::db::models::{NewWxUser, WxUser};
use crate::db::{DbError, PgPool, users};

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
        diesel::sql_query("SELECT 1").execute(&mut self.conn()?)?;
        Ok(())
    }
}
