//! Meeting reminders: members' consents, and the sender's claim and outcome of each. See the
//! migration for the life of a row and why a claimed row is never sent twice.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int2, Nullable, Text, Timestamptz};

use super::schema::{meeting, meeting_member, meeting_reminder};
use super::{DbError, users};
use crate::domain::{meeting_state, review_state};

/// `meeting_reminder.status`.
pub(crate) mod reminder_status {
    pub(crate) const WAITING: i16 = 0;
    pub(crate) const SENDING: i16 = 1;
    pub(crate) const SENT: i16 = 2;
    pub(crate) const REFUSED: i16 = 3;
    pub(crate) const FAILED: i16 = 4;

    /// The word answers use.
    pub(crate) fn word(status: i16) -> &'static str {
        match status {
            WAITING => "waiting",
            SENDING => "sending",
            SENT => "sent",
            REFUSED => "refused",
            _ => "failed",
        }
    }
}
use reminder_status::*;

/// What a member's `meeting/subscribe` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscribeOutcome {
    /// Whether a reminder for this meeting is now due to the member (waiting, or already sent).
    Done {
        subscribed: bool,
    },
    NoSuchMeeting,
    NotMember,
    Cancelled,
    Started,
}

/// A member's answer to an app's reminder template, given in that app.
#[derive(Debug, Clone)]
pub(crate) struct Consent {
    pub(crate) meeting_id: i64,
    pub(crate) user_id: i64,
    /// The mini-program it was given in (the token's): the reminder goes out through it.
    pub(crate) app_id: String,
    pub(crate) template_id: String,
    /// `accept` and the like; false for `reject`, `ban`, `filter`.
    pub(crate) given: bool,
    pub(crate) at: DateTime<Utc>,
}

/// Records a member's answer to the reminder template: a consent gives one reminder for the
/// meeting (a reminder already sent stays the one); a decline changes nothing (an earlier
/// consent is still WeChat's to honour).
pub(crate) fn subscribe(
    conn: &mut PgConnection,
    consent: &Consent,
) -> Result<SubscribeOutcome, DbError> {
    let Consent {
        meeting_id,
        user_id,
        ref app_id,
        ref template_id,
        given,
        at: now,
    } = *consent;
    conn.transaction(|conn| {
        users::lock_usable(conn, user_id)?;
        let found = meeting::table
            .find(meeting_id)
            .select((
                meeting::state,
                meeting::start_time,
                meeting::review_state,
                meeting::publisher_id,
            ))
            .first::<(i16, DateTime<Utc>, i16, i64)>(conn)
            .optional()?;
        let Some((state, start_time, review, publisher_id)) = found else {
            return Ok(SubscribeOutcome::NoSuchMeeting);
        };
        if review != review_state::VISIBLE && publisher_id != user_id {
            return Ok(SubscribeOutcome::NoSuchMeeting);
        }
        let member: bool = diesel::select(diesel::dsl::exists(
            meeting_member::table.find((meeting_id, user_id)),
        ))
        .get_result(conn)?;
        if !member {
            return Ok(SubscribeOutcome::NotMember);
        }
        if state == meeting_state::CANCELLED {
            return Ok(SubscribeOutcome::Cancelled);
        }
        if start_time <= now {
            return Ok(SubscribeOutcome::Started);
        }
        let existing = meeting_reminder::table
            .find((meeting_id, user_id))
            .select(meeting_reminder::status)
            .for_update()
            .first::<i16>(conn)
            .optional()?;
        if given {
            match existing {
                None => {
                    diesel::insert_into(meeting_reminder::table)
                        .values((
                            meeting_reminder::meeting_id.eq(meeting_id),
                            meeting_reminder::user_id.eq(user_id),
                            meeting_reminder::app_id.eq(app_id),
                            meeting_reminder::template_id.eq(template_id),
                            meeting_reminder::status.eq(WAITING),
                            meeting_reminder::consented_at.eq(now),
                        ))
                        // A consent sent twice at once: the first row is the one.
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                }
                // A new consent revives a reminder WeChat refused or that failed, and renews
                // one still waiting (perhaps given in another app, for its template): the
                // newest consent is the one WeChat honours. One being sent or sent is left as
                // it is: one reminder per meeting.
                Some(WAITING | REFUSED | FAILED) => {
                    diesel::update(meeting_reminder::table.find((meeting_id, user_id)))
                        .set((
                            meeting_reminder::app_id.eq(app_id),
                            meeting_reminder::template_id.eq(template_id),
                            meeting_reminder::status.eq(WAITING),
                            meeting_reminder::consented_at.eq(now),
                            meeting_reminder::claimed_at.eq(None::<DateTime<Utc>>),
                            meeting_reminder::finished_at.eq(None::<DateTime<Utc>>),
                        ))
                        .execute(conn)?;
                }
                Some(_) => {}
            }
        }
        let status = meeting_reminder::table
            .find((meeting_id, user_id))
            .select(meeting_reminder::status)
            .first::<i16>(conn)
            .optional()?;
        Ok(SubscribeOutcome::Done {
            subscribed: matches!(status, Some(WAITING | SENDING | SENT)),
        })
    })
}

