//! China Standard Time (UTC+8 all year, no daylight saving): the clock the mini-program's users
//! read. Answers show times on it, and a time a client gives without an offset is read on it.

use chrono::{DateTime, FixedOffset, NaiveDateTime, NaiveTime, Utc};

const CHINA: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// `t` on China's clock.
pub fn china_time(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&CHINA)
}

/// `yyyy-MM-dd HH:mm:ss` on China's clock: how the API shows a moment, as litemall-style
/// clients expect it.
pub(crate) fn china_clock_text(t: DateTime<Utc>) -> String {
    china_time(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The instant a time read on China's clock stands for; `None` out of chrono's range.
pub(crate) fn from_china_clock(local: NaiveDateTime) -> Option<DateTime<Utc>> {
    local
        .and_local_timezone(CHINA)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// The midnight in China that begins `t`'s day there.
pub(crate) fn china_midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    from_china_clock(china_time(t).date_naive().and_time(NaiveTime::MIN)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn days_start_at_midnight_in_china() {
        // 2026-12-01 17:00 UTC is already 2026-12-02 01:00 in Beijing.
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 17, 0, 0).unwrap();
        assert_eq!(china_time(now).to_rfc3339(), "2026-12-02T01:00:00+08:00");
        assert_eq!(
            china_midnight(now),
            Utc.with_ymd_and_hms(2026, 12, 1, 16, 0, 0).unwrap()
        );
        let morning = Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap();
        assert_eq!(
            china_midnight(morning),
            Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap()
        );
        assert_eq!(from_china_clock(china_time(now).naive_local()), Some(now));
    }
}
