//! `DbExecutor`: synchronous Diesel on an r2d2 pool, run on a `SyncArbiter` so blocking queries
//! never stall the HTTP workers. Each message is a thin wrapper over a function in `crate::db`.
//! The users' and health messages are here; the meeting app's are in `db/meetings.rs`.

pub mod meetings;

use std::sync::Arc;

use actix::prelude::*;
use diesel::prelude::*;

use chrono::{DateTime, Utc};

use crate::actors::login_log::PendingSlot;
use crate::db::login_log::{self, LoginSummary};
use crate::db::models::{NewLoginLogEntry, NewWxUser, ProfileChange, WxUser};
use crate::db::sealed::SessionKeyCipher;
use crate::db::sessions::{self, LiveSession, NewSession, NewSessionMeta};
use crate::db::users::MobileBinding;
use crate::db::{DbError, PgPool, deletion, export, setup, users};
use crate::wechat::SessionKey;

/// How long a request waits for a turn at the database before it is refused as overloaded.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Why a message did not reach the DbExecutor.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("database overloaded: too much work in flight")]
    Overloaded,
    #[error("database executor stopped: {0}")]
    Stopped(#[from] MailboxError),
}

/// The handlers' way to the DbExecutor. A `SyncArbiter` mailbox is unbounded, so without a bound
/// a stalled database would queue requests forever; here at most `permits` messages are in
/// flight and the rest are refused quickly (errno 502) instead of hanging the client.
#[derive(Clone)]
pub struct DbHandle {
    addr: Addr<DbExecutor>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl DbHandle {
    pub fn new(addr: Addr<DbExecutor>, max_in_flight: usize) -> Self {
        DbHandle {
            addr,
            permits: Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1))),
        }
    }

    pub fn addr(&self) -> &Addr<DbExecutor> {
        &self.addr
    }

    pub async fn send<M>(&self, msg: M) -> Result<M::Result, Unavailable>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        DbExecutor: Handler<M>,
    {
        let _permit = tokio::time::timeout(QUEUE_WAIT, self.permits.acquire())
            .await
            .map_err(|_| Unavailable::Overloaded)?
            .map_err(|_| Unavailable::Overloaded)?;
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

/// Stores a new login's session; `false` when its user may not hold one.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct InsertSession(pub NewSession);

impl Handler<InsertSession> for DbExecutor {
    type Result = Result<bool, DbError>;

    fn handle(&mut self, msg: InsertSession, _: &mut Self::Context) -> Self::Result {
        sessions::insert(&mut *self.conn()?, &self.cipher, &msg.0)
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
