//! What the service keeps about one user, read for `auth/export` (a copy of one's personal data).
//! Read in one repeatable-read transaction, so the parts agree with each other.

use diesel::prelude::*;

use super::DbError;
use super::schema::{
    account_merge, login_log, meeting, meeting_member, meeting_reminder, user_identity,
    user_session, wx_user,
};
use crate::domain::{LoginLogEntry, Meeting, PersonalData, WxUser};

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
                .select(WxUser::as_select())
                .first(conn)
                .optional()?
            else {
                return Ok(None);
            };
            let sessions = user_session::table
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
                .load(conn)?;
            let logins = login_log::table
                .filter(login_log::user_id.eq(user_id))
                .order((login_log::add_time.desc(), login_log::id.desc()))
                .select(LoginLogEntry::as_select())
                .limit(MAX_ROWS)
                .load(conn)?;
            let published = meeting::table
                .filter(meeting::publisher_id.eq(user_id))
                .order((meeting::start_time.desc(), meeting::id.desc()))
                .select(Meeting::as_select())
                .limit(MAX_ROWS)
                .load(conn)?;
            let joined = meeting_member::table
                .inner_join(meeting::table)
                .filter(meeting_member::user_id.eq(user_id))
                .order((meeting_member::join_time.desc(), meeting::id.desc()))
                .select((Meeting::as_select(), meeting_member::join_time))
                .limit(MAX_ROWS)
                .load(conn)?;
            let reminders = meeting_reminder::table
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
                .load(conn)?;
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
                user,
                sessions,
                logins,
                published,
                joined,
                reminders,
                identities,
                merged,
            }))
        })
}
