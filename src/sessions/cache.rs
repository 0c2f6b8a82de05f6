//! `SessionCache`: the live sessions in memory, a bounded LRU in front of `user_session`, shared
//! by the SessionActor and the token check on the HTTP workers.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

use crate::domain::{LiveSession, Revoked, SessionEnd};
use crate::thread_memo::{BoundedMemo, owner_id};

/// The live sessions in memory, shared by the SessionActor and the token check.
///
/// Each worker thread also remembers the sessions it found live (`CONFIRMED`) together with the
/// cache's `generation`, which every invalidation, every change of trust and every `take_seen`
/// bumps. While the generation is unchanged nothing was revoked since, so the thread answers from
/// its own memo: the hot path then takes no lock and writes no memory another core reads. Any
/// bump sends the next check of each session through the lock again, which also records it as
/// seen for the next `last_seen_at` write.
pub(crate) struct SessionCache {
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
    /// The cached sessions of each user, so that revoking a user's sessions costs what that user
    /// has in the cache, not a scan of all of it under the lock. Changed with `lru`, through
    /// `put`, `pop`, `pop_user` and `clear` only.
    by_user: HashMap<i64, HashSet<String>>,
    /// False while the NOTIFY listener is not proven alive (or not yet up).
    trusted: bool,
    /// Bumped by every invalidation: a database read that started before one must not refill
    /// the cache with what may just have been revoked.
    epoch: u64,
    /// Sessions used since `last_seen_at` was last written.
    seen: HashSet<String>,
}

impl CacheState {
    fn put(&mut self, id: String, session: LiveSession) {
        let user_id = session.user_id;
        // Either this id's previous entry, or the least recently used one, evicted for it.
        if let Some((old_id, old)) = self.lru.push(id.clone(), session)
            && (old_id != id || old.user_id != user_id)
        {
            self.unindex(&old_id, old.user_id);
        }
        self.by_user.entry(user_id).or_default().insert(id);
    }

    fn pop(&mut self, id: &str) {
        if let Some(session) = self.lru.pop(id) {
            self.unindex(id, session.user_id);
        }
    }

    fn pop_user(&mut self, user_id: i64) {
        for id in self.by_user.remove(&user_id).unwrap_or_default() {
            self.lru.pop(&id);
        }
    }

    fn clear(&mut self) {
        self.lru.clear();
        self.by_user.clear();
    }

    fn unindex(&mut self, id: &str, user_id: i64) {
        if let Some(ids) = self.by_user.get_mut(&user_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&user_id);
            }
        }
    }
}

