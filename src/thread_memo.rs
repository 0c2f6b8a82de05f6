//! The bounded per-thread memos of the token check: `token.rs` remembers verified tokens and
//! `sessions/cache.rs` the sessions it confirmed live, each in a thread-local
//! `BoundedMemo`, so a repeat request on a worker reads nothing another core writes. One process can hold several
//! issuers and caches (the tests do), so entries carry their owner's `owner_id`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

/// A map that starts over when full: the hot entries are back after one miss each, and an
/// eviction policy would cost more than the misses it saves.
pub(crate) struct BoundedMemo<K, V> {
    entries: HashMap<K, V>,
    capacity: usize,
}

impl<K: Hash + Eq, V> BoundedMemo<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedMemo {
            entries: HashMap::new(),
            capacity,
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
        self.entries.insert(key, value);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A process-unique id for something that owns entries in the memos.
pub(crate) fn owner_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memo_starts_over_and_ids_are_unique() {
        let mut memo = BoundedMemo::new(2);
        memo.insert("a", 1);
        memo.insert("b", 2);
        assert_eq!(memo.get("a"), Some(&1));
        memo.insert("c", 3);
        assert_eq!(memo.len(), 1, "started over");
        assert_eq!((memo.get("a"), memo.get("c")), (None, Some(&3)));
        assert_ne!(owner_id(), owner_id());
    }
}
