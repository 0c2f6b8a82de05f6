//! `SessionActor`: the one writer of the live sessions, in the cache and in `user_session`.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::cache::SessionCache;
use crate::db::{DbHandle, DbResult};
use crate::domain::{
    LiveSession, LoginRecord, NewSessionMeta, Restore, Revoked, SessionEnd, SignIn, user_status,
};

/// How often `last_seen_at` is written for the sessions used since the last write.
pub(crate) const TOUCH_EVERY: Duration = Duration::from_secs(30);
/// How often long-expired sessions are deleted.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(600);

pub struct SessionActor {
    db: DbHandle,
    cache: Arc<SessionCache>,
    /// `SESSION_MAX_LIFETIME_SECS`: the cache holds each session's expiry already cut to it.
    max_lifetime: Duration,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl SessionActor {
    pub(crate) fn new(db: DbHandle, capacity: usize, max_lifetime: Duration) -> Self {
        SessionActor {
            db,
            cache: Arc::new(SessionCache::new(capacity)),
            max_lifetime,
        }
    }

    /// The cache, for the token check to read without a message.
    pub(crate) fn cache(&self) -> Arc<SessionCache> {
        self.cache.clone()
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;
}

/// Writes `last_seen_at` for the sessions used since the last write (taken by the actor, which
/// alone changes the cache). A background job, every `TOUCH_EVERY`.
pub(crate) async fn write_last_seen(sessions: &Addr<SessionActor>) {
    match sessions.send(FlushLastSeen).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => log::warn!("last_seen_at not written: {e}"),
        Err(e) => log::warn!("last_seen_at not written: {e}"),
    }
}

/// Deletes long-expired sessions. A background job, every `SWEEP_EVERY`.
pub(crate) async fn sweep_expired(db: &DbHandle) {
    if let Err(e) = db.background().sweep_sessions().await {
        log::warn!("expired sessions not swept: {e}");
    }
}

/// A login's way in, as refresh and logout are the ways on and out: identity → user → session
/// in the login's one statement, the account's pending deletion settled, and the new session
/// cached. The login has been admitted already (its code is spent), so its statements are never
/// refused for want of a place.
#[derive(Message)]
#[rtype(result = "DbResult<Opened>")]
pub(crate) struct OpenSession {
    pub(crate) login: SignIn,
    /// When the login request arrived: a deletion requested after it wins over it.
    pub(crate) began: DateTime<Utc>,
}

/// What opening a login's session came to.
pub(crate) struct Opened {
    pub(crate) record: LoginRecord,
    /// The login cancelled the account's pending deletion.
    pub(crate) restored: bool,
    /// The login revealed that the account was one person with this one, now merged into it.
    pub(crate) merged_id: Option<i64>,
    /// The round trip of the login's statements through the DbExecutor (queue included): the
    /// shared resource whose congestion sizes the login admission.
    pub(crate) database_time: Duration,
}

impl Handler<OpenSession> for SessionActor {
    type Result = ResponseActFuture<Self, DbResult<Opened>>;

