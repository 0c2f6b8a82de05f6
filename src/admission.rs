//! Admission control: how many requests of one kind may be in progress, and a bounded FIFO queue
//! in front of that limit in which a request waits only as long as it can still be served in
//! time. A request that cannot be is refused at once (errno 721 with `retryAfterMs`), before it
//! costs anything: for a login, before its code is exchanged at WeChat, so a refused user's code
//! stays usable for the retry.
//!
//! The limit is either fixed (the database reads: `4 × DB_POOL_SIZE` messages) or adaptive (the
//! logins): a gradient limit in the style of Netflix's concurrency-limits `Gradient2`, fed with
//! the round trip of each login's statement through the DbExecutor, *not* WeChat's round trip.
//! A slow WeChat is not our overload (the time a login waits for WeChat costs no CPU and no
//! connection), so it must not shrink the limit; a database that queues up is, and it does.
//!
//! The `congestion-limiter` crate implements the same algorithms, but measures the whole job
//! (WeChat included), has no deadline-aware queue (a waiter cannot learn how long the queue
//! ahead of it will take, only time out) and no way to exempt part of a job from the
//! measurement; what is needed here is about two hundred lines, so it is written out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::log_throttle::OVERLOAD;

/// Where the login limit starts: enough for WeChat's usual latency at a calm day's rate, which
/// the gradient then raises or lowers with what it measures.
pub(crate) const INITIAL_LOGINS_IN_FLIGHT: usize = 256;

/// What a login is expected to take before any was measured (WeChat's usual round trip plus
/// the database).
pub(crate) const INITIAL_LOGIN_SERVICE: Duration = Duration::from_millis(300);

/// Database messages in flight per pooled connection: enough to keep every connection busy
/// while answers travel back, few enough that a queued message is served within the request's
/// deadline.
pub(crate) const DB_MESSAGES_PER_CONNECTION: usize = 4;

/// What an instance's admissions are sized by, given at start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capacity {
    /// Database connections in the pool.
    pub(crate) db_connections: usize,
    /// Logins in progress never exceed this, however well they go.
    pub(crate) max_logins: usize,
}

/// The two admissions of an instance: logins (adaptive, at least one per database connection)
/// and other database work (fixed).
pub(crate) fn for_instance(
    capacity: Capacity,
    metrics: &crate::metrics::Metrics,
) -> (Arc<Admission>, Arc<Admission>) {
    let pool_size = capacity.db_connections;
    let logins = Admission::new(
        "login",
        Limit::Adaptive {
            initial: INITIAL_LOGINS_IN_FLIGHT,
            min: pool_size.max(1),
            max: capacity.max_logins,
        },
        INITIAL_LOGIN_SERVICE,
        metrics.refused.with_label_values(&["login"]),
    );
    let reads = Admission::new(
        "read",
        Limit::Fixed(pool_size.max(1) * DB_MESSAGES_PER_CONNECTION),
        Duration::from_millis(20),
        metrics.refused.with_label_values(&["read"]),
    );
    (logins, reads)
}

/// Busy refusals come by the thousand under overload: a line each would cost as much as the
/// refusal, so they are logged once a second per kind, with the count.
pub(crate) fn log_refusal(kind: &'static str) {
    let line = match kind {
        "login" => "refused (server busy, errno 721): login",
        "read" => "refused (server busy, errno 721): read",
        "wechat" => "refused (server busy, errno 721): wechat",
        _ => "refused (server busy, errno 721)",
    };
    OVERLOAD.log(log::Level::Warn, line, None);
}

/// Why a request was not admitted, and when the client should try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// Which kind of work was refused (`login`, `read`): bounded, it is a metric label.
    pub(crate) kind: &'static str,
    /// For the client developer, in `data.reason`.
    pub(crate) reason: &'static str,
    pub(crate) retry_after: Duration,
}

/// The shortest and longest `retryAfterMs` a refusal suggests: sooner than the first is a retry
/// storm, later than the second leaves a user staring at a spinner for nothing.
const MIN_RETRY_AFTER: Duration = Duration::from_millis(200);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The most an immediate refusal is held before it is answered: part of the back-off it asks
/// for, spent on the server, so that `retryAfterMs` is what remains of it afterwards.
const REFUSAL_HOLD: Duration = Duration::from_millis(1500);

