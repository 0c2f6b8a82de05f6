//! Single flight: callers asking for the same thing while it is being fetched wait for that one
//! fetch instead of starting their own. WeChat refuses a login code's second exchange, and
//! fetching access tokens in parallel only makes them replace each other.

use std::collections::HashMap;
use std::hash::Hash;

use futures_util::future::LocalBoxFuture;
use tokio::sync::oneshot;

use super::Reply;
use crate::wechat::WeChatError;

/// The callers waiting for each fetch in flight, by key. It lives inside the actor, so it needs
/// no lock.
pub(super) struct SingleFlight<K, T> {
    waiting: HashMap<K, Vec<oneshot::Sender<Reply<T>>>>,
}

impl<K, T> Default for SingleFlight<K, T> {
    fn default() -> Self {
        SingleFlight {
            waiting: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash, T: Clone + 'static> SingleFlight<K, T> {
    /// Adds a caller for `key`. Answers whether it is the first one, which must start the fetch
    /// and `finish` it, and the caller's answer to come.
    pub(super) fn join(&mut self, key: K) -> (bool, LocalBoxFuture<'static, Reply<T>>) {
        let (tx, rx) = oneshot::channel();
        let waiters = self.waiting.entry(key).or_default();
        let first = waiters.is_empty();
        waiters.push(tx);
        let answer = Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(WeChatError::Transport("wechat client stopped".into())))
        });
        (first, answer)
    }

    /// Hands the fetch's result to every caller that waited for it.
    pub(super) fn finish(&mut self, key: &K, result: &Reply<T>) {
        for waiter in self.waiting.remove(key).unwrap_or_default() {
            // A waiter that went away (client disconnected) does not matter.
            let _ = waiter.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn callers_of_one_key_share_one_fetch_and_other_keys_start_their_own() {
        let mut flights: SingleFlight<&str, u32> = SingleFlight::default();
        let (first, a) = flights.join("code");
        let (second, b) = flights.join("code");
        let (other, c) = flights.join("other code");
        assert!(first && !second && other);

        flights.finish(&"code", &Ok(7));
        assert_eq!(a.await.ok(), Some(7));
        assert_eq!(b.await.ok(), Some(7));

        let (again, d) = flights.join("code");
        assert!(again, "a finished fetch is not joined");
        drop(flights);
        assert!(matches!(c.await, Err(WeChatError::Transport(_))));
        assert!(matches!(d.await, Err(WeChatError::Transport(_))));
    }
}
