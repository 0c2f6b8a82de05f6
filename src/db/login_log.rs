//! Queries on `login_log`: record an attempt, summarise the last hour for the admin page, prune.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz};

use super::DbError;
use super::models::{LoginLogRow, NewLoginLogEntry};
use super::schema::{login_log, wx_user};
use crate::domain::{AppCount, ErrnoCount, LoginAttempt, LoginLogEntry, LoginSummary, MinuteCount};

/// The chart's width: one bucket per minute of the last hour.
pub(crate) const CHART_MINUTES: usize = 60;

/// Rows per statement: PostgreSQL takes at most 65 535 bind parameters (six per row), and a
/// few hundred rows already make the commit's cost per row negligible.
pub(crate) const MAX_BATCH_ROWS: usize = 500;

/// Writes the rows with one multi-row insert per `MAX_BATCH_ROWS`, all in one transaction.
///
/// Rows are written a moment after their login, so a row's user may have been erased in
/// between. Such a row is stored anonymised, as the erasure would have left it: one missing user
/// must not fail the whole batch. The users' rows are key-share locked first, so an erasure
/// (which holds its user's row while it anonymises the log) either finishes before and the row
/// is anonymised here, or waits and anonymises it itself.
pub(crate) fn insert_many(
    conn: &mut PgConnection,
    entries: &[LoginAttempt],
) -> Result<usize, DbError> {
    if entries.is_empty() {
        return Ok(0);
    }
    conn.transaction(|conn| {
        let mut user_ids: Vec<i64> = entries.iter().filter_map(|e| e.user_id).collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let mut present: Vec<i64> = if user_ids.is_empty() {
            Vec::new()
        } else {
            wx_user::table
                .filter(wx_user::id.eq_any(&user_ids))
                .select(wx_user::id)
                .for_key_share()
                .load(conn)?
        };
        present.sort_unstable();
        let rows: Vec<NewLoginLogEntry> = entries
            .iter()
            .map(|e| match e.user_id {
                Some(id) if present.binary_search(&id).is_err() => NewLoginLogEntry {
                    app_id: e.app_id.clone(),
                    user_id: None,
                    openid_masked: String::new(),
                    ip: String::new(),
                    user_agent: String::new(),
                    errno: e.errno,
                    add_time: e.at,
                },
                _ => NewLoginLogEntry {
                    app_id: e.app_id.clone(),
                    user_id: e.user_id,
                    openid_masked: e.openid_masked.clone(),
                    ip: e.ip.chars().take(63).collect(),
                    user_agent: e.user_agent.clone(),
                    errno: e.errno,
                    add_time: e.at,
                },
            })
            .collect();
        let mut written = 0;
        for chunk in rows.chunks(MAX_BATCH_ROWS) {
            written += diesel::insert_into(login_log::table)
                .values(chunk)
                .execute(conn)?;
        }
        Ok(written)
    })
}

/// Deletes the rows logged before `cutoff`; answers how many.
pub fn prune(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(diesel::delete(login_log::table.filter(login_log::add_time.lt(cutoff))).execute(conn)?)
}

#[derive(QueryableByName)]
struct MinuteRow {
    #[diesel(sql_type = Timestamptz)]
    minute: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    success: i64,
    #[diesel(sql_type = BigInt)]
    failure: i64,
}

fn start_of_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::<Utc>::from_timestamp(secs - secs.rem_euclid(60), 0).unwrap_or(t)
}

/// What the admin page shows about logins, as seen at `now`.
pub(crate) fn summary(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    recent: i64,
) -> Result<LoginSummary, DbError> {
    #[derive(QueryableByName)]
    struct ErrnoRow {
        #[diesel(sql_type = Integer)]
        errno: i32,
        #[diesel(sql_type = BigInt)]
        last_minute: i64,
        #[diesel(sql_type = BigInt)]
        last_hour: i64,
    }
    let by_errno = diesel::sql_query(
        "SELECT errno,
                count(*) FILTER (WHERE add_time > $1) AS last_minute,
                count(*) AS last_hour
           FROM login_log
          WHERE add_time > $2
          GROUP BY errno
          ORDER BY errno",
    )
    .bind::<Timestamptz, _>(now - TimeDelta::minutes(1))
    .bind::<Timestamptz, _>(now - TimeDelta::hours(1))
    .load::<ErrnoRow>(conn)?
    .into_iter()
    .map(|r| ErrnoCount {
        errno: r.errno,
        last_minute: r.last_minute,
        last_hour: r.last_hour,
    })
    .collect();

    #[derive(QueryableByName)]
    struct AppRow {
        #[diesel(sql_type = Text)]
        app_id: String,
        #[diesel(sql_type = BigInt)]
        success: i64,
        #[diesel(sql_type = BigInt)]
        failure: i64,
    }
    let by_app = diesel::sql_query(
        "SELECT app_id,
                count(*) FILTER (WHERE errno = 0) AS success,
                count(*) FILTER (WHERE errno <> 0) AS failure
           FROM login_log
          WHERE add_time > $1
          GROUP BY app_id
          ORDER BY app_id",
    )
    .bind::<Timestamptz, _>(now - TimeDelta::hours(1))
    .load::<AppRow>(conn)?
    .into_iter()
    .map(|r| AppCount {
        app_id: r.app_id,
        success: r.success,
        failure: r.failure,
    })
    .collect();

    let first_minute = start_of_minute(now) - TimeDelta::minutes(CHART_MINUTES as i64 - 1);
    let rows: Vec<MinuteRow> = diesel::sql_query(
        "SELECT date_trunc('minute', add_time) AS minute,
                count(*) FILTER (WHERE errno = 0) AS success,
                count(*) FILTER (WHERE errno <> 0) AS failure
           FROM login_log
          WHERE add_time >= $1
          GROUP BY 1",
    )
    .bind::<Timestamptz, _>(first_minute)
    .load(conn)?;
    let per_minute = (0..CHART_MINUTES as i64)
        .map(|i| {
            let minute = first_minute + TimeDelta::minutes(i);
            let row = rows.iter().find(|r| r.minute == minute);
            MinuteCount {
                minute,
                success: row.map_or(0, |r| r.success),
                failure: row.map_or(0, |r| r.failure),
            }
        })
        .collect();

    // By the attempt's own time, not by id: rows are written by several DbExecutor threads, so
    // ids follow the order the inserts ran in, not the order the logins happened in.
    let recent = login_log::table
        .order((login_log::add_time.desc(), login_log::id.desc()))
        .limit(recent)
        .select(LoginLogRow::as_select())
        .load::<LoginLogRow>(conn)?
        .into_iter()
        .map(LoginLogEntry::from)
        .collect();

    Ok(LoginSummary {
        by_errno,
        by_app,
        per_minute,
        recent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_start_on_the_minute() {
        let t = DateTime::<Utc>::from_timestamp(1_790_000_123, 456).expect("time");
        assert_eq!(start_of_minute(t).timestamp(), 1_790_000_100);
    }
}
