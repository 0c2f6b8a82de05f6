//! One log line per second per kind of event, instead of one per event: under overload a line
//! per refused request would cost as much as the refusal and bury everything else in the log.
//! `note` counts; the first event after a quiet second, and then at most one a second, writes
//! the count since the last line. `flush` (called every second by a timer) writes what the
//! last second counted even when no further event comes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);

pub struct SummaryLog {
    /// What the counted events are, e.g. "requests refused (server busy)".
    what: &'static str,
    /// Kinds are `&'static str` from the code, never from a client: the map stays small.
    kinds: Mutex<HashMap<&'static str, Tally>>,
}

struct Tally {
    count: u64,
    since: Instant,
    last_line: Option<Instant>,
}

impl SummaryLog {
    pub fn new(what: &'static str) -> SummaryLog {
        SummaryLog {
            what,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    pub fn note(&self, kind: &'static str) {
        let now = Instant::now();
        let line = {
            let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
            let tally = kinds.entry(kind).or_insert(Tally {
                count: 0,
                since: now,
                last_line: None,
            });
            tally.count += 1;
            Self::take_due(tally, now)
        };
        if let Some((count, over)) = line {
            self.write(kind, count, over);
        }
    }

    /// Writes the counts not yet written whose second is over.
    pub fn flush(&self) {
        let now = Instant::now();
        let lines: Vec<_> = {
            let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
            kinds
                .iter_mut()
                .filter_map(|(kind, tally)| {
                    if tally.count == 0 {
                        return None;
                    }
                    Self::take_due(tally, now).map(|(count, over)| (*kind, count, over))
                })
                .collect()
        };
        for (kind, count, over) in lines {
            self.write(kind, count, over);
        }
    }

    fn take_due(tally: &mut Tally, now: Instant) -> Option<(u64, Duration)> {
        let due = tally
            .last_line
            .is_none_or(|last| now.duration_since(last) >= EVERY);
        if !due {
            return None;
        }
        let count = std::mem::take(&mut tally.count);
        let over = now.duration_since(tally.since);
        tally.since = now;
        tally.last_line = Some(now);
        Some((count, over))
    }

    fn write(&self, kind: &str, count: u64, over: Duration) {
        log::warn!(
            "{}: {count} {kind} in the last {:.1} s",
            self.what,
            over.as_secs_f64()
        );
    }

    /// Counts not yet written, per kind (tests).
    pub fn pending(&self, kind: &str) -> u64 {
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        kinds.get(kind).map_or(0, |t| t.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_then_counts_until_the_second_is_over() {
        let log = SummaryLog::new("refused");
        log.note("login");
        // The first event writes at once; the next ones are counted.
        assert_eq!(log.pending("login"), 0);
        for _ in 0..1000 {
            log.note("login");
        }
        assert_eq!(log.pending("login"), 1000);
        log.note("read");
        assert_eq!(log.pending("read"), 0, "kinds are summarised apart");
        log.flush();
        assert_eq!(log.pending("login"), 1000, "not before the second is over");
    }
}
