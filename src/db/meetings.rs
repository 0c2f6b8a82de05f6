//! Queries on meetings and who joined them, as plain functions on a connection.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::dsl::{count_star, exists};
use diesel::prelude::*;

use super::models::{MeetingRow, NewMeeting, NewMeetingMember};
use super::schema::{meeting, meeting_member, wx_user};
use super::{DbError, users};
use crate::domain::{
    JoinOutcome, Meeting, MeetingDraft, MeetingInfo, MeetingPage, ReviewDecision, ReviewOutcome,
    UserMeetingCounts, meeting_state, review_state,
};

/// Meetings others may see (not pending review, not rejected) by start time, newest first,
/// optionally of one state only. Ties are broken by id so that consecutive pages neither repeat
/// nor skip a meeting.
pub(crate) fn list(
    conn: &mut PgConnection,
    state: Option<i16>,
    offset: i64,
    limit: i64,
) -> Result<MeetingPage, DbError> {
    let mut count = meeting::table
        .filter(meeting::review_state.eq(review_state::VISIBLE))
        .into_boxed();
    let mut page = meeting::table
        .inner_join(wx_user::table)
        .filter(meeting::review_state.eq(review_state::VISIBLE))
        .select((MeetingRow::as_select(), wx_user::nickname))
        .into_boxed();
    if let Some(state) = state {
        count = count.filter(meeting::state.eq(state));
        page = page.filter(meeting::state.eq(state));
    }
    let total = count.count().get_result(conn)?;
    let rows = page
        .order((meeting::start_time.desc(), meeting::id.desc()))
        .offset(offset)
        .limit(limit)
        .load::<(MeetingRow, String)>(conn)?;
    Ok(MeetingPage {
        items: with_member_counts(conn, rows)?,
        total,
    })
}

