//! WeChat as this process has seen it, for the status page: totals since start and the last
//! hour's error rate, by errcode.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The status page's error rate looks back this far.
const WINDOW: Duration = Duration::from_secs(3600);
/// At most this many round trips are remembered for the window (a few MB at worst); beyond it the
/// window is the most recent calls only, which is still the right picture of an upstream outage.
const MAX_WINDOW_CALLS: usize = 100_000;

/// Every real round trip (a joined double tap counts once).
#[derive(Default)]
pub(super) struct Tally {
    calls: u64,
    errors: BTreeMap<String, u64>,
    last_latency: Option<Duration>,
    last_at: Option<DateTime<Utc>>,
    last_outcome: Option<String>,
    /// (when, errcode label if it failed), oldest first.
    recent: VecDeque<(Instant, Option<String>)>,
}

impl Tally {
    pub(super) fn record(&mut self, latency: Duration, error: Option<String>) {
        self.calls += 1;
        if let Some(label) = &error {
            *self.errors.entry(label.clone()).or_default() += 1;
        }
        self.last_latency = Some(latency);
        self.last_at = Some(Utc::now());
        self.last_outcome = Some(error.clone().unwrap_or_else(|| "ok".into()));
        self.recent.push_back((Instant::now(), error));
        while self.recent.len() > MAX_WINDOW_CALLS {
            self.recent.pop_front();
        }
    }

    pub(super) fn stats(&mut self, now: Instant) -> UpstreamStats {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            self.recent.pop_front();
        }
        let mut window_errors: BTreeMap<String, u64> = BTreeMap::new();
        for label in self.recent.iter().filter_map(|(_, e)| e.as_ref()) {
            *window_errors.entry(label.clone()).or_default() += 1;
        }
        let window_calls = self.recent.len() as u64;
        let window_failed: u64 = window_errors.values().sum();
        UpstreamStats {
            calls_total: self.calls,
            errors_total: self.errors.values().sum(),
            errors_by_errcode: self.errors.clone(),
            last_hour: UpstreamWindow {
                calls: window_calls,
                errors: window_failed,
                error_rate: (window_calls > 0).then(|| window_failed as f64 / window_calls as f64),
                errors_by_errcode: window_errors,
            },
            last_latency_ms: self.last_latency.map(|d| d.as_millis() as u64),
            last_call_at: self
                .last_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            last_outcome: self.last_outcome.clone(),
            access_token_age_secs: None,
        }
    }
}

/// WeChat upstream health for the status page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UpstreamStats {
    /// Round trips since start.
    pub(crate) calls_total: u64,
    pub(crate) errors_total: u64,
    /// Since start, keyed by WeChat's errcode or `timeout`/`unreachable`/`bad_response`.
    pub(crate) errors_by_errcode: BTreeMap<String, u64>,
    pub(crate) last_hour: UpstreamWindow,
    pub(crate) last_latency_ms: Option<u64>,
    /// RFC 3339, UTC.
    pub(crate) last_call_at: Option<String>,
    /// `ok`, or the errcode label of the newest round trip.
    pub(crate) last_outcome: Option<String>,
    /// Age of the cached access token; `None` until a call needed one (bindPhone, checksession).
    pub(crate) access_token_age_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct UpstreamWindow {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    /// errors / calls, `None` without calls.
    pub(crate) error_rate: Option<f64>,
    pub(crate) errors_by_errcode: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_errors_by_errcode_and_forgets_the_window_after_an_hour() {
        let mut tally = Tally::default();
        tally.record(Duration::from_millis(40), None);
        tally.record(Duration::from_millis(90), Some("45011".into()));
        tally.record(Duration::from_millis(2000), Some("timeout".into()));
        let stats = tally.stats(Instant::now());
        assert_eq!(stats.calls_total, 3);
        assert_eq!(stats.errors_total, 2);
        assert_eq!(stats.errors_by_errcode.get("45011"), Some(&1));
        assert_eq!(stats.last_latency_ms, Some(2000));
        assert_eq!(stats.last_outcome.as_deref(), Some("timeout"));
        assert_eq!(stats.last_hour.calls, 3);
        assert!(
            stats
                .last_hour
                .error_rate
                .is_some_and(|r| (r - 2.0 / 3.0).abs() < 1e-9)
        );
        assert_eq!(stats.access_token_age_secs, None);

        let later = Instant::now() + WINDOW + Duration::from_secs(1);
        let stats = tally.stats(later);
        assert_eq!(stats.last_hour.calls, 0);
        assert_eq!(stats.last_hour.error_rate, None);
        assert_eq!(stats.calls_total, 3, "totals are since start");
    }
}