/// How a limit is set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    Fixed(usize),
    /// Starts at `initial`, moves between `min` and `max` with the measured latencies.
    Adaptive {
        initial: usize,
        min: usize,
        max: usize,
    },
}

/// The limit falls by at most `MAX_FALL` per `WINDOW`, however many samples arrive in it. A
/// spike's logins reach the database together (they all waited the same WeChat round trip), and
/// the short queue they form there would otherwise cut the limit once per login: hundreds of
/// small cuts within a few milliseconds, from a warm limit to a tenth of it. A database that
/// stays slow still halves the limit within a second.
const WINDOW: Duration = Duration::from_millis(100);
const MAX_FALL: f64 = 0.9;
/// The gradient limit's parameters (Gradient2's defaults, scaled to per-sample updates).
const SHORT_ALPHA: f64 = 0.1;
const LONG_ALPHA: f64 = 0.005;
/// Latency may grow this much over its long-term average before the limit comes down.
const TOLERANCE: f64 = 1.5;
/// How much of each new limit estimate is taken; small, because there is one per request.
const SMOOTHING: f64 = 0.02;
/// Service times (whole request) are averaged with this weight per sample, and their mean
/// deviation with the second.
const SERVICE_ALPHA: f64 = 0.05;
const DEVIATION_ALPHA: f64 = 0.1;
/// A request is let in only with this many mean deviations above the mean service time left
/// (TCP's retransmission timeout reasons the same way): half the logins take longer than the
/// mean, and a login that runs out of time after its code was exchanged has spent that code.
const DEVIATIONS_RESERVED: f64 = 4.0;
/// Own latency below this is never congestion, whatever its trend: a login's statement that
/// takes a few milliseconds more because the CPUs are busy is noise against WeChat's hundreds
/// of milliseconds and the 3 s deadline, and shrinking the limit for it cuts the logins that
/// wait on WeChat, which cost no CPU at all.
const CONGESTION_FLOOR: f64 = 0.010;

pub struct Admission {
    kind: &'static str,
    state: Mutex<State>,
    /// Waiters beyond this are refused whatever their chance: the queue's memory is bounded.
    max_queue: usize,
    limit: Limit,
    refused: prometheus::IntCounter,
}

struct State {
    limit: f64,
    in_flight: usize,
    queue: VecDeque<Waiter>,
    next_id: u64,
    /// Average time from admission to completion, and its mean deviation, seconds.
    service: f64,
    deviation: f64,
    /// Short- and long-term averages of the time spent in this instance, seconds.
    own_short: f64,
    own_long: f64,
    /// The current window: when it began, and the lowest the limit may fall within it.
    window_start: Instant,
    window_floor: f64,
    refused: u64,
    admitted: u64,
}

enum Decision {
    /// A place was free (and is now taken).
    Admitted,
    /// Hopeless: the answer, with the time the queue ahead would take.
    Refused(Duration),
    Queued {
        rx: oneshot::Receiver<()>,
        id: u64,
        max_wait: Duration,
    },
}

struct Waiter {
    id: u64,
    grant: oneshot::Sender<()>,
}

/// What the status page shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdmissionStats {
    pub limit: usize,
    pub in_flight: usize,
    pub(crate) queued: usize,
    pub(crate) admitted: u64,
    pub(crate) refused: u64,
    pub(crate) service_ms: f64,
    /// The time a request must have left to be let in: the mean service time plus a margin.
    pub(crate) reserve_ms: f64,
}

impl State {
    /// Service time with room for the slow tail: what a request must still have when let in.
    fn reserve(&self) -> f64 {
        self.service + DEVIATIONS_RESERVED * self.deviation
    }
}