    fn handle(&mut self, msg: OpenSession, _: &mut Self::Context) -> Self::Result {
        let epoch = self.cache.epoch();
        let db = self.db.admitted();
        let id = msg.login.session_id.clone();
        let expires_at = msg.login.expires_at.timestamp();
        Box::pin(
            async move {
                let started = std::time::Instant::now();
                let mut record = db.login(msg.login.clone()).await?;
                let mut restored = false;
                if record.user.status == user_status::DELETION_PENDING {
                    // Rare (a login within an account's grace period): its own statements,
                    // then the login statement once more for the restored or the new account.
                    if let Some(cancelled) =
                        settle_pending_deletion(&db, record.user.id, msg.began).await?
                    {
                        restored = cancelled;
                        record = db.login(msg.login.clone()).await?;
                    }
                }
                let mut merged_id = None;
                if let (true, Some(other), Some(unionid)) = (
                    record.session_stored,
                    record.unionid_user_id,
                    msg.login.unionid.clone(),
                ) {
                    // Rare: the login revealed that two accounts are one person.
                    let merged = db
                        .merge_by_unionid(
                            record.user.id,
                            other,
                            unionid,
                            msg.login.session_id.clone(),
                        )
                        .await?;
                    match merged {
                        Some(merged) => {
                            merged_id = Some(merged.merged_id);
                            record.user = merged.survivor;
                        }
                        // Another login of this person merged the pair first. When it merged
                        // this login's account away, this login's session went with the row:
                        // the same statement again finds the identity on the survivor and
                        // stores the session there.
                        None if db.user(record.user.id).await?.is_none() => {
                            record = db.login(msg.login.clone()).await?;
                        }
                        None => {}
                    }
                }
                Ok((record, restored, merged_id, started.elapsed()))
            }
            .into_actor(self)
            .map(
                move |res: DbResult<(LoginRecord, bool, Option<i64>, Duration)>, act, _| {
                    let (record, restored, merged_id, database_time) = res?;
                    if let Some(merged) = merged_id {
                        // Its sessions went with its row; the NOTIFY tells every instance, this
                        // one's cache is told at once.
                        act.cache.invalidate(&Revoked::User(merged));
                    }
                    if record.session_stored {
                        let live = LiveSession {
                            user_id: record.user.id,
                            expires_at,
                        };
                        act.cache.remember(id, live, epoch);
                    }
                    Ok(Opened {
                        record,
                        restored,
                        merged_id,
                        database_time,
                    })
                },
            ),
        )
    }
}

/// A login of an account whose deletion is pending: within the grace period it cancels the
/// deletion (answers `restored`), unless the request came after this login began (the two raced:
/// the deletion wins) or the account was disabled. After the grace period the account is erased
/// now, if the sweeper has not yet, and the login continues with a new, empty account.
/// `Some(restored)` when the login statement must run again; `None` when the deletion stands.
async fn settle_pending_deletion(
    db: &DbHandle,
    user_id: i64,
    began: DateTime<Utc>,
) -> DbResult<Option<bool>> {
    match db.restore_on_login(user_id, began).await? {
        Restore::Restored => {
            log::info!("login: user {user_id} restored their account");
            Ok(Some(true))
        }
        Restore::NothingPending => Ok(Some(false)),
        Restore::Kept => Ok(None),
        Restore::Expired | Restore::Gone => {
            db.erase_user(user_id).await?;
            log::info!(
                "login: user {user_id}'s grace period was over; erased, a new account follows"
            );
            Ok(Some(false))
        }
    }
}

/// Is this session live and does it belong to this user? If not, why not.
#[derive(Message)]
#[rtype(result = "DbResult<Result<(), SessionEnd>>")]
pub(crate) struct CheckSession {
    pub(crate) jti: String,
    pub(crate) user_id: i64,
}

impl Handler<CheckSession> for SessionActor {
    type Result = ResponseActFuture<Self, DbResult<Result<(), SessionEnd>>>;

    fn handle(&mut self, msg: CheckSession, _: &mut Self::Context) -> Self::Result {
        let now = now();
        if let Some(verdict) = self.cache.verdict(&msg.jti, msg.user_id, now) {
            return Box::pin(fut::ready(Ok(verdict)));
        }
        let epoch = self.cache.epoch();
        let jti = msg.jti.clone();
        let (db, max_lifetime) = (self.db.clone(), self.max_lifetime);
        Box::pin(
            async move { db.live_session(msg.jti, max_lifetime).await }
                .into_actor(self)
                .map(move |res, act, _| match res? {
                    Ok(s) if s.expires_at > now => {
                        act.cache.mark_seen(&jti);
                        act.cache.remember(jti, s, epoch);
                        Ok(super::cache::owned_by(s.user_id, msg.user_id))
                    }
                    Ok(_) => Ok(Err(SessionEnd::Expired)),
                    Err(end) => Ok(Err(end)),
                }),
        )
    }
}

/// Logout: revokes the session everywhere. Answers whether it was live.
///
/// This and the other revocations invalidate the cache twice: before the write, so no check
/// answers from memory meanwhile, and once it is committed, because a check that read the row
/// just before the commit has cached it as live (its read began after the first invalidation).
/// The NOTIFY would void that entry too, but only after the answer, when the client already
/// believes the token dead.
#[derive(Message)]
#[rtype(result = "DbResult<bool>")]
pub(crate) struct EndSession {
    pub(crate) jti: String,
}

impl Handler<EndSession> for SessionActor {
    type Result = ResponseActFuture<Self, DbResult<bool>>;

