//! `DbExecutor`: synchronous Diesel on an r2d2 pool, run on a `SyncArbiter` so blocking queries
//! never stall the HTTP workers. Each message is a thin wrapper over a function in `crate::db`.
//! The users' and health messages are here; the meeting app's are in `db/meetings.rs`.

pub mod meetings;

use std::sync::Arc;

use actix::prelude::*;
use diesel::prelude::*;

use chrono::{DateTime, Utc};

use crate::admission::{Admission, Busy};
use crate::db::login_log::{self, LoginSummary};
use crate::db::models::{NewLoginLogEntry, NewWxUser, ProfileChange, WxUser};
use crate::db::sealed::SessionKeyCipher;
use crate::db::sessions::{self, LiveSession, LoginRecord, LoginSession, NewSessionMeta};
use crate::db::users::MobileBinding;
use crate::db::{DbError, PgPool, deletion, export, setup, users};
use crate::wechat::SessionKey;

/// How long a database read may take, queue included, so that the request still answers within
/// the client's 3 s (the rest is the token check and the answer).
pub const READ_BUDGET: std::time::Duration = std::time::Duration::from_millis(2000);

/// Why a message did not reach the DbExecutor.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("database busy: {}", .0.reason)]
    Busy(Busy),
    #[error("database executor stopped: {0}")]
    Stopped(#[from] MailboxError),
}

/// The handlers' way to the DbExecutor. A `SyncArbiter` mailbox is unbounded, so without a bound
/// a stalled database would queue requests forever: `send` admits at most `max_in_flight`
/// messages, queues a few more for as long as they can still be answered in time, and refuses
/// the rest at once with errno 721. `send_admitted` is for logins, which passed their own
/// admission before their code was exchanged: their number is bounded there, and once a code is
/// spent the login must not be refused for want of a place here.
#[derive(Clone)]
pub struct DbHandle {
    addr: Addr<DbExecutor>,
    admission: Arc<Admission>,
}

impl DbHandle {
    pub fn new(addr: Addr<DbExecutor>, admission: Arc<Admission>) -> Self {
        DbHandle { addr, admission }
    }

    pub fn addr(&self) -> &Addr<DbExecutor> {
        &self.addr
    }

    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    pub async fn send<M, T>(&self, msg: M) -> Result<Result<T, DbError>, Unavailable>
    where
        M: Message<Result = Result<T, DbError>> + Send + 'static,
        T: Send + 'static,
        DbExecutor: Handler<M>,
    {
        let mut permit = self
            .admission
            .acquire(READ_BUDGET)
            .await
            .map_err(Unavailable::Busy)?;
        let result = self.addr.send(msg).await?;
        if result.is_ok() {
            permit.succeeded(std::time::Duration::ZERO);
        }
        Ok(result)
    }

    /// For work already admitted elsewhere (a login whose code is exchanged): never refused.
    pub async fn send_admitted<M>(&self, msg: M) -> Result<M::Result, Unavailable>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        DbExecutor: Handler<M>,
    {
        Ok(self.addr.send(msg).await?)
    }
}

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

/// A login's user upsert and session insert, in one statement (`sessions::login`).
#[derive(Clone, Message)]
#[rtype(result = "Result<LoginRecord, DbError>")]
pub struct Login {
    pub user: NewWxUser,
    pub session: LoginSession,
}

impl Handler<Login> for DbExecutor {
    type Result = Result<LoginRecord, DbError>;

