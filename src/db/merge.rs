//! Merging two accounts that turn out to be one person: the older survives and takes in the
//! other's identities, meetings, memberships, login history and (when it has none) phone; the
//! other's row goes, and with it its sessions (the trigger tells every instance: 501, so its
//! client logs in again and lands on the survivor). One transaction; both rows are locked in id
//! order (as every other writer takes one user's row), and the reason for the merge is checked
//! again under the locks, so two logins revealing the same pair merge it once.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::DbError;
use super::schema::{account_merge, wx_user};
use crate::domain::WxUser;

/// What revealed that two accounts are one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MergeReason {
    /// A login reported a unionid another account holds.
    Unionid,
}

impl MergeReason {
    fn as_str(self) -> &'static str {
        match self {
            MergeReason::Unionid => "unionid",
        }
    }
}

/// A merge that happened.
pub(crate) struct Merged {
    pub(crate) survivor: WxUser,
    pub(crate) merged_id: i64,
}

/// Merges `a` (whose login reported `unionid`) and `b` (which holds it), keeping the login's
/// session `session_id` (made for `a`) on the survivor. `None` when, under the locks, it is no
/// longer so: another login merged them first, or either account changed.
pub(crate) fn merge_by_unionid(
    conn: &mut PgConnection,
    a: i64,
    b: i64,
    unionid: &str,
    session_id: &str,
) -> Result<Option<Merged>, DbError> {
    conn.transaction(|conn| {
        let mut locked: Vec<WxUser> = wx_user::table
            .filter(wx_user::id.eq_any([a, b]))
            .order(wx_user::id)
            .for_update()
            .select(WxUser::as_select())
            .load(conn)?;
        if locked.len() != 2 {
            return Ok(None);
        }
        let (Some(user_a), Some(user_b)) = (
            locked.iter().find(|u| u.id == a),
            locked.iter().find(|u| u.id == b),
        ) else {
            return Ok(None);
        };
        let still_so = user_a.unionid.is_none()
            && user_b.unionid.as_deref() == Some(unionid)
            && user_a.is_usable()
            && user_b.is_usable();
        if !still_so {
            return Ok(None);
        }
        // The older account survives: its userId is the one the person has had longest.
        locked.sort_by_key(|u| (u.add_time, u.id));
        let survivor = locked[0].clone();
        let merged = locked[1].clone();
        let moves = [
            "UPDATE meeting SET publisher_id = $1 WHERE publisher_id = $2",
            "INSERT INTO meeting_member (meeting_id, user_id, join_time)
             SELECT meeting_id, $1, join_time FROM meeting_member WHERE user_id = $2
             ON CONFLICT DO NOTHING",
            "UPDATE login_log SET user_id = $1 WHERE user_id = $2",
            "UPDATE user_identity SET user_id = $1 WHERE user_id = $2",
            "UPDATE wx_user SET share_user_id = $1 WHERE share_user_id = $2",
            "UPDATE account_merge SET survivor_id = $1 WHERE survivor_id = $2",
        ];
        for statement in moves {
            diesel::sql_query(statement)
                .bind::<BigInt, _>(survivor.id)
                .bind::<BigInt, _>(merged.id)
                .execute(conn)?;
        }
        diesel::sql_query("DELETE FROM meeting_member WHERE user_id = $1")
            .bind::<BigInt, _>(merged.id)
            .execute(conn)?;
        diesel::sql_query("UPDATE user_session SET user_id = $1 WHERE id = $2")
            .bind::<BigInt, _>(survivor.id)
            .bind::<Text, _>(session_id)
            .execute(conn)?;
        // The unique phone and unionid are freed on the merged row before the survivor takes
        // them; the row itself goes last, its sessions with it.
        diesel::update(wx_user::table.find(merged.id))
            .set((wx_user::mobile.eq(""), wx_user::unionid.eq(None::<String>)))
            .execute(conn)?;
        let mobile = if survivor.mobile.is_empty() {
            merged.mobile.clone()
        } else {
            survivor.mobile.clone()
        };
        let survivor: WxUser = diesel::update(wx_user::table.find(survivor.id))
            .set((
                wx_user::mobile.eq(mobile),
                wx_user::unionid.eq(Some(unionid)),
                wx_user::update_time.eq(diesel::dsl::now),
            ))
            .returning(WxUser::as_returning())
            .get_result(conn)?;
        diesel::insert_into(account_merge::table)
            .values((
                account_merge::survivor_id.eq(survivor.id),
                account_merge::merged_id.eq(merged.id),
                account_merge::reason.eq(MergeReason::Unionid.as_str()),
            ))
            .execute(conn)?;
        diesel::delete(wx_user::table.find(merged.id)).execute(conn)?;
        Ok(Some(Merged {
            survivor,
            merged_id: merged.id,
        }))
    })
}