impl SessionCache {
    pub(super) fn new(capacity: usize) -> Self {
        SessionCache {
            state: Mutex::new(CacheState {
                lru: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
                by_user: HashMap::new(),
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

    /// Is this session live and does it belong to this user?
    #[cfg(test)]
    pub(crate) fn check(&self, jti: &str, user_id: i64, now: i64) -> Option<bool> {
        self.verdict(jti, user_id, now).map(|v| v.is_ok())
    }

    /// Is this session live and does it belong to this user, and if not why not? `None` when
    /// the cache cannot say (not cached, or not trusted): then ask the SessionActor with
    /// `CheckSession`.
    pub(crate) fn verdict(
        &self,
        jti: &str,
        user_id: i64,
        now: i64,
    ) -> Option<Result<(), SessionEnd>> {
        let generation = self.generation.load(Ordering::Acquire);
        let confirmed = CONFIRMED.with_borrow(|memo| {
            memo.get(jti)
                .filter(|c| c.cache == self.id && c.generation == generation && c.expires_at > now)
                .map(|c| c.user_id)
        });
        if let Some(owner) = confirmed {
            return Some(owned_by(owner, user_id));
        }

        let mut st = self.lock();
        if !st.trusted {
            return None;
        }
        let session = *st.lru.get(jti)?;
        if session.expires_at <= now {
            st.pop(jti);
            return Some(Err(SessionEnd::Expired));
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
        Some(owned_by(session.user_id, user_id))
    }

    /// How many sessions are in memory.
    pub(crate) fn len(&self) -> usize {
        self.lock().lru.len()
    }

    /// Read before a session is stored; `remember` then caches it only if nothing was revoked
    /// in between.
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    pub(super) fn invalidate(&self, what: &Revoked) {
        let mut st = self.lock();
        st.epoch += 1;
        self.bump_generation();
        match what {
            Revoked::Session(id) => st.pop(id),
            Revoked::User(user_id) => st.pop_user(*user_id),
        }
    }

    /// Records a session the database confirmed live as used, for the next `last_seen_at` write:
    /// while the cache is not trusted nothing else would.
    pub(super) fn mark_seen(&self, jti: &str) {
        let mut st = self.lock();
        if !st.seen.contains(jti) {
            st.seen.insert(jti.to_string());
        }
    }

    pub(crate) fn remember(&self, id: String, session: LiveSession, epoch: u64) {
        let mut st = self.lock();
        if st.trusted && st.epoch == epoch {
            st.put(id, session);
        }
    }

    /// Called by the listener's watcher when the listener becomes, or stops being, proven alive.
    /// Either way the cache is emptied and every thread's memo voided.
    pub(crate) fn set_trusted(&self, trusted: bool) {
        let mut st = self.lock();
        // Either way the cache may hold what was revoked while nobody listened.
        st.clear();
        st.epoch += 1;
        st.trusted = trusted;
        self.bump_generation();
    }

    /// The sessions used since the last call. The memos are voided with it, so each session's
    /// next use goes through the lock and is recorded for the next call.
    pub(super) fn take_seen(&self) -> Vec<String> {
        let mut st = self.lock();
        self.bump_generation();
        st.seen.drain().collect()
    }
}

/// A session presented for another user than its own is one no token of ours names: the token
/// was signed by someone who holds the secret, not issued by this service.
pub(crate) fn owned_by(owner: i64, user_id: i64) -> Result<(), SessionEnd> {
    if owner == user_id {
        Ok(())
    } else {
        Err(SessionEnd::Unknown)
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

    /// The index holds exactly the cached sessions, each under its user.
    fn assert_indexed(cache: &SessionCache) {
        let st = cache.lock();
        let mut indexed = 0;
        for (user_id, ids) in &st.by_user {
            assert!(!ids.is_empty(), "no empty set is kept (user {user_id})");
            for id in ids {
                let cached = st.lru.peek(id).map(|s| s.user_id);
                assert_eq!(cached, Some(*user_id), "{id} indexed under user {user_id}");
            }
            indexed += ids.len();
        }
        assert_eq!(indexed, st.lru.len(), "every cached session is indexed");
    }

    fn users_indexed(cache: &SessionCache) -> Vec<i64> {
        let mut users: Vec<i64> = cache.lock().by_user.keys().copied().collect();
        users.sort_unstable();
        users
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
        assert_eq!(cache.len(), 0, "and dropped");

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

    #[test]
    fn the_user_index_follows_evictions_expiry_and_revocations() {
        let cache = SessionCache::new(3);
        cache.set_trusted(true);
        let remember = |id: &str, user_id: i64| {
            cache.remember(id.into(), live(user_id, 100), cache.epoch());
            assert_indexed(&cache);
        };
        remember("a1", 1);
        remember("b1", 1);
        remember("c2", 2);
        // Full: each new session evicts the least recently used one, and its index entry.
        remember("d3", 3);
        assert_eq!(cache.check("a1", 1, 50), None, "evicted");
        remember("e3", 3);
        assert_eq!(cache.check("b1", 1, 50), None, "evicted");
        assert_eq!(users_indexed(&cache), vec![2, 3], "user 1 has nothing left");

        // The same session stored again, for another user (never in practice, but kept exact).
        remember("c2", 4);
        assert_eq!(users_indexed(&cache), vec![3, 4]);

        // Revoking a user drops that user's sessions and no one else's.
        cache.invalidate(&Revoked::User(3));
        assert_indexed(&cache);
        assert_eq!(users_indexed(&cache), vec![4]);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.check("c2", 4, 50), Some(true));
        cache.invalidate(&Revoked::User(99));
        assert_eq!(
            cache.len(),
            1,
            "a user without cached sessions: nothing to do"
        );

        // A single revocation, and a rotation (the new session stored, the old one revoked).
        remember("f5", 5);
        cache.invalidate(&Revoked::Session("c2".into()));
        assert_indexed(&cache);
        remember("g5", 5);
        cache.invalidate(&Revoked::Session("f5".into()));
        assert_indexed(&cache);
        assert_eq!(users_indexed(&cache), vec![5]);
        assert_eq!(cache.check("g5", 5, 50), Some(true));

        // Expiry found by a check.
        cache.remember("h6".into(), live(6, 60), cache.epoch());
        assert_eq!(cache.check("h6", 6, 60), Some(false), "expired");
        assert_indexed(&cache);
        assert_eq!(users_indexed(&cache), vec![5]);

        // The listener's state changes: everything goes, the index with it.
        cache.set_trusted(false);
        assert_indexed(&cache);
        assert!(users_indexed(&cache).is_empty());
    }
}