    fn handle(&mut self, msg: EndSession, _: &mut Self::Context) -> Self::Result {
        let revoked = Revoked::Session(msg.jti.clone());
        self.cache.invalidate(&revoked);
        let db = self.db.clone();
        Box::pin(
            async move { db.revoke_session(msg.jti).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.cache.invalidate(&revoked);
                    res
                }),
        )
    }
}

/// Logout on every device (or a ban): revokes all the user's sessions everywhere.
#[derive(Message)]
#[rtype(result = "DbResult<usize>")]
pub(crate) struct EndUserSessions {
    pub(crate) user_id: i64,
}

impl Handler<EndUserSessions> for SessionActor {
    type Result = ResponseActFuture<Self, DbResult<usize>>;

    fn handle(&mut self, msg: EndUserSessions, _: &mut Self::Context) -> Self::Result {
        let revoked = Revoked::User(msg.user_id);
        self.cache.invalidate(&revoked);
        let db = self.db.clone();
        Box::pin(
            async move { db.revoke_user_sessions(msg.user_id).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.cache.invalidate(&revoked);
                    res
                }),
        )
    }
}

/// Replaces a session by a new one (token refresh). `None` when the old one was not live;
/// otherwise the new session's expiry, which the session's maximum lifetime may have cut short
/// of the one asked for.
#[derive(Message)]
#[rtype(result = "DbResult<Option<DateTime<Utc>>>")]
pub(crate) struct RefreshSession {
    pub(crate) old_jti: String,
    pub(crate) new: NewSessionMeta,
}

impl Handler<RefreshSession> for SessionActor {
    type Result = ResponseActFuture<Self, DbResult<Option<DateTime<Utc>>>>;

    fn handle(&mut self, msg: RefreshSession, _: &mut Self::Context) -> Self::Result {
        let revoked = Revoked::Session(msg.old_jti.clone());
        self.cache.invalidate(&revoked);
        let id = msg.new.id.clone();
        let user_id = msg.new.user_id;
        let epoch = self.cache.epoch();
        let (db, max_lifetime) = (self.db.clone(), self.max_lifetime);
        Box::pin(
            async move { db.refresh_session(msg.old_jti, msg.new, max_lifetime).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    // Nothing was revoked while the write ran: the new session may be cached.
                    let undisturbed = act.cache.epoch() == epoch;
                    act.cache.invalidate(&revoked);
                    let refreshed = res?;
                    if let Some(expires_at) = refreshed.filter(|_| undisturbed) {
                        let live = LiveSession {
                            user_id,
                            expires_at: expires_at.timestamp(),
                        };
                        act.cache.remember(id, live, act.cache.epoch());
                    }
                    Ok(refreshed)
                }),
        )
    }
}

/// How many sessions are live across all instances, for the status page; the ones in this
/// instance's memory when the database cannot say.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct CountSessions;

impl Handler<CountSessions> for SessionActor {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: CountSessions, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        let cached = self.cache.len();
        Box::pin(async move {
            db.count_live_sessions()
                .await
                .map(|n| n.max(0) as usize)
                .unwrap_or(cached)
        })
    }
}

/// How many sessions this instance holds in memory (tests, status).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CachedSessions;

impl Handler<CachedSessions> for SessionActor {
    type Result = usize;

    fn handle(&mut self, _: CachedSessions, _: &mut Self::Context) -> usize {
        self.cache.len()
    }
}

/// Writes `last_seen_at` now for the sessions used since the last write, instead of at the next
/// tick: the process is about to exit. Answers how many rows were written.
#[derive(Message)]
#[rtype(result = "DbResult<usize>")]
pub(crate) struct FlushLastSeen;

impl Handler<FlushLastSeen> for SessionActor {
    type Result = ResponseFuture<DbResult<usize>>;

    fn handle(&mut self, _: FlushLastSeen, _: &mut Self::Context) -> Self::Result {
        let ids = self.cache.take_seen();
        let db = self.db.background();
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(0);
            }
            db.touch_sessions(ids).await
        })
    }
}

/// From the NOTIFY listener, or after a revocation made in the database by other means (a
/// disabled or deleted account): drop what was revoked from this instance's memory.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Invalidate(pub(crate) Revoked);

impl Handler<Invalidate> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Invalidate, _: &mut Self::Context) {
        self.cache.invalidate(&msg.0);
    }
}
