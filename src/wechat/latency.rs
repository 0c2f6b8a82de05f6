//! How long a code exchange at WeChat takes right now, as the login handler sees it (the
//! WeChatClient's mailbox included): a high percentile of the recent round trips, raised to the
//! age of the oldest exchange still waiting.
//!
//! A login spends its code the moment WeChat receives it. Sent with less time left than WeChat
//! takes, the call is abandoned at the deadline and the user's code is gone with no session (errno
//! 715); refused before it is sent (errno 721), the same code still works for the retry. The
//! estimate is what that decision is made on, so it must follow WeChat as it is now: a cold
//! instance has no samples yet, and during a burst the first exchanges are all still out, which
//! is why the calls in flight count too (an exchange out for 900 ms says WeChat takes at least
//! that, long before it answers).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The round trips the percentile is taken over: the most recent ones only, so a WeChat that
/// became slow is seen within a few dozen logins, and one that recovered likewise.
const SAMPLES: usize = 256;
/// Older round trips say nothing about WeChat now.
const MAX_SAMPLE_AGE: Duration = Duration::from_secs(60);
/// The share of exchanges the estimate covers: the rest may take longer and be abandoned, which
/// bounds the codes spent without a session to about this share's complement.
const QUANTILE: f64 = 0.99;
/// Never below this: WeChat's own round trip from mainland servers is rarely shorter, and a
/// lower estimate only sends codes that will be abandoned.
pub(crate) const MIN_ROUND_TRIP: Duration = Duration::from_millis(150);
/// How much longer than its present age an exchange still out is taken to need, when the
/// exchanges still out decide the percentile.
const CENSORED_FACTOR: f64 = 1.5;
/// Before anything was measured.
const INITIAL_ROUND_TRIP: Duration = Duration::from_millis(300);

#[derive(Default)]
pub(crate) struct WeChatLatency {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (when it ended, how long it took), oldest first.
    samples: VecDeque<(Instant, Duration)>,
    /// Exchanges sent and not yet answered, by when they were sent.
    in_flight: BTreeSet<(Instant, u64)>,
    next_id: u64,
}

impl WeChatLatency {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain numbers behind the lock: still usable after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The time an exchange sent now should be given: the recent round trips' high percentile,
    /// or the age of the oldest exchange still out if that is longer.
    pub(crate) fn expected(&self) -> Duration {
        self.expected_at(Instant::now())
    }

    fn expected_at(&self, now: Instant) -> Duration {
        let mut inner = self.lock();
        while inner
            .samples
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > MAX_SAMPLE_AGE)
        {
            inner.samples.pop_front();
        }
        let measured = if inner.samples.is_empty() {
            INITIAL_ROUND_TRIP
        } else {
            let mut sorted: Vec<Duration> = inner.samples.iter().map(|(_, d)| *d).collect();
            sorted.sort_unstable();
            let rank = ((sorted.len() as f64) * QUANTILE).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        let oldest_out = inner.in_flight.first().map_or(Duration::ZERO, |(sent, _)| {
            now.saturating_duration_since(*sent)
        });
        // The answered round trips are the fast ones of their wave: while more than the
        // quantile's complement of the exchanges is still out and already older than what was
        // measured, the percentile lies among those still out, beyond their present age (a cold
        // burst, or WeChat slowing down). Their age is then only a floor, and the estimate
        // allows half as long again.
        let Some(horizon) = now.checked_sub(measured) else {
            return measured.max(oldest_out).max(MIN_ROUND_TRIP);
        };
        let older_out = inner.in_flight.range(..(horizon, u64::MAX)).count();
        let counted = inner.samples.len() + older_out;
        let censored = older_out as f64 > (1.0 - QUANTILE) * counted as f64;
        let floor = if censored {
            oldest_out.mul_f64(CENSORED_FACTOR)
        } else {
            oldest_out
        };
        measured.max(floor).max(MIN_ROUND_TRIP)
    }

    /// An exchange is being sent: it counts as in flight until the guard is finished or dropped.
    pub(crate) fn start(self: &Arc<Self>) -> Exchange {
        let sent = Instant::now();
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.in_flight.insert((sent, id));
        Exchange {
            latency: self.clone(),
            sent,
            id,
            recorded: false,
        }
    }

