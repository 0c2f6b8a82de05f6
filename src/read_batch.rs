//! Concurrent reads of one kind answered by one statement.
//!
//! Under load a short read costs far less in PostgreSQL's executor than in the round trip around
//! it: a DbExecutor thread woken, a backend woken, the HTTP worker woken again, each taking its
//! turn on CPUs they all share. So while `max_in_flight` batches are at the database, the
//! requests that arrive meanwhile wait for the next batch, and one statement answers them all.
//! When nothing is in flight a request goes at once, alone: an idle server adds no latency.
//!
//! A batch is sent after every request in it arrived, so no request reads state older than its
//! own arrival: the answers are as exact as one statement per request would give.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tokio::sync::oneshot;

/// Requests wait for at most this many full batches: a few statements' time, far within the
/// read budget, so a burst is served rather than refused while one batch is at the database.
const QUEUED_BATCHES: usize = 4;

type Waiter<K, V, E> = (K, oneshot::Sender<Result<Option<V>, E>>);

/// Runs one batch: the distinct keys in, a value for each key found out. Its error is cloned
/// to every request of the batch.
pub(crate) type LoadBatch<K, V, E> =
    Arc<dyn Fn(Vec<K>) -> LocalBoxFuture<'static, Result<HashMap<K, V>, E>> + Send + Sync>;

struct Queue<K, V, E> {
    waiting: Vec<Waiter<K, V, E>>,
    in_flight: usize,
}

pub(crate) struct ReadBatcher<K, V, E> {
    queue: Arc<Mutex<Queue<K, V, E>>>,
    load: LoadBatch<K, V, E>,
    max_in_flight: usize,
    max_batch: usize,
    /// Beyond this many waiting, a request is refused at once: it could not be answered before
    /// the batches ahead of it, and a queue without a bound is a hang with extra steps.
    max_waiting: usize,
    /// How long a request waits for its batch's answer, queue included: the database handle
    /// bounds a batch's wait for a place, but not a statement stuck at a stalled database.
    budget: Duration,
    /// The answer to a request refused here (the queue is full, its time is up): counted and
    /// logged as the database's other refusals are.
    refuse: Arc<dyn Fn() -> E + Send + Sync>,
}

impl<K, V, E> Clone for ReadBatcher<K, V, E> {
    fn clone(&self) -> Self {
        ReadBatcher {
            queue: self.queue.clone(),
            load: self.load.clone(),
            max_in_flight: self.max_in_flight,
            max_batch: self.max_batch,
            max_waiting: self.max_waiting,
            budget: self.budget,
            refuse: self.refuse.clone(),
        }
    }
}

impl<K, V, E> ReadBatcher<K, V, E>
where
    K: Eq + Hash + Clone + 'static,
    V: Clone + 'static,
    E: Clone + 'static,
{
    pub(crate) fn new(
        max_in_flight: usize,
        max_batch: usize,
        budget: Duration,
        load: LoadBatch<K, V, E>,
        refuse: Arc<dyn Fn() -> E + Send + Sync>,
    ) -> Self {
        let max_in_flight = max_in_flight.max(1);
        let max_batch = max_batch.max(1);
        ReadBatcher {
            queue: Arc::new(Mutex::new(Queue {
                waiting: Vec::new(),
                in_flight: 0,
            })),
            load,
            max_in_flight,
            max_batch,
            max_waiting: max_batch * QUEUED_BATCHES,
            budget,
            refuse,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<K, V, E>> {
        // The queue is consistent after every statement: a panic elsewhere cannot leave it half
        // updated, so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for `key`, read by the next batch; `Ok(None)`: the batch found none.
    pub(crate) async fn get(&self, key: K) -> Result<Option<V>, E> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            if queue.waiting.len() >= self.max_waiting {
                drop(queue);
                return Err((self.refuse)());
            }
            queue.waiting.push((key, tx));
            if queue.in_flight < self.max_in_flight {
                queue.in_flight += 1;
                Some(self.take_batch(&mut queue))
            } else {
                None
            }
        };
        if let Some(batch) = start {
            actix_web::rt::spawn(self.clone().run(batch));
        }
        match tokio::time::timeout(self.budget, rx).await {
            Ok(Ok(answer)) => answer,
            // The batch went away unanswered (the worker is shutting down): as good as busy.
            Ok(Err(_)) => Err((self.refuse)()),
            Err(_) => {
                // Out of time: leave the queue (a request already in a batch is simply not
                // answered), so that it does not hold a place others could use.
                self.lock().waiting.retain(|(_, tx)| !tx.is_closed());
                Err((self.refuse)())
            }
        }
    }

    fn take_batch(&self, queue: &mut Queue<K, V, E>) -> Vec<Waiter<K, V, E>> {
        let n = queue.waiting.len().min(self.max_batch);
        queue.waiting.drain(..n).collect()
    }

    /// Sends batches until no request is waiting, then gives its place back.
    async fn run(self, mut batch: Vec<Waiter<K, V, E>>) {
        loop {
            let mut keys: Vec<K> = batch.iter().map(|(k, _)| k.clone()).collect();
            dedup(&mut keys);
            let result = (self.load)(keys).await;
            for (key, tx) in batch {
                let answer = match &result {
                    Ok(found) => Ok(found.get(&key).cloned()),
                    Err(e) => Err(e.clone()),
                };
                // The request may have gone (client disconnected): nothing to answer then.
                let _ = tx.send(answer);
            }
            let next = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.in_flight -= 1;
                    None
                } else {
                    Some(self.take_batch(&mut queue))
                }
            };
            match next {
                Some(more) => batch = more,
                None => return,
            }
        }
    }
}