/// The next published meetings others may see that have not started yet, soonest first.
pub(crate) fn upcoming(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<MeetingInfo>, DbError> {
    let rows = meeting::table
        .inner_join(wx_user::table)
        .filter(meeting::state.eq(meeting_state::PUBLISHED))
        .filter(meeting::review_state.eq(review_state::VISIBLE))
        .filter(meeting::start_time.gt(now))
        .order((meeting::start_time.asc(), meeting::id.asc()))
        .limit(limit)
        .select((MeetingRow::as_select(), wx_user::nickname))
        .load::<(MeetingRow, String)>(conn)?;
    with_member_counts(conn, rows)
}

pub(crate) fn find(conn: &mut PgConnection, id: i64) -> Result<Option<MeetingInfo>, DbError> {
    let row = meeting::table
        .inner_join(wx_user::table)
        .filter(meeting::id.eq(id))
        .select((MeetingRow::as_select(), wx_user::nickname))
        .first::<(MeetingRow, String)>(conn)
        .optional()?;
    match row {
        Some(row) => Ok(with_member_counts(conn, vec![row])?.pop()),
        None => Ok(None),
    }
}

/// Publishes a new meeting at `now`, if its publisher is usable; `review` is its
/// `review_state` (pending when the content check asked for a review). One transaction, so a
/// failure after the insert cannot leave a meeting behind that the client never heard of (and
/// would publish a second time).
pub(crate) fn publish(
    conn: &mut PgConnection,
    publisher_id: i64,
    draft: &MeetingDraft,
    review: i16,
    now: DateTime<Utc>,
) -> Result<MeetingInfo, DbError> {
    let new = NewMeeting {
        title: draft.title.clone(),
        content: draft.content.clone(),
        location: draft.location.clone(),
        start_time: draft.start_time,
        end_time: draft.end_time,
        publisher_id,
        state: meeting_state::PUBLISHED,
        cover: draft.cover.clone(),
        add_time: now,
        update_time: now,
        review_state: review,
    };
    conn.transaction(|conn| {
        users::lock_usable(conn, publisher_id)?;
        let meeting: Meeting = diesel::insert_into(meeting::table)
            .values(&new)
            .returning(MeetingRow::as_returning())
            .get_result::<MeetingRow>(conn)?
            .into();
        let publisher_nickname = wx_user::table
            .find(meeting.publisher_id)
            .select(wx_user::nickname)
            .first(conn)?;
        Ok(MeetingInfo {
            meeting,
            publisher_nickname,
            member_count: 0,
        })
    })
}

/// Makes the user a member, if the user is usable. Concurrent joins of one user meet at the
/// primary key and end in one row. A member asking again is answered as joined even once the
/// meeting is closed: the tap that counts is the first one.
pub(crate) fn join(
    conn: &mut PgConnection,
    meeting_id: i64,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<JoinOutcome, DbError> {
    conn.transaction(|conn| {
        users::lock_usable(conn, user_id)?;
        join_as_usable(conn, meeting_id, user_id, now)
    })
}

fn join_as_usable(
    conn: &mut PgConnection,
    meeting_id: i64,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<JoinOutcome, DbError> {
    let found = meeting::table
        .find(meeting_id)
        .select((
            meeting::state,
            meeting::end_time,
            meeting::review_state,
            meeting::publisher_id,
        ))
        .first::<(i16, DateTime<Utc>, i16, i64)>(conn)
        .optional()?;
    let Some((state, end_time, review, publisher_id)) = found else {
        return Ok(JoinOutcome::NoSuchMeeting);
    };
    // A meeting others cannot see cannot be joined by them either.
    if review != review_state::VISIBLE && publisher_id != user_id {
        return Ok(JoinOutcome::NoSuchMeeting);
    }
    let closed = if state == meeting_state::CANCELLED {
        Some(JoinOutcome::Cancelled)
    } else if end_time <= now {
        Some(JoinOutcome::Ended)
    } else {
        None
    };
    if let Some(refusal) = closed {
        if !is_member(conn, meeting_id, user_id)? {
            return Ok(refusal);
        }
    } else {
        diesel::insert_into(meeting_member::table)
            .values(&NewMeetingMember {
                meeting_id,
                user_id,
                join_time: now,
            })
            .on_conflict((meeting_member::meeting_id, meeting_member::user_id))
            .do_nothing()
            .execute(conn)?;
    }
    Ok(JoinOutcome::Joined {
        member_count: member_count(conn, meeting_id)?,
    })
}

/// Ends the user's membership, if the user is usable; not being a member is fine. `None` when
/// there is no such meeting, else the meeting's member count afterwards.
pub(crate) fn leave(
    conn: &mut PgConnection,
    meeting_id: i64,
    user_id: i64,
) -> Result<Option<i64>, DbError> {
    conn.transaction(|conn| {
        users::lock_usable(conn, user_id)?;
        let known: bool =
            diesel::select(exists(meeting::table.find(meeting_id))).get_result(conn)?;
        if !known {
            return Ok(None);
        }
        diesel::delete(meeting_member::table.find((meeting_id, user_id))).execute(conn)?;
        Ok(Some(member_count(conn, meeting_id)?))
    })
}

/// An admin's decision on a meeting: approve shows it to everyone, reject takes it out of every
/// list. Approving a rejected meeting is refused (reject is final: its publisher was told); a
/// decision repeated is answered as done.
pub(crate) fn review(
    conn: &mut PgConnection,
    id: i64,
    decision: ReviewDecision,
    now: DateTime<Utc>,
) -> Result<ReviewOutcome, DbError> {
    conn.transaction(|conn| {
        let current = meeting::table
            .find(id)
            .select(meeting::review_state)
            .for_update()
            .first::<i16>(conn)
            .optional()?;
        let Some(current) = current else {
            return Ok(ReviewOutcome::NoSuchMeeting);
        };
        let wanted = match decision {
            ReviewDecision::Approve if current == review_state::REJECTED => {
                return Ok(ReviewOutcome::AlreadyRejected);
            }
            ReviewDecision::Approve => review_state::VISIBLE,
            ReviewDecision::Reject => review_state::REJECTED,
        };
        if wanted != current {
            diesel::update(meeting::table.find(id))
                .set((
                    meeting::review_state.eq(wanted),
                    meeting::update_time.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(ReviewOutcome::Decided {
            review_state: wanted,
        })
    })
}

/// The meetings waiting for an admin's review, oldest first, at most `limit`.
pub(crate) fn pending_review(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<MeetingInfo>, DbError> {
    let rows = meeting::table
        .inner_join(wx_user::table)
        .filter(meeting::review_state.eq(review_state::PENDING))
        .order((meeting::add_time.asc(), meeting::id.asc()))
        .limit(limit)
        .select((MeetingRow::as_select(), wx_user::nickname))
        .load::<(MeetingRow, String)>(conn)?;
    with_member_counts(conn, rows)
}

/// How many meetings each user published and joined, in one statement, for batched `user/index`
/// reads. A user id with no row anywhere still gets its zeros: the counts do not check the user
/// exists.
pub(crate) fn counts_for_users(
    conn: &mut PgConnection,
    user_ids: &[i64],
) -> Result<HashMap<i64, UserMeetingCounts>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        published: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        joined: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT u.id, \
                (SELECT count(*) FROM meeting WHERE publisher_id = u.id) AS published, \
                (SELECT count(*) FROM meeting_member WHERE user_id = u.id) AS joined \
         FROM unnest($1) AS u(id)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(user_ids)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let counts = UserMeetingCounts {
                published: r.published,
                joined: r.joined,
            };
            (r.id, counts)
        })
        .collect())
}

fn is_member(conn: &mut PgConnection, meeting_id: i64, user_id: i64) -> Result<bool, DbError> {
    Ok(
        diesel::select(exists(meeting_member::table.find((meeting_id, user_id))))
            .get_result(conn)?,
    )
}

fn member_count(conn: &mut PgConnection, meeting_id: i64) -> Result<i64, DbError> {
    Ok(meeting_member::table
        .filter(meeting_member::meeting_id.eq(meeting_id))
        .count()
        .get_result(conn)?)
}

/// Adds the member counts of a page of meetings in one grouped query rather than one per row.
fn with_member_counts(
    conn: &mut PgConnection,
    rows: Vec<(MeetingRow, String)>,
) -> Result<Vec<MeetingInfo>, DbError> {
    let rows: Vec<(Meeting, String)> = rows.into_iter().map(|(m, n)| (m.into(), n)).collect();
    let ids: Vec<i64> = rows.iter().map(|(m, _)| m.id).collect();
    let counts: HashMap<i64, i64> = if ids.is_empty() {
        HashMap::new()
    } else {
        meeting_member::table
            .filter(meeting_member::meeting_id.eq_any(&ids))
            .group_by(meeting_member::meeting_id)
            .select((meeting_member::meeting_id, count_star()))
            .load::<(i64, i64)>(conn)?
            .into_iter()
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|(meeting, publisher_nickname)| MeetingInfo {
            member_count: counts.get(&meeting.id).copied().unwrap_or(0),
            meeting,
            publisher_nickname,
        })
        .collect())
}