    fn handle(&mut self, msg: Login, _: &mut Self::Context) -> Self::Result {
        sessions::login(&mut *self.conn()?, &self.cipher, &msg.user, &msg.session)
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

/// Disables (1) or enables (0) an account; admin only.
#[derive(Message)]
#[rtype(result = "Result<Option<WxUser>, DbError>")]
pub struct SetUserStatus {
    pub user_id: i64,
    pub status: i16,
}

impl Handler<SetUserStatus> for DbExecutor {
    type Result = Result<Option<WxUser>, DbError>;

    fn handle(&mut self, msg: SetUserStatus, _: &mut Self::Context) -> Self::Result {
        users::set_status(&mut *self.conn()?, msg.user_id, msg.status)
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

#[derive(Message)]
#[rtype(result = "Result<Option<LiveSession>, DbError>")]
pub struct LoadLiveSession {
    pub id: String,
    pub max_lifetime: std::time::Duration,
}

impl Handler<LoadLiveSession> for DbExecutor {
    type Result = Result<Option<LiveSession>, DbError>;

    fn handle(&mut self, msg: LoadLiveSession, _: &mut Self::Context) -> Self::Result {
        sessions::load_live(&mut *self.conn()?, &msg.id, msg.max_lifetime)
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
#[rtype(result = "Result<Option<DateTime<Utc>>, DbError>")]
pub struct RefreshSession {
    pub old_id: String,
    pub new: NewSessionMeta,
    pub max_lifetime: std::time::Duration,
}

impl Handler<RefreshSession> for DbExecutor {
    type Result = Result<Option<DateTime<Utc>>, DbError>;

    fn handle(&mut self, msg: RefreshSession, _: &mut Self::Context) -> Self::Result {
        sessions::refresh(
            &mut *self.conn()?,
            &self.cipher,
            &msg.old_id,
            &msg.new,
            msg.max_lifetime,
        )
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

/// Writes a batch of `login_log` rows in one statement; answers how many.
#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct RecordLogins(pub Vec<NewLoginLogEntry>);

impl Handler<RecordLogins> for DbExecutor {
    type Result = Result<usize, DbError>;

    fn handle(&mut self, msg: RecordLogins, _: &mut Self::Context) -> Self::Result {
        login_log::insert_many(&mut *self.conn()?, &msg.0)
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

/// The user asks for the account to be deleted after `grace`; `None`: no such user.
#[derive(Message)]
#[rtype(result = "Result<Option<deletion::Pending>, DbError>")]
pub struct RequestDeletion {
    pub user_id: i64,
    pub grace: chrono::TimeDelta,
}

impl Handler<RequestDeletion> for DbExecutor {
    type Result = Result<Option<deletion::Pending>, DbError>;

    fn handle(&mut self, msg: RequestDeletion, _: &mut Self::Context) -> Self::Result {
        deletion::request(&mut *self.conn()?, msg.user_id, msg.grace)
    }
}

/// A login of an account whose deletion is pending: restore it if it may be.
#[derive(Message)]
#[rtype(result = "Result<deletion::Restore, DbError>")]
pub struct RestoreOnLogin {
    pub user_id: i64,
    pub login_began: DateTime<Utc>,
}

impl Handler<RestoreOnLogin> for DbExecutor {
    type Result = Result<deletion::Restore, DbError>;

    fn handle(&mut self, msg: RestoreOnLogin, _: &mut Self::Context) -> Self::Result {
        deletion::restore(&mut *self.conn()?, msg.user_id, msg.login_began)
    }
}

/// Erases the account's personal data now; `false`: no such user.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct EraseUser(pub i64);

impl Handler<EraseUser> for DbExecutor {
    type Result = Result<bool, DbError>;

    fn handle(&mut self, msg: EraseUser, _: &mut Self::Context) -> Self::Result {
        deletion::erase_now(&mut *self.conn()?, msg.0)
    }
}

/// Erases up to `limit` accounts whose grace period is over.
#[derive(Message)]
#[rtype(result = "Result<deletion::Swept, DbError>")]
pub struct SweepDeletions {
    pub limit: usize,
}

impl Handler<SweepDeletions> for DbExecutor {
    type Result = Result<deletion::Swept, DbError>;

    fn handle(&mut self, msg: SweepDeletions, _: &mut Self::Context) -> Self::Result {
        deletion::sweep_due(&mut *self.conn()?, msg.limit)
    }
}

/// Pending and completed deletions, for the admin status.
#[derive(Message)]
#[rtype(result = "Result<deletion::DeletionCounts, DbError>")]
pub struct GetDeletionCounts;

impl Handler<GetDeletionCounts> for DbExecutor {
    type Result = Result<deletion::DeletionCounts, DbError>;

    fn handle(&mut self, _: GetDeletionCounts, _: &mut Self::Context) -> Self::Result {
        deletion::counts(&mut *self.conn()?)
    }
}

/// Everything kept about the user, for `auth/export`; `None`: no such user.
#[derive(Message)]
#[rtype(result = "Result<Option<export::PersonalData>, DbError>")]
pub struct ExportPersonalData(pub i64);

impl Handler<ExportPersonalData> for DbExecutor {
    type Result = Result<Option<export::PersonalData>, DbError>;

    fn handle(&mut self, msg: ExportPersonalData, _: &mut Self::Context) -> Self::Result {
        export::personal_data(&mut *self.conn()?, msg.0)
    }
}
