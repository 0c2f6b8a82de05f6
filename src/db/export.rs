//! What the service keeps about one user, read for `auth/export` (a copy of one's personal data).
//! Read in one repeatable-read transaction, so the parts agree with each other.

use diesel::prelude::*;

use super::DbError;
use super::models::{LoginLogRow, MeetingRow, WxUserRow};
use super::schema::{
    account_merge, login_log, meeting, meeting_member, meeting_reminder, user_identity,
    user_session, wx_user,
};
use crate::domain::{PersonalData, ReminderRecord, SessionRecord};

/// At most this many login_log rows and meetings each: what retention keeps is normally far less,
/// and the answer must stay bounded whatever the table holds.
pub(crate) const MAX_ROWS: i64 = 1000;

/// `None`: no such user.
pub(crate) fn personal_data(
    conn: &mut PgConnection,
    user_id: i64,
) -> Result<Option<PersonalData>, DbError> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|conn| {
            let Some(user) = wx_user::table
                .find(user_id)
                .select(WxUserRow::as_select())
                .first::<WxUserRow>(conn)
                .optional()?
            else {
                return Ok(None);
            };
            let sessions: Vec<SessionRecord> = user_session::table
                .filter(user_session::user_id.eq(user_id))
                .filter(user_session::revoked_at.is_null())
                .filter(user_session::expires_at.gt(diesel::dsl::now))
                .order(user_session::created_at.desc())
                .select((
                    user_session::id,
                    user_session::created_at,
                    user_session::last_seen_at,
                    user_session::expires_at,
                    user_session::client_ip,
                    user_session::user_agent,
                ))
                .limit(MAX_ROWS)
                .load(conn)?
                .into_iter()
                .map(
                    |(id, created_at, last_seen_at, expires_at, client_ip, user_agent)| {
                        SessionRecord {
                            id,
                            created_at,
                            last_seen_at,
                            expires_at,
                            client_ip,
                            user_agent,
                        }
                    },
                )
                .collect();
            let logins = login_log::table
                .filter(login_log::user_id.eq(user_id))
                .order((login_log::add_time.desc(), login_log::id.desc()))
                .select(LoginLogRow::as_select())
                .limit(MAX_ROWS)
                .load::<LoginLogRow>(conn)?;
            let published = meeting::table
                .filter(meeting::publisher_id.eq(user_id))
                .order((meeting::start_time.desc(), meeting::id.desc()))
                .select(MeetingRow::as_select())
                .limit(MAX_ROWS)
                .load::<MeetingRow>(conn)?;
            let joined = meeting_member::table
                .inner_join(meeting::table)
                .filter(meeting_member::user_id.eq(user_id))
                .order((meeting_member::join_time.desc(), meeting::id.desc()))
                .select((MeetingRow::as_select(), meeting_member::join_time))
                .limit(MAX_ROWS)
                .load::<(MeetingRow, _)>(conn)?;
            let reminders: Vec<ReminderRecord> = meeting_reminder::table
                .inner_join(meeting::table)
                .filter(meeting_reminder::user_id.eq(user_id))
                .order((meeting_reminder::consented_at.desc(), meeting::id.desc()))
                .select((
                    meeting::id,
                    meeting::title,
                    meeting_reminder::status,
                    meeting_reminder::consented_at,
                    meeting_reminder::finished_at,
                ))
                .limit(MAX_ROWS)
                .load(conn)?
                .into_iter()
                .map(
                    |(meeting_id, title, status, consented_at, finished_at)| ReminderRecord {
                        meeting_id,
                        title,
                        status,
                        consented_at,
                        finished_at,
                    },
                )
                .collect();
            let identities = user_identity::table
                .filter(user_identity::user_id.eq(user_id))
                .order(user_identity::add_time)
                .select((
                    user_identity::kind,
                    user_identity::app_id,
                    user_identity::subject,
                ))
                .limit(MAX_ROWS)
                .load(conn)?;
            let merged = account_merge::table
                .filter(account_merge::survivor_id.eq(user_id))
                .order(account_merge::merged_at)
                .select((
                    account_merge::merged_id,
                    account_merge::reason,
                    account_merge::merged_at,
                ))
                .limit(MAX_ROWS)
                .load(conn)?;
            Ok(Some(PersonalData {
                user: user.into(),
                sessions,
                logins: logins.into_iter().map(Into::into).collect(),
                published: published.into_iter().map(Into::into).collect(),
                joined: joined.into_iter().map(|(m, at)| (m.into(), at)).collect(),
                reminders,
                identities,
                merged,
            }))
        })
}