/// A reminder claimed for sending, with what its message says.
#[derive(Debug, Clone, QueryableByName)]
pub(crate) struct DueReminder {
    #[diesel(sql_type = BigInt)]
    pub(crate) meeting_id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) user_id: i64,
    /// The app the consent was given in, which sends it.
    #[diesel(sql_type = Text)]
    pub(crate) app_id: String,
    /// The member's openid in that app (the one place it is looked up); `None` when the member
    /// has no identity there any more.
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) openid: Option<String>,
    #[diesel(sql_type = Text)]
    pub(crate) title: String,
    #[diesel(sql_type = Text)]
    pub(crate) content: String,
    #[diesel(sql_type = Text)]
    pub(crate) location: String,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) start_time: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) end_time: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub(crate) publisher: String,
}

/// An app whose reminders are sent, with its template: only reminders given in it for that
/// template are claimed.
#[derive(Debug, Clone)]
pub(crate) struct SendingApp {
    pub(crate) app_id: String,
    pub(crate) template_id: String,
}

/// Claims up to `limit` waiting reminders of the `sending` apps (each for its template) whose
/// meeting starts after `now` and at most `lead` later: published, visible, the member still a
/// member and usable. A row's app `''` (written by the release before apps were recorded) is the
/// default app's. Rows another instance is claiming are skipped, and the claim is committed
/// before anything is sent.
///
/// The member's openid is the one of their identity in the reminder's app; a member made before
/// identities existed, not yet adopted, has only `wx_user.weixin_openid`, the default app's.
///
/// The claim starts from the meetings due, soonest first, and takes each one's waiting rows
/// through the partial index of waiting rows (a lateral subquery with its own limit, which the
/// planner cannot flatten into a join of every waiting row): a claim reads about the rows it
/// takes, however many are waiting, so a meeting of thousands does not make every claim a scan.
/// Rows another instance holds are skipped and the next meeting's taken.
pub(crate) fn claim_due(
    conn: &mut PgConnection,
    sending: &[SendingApp],
    default_appid: &str,
    now: DateTime<Utc>,
    lead: chrono::TimeDelta,
    limit: i64,
) -> Result<Vec<DueReminder>, DbError> {
    let apps: Vec<&str> = sending.iter().map(|a| a.app_id.as_str()).collect();
    let templates: Vec<&str> = sending.iter().map(|a| a.template_id.as_str()).collect();
    let rows = diesel::sql_query(
        "WITH sending AS ( \
             SELECT * FROM unnest($1::text[], $2::text[]) AS s(app_id, template_id) \
         ), due AS ( \
             SELECT r.meeting_id, r.user_id \
             FROM meeting m \
             CROSS JOIN LATERAL ( \
                 SELECT w.meeting_id, w.user_id \
                 FROM meeting_reminder w \
                 JOIN meeting_member mm ON mm.meeting_id = w.meeting_id AND mm.user_id = w.user_id \
                 JOIN wx_user u ON u.id = w.user_id \
                 WHERE w.meeting_id = m.id AND w.status = 0 \
                   AND (coalesce(nullif(w.app_id, ''), $3), w.template_id) \
                       IN (SELECT app_id, template_id FROM sending) \
                   AND u.status = 0 AND NOT u.deleted \
                 LIMIT $8 \
             ) waiting \
             JOIN meeting_reminder r \
               ON r.meeting_id = waiting.meeting_id AND r.user_id = waiting.user_id \
             WHERE m.state = $4 AND m.review_state = $5 \
               AND m.start_time > $6 AND m.start_time <= $7 \
               AND r.status = 0 \
             ORDER BY m.start_time, m.id \
             LIMIT $8 \
             FOR UPDATE OF r SKIP LOCKED \
         ), claimed AS ( \
             UPDATE meeting_reminder r SET status = 1, claimed_at = $6 \
             FROM due WHERE r.meeting_id = due.meeting_id AND r.user_id = due.user_id \
             RETURNING r.meeting_id, r.user_id, coalesce(nullif(r.app_id, ''), $3) AS app_id \
         ) \
         SELECT c.meeting_id, c.user_id, c.app_id::text AS app_id, \
                coalesce( \
                    (SELECT i.subject::text FROM user_identity i \
                      WHERE i.user_id = c.user_id AND i.kind = 1 AND i.app_id = c.app_id \
                      ORDER BY i.last_login_time DESC NULLS LAST, i.id DESC LIMIT 1), \
                    CASE WHEN c.app_id = $3 AND NOT EXISTS \
                             (SELECT 1 FROM user_identity i WHERE i.user_id = c.user_id) \
                         THEN u.weixin_openid::text END \
                ) AS openid, \
                m.title::text AS title, m.content, m.location::text AS location, \
                m.start_time, m.end_time, p.nickname::text AS publisher \
         FROM claimed c \
         JOIN meeting m ON m.id = c.meeting_id \
         JOIN wx_user u ON u.id = c.user_id \
         JOIN wx_user p ON p.id = m.publisher_id \
         ORDER BY m.start_time, c.meeting_id, c.user_id",
    )
    .bind::<Array<Text>, _>(apps)
    .bind::<Array<Text>, _>(templates)
    .bind::<Text, _>(default_appid)
    .bind::<Int2, _>(meeting_state::PUBLISHED)
    .bind::<Int2, _>(review_state::VISIBLE)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + lead)
    .bind::<BigInt, _>(limit)
    .load::<DueReminder>(conn)?;
    Ok(rows)
}

