//! `SessionActor`: the live sessions. PostgreSQL's `user_session` is the truth; in front of it is
//! a bounded LRU cache, so the hot path — a request with a live cached token — touches no
//! database, and memory stays flat however many sessions exist.
//!
//! The cache (`SessionCache`) is shared: the token check on the HTTP workers reads it on their own
//! threads, and only a miss becomes a message to this actor, which reads the database and fills the
//! cache. A message per request would cost a cross-thread wake-up each way, about as much as the
//! rest of the token check together. Every change to the cache is made under its lock,
//! by the actor, so reads and invalidations stay in one order.
//!
//! The cache is only trusted while the NOTIFY listener is proven alive (it heard its own
//! heartbeat recently; see `listener.rs`): revocations made by other instances arrive through it.
//! Otherwise the cache is emptied and bypassed, and every check goes to PostgreSQL, until the
//! listener is healthy again (notifications sent meanwhile may be lost), so a revoked token is
//! never served from a memory nobody keeps current.

use std::cell::RefCell;
use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use lru::LruCache;

use crate::actors::db::{
    CountLiveSessions, DbExecutor, LoadLiveSession, NewestSessionKey, RefreshSession,
    RevokeSession, RevokeUserSessions, SweepSessions, TouchSessions,
};
use crate::db::DbError;
use crate::db::sessions::{LiveSession, NewSessionMeta, Revoked};
use crate::thread_memo::{BoundedMemo, owner_id};
use crate::wechat::SessionKey;

/// How often `last_seen_at` is written for the sessions used since the last write.
const TOUCH_EVERY: Duration = Duration::from_secs(30);
/// How often long-expired sessions are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The live sessions in memory, shared by the SessionActor and the token check.
///
/// Each worker thread also remembers the sessions it found live (`CONFIRMED`) together with the
/// cache's `generation`, which every invalidation, every change of trust and every `take_seen`
/// bumps. While the generation is unchanged nothing was revoked since, so the thread answers from
/// its own memo: the hot path then takes no lock and writes no memory another core reads. Any
/// bump sends the next check of each session through the lock again, which also records it as
/// seen for the next `last_seen_at` write.
pub struct SessionCache {
    state: Mutex<CacheState>,
    /// Bumped (under the lock) after any change that can make a confirmed session not live.
    generation: AtomicU64,
    /// Tells caches apart in the per-thread memo: one process can hold several (tests do).
    id: u64,
}

/// A session a thread found live in the cache, and when.
struct Confirmed {
    cache: u64,
    generation: u64,
    user_id: i64,
    expires_at: i64,
}

/// Sessions remembered per worker thread; when full the memo starts over.
const CONFIRMED_PER_THREAD: usize = 4096;

thread_local! {
    static CONFIRMED: RefCell<BoundedMemo<String, Confirmed>> =
        RefCell::new(BoundedMemo::new(CONFIRMED_PER_THREAD));
}

struct CacheState {
    lru: LruCache<String, LiveSession>,
    /// False while the NOTIFY listener is not proven alive (or not yet up).
    trusted: bool,
    /// Bumped by every invalidation: a database read that started before one must not refill
    /// the cache with what may just have been revoked.
    epoch: u64,
    /// Sessions used since `last_seen_at` was last written.
    seen: HashSet<String>,
}

impl SessionCache {
    fn new(capacity: usize) -> Self {
        SessionCache {
            state: Mutex::new(CacheState {
                lru: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
                trusted: false,
                epoch: 0,
                seen: HashSet::new(),
            }),
            generation: AtomicU64::new(0),
            id: owner_id(),
        }
    }