impl Admission {
    /// `service` is the expected time from admission to completion before anything is measured.
    pub(crate) fn new(
        kind: &'static str,
        limit: Limit,
        service: Duration,
        refused: prometheus::IntCounter,
    ) -> Arc<Admission> {
        let (initial, max) = match limit {
            Limit::Fixed(n) => (n.max(1), n.max(1)),
            Limit::Adaptive { initial, min, max } => {
                let max = max.max(min).max(1);
                (initial.clamp(min.max(1), max), max)
            }
        };
        Arc::new(Admission {
            kind,
            state: Mutex::new(State {
                limit: initial as f64,
                in_flight: 0,
                queue: VecDeque::new(),
                next_id: 0,
                service: service.as_secs_f64(),
                deviation: service.as_secs_f64() / 2.0,
                own_short: 0.0,
                own_long: 0.0,
                window_start: Instant::now(),
                window_floor: initial as f64 * MAX_FALL,
                refused: 0,
                admitted: 0,
            }),
            max_queue: max * 4,
            limit,
            refused,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain numbers behind; they are still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The expected time from admission to completion.
    pub(crate) fn expected_service(&self) -> Duration {
        Duration::from_secs_f64(self.lock().service)
    }

    /// Waits for a place, but only while the request can still finish within `budget` (the time
    /// left until its answer is due), with room for a slower than average one. Refuses at once
    /// when the queue ahead of it would not drain in time.
    pub async fn acquire(self: &Arc<Self>, budget: Duration) -> Result<Permit, Busy> {
        let (rx, id, max_wait) = match self.decide(budget) {
            Decision::Admitted => return Ok(self.permit()),
            Decision::Refused(retry) => {
                let mut busy = self.refuse("too many requests in progress", retry);
                // A client that retries at once instead of after retryAfterMs would otherwise
                // turn every refusal into the next request at once, and a spike into a storm of
                // refusals that takes the CPU the admitted requests need. So part of the back-off
                // is spent here, before the answer (a timer, not a thread; at most half the time
                // left), and retryAfterMs is the rest: a client that honours it retries when it
                // would have anyway, one that does not is paced all the same.
                let hold = busy.retry_after.min(REFUSAL_HOLD).min(budget / 2);
                tokio::time::sleep(hold).await;
                busy.retry_after = busy
                    .retry_after
                    .saturating_sub(hold)
                    .clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER);
                return Err(busy);
            }
            Decision::Queued { rx, id, max_wait } => (rx, id, max_wait),
        };
        let mut waiting = Waiting {
            admission: self,
            id,
            done: false,
        };
        let granted = tokio::time::timeout(max_wait, rx).await;
        match granted {
            Ok(Ok(())) => {
                waiting.done = true;
                self.lock().admitted += 1;
                Ok(self.permit())
            }
            _ => {
                // Timed out (or the sender vanished): leave the queue, unless the place was
                // granted in the same instant, in which case it is taken after all.
                waiting.done = true;
                let mut st = self.lock();
                if let Some(at) = st.queue.iter().position(|w| w.id == id) {
                    st.queue.remove(at);
                    let retry = Duration::from_secs_f64(st.service);
                    drop(st);
                    Err(self.refuse("waited as long as an answer in time allows", retry))
                } else {
                    st.admitted += 1;
                    drop(st);
                    Ok(self.permit())
                }
            }
        }
    }

    /// Refuses work that queues in front of this admission (a read batch's waiting requests) and
    /// found that queue full; counted and logged as this admission's own refusals are.
    pub(crate) fn refuse_overflow(&self) -> Busy {
        let retry = self.expected_service();
        self.refuse("too many requests in progress", retry)
    }

    /// Admits, queues or refuses, under the lock.
    fn decide(&self, budget: Duration) -> Decision {
        let mut st = self.lock();
        let service = st.service;
        let max_wait = budget.as_secs_f64() - st.reserve();
        if st.queue.is_empty() && (st.in_flight as f64) < st.limit.floor().max(1.0) {
            st.in_flight += 1;
            st.admitted += 1;
            return Decision::Admitted;
        }
        // FIFO: everyone queued is served first; the limit's worth of requests finish every
        // `service`.
        let ahead = (st.queue.len() + 1) as f64;
        let expected_wait = ahead * service / st.limit.max(1.0);
        if max_wait <= 0.0 || expected_wait > max_wait || st.queue.len() >= self.max_queue {
            return Decision::Refused(Duration::from_secs_f64(expected_wait.max(0.0)));
        }
        let (tx, rx) = oneshot::channel();
        let id = st.next_id;
        st.next_id += 1;
        st.queue.push_back(Waiter { id, grant: tx });
        Decision::Queued {
            rx,
            id,
            max_wait: Duration::from_secs_f64(max_wait),
        }
    }

    fn permit(self: &Arc<Self>) -> Permit {
        Permit {
            admission: self.clone(),
            started: Instant::now(),
            own: None,
        }
    }

    fn refuse(&self, reason: &'static str, retry: Duration) -> Busy {
        self.lock().refused += 1;
        self.refused.inc();
        log_refusal(self.kind);
        Busy {
            kind: self.kind,
            reason,
            retry_after: retry.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER),
        }
    }

    /// A place is free again: hand it to the first waiter still waiting.
    fn release(&self, sample: Option<(f64, f64)>) {
        let mut st = self.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        if let Some((total, own)) = sample {
            self.learn(&mut st, total, own, Instant::now());
        }
        let limit = st.limit.floor().max(1.0) as usize;
        while st.in_flight < limit {
            let Some(w) = st.queue.pop_front() else { break };
            if w.grant.send(()).is_ok() {
                st.in_flight += 1;
            }
        }
    }

    fn learn(&self, st: &mut State, total: f64, own: f64, now: Instant) {
        st.deviation += DEVIATION_ALPHA * ((total - st.service).abs() - st.deviation);
        st.service += SERVICE_ALPHA * (total - st.service);
        let Limit::Adaptive { min, max, .. } = self.limit else {
            return;
        };
        if now.saturating_duration_since(st.window_start) >= WINDOW {
            st.window_start = now;
            st.window_floor = st.limit * MAX_FALL;
        }
        if st.own_long == 0.0 {
            st.own_short = own;
            st.own_long = own;
        }
        st.own_short += SHORT_ALPHA * (own - st.own_short);
        st.own_long += LONG_ALPHA * (own - st.own_long);
        // After a period of overload the long average is high; let it follow the short one
        // down, so that the next overload is seen against the calm baseline again.
        if st.own_long / st.own_short.max(1e-6) > 2.0 {
            st.own_long *= 0.95;
        }
        let tolerated = (TOLERANCE * st.own_long).max(CONGESTION_FLOOR);
        let gradient = (tolerated / st.own_short.max(1e-6)).clamp(0.5, 1.0);
        // It grows only while at least half of it is in use: a calm day's few logins say
        // nothing about how many a spike could run at once.
        let growth = if st.in_flight as f64 >= st.limit / 2.0 {
            st.limit.sqrt()
        } else {
            0.0
        };
        let estimate = st.limit * gradient + growth;
        st.limit = (st.limit * (1.0 - SMOOTHING) + estimate * SMOOTHING)
            .max(st.window_floor)
            .clamp(min.max(1) as f64, max.max(1) as f64);
    }

    /// Sets `gauges{kind, what}` to this admission's limit, requests in progress and queued.
    pub(crate) fn report(&self, gauges: &prometheus::IntGaugeVec) {
        let stats = self.stats();
        for (what, value) in [
            ("limit", stats.limit),
            ("in_flight", stats.in_flight),
            ("queued", stats.queued),
        ] {
            gauges
                .with_label_values(&[self.kind, what])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    pub fn stats(&self) -> AdmissionStats {
        let st = self.lock();
        AdmissionStats {
            limit: st.limit.floor() as usize,
            in_flight: st.in_flight,
            queued: st.queue.len(),
            admitted: st.admitted,
            refused: st.refused,
            service_ms: (st.service * 1000.0 * 10.0).round() / 10.0,
            reserve_ms: (st.reserve() * 1000.0 * 10.0).round() / 10.0,
        }
    }
}

/// A request's place in the queue while it waits; leaving early (the client went away, the
/// handler was dropped) gives the place up, or hands it on if it was granted meanwhile.
struct Waiting<'a> {
    admission: &'a Arc<Admission>,
    id: u64,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.admission.lock();
        if let Some(at) = st.queue.iter().position(|w| w.id == self.id) {
            st.queue.remove(at);
        } else {
            // Granted, but nobody will use it.
            drop(st);
            self.admission.release(None);
        }
    }
}

/// An admitted request's place; dropping it frees the place.
pub struct Permit {
    admission: Arc<Admission>,
    started: Instant,
    own: Option<Duration>,
}

impl Permit {
    /// The request succeeded and spent `own` of its time in this instance and the database (its
    /// time minus what it waited on others, such as WeChat): that trains the limit.
    pub(crate) fn succeeded(&mut self, own: Duration) {
        self.own = Some(own);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let sample = self
            .own
            .map(|own| (self.started.elapsed().as_secs_f64(), own.as_secs_f64()));
        self.admission.release(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(limit: Limit, service_ms: u64) -> Arc<Admission> {
        let counter = prometheus::IntCounter::new("t", "t").expect("counter");
        Admission::new("test", limit, Duration::from_millis(service_ms), counter)
    }

    #[actix_rt::test]
    async fn admits_up_to_the_limit_then_queues_then_refuses() {
        let a = admission(Limit::Fixed(2), 100);
        let p1 = a.acquire(Duration::from_secs(3)).await.expect("first");
        let _p2 = a.acquire(Duration::from_secs(3)).await.expect("second");
        // The third waits; freeing a place lets it in.
        let a2 = a.clone();
        let third = actix_rt::spawn(async move { a2.acquire(Duration::from_secs(3)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(a.stats().queued, 1);
        drop(p1);
        let _p3 = third.await.expect("join").expect("admitted");
        assert_eq!(a.stats().in_flight, 2);
        // Too little budget to wait for a place at all: refused at once.
        let busy = a
            .acquire(Duration::from_millis(50))
            .await
            .err()
            .expect("refused");
        assert_eq!(busy.kind, "test");
        assert!(busy.retry_after >= MIN_RETRY_AFTER);
        assert_eq!(a.stats().refused, 1);
        assert_eq!(a.stats().queued, 0);
    }

    #[actix_rt::test]
    async fn a_refusal_spends_part_of_its_back_off_before_answering() {
        // Logins take 2 s here: with 1 s left, one cannot wait for the place in use.
        let a = admission(Limit::Fixed(1), 2000);
        let _held = a.acquire(Duration::from_secs(10)).await.expect("first");
        let started = Instant::now();
        let busy = a
            .acquire(Duration::from_secs(1))
            .await
            .err()
            .expect("refused");
        let held_for = started.elapsed();
        // Held for half the time left, and the back-off it asks for is what remains of the 2 s.
        assert!(
            held_for >= Duration::from_millis(490) && held_for < Duration::from_millis(900),
            "{held_for:?}"
        );
        assert_eq!(busy.retry_after, Duration::from_millis(1500));
    }

    #[actix_rt::test]
    async fn a_waiter_that_times_out_leaves_the_queue() {
        let a = admission(Limit::Fixed(1), 100);
        let _p = a.acquire(Duration::from_secs(3)).await.expect("first");
        let started = std::time::Instant::now();
        let busy = a.acquire(Duration::from_millis(300)).await;
        assert!(busy.is_err());
        // It waited about budget - service, not longer.
        assert!(started.elapsed() < Duration::from_millis(290));
        assert_eq!(a.stats().queued, 0);
    }

    #[actix_rt::test]
    async fn a_dropped_waiter_gives_its_place_back() {
        let a = admission(Limit::Fixed(1), 10);
        let p = a.acquire(Duration::from_secs(3)).await.expect("first");
        let waiting = a.acquire(Duration::from_secs(3));
        // Polled once (queued), then dropped.
        let _ = tokio::time::timeout(Duration::from_millis(10), waiting).await;
        assert_eq!(a.stats().queued, 0);
        drop(p);
        assert_eq!(a.stats().in_flight, 0);
        assert!(a.acquire(Duration::from_secs(3)).await.is_ok());
    }

    /// Feeds `windows` windows of samples (10 each) with this total and own time; `busy`: the
    /// limit is in use meanwhile.
    fn feed(a: &Admission, clock: &mut Instant, windows: usize, total: f64, own: f64, busy: bool) {
        let mut st = a.lock();
        for _ in 0..windows {
            st.in_flight = if busy { st.limit as usize } else { 0 };
            for _ in 0..10 {
                a.learn(&mut st, total, own, *clock);
            }
            *clock += WINDOW;
        }
        st.in_flight = 0;
    }

    fn adaptive(initial: usize) -> Arc<Admission> {
        admission(
            Limit::Adaptive {
                initial,
                min: 10,
                max: 1000,
            },
            100,
        )
    }

    #[actix_rt::test]
    async fn a_request_waits_only_while_a_slow_one_could_still_finish() {
        let a = admission(Limit::Fixed(1), 100);
        let mut clock = Instant::now();
        feed(&a, &mut clock, 20, 0.1, 0.001, false);
        let steady = a.stats();
        assert!(steady.reserve_ms < 110.0, "{steady:?}");
        // The same mean, but half take 20 ms and half 180 ms: the reserve covers the slow half.
        {
            let mut st = a.lock();
            for i in 0..200 {
                a.learn(&mut st, if i % 2 == 0 { 0.02 } else { 0.18 }, 0.001, clock);
            }
        }
        let spread = a.stats();
        assert!((spread.service_ms - 100.0).abs() < 10.0, "{spread:?}");
        assert!(spread.reserve_ms > 350.0, "{spread:?}");
        let _held = a.acquire(Duration::from_secs(3)).await.expect("first");
        // More time left than the mean, less than the reserve: refused without queueing.
        assert!(a.acquire(Duration::from_millis(300)).await.is_err());
        assert_eq!(a.stats().queued, 0);
        assert_eq!(a.stats().refused, 1);
    }

    #[actix_rt::test]
    async fn the_adaptive_limit_grows_in_use_and_falls_when_own_latency_grows() {
        let a = adaptive(100);
        let mut clock = Instant::now();
        feed(&a, &mut clock, 50, 0.2, 0.005, true);
        let calm = a.stats().limit;
        assert!(calm > 200, "grows while in use and latency is flat: {calm}");
        feed(&a, &mut clock, 20, 0.2, 0.050, true);
        let loaded = a.stats().limit;
        assert!(
            loaded < calm / 2,
            "falls when own latency grows: {calm} -> {loaded}"
        );
    }

    #[actix_rt::test]
    async fn waiting_on_others_does_not_shrink_the_limit_and_idleness_does_not_grow_it() {
        let a = adaptive(300);
        let mut clock = Instant::now();
        // WeChat takes two seconds; the statement still takes a millisecond.
        feed(&a, &mut clock, 50, 2.0, 0.001, false);
        assert_eq!(a.stats().limit, 300);
    }

    #[actix_rt::test]
    async fn a_few_milliseconds_more_at_the_database_do_not_shrink_the_login_limit() {
        let a = adaptive(300);
        let mut clock = Instant::now();
        feed(&a, &mut clock, 50, 0.2, 0.001, false);
        // The CPUs busy: the statement's round trip quadruples, still far from congestion.
        feed(&a, &mut clock, 50, 0.2, 0.004, false);
        assert_eq!(a.stats().limit, 300);
    }

    #[actix_rt::test]
    async fn a_spike_arriving_at_once_cuts_the_limit_by_a_tenth_not_once_per_login() {
        let a = adaptive(900);
        let mut clock = Instant::now();
        feed(&a, &mut clock, 50, 0.2, 0.002, false);
        // 900 statements queued together at the database within 100 ms...
        {
            let mut st = a.lock();
            for _ in 0..900 {
                a.learn(&mut st, 0.3, 0.060, clock);
            }
            clock += WINDOW;
        }
        // ...then the database keeps up again.
        feed(&a, &mut clock, 10, 0.2, 0.002, false);
        let limit = a.stats().limit;
        assert!(limit >= 500, "one burst cut the limit to {limit}");
    }
}