/// How a claimed reminder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    /// 43101: the member withdrew consent; dropped.
    Refused,
    /// Given up (an error that trying again would not fix).
    Failed,
    /// WeChat busy or slow: waiting again, for the next tick.
    Retry,
}

/// Writes the outcomes of claimed reminders, in one statement.
pub(crate) fn finish(
    conn: &mut PgConnection,
    outcomes: &[(i64, i64, Outcome)],
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let meetings: Vec<i64> = outcomes.iter().map(|o| o.0).collect();
    let users: Vec<i64> = outcomes.iter().map(|o| o.1).collect();
    let statuses: Vec<i16> = outcomes
        .iter()
        .map(|o| match o.2 {
            Outcome::Sent => SENT,
            Outcome::Refused => REFUSED,
            Outcome::Failed => FAILED,
            Outcome::Retry => WAITING,
        })
        .collect();
    Ok(diesel::sql_query(
        "UPDATE meeting_reminder r \
         SET status = o.status, \
             claimed_at = CASE WHEN o.status = 0 THEN NULL ELSE r.claimed_at END, \
             finished_at = CASE WHEN o.status = 0 THEN NULL ELSE $4 END \
         FROM unnest($1, $2, $3) AS o(meeting_id, user_id, status) \
         WHERE r.meeting_id = o.meeting_id AND r.user_id = o.user_id AND r.status = 1",
    )
    .bind::<Array<BigInt>, _>(meetings)
    .bind::<Array<BigInt>, _>(users)
    .bind::<Array<Int2>, _>(statuses)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?)
}

/// How many reminders are in each state, over every instance.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct ReminderCounts {
    pub(crate) waiting: i64,
    pub(crate) sending: i64,
    pub(crate) sent: i64,
    pub(crate) refused: i64,
    pub(crate) failed: i64,
}

pub(crate) fn counts(conn: &mut PgConnection) -> Result<ReminderCounts, DbError> {
    let rows: Vec<(i16, i64)> = meeting_reminder::table
        .group_by(meeting_reminder::status)
        .select((meeting_reminder::status, diesel::dsl::count_star()))
        .load(conn)?;
    let mut counts = ReminderCounts::default();
    for (status, n) in rows {
        match status {
            WAITING => counts.waiting = n,
            SENDING => counts.sending = n,
            SENT => counts.sent = n,
            REFUSED => counts.refused = n,
            _ => counts.failed += n,
        }
    }
    Ok(counts)
}