    /// Called under the lock that guards the change it announces.
    fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // Nothing in the critical sections panics; if something did, the maps are still whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Is this session live and does it belong to this user? `None` when the cache cannot say
    /// (not cached, or not trusted): then ask the SessionActor with `CheckSession`.
    pub fn check(&self, jti: &str, user_id: i64, now: i64) -> Option<bool> {
        let generation = self.generation.load(Ordering::Acquire);
        let confirmed = CONFIRMED.with_borrow(|memo| {
            memo.get(jti)
                .filter(|c| c.cache == self.id && c.generation == generation && c.expires_at > now)
                .map(|c| c.user_id)
        });
        if let Some(owner) = confirmed {
            return Some(owner == user_id);
        }

        let mut st = self.lock();
        if !st.trusted {
            return None;
        }
        let session = *st.lru.get(jti)?;
        if session.expires_at <= now {
            st.lru.pop(jti);
            return Some(false);
        }
        if !st.seen.contains(jti) {
            st.seen.insert(jti.to_string());
        }
        // Read under the lock: a bump after this point is after this check.
        let generation = self.generation.load(Ordering::Acquire);
        drop(st);
        CONFIRMED.with_borrow_mut(|memo| {
            memo.insert(
                jti.to_string(),
                Confirmed {
                    cache: self.id,
                    generation,
                    user_id: session.user_id,
                    expires_at: session.expires_at,
                },
            );
        });
        Some(session.user_id == user_id)
    }

    /// How many sessions are in memory.
    pub fn len(&self) -> usize {
        self.lock().lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read before a session is stored; `remember` then caches it only if nothing was revoked
    /// in between.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    fn invalidate(&self, what: &Revoked) {
        let mut st = self.lock();
        st.epoch += 1;
        self.bump_generation();
        match what {
            Revoked::Session(id) => {
                st.lru.pop(id);
            }
            Revoked::User(user_id) => {
                let doomed: Vec<String> = st
                    .lru
                    .iter()
                    .filter(|(_, s)| s.user_id == *user_id)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in doomed {
                    st.lru.pop(&id);
                }
            }
        }
    }

    /// Records a session the database confirmed live as used, for the next `last_seen_at` write:
    /// while the cache is not trusted nothing else would.
    fn mark_seen(&self, jti: &str) {
        let mut st = self.lock();
        if !st.seen.contains(jti) {
            st.seen.insert(jti.to_string());
        }
    }

    pub fn remember(&self, id: String, session: LiveSession, epoch: u64) {
        let mut st = self.lock();
        if st.trusted && st.epoch == epoch {
            st.lru.put(id, session);
        }
    }

    /// Called by the listener's watcher when the listener becomes, or stops being, proven alive.
    /// Either way the cache is emptied and every thread's memo voided.
    pub fn set_trusted(&self, trusted: bool) {
        let mut st = self.lock();
        // Either way the cache may hold what was revoked while nobody listened.
        st.lru.clear();
        st.epoch += 1;
        st.trusted = trusted;
        self.bump_generation();
    }

    /// The sessions used since the last call. The memos are voided with it, so each session's
    /// next use goes through the lock and is recorded for the next call.
    fn take_seen(&self) -> Vec<String> {
        let mut st = self.lock();
        self.bump_generation();
        st.seen.drain().collect()
    }
}

pub struct SessionActor {
    db: Addr<DbExecutor>,
    cache: Arc<SessionCache>,
    /// `SESSION_MAX_LIFETIME_SECS`: the cache holds each session's expiry already cut to it.
    max_lifetime: Duration,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl SessionActor {
    pub fn new(db: Addr<DbExecutor>, capacity: usize, max_lifetime: Duration) -> Self {
        SessionActor {
            db,
            cache: Arc::new(SessionCache::new(capacity)),
            max_lifetime,
        }
    }

    /// The cache, for the token check to read without a message.
    pub fn cache(&self) -> Arc<SessionCache> {
        self.cache.clone()
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TOUCH_EVERY, |act, _| {
            let ids = act.cache.take_seen();
            if !ids.is_empty() {
                act.db.do_send(TouchSessions(ids));
            }
        });
        ctx.run_interval(SWEEP_EVERY, |act, _| act.db.do_send(SweepSessions));
    }
}

fn flatten<T>(res: Result<Result<T, DbError>, MailboxError>) -> Result<T, DbError> {
    res.map_err(|e| DbError::Mailbox(e.to_string()))?
}

/// Is this session live and does it belong to this user?
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct CheckSession {
    pub jti: String,
    pub user_id: i64,
}

impl Handler<CheckSession> for SessionActor {
    type Result = ResponseActFuture<Self, Result<bool, DbError>>;