    fn record(&self, sent: Instant, id: u64, took: Option<Duration>) {
        let mut inner = self.lock();
        inner.in_flight.remove(&(sent, id));
        if let Some(took) = took {
            inner.samples.push_back((sent + took, took));
            while inner.samples.len() > SAMPLES {
                inner.samples.pop_front();
            }
        }
    }
}

/// One exchange in flight.
pub(crate) struct Exchange {
    latency: Arc<WeChatLatency>,
    sent: Instant,
    id: u64,
    recorded: bool,
}

impl Exchange {
    /// WeChat answered (whatever it said), or the exchange was abandoned at its time limit (then
    /// WeChat takes at least this long: a lower bound, and the percentile only needs to know it
    /// was slow). Either way its round trip is a sample.
    pub(crate) fn ended(mut self) {
        self.recorded = true;
        self.latency
            .record(self.sent, self.id, Some(self.sent.elapsed()));
    }
}

impl Drop for Exchange {
    /// Dropped without an outcome (the client went away): no longer in flight, and no sample,
    /// since how long WeChat would have taken is unknown.
    fn drop(&mut self) {
        if !self.recorded {
            self.latency.record(self.sent, self.id, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(round_trips: &[u64]) -> WeChatLatency {
        let latency = WeChatLatency::default();
        let now = Instant::now();
        for (id, ms) in round_trips.iter().enumerate() {
            latency.record(now, id as u64, Some(Duration::from_millis(*ms)));
        }
        latency
    }

    #[test]
    fn with_nothing_measured_the_initial_guess_stands() {
        assert_eq!(WeChatLatency::default().expected(), INITIAL_ROUND_TRIP);
    }

    #[test]
    fn the_estimate_is_the_recent_high_percentile_not_the_mean() {
        // 99 fast round trips and one slow one: the slow one is the 100th percentile, the 99th
        // is fast.
        let mut round_trips = vec![200; 99];
        round_trips.push(2000);
        assert_eq!(fed(&round_trips).expected(), Duration::from_millis(200));
        // Two slow ones in a hundred: the 99th percentile is slow.
        round_trips[0] = 1000;
        round_trips.sort_unstable();
        assert_eq!(fed(&round_trips).expected(), Duration::from_millis(1000));
    }

    #[test]
    fn only_the_most_recent_round_trips_count() {
        let mut round_trips = vec![1000; SAMPLES];
        round_trips.extend(vec![200; SAMPLES]);
        assert_eq!(fed(&round_trips).expected(), Duration::from_millis(200));
    }

    #[test]
    fn round_trips_older_than_a_minute_are_forgotten() {
        let latency = fed(&[1000; 10]);
        let later = Instant::now() + MAX_SAMPLE_AGE + Duration::from_secs(1);
        assert_eq!(latency.expected_at(later), INITIAL_ROUND_TRIP);
    }

    #[test]
    fn an_exchange_still_out_raises_the_estimate_to_its_age() {
        // One of 200 out longer than the answered ones took: within the quantile's complement,
        // so its age is the estimate.
        let latency = Arc::new(fed(&[200; 199]));
        let out = latency.start();
        let later = Instant::now() + Duration::from_millis(900);
        let expected = latency.expected_at(later);
        assert!(
            (Duration::from_millis(900)..Duration::from_millis(950)).contains(&expected),
            "{expected:?}"
        );
        drop(out);
        assert_eq!(latency.expected_at(later), Duration::from_millis(200));
    }

    #[test]
    fn while_many_exchanges_are_still_out_their_age_is_only_a_floor() {
        // A cold burst: ten answered fast, forty still out. The 99th percentile is among those
        // still out and beyond their age.
        let latency = Arc::new(fed(&[700; 10]));
        let out: Vec<Exchange> = (0..40).map(|_| latency.start()).collect();
        let later = Instant::now() + Duration::from_millis(1000);
        assert!(latency.expected_at(later) >= Duration::from_millis(1500));
        drop(out);
        assert_eq!(latency.expected_at(later), Duration::from_millis(700));
    }

    #[test]
    fn an_ended_exchange_is_a_sample_a_dropped_one_is_not() {
        let latency = Arc::new(WeChatLatency::default());
        latency.start().ended();
        latency.start().ended();
        drop(latency.start());
        let inner = latency.lock();
        assert_eq!(inner.samples.len(), 2);
        assert!(inner.in_flight.is_empty());
    }

    #[test]
    fn never_below_the_floor() {
        assert_eq!(fed(&[5; 100]).expected(), MIN_ROUND_TRIP);
    }
}
