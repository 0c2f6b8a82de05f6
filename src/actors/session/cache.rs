//! `SessionCache`: the live sessions in memory, a bounded LRU in front of `user_session`, shared
//! by the SessionActor and the token check on the HTTP workers.

use std::cell::RefCell;
use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

use crate::domain::{LiveSession, Revoked};
use crate::thread_memo::{BoundedMemo, owner_id};

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
    pub(super) fn new(capacity: usize) -> Self {
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

    pub(super) fn invalidate(&self, what: &Revoked) {
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
    pub(super) fn mark_seen(&self, jti: &str) {
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
    pub(super) fn take_seen(&self) -> Vec<String> {
        let mut st = self.lock();
        self.bump_generation();
        st.seen.drain().collect()
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