    fn handle(&mut self, msg: CheckSession, _: &mut Self::Context) -> Self::Result {
        let now = now();
        if let Some(live) = self.cache.check(&msg.jti, msg.user_id, now) {
            return Box::pin(fut::ready(Ok(live)));
        }
        let epoch = self.cache.epoch();
        let jti = msg.jti.clone();
        Box::pin(
            self.db
                .send(LoadLiveSession {
                    id: msg.jti,
                    max_lifetime: self.max_lifetime,
                })
                .into_actor(self)
                .map(move |res, act, _| match flatten(res)? {
                    Some(s) if s.expires_at > now => {
                        act.cache.mark_seen(&jti);
                        act.cache.remember(jti, s, epoch);
                        Ok(s.user_id == msg.user_id)
                    }
                    _ => Ok(false),
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
#[rtype(result = "Result<bool, DbError>")]
pub struct EndSession {
    pub jti: String,
}

impl Handler<EndSession> for SessionActor {
    type Result = ResponseActFuture<Self, Result<bool, DbError>>;

    fn handle(&mut self, msg: EndSession, _: &mut Self::Context) -> Self::Result {
        let revoked = Revoked::Session(msg.jti.clone());
        self.cache.invalidate(&revoked);
        Box::pin(
            self.db
                .send(RevokeSession(msg.jti))
                .into_actor(self)
                .map(move |res, act, _| {
                    act.cache.invalidate(&revoked);
                    flatten(res)
                }),
        )
    }
}

/// Logout on every device (or a ban): revokes all the user's sessions everywhere.
#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct EndUserSessions {
    pub user_id: i64,
}

impl Handler<EndUserSessions> for SessionActor {
    type Result = ResponseActFuture<Self, Result<usize, DbError>>;

    fn handle(&mut self, msg: EndUserSessions, _: &mut Self::Context) -> Self::Result {
        let revoked = Revoked::User(msg.user_id);
        self.cache.invalidate(&revoked);
        Box::pin(
            self.db
                .send(RevokeUserSessions(msg.user_id))
                .into_actor(self)
                .map(move |res, act, _| {
                    act.cache.invalidate(&revoked);
                    flatten(res)
                }),
        )
    }
}

/// Replaces a session by a new one (token refresh). `None` when the old one was not live;
/// otherwise the new session's expiry, which the session's maximum lifetime may have cut short
/// of the one asked for.
#[derive(Message)]
#[rtype(result = "Result<Option<DateTime<Utc>>, DbError>")]
pub struct RotateSession {
    pub old_jti: String,
    pub new: NewSessionMeta,
}

impl Handler<RotateSession> for SessionActor {
    type Result = ResponseActFuture<Self, Result<Option<DateTime<Utc>>, DbError>>;

    fn handle(&mut self, msg: RotateSession, _: &mut Self::Context) -> Self::Result {
        let revoked = Revoked::Session(msg.old_jti.clone());
        self.cache.invalidate(&revoked);
        let id = msg.new.id.clone();
        let user_id = msg.new.user_id;
        let epoch = self.cache.epoch();
        let request = RefreshSession {
            old_id: msg.old_jti,
            new: msg.new,
            max_lifetime: self.max_lifetime,
        };
        Box::pin(
            self.db
                .send(request)
                .into_actor(self)
                .map(move |res, act, _| {
                    // Nothing was revoked while the write ran: the new session may be cached.
                    let undisturbed = act.cache.epoch() == epoch;
                    act.cache.invalidate(&revoked);
                    let rotated = flatten(res)?;
                    if let Some(expires_at) = rotated.filter(|_| undisturbed) {
                        let live = LiveSession {
                            user_id,
                            expires_at: expires_at.timestamp(),
                        };
                        act.cache.remember(id, live, act.cache.epoch());
                    }
                    Ok(rotated)
                }),
        )
    }
}

/// The user's newest session_key (WeChat keeps only that one valid), for decrypting open data.
#[derive(Message)]
#[rtype(result = "Result<Option<SessionKey>, DbError>")]
pub struct GetSessionKey {
    pub user_id: i64,
}

impl Handler<GetSessionKey> for SessionActor {
    type Result = ResponseFuture<Result<Option<SessionKey>, DbError>>;

    fn handle(&mut self, msg: GetSessionKey, _: &mut Self::Context) -> Self::Result {
        let request = self.db.send(NewestSessionKey(msg.user_id));
        Box::pin(async move { flatten(request.await) })
    }
}

/// How many sessions are live across all instances, for the status page.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountSessions;

impl Handler<CountSessions> for SessionActor {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: CountSessions, _: &mut Self::Context) -> Self::Result {
        let request = self.db.send(CountLiveSessions);
        let cached = self.cache.len();
        Box::pin(async move {
            flatten(request.await)
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
#[rtype(result = "Result<usize, DbError>")]
pub struct FlushLastSeen;

impl Handler<FlushLastSeen> for SessionActor {
    type Result = ResponseFuture<Result<usize, DbError>>;

    fn handle(&mut self, _: FlushLastSeen, _: &mut Self::Context) -> Self::Result {
        let ids = self.cache.take_seen();
        if ids.is_empty() {
            return Box::pin(async { Ok(0) });
        }
        let request = self.db.send(TouchSessions(ids));
        Box::pin(async move { flatten(request.await) })
    }
}

/// From the NOTIFY listener: another instance (or this one) revoked something.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Invalidate(pub Revoked);

impl Handler<Invalidate> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Invalidate, _: &mut Self::Context) {
        self.cache.invalidate(&msg.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(user_id: i64, expires_at: i64) -> LiveSession {
        LiveSession {
            user_id,
            expires_at,
        }
    }

    #[test]
    fn the_cache_answers_only_what_it_may() {
        let cache = SessionCache::new(2);
        cache.remember("a".into(), live(1, 100), cache.epoch());
        assert_eq!(
            cache.check("a", 1, 50),
            None,
            "not trusted before the listener is up"
        );

        cache.set_trusted(true);
        cache.remember("a".into(), live(1, 100), cache.epoch());
        assert_eq!(cache.check("a", 1, 50), Some(true));
        assert_eq!(
            cache.check("a", 2, 50),
            Some(false),
            "another user's session"
        );
        assert_eq!(cache.check("b", 1, 50), None, "a miss asks the actor");
        assert_eq!(cache.take_seen(), vec!["a".to_string()]);

        let before = cache.epoch();
        cache.invalidate(&Revoked::User(1));
        assert_eq!(cache.check("a", 1, 50), None, "revoked");
        cache.remember("a".into(), live(1, 100), before);
        assert_eq!(
            cache.check("a", 1, 50),
            None,
            "a read from before the revocation"
        );

        cache.remember("c".into(), live(3, 100), cache.epoch());
        assert_eq!(cache.check("c", 3, 100), Some(false), "expired");
        assert!(cache.is_empty(), "and dropped");

        for id in ["x", "y", "z"] {
            cache.remember(id.into(), live(4, 100), cache.epoch());
        }
        assert_eq!(cache.len(), 2, "bounded");
    }

    #[test]
    fn a_thread_answers_from_its_memo_only_until_something_changes() {
        let cache = SessionCache::new(10);
        cache.set_trusted(true);
        cache.remember("a".into(), live(1, 100), cache.epoch());
        cache.remember("b".into(), live(2, 100), cache.epoch());
        assert_eq!(cache.check("a", 1, 50), Some(true), "through the lock");
        assert_eq!(cache.take_seen(), vec!["a".to_string()]);
        assert_eq!(
            cache.check("a", 1, 50),
            Some(true),
            "the memo was voided by take_seen: through the lock again"
        );
        assert_eq!(cache.take_seen(), vec!["a".to_string()], "and seen again");

        assert_eq!(cache.check("a", 1, 50), Some(true));
        assert_eq!(cache.check("a", 1, 50), Some(true), "from the memo");
        assert_eq!(
            cache.check("a", 2, 50),
            Some(false),
            "another user's session"
        );
        assert_eq!(
            cache.check("a", 1, 100),
            Some(false),
            "expired, memo or not"
        );

        cache.remember("a".into(), live(1, 200), cache.epoch());
        assert_eq!(cache.check("a", 1, 50), Some(true));
        cache.invalidate(&Revoked::Session("a".into()));
        assert_eq!(cache.check("a", 1, 50), None, "revoked: the memo is void");

        assert_eq!(cache.check("b", 2, 50), Some(true));
        cache.set_trusted(false);
        assert_eq!(
            cache.check("b", 2, 50),
            None,
            "listener down: the memo is void"
        );

        // Another cache on this thread does not see this cache's confirmations.
        let other = SessionCache::new(10);
        other.set_trusted(true);
        assert_eq!(other.check("b", 2, 50), None);
    }
}
