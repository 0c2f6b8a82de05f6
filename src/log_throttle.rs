//! Log lines that an outsider can make repeat (missed deadlines, a dead database under load,
//! wrong admin tokens) go through a `LogThrottle`: the first line of a kind is written at once,
//! repeats within the interval are only counted, and one summary line with the count follows
//! when the interval is over. Disk use then grows with the number of kinds and intervals, not
//! with the number of requests.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use log::Level;

/// Where kinds beyond `max_kinds` are counted: a kind is usually a fixed message, but one made
/// from a server error's text must not let the map grow either.
pub(crate) const OVERFLOW_KIND: &str = "other repeated log lines";

/// Counts repeated log lines per kind. Cheap enough for the request path: one uncontended lock
/// and a map lookup per event.
pub(crate) struct LogThrottle {
    interval: Duration,
    max_kinds: usize,
    kinds: Mutex<Option<HashMap<String, Window>>>,
}

struct Window {
    opened: Instant,
    level: Level,
    /// Events of this kind since the last line, not yet in any line.
    unreported: u64,
}

/// What `LogThrottle::event` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write a line now; it stands for `events` events (this one and those counted before it).
    Write { events: u64 },
    /// Counted; a later line reports it.
    Counted,
}

impl LogThrottle {
    pub(crate) const fn new(interval: Duration, max_kinds: usize) -> Self {
        LogThrottle {
            interval,
            max_kinds,
            kinds: Mutex::new(None),
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    fn kinds(&self) -> MutexGuard<'_, Option<HashMap<String, Window>>> {
        // A panic while holding the lock leaves at worst a wrong count behind: keep going.
        self.kinds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One event of `kind`: decides whether it gets a line of its own.
    pub(crate) fn event(&self, kind: &str, level: Level, now: Instant) -> Verdict {
        let mut guard = self.kinds();
        let kinds = guard.get_or_insert_with(HashMap::new);
        let key = if kinds.contains_key(kind) || kinds.len() < self.max_kinds {
            kind
        } else {
            OVERFLOW_KIND
        };
        match kinds.get_mut(key) {
            Some(window) if now.saturating_duration_since(window.opened) < self.interval => {
                window.unreported += 1;
                Verdict::Counted
            }
            Some(window) => {
                let events = window.unreported + 1;
                window.opened = now;
                window.unreported = 0;
                window.level = level;
                Verdict::Write { events }
            }
            None => {
                kinds.insert(
                    key.to_string(),
                    Window {
                        opened: now,
                        level,
                        unreported: 0,
                    },
                );
                Verdict::Write { events: 1 }
            }
        }
    }

    /// The counts whose interval is over, as (kind, level, events); each is then reported. Kinds
    /// quiet for a whole interval are forgotten, so the map holds only what is repeating.
    pub(crate) fn due(&self, now: Instant) -> Vec<(String, Level, u64)> {
        let mut guard = self.kinds();
        let Some(kinds) = guard.as_mut() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        kinds.retain(|kind, window| {
            if now.saturating_duration_since(window.opened) < self.interval {
                return true;
            }
            if window.unreported == 0 {
                return false;
            }
            due.push((kind.clone(), window.level, window.unreported));
            window.unreported = 0;
            // The summary line starts a new interval: a flood that goes on gets one line per
            // interval, not one per event after each summary.
            window.opened = now;
            true
        });
        due
    }

    /// Logs `kind` (the line's fixed text) with `detail` (what this event adds, e.g. the
    /// client's IP), unless a line of this kind was written within the interval.
    pub(crate) fn log(&self, level: Level, kind: &str, detail: Option<&dyn std::fmt::Display>) {
        if !log::log_enabled!(target: "wxauth", level) {
            return;
        }
        if let Verdict::Write { events } = self.event(kind, level, Instant::now()) {
            // Details can hold what an upstream or a client wrote: escaped, so a newline in
            // them cannot forge a log line of its own.
            let detail = detail
                .map(|d| format!(" ({})", d.to_string().escape_debug()))
                .unwrap_or_default();
            if events > 1 {
                log::log!(
                    target: "wxauth",
                    level,
                    "{kind}{detail} [{events} times in the last {} s]",
                    self.interval.as_secs()
                );
            } else {
                log::log!(target: "wxauth", level, "{kind}{detail}");
            }
        }
    }

    /// Writes the summary lines that are due.
    pub(crate) fn flush(&self) {
        for (kind, level, events) in self.due(Instant::now()) {
            log::log!(
                target: "wxauth",
                level,
                "{kind} [{events} more in the last {} s]",
                self.interval.as_secs()
            );
        }
    }
}

/// The process's throttle for errors an outsider can repeat at will: errno 502/716 causes,
/// WeChat unreachable, wrong admin tokens.
pub(crate) static ERRORS: LogThrottle = LogThrottle::new(Duration::from_secs(10), 64);

/// The process's throttle for events that are normal under overload and come by the thousand:
/// busy refusals, login_log rows dropped. One line per second per kind, then the count.
pub(crate) static OVERLOAD: LogThrottle = LogThrottle::new(Duration::from_secs(1), 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_written_repeats_are_counted_and_summed_up_once_per_interval() {
        let t = LogThrottle::new(Duration::from_secs(10), 8);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(
            t.event("deadline", Level::Error, at(0)),
            Verdict::Write { events: 1 }
        );
        for i in 1..=1600 {
            assert_eq!(t.event("deadline", Level::Error, at(i)), Verdict::Counted);
        }
        assert_eq!(
            t.event("database down", Level::Error, at(5)),
            Verdict::Write { events: 1 },
            "another kind has its own count"
        );
        assert!(t.due(at(9_000)).is_empty(), "the interval is not over");
        assert_eq!(
            t.due(at(10_000)),
            vec![("deadline".to_string(), Level::Error, 1600)]
        );
        // The summary opened a new interval: the flood goes on, still one line per interval.
        assert_eq!(
            t.event("deadline", Level::Error, at(10_500)),
            Verdict::Counted
        );
        assert_eq!(
            t.event("deadline", Level::Error, at(20_000)),
            Verdict::Write { events: 2 },
            "an event after the interval carries the count itself"
        );
        // Quiet kinds are forgotten; "database down" had nothing to report.
        assert!(t.due(at(40_000)).is_empty());
        assert_eq!(
            t.event("database down", Level::Error, at(40_001)),
            Verdict::Write { events: 1 }
        );
    }

    #[test]
    fn kinds_beyond_the_bound_share_one_count() {
        let t = LogThrottle::new(Duration::from_secs(1), 2);
        let now = Instant::now();
        for kind in ["a", "b"] {
            assert_eq!(
                t.event(kind, Level::Warn, now),
                Verdict::Write { events: 1 }
            );
        }
        assert_eq!(
            t.event("c", Level::Warn, now),
            Verdict::Write { events: 1 },
            "the overflow kind's first line"
        );
        for i in 0..1000 {
            assert_eq!(
                t.event(&format!("kind {i}"), Level::Warn, now),
                Verdict::Counted
            );
        }
        let due = t.due(now + Duration::from_secs(1));
        assert_eq!(due, vec![(OVERFLOW_KIND.to_string(), Level::Warn, 1000)]);
    }
}