fn dedup<K: Eq + Hash + Clone>(keys: &mut Vec<K>) {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    keys.retain(|k| seen.insert(k.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SECOND: Duration = Duration::from_secs(1);

    #[derive(Debug, Clone, PartialEq)]
    enum Failure {
        Busy,
        Failed(&'static str),
    }

    fn refuse() -> Arc<dyn Fn() -> Failure + Send + Sync> {
        Arc::new(|| Failure::Busy)
    }

    /// Doubles each key after a pause, counting batches and the keys each carried.
    fn doubling(
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        in_flight: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    ) -> LoadBatch<u32, u32, Failure> {
        Arc::new(move |keys: Vec<u32>| {
            let batches = batches.clone();
            let in_flight = in_flight.clone();
            let peak = peak.clone();
            Box::pin(async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                batches.lock().unwrap().push(keys.clone());
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(keys
                    .into_iter()
                    .filter(|k| *k != 0)
                    .map(|k| (k, k * 2))
                    .collect())
            })
        })
    }

    #[actix_web::test]
    async fn a_lone_request_goes_at_once_and_alone() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let load = doubling(batches.clone(), Default::default(), Default::default());
        let batcher = ReadBatcher::new(2, 100, SECOND, load, refuse());
        assert_eq!(batcher.get(21).await.unwrap(), Some(42));
        assert_eq!(*batches.lock().unwrap(), vec![vec![21]]);
    }

    #[actix_web::test]
    async fn requests_arriving_meanwhile_share_a_batch_within_the_bounds() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (in_flight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let load = doubling(batches.clone(), in_flight, peak.clone());
        let batcher = ReadBatcher::new(2, 10, SECOND, load, refuse());
        let gets: Vec<_> = (1..=21u32)
            .map(|k| {
                let b = batcher.clone();
                actix_web::rt::spawn(async move { (k, b.get(k % 7 + 1).await) })
            })
            .collect();
        for get in gets {
            let (k, answer) = get.await.unwrap();
            assert_eq!(answer.unwrap(), Some((k % 7 + 1) * 2));
        }
        let batches = batches.lock().unwrap();
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "at most two batches at once"
        );
        assert!(
            batches.len() < 21,
            "some requests shared a batch: {batches:?}"
        );
        assert!(
            batches.iter().all(|b| b.len() <= 7),
            "keys are sent once per batch"
        );
        assert_eq!(batcher.lock().in_flight, 0, "every place is given back");
    }

    #[actix_web::test]
    async fn a_key_the_batch_did_not_find_is_none_and_errors_reach_everyone() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let load = doubling(batches, Default::default(), Default::default());
        let batcher = ReadBatcher::new(1, 10, SECOND, load, refuse());
        assert_eq!(batcher.get(0).await.unwrap(), None);

        let failing: LoadBatch<u32, u32, Failure> =
            Arc::new(|_| Box::pin(async { Err(Failure::Failed("db down")) }));
        let batcher = ReadBatcher::new(1, 10, SECOND, failing, refuse());
        let (a, b) = futures_util::future::join(batcher.get(1), batcher.get(2)).await;
        assert_eq!(a, Err(Failure::Failed("db down")));
        assert_eq!(b, Err(Failure::Failed("db down")));
    }

    #[actix_web::test]
    async fn a_full_queue_refuses_at_once() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let load = doubling(batches, Default::default(), Default::default());
        // One batch in flight, batches of 2: the ninth waiting request is refused.
        let batcher = ReadBatcher::new(1, 2, SECOND, load, refuse());
        let first = actix_web::rt::spawn({
            let b = batcher.clone();
            async move { b.get(1).await }
        });
        actix_web::rt::task::yield_now().await;
        let waiting: Vec<_> = (2..=(1 + 2 * QUEUED_BATCHES as u32))
            .map(|k| {
                let b = batcher.clone();
                actix_web::rt::spawn(async move { b.get(k).await })
            })
            .collect();
        actix_web::rt::task::yield_now().await;
        assert_eq!(batcher.get(100).await, Err(Failure::Busy));
        assert_eq!(first.await.unwrap().unwrap(), Some(2));
        for w in waiting {
            assert!(w.await.unwrap().unwrap().is_some());
        }
    }

    #[actix_web::test]
    async fn a_request_whose_batch_hangs_is_refused_when_its_time_is_up() {
        let stuck: LoadBatch<u32, u32, Failure> = Arc::new(|_| Box::pin(std::future::pending()));
        let batcher = ReadBatcher::new(1, 10, Duration::from_millis(50), stuck, refuse());
        let (a, b) = futures_util::future::join(batcher.get(1), batcher.get(2)).await;
        assert_eq!(a, Err(Failure::Busy), "in the hung batch");
        assert_eq!(b, Err(Failure::Busy), "waiting behind it");
        assert!(
            batcher.lock().waiting.is_empty(),
            "the waiter left the queue"
        );
    }
}
