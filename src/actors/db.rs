//! `DbExecutor`: synchronous Diesel on an r2d2 pool, run on a `SyncArbiter` so blocking queries
//! never stall the HTTP workers. Each message is a thin wrapper over a function in `crate::db`.
//! The users' and health messages are here; the meeting app's are in `db/meetings.rs`.

pub mod meetings;

use std::sync::Arc;

use actix::prelude::*;
use diesel::prelude::*;

use crate::db::models::{NewWxUser, ProfileChange, WxUser};
use crate::db::sealed::SessionKeyCipher;
use crate::db::sessions::{self, LiveSession, NewSession, NewSessionMeta};
use crate::db::users::MobileBinding;
use crate::db::{DbError, PgPool, users};
use crate::wechat::SessionKey;

pub struct DbExecutor {
    pool: PgPool,
    cipher: Arc<SessionKeyCipher>,
}

impl DbExecutor {
    pub fn new(pool: PgPool, cipher: Arc<SessionKeyCipher>) -> Self {
        DbExecutor { pool, cipher }
    }

    fn conn(&self) -> Result<diesel::r2d2::PooledConnection<crate::db::pool::PgManager>, DbError> {
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

#[derive(Message)]
#[rtype(result = "Result<MobileBinding, DbError>")]
pub struct BindMobile {
    pub user_id: i64,
    pub mobile: String,
}

impl Handler<BindMobile> for DbExecutor {
    type Result = Result<MobileBinding, DbError>;

    fn handle(&mut self, msg: BindMobile, _: &mut Self::Context) -> Self::Result {
        users::bind_mobile(&mut *self.conn()?, msg.user_id, &msg.mobile)
    }
}

#[derive(Message)]
#[rtype(result = "Result<Option<WxUser>, DbError>")]
pub struct UpdateProfile {
    pub user_id: i64,
    pub change: ProfileChange,
}

impl Handler<UpdateProfile> for DbExecutor {
    type Result = Result<Option<WxUser>, DbError>;

    fn handle(&mut self, msg: UpdateProfile, _: &mut Self::Context) -> Self::Result {
        users::update_profile(&mut *self.conn()?, msg.user_id, &msg.change)
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

/// Stores a new login's session.
#[derive(Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct InsertSession(pub NewSession);

impl Handler<InsertSession> for DbExecutor {
    type Result = Result<(), DbError>;

    fn handle(&mut self, msg: InsertSession, _: &mut Self::Context) -> Self::Result {
        sessions::insert(&mut *self.conn()?, &self.cipher, &msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<Option<LiveSession>, DbError>")]
pub struct LoadLiveSession(pub String);

impl Handler<LoadLiveSession> for DbExecutor {
    type Result = Result<Option<LiveSession>, DbError>;

    fn handle(&mut self, msg: LoadLiveSession, _: &mut Self::Context) -> Self::Result {
        sessions::load_live(&mut *self.conn()?, &msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct RevokeSession(pub String);

impl Handler<RevokeSession> for DbExecutor {
    type Result = Result<bool, DbError>;

    fn handle(&mut self, msg: RevokeSession, _: &mut Self::Context) -> Self::Result {
        sessions::revoke(&mut *self.conn()?, &msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct RevokeUserSessions(pub i64);

impl Handler<RevokeUserSessions> for DbExecutor {
    type Result = Result<usize, DbError>;

    fn handle(&mut self, msg: RevokeUserSessions, _: &mut Self::Context) -> Self::Result {
        sessions::revoke_all_of_user(&mut *self.conn()?, msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct RefreshSession {
    pub old_id: String,
    pub new: NewSessionMeta,
}

impl Handler<RefreshSession> for DbExecutor {
    type Result = Result<bool, DbError>;

    fn handle(&mut self, msg: RefreshSession, _: &mut Self::Context) -> Self::Result {
        sessions::refresh(&mut *self.conn()?, &self.cipher, &msg.old_id, &msg.new)
    }
}

#[derive(Message)]
#[rtype(result = "Result<Option<SessionKey>, DbError>")]
pub struct NewestSessionKey(pub i64);

impl Handler<NewestSessionKey> for DbExecutor {
    type Result = Result<Option<SessionKey>, DbError>;

    fn handle(&mut self, msg: NewestSessionKey, _: &mut Self::Context) -> Self::Result {
        sessions::newest_session_key(&mut *self.conn()?, &self.cipher, msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct TouchSessions(pub Vec<String>);

impl Handler<TouchSessions> for DbExecutor {
    type Result = Result<usize, DbError>;

    fn handle(&mut self, msg: TouchSessions, _: &mut Self::Context) -> Self::Result {
        sessions::touch(&mut *self.conn()?, &msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct SweepSessions;

impl Handler<SweepSessions> for DbExecutor {
    type Result = Result<usize, DbError>;

    fn handle(&mut self, _: SweepSessions, _: &mut Self::Context) -> Self::Result {
        sessions::sweep_expired(&mut *self.conn()?)
    }
}

#[derive(Message)]
#[rtype(result = "Result<i64, DbError>")]
pub struct CountLiveSessions;

impl Handler<CountLiveSessions> for DbExecutor {
    type Result = Result<i64, DbError>;

    fn handle(&mut self, _: CountLiveSessions, _: &mut Self::Context) -> Self::Result {
        sessions::count_live(&mut *self.conn()?)
    }
}
