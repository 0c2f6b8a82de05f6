//! Merging two accounts that turn out to be one person: the older survives and takes in the
//! other's identities, meetings, memberships, login history and (when it has none) phone; the
//! other's row goes, and with it its sessions (the trigger tells every instance: 501, so its
//! client logs in again and lands on the survivor). One transaction; both rows are locked in id
//! order (as every other writer takes one user's row), and the reason for the merge is checked
//! again under the locks, so two logins revealing the same pair merge it once.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::DbError;
use super::models::WxUserRow;
use super::schema::{account_merge, user_identity, wx_user};
use crate::domain::{Identity, WxUser};

/// What revealed that two accounts are one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MergeReason {
    /// A login reported a unionid another account holds.
    Unionid,
    /// The person linked another app's identity, which another account had, by hand.
    Link,
}

impl MergeReason {
    fn as_str(self) -> &'static str {
        match self {
            MergeReason::Unionid => "unionid",
            MergeReason::Link => "link",
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
        let mut locked = lock_users(conn, &[a, b])?;
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
        let survivor = merge_into(
            conn,
            &locked[0],
            &locked[1],
            Some(unionid),
            MergeReason::Unionid,
            Some(session_id),
        )?;
        let merged_id = locked[1].id;
        Ok(Some(Merged {
            survivor,
            merged_id,
        }))
    })
}

/// Moves everything of `merged` to `survivor` and deletes `merged`, in the caller's transaction,
/// which holds both rows locked. `unionid`: the person's, which the survivor takes. `session_id`:
/// a session made for `merged` by the login that revealed the merge, kept on the survivor.
fn merge_into(
    conn: &mut PgConnection,
    survivor: &WxUser,
    merged: &WxUser,
    unionid: Option<&str>,
    reason: MergeReason,
    session_id: Option<&str>,
) -> Result<WxUser, DbError> {
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
    if let Some(session_id) = session_id {
        diesel::sql_query("UPDATE user_session SET user_id = $1 WHERE id = $2")
            .bind::<BigInt, _>(survivor.id)
            .bind::<Text, _>(session_id)
            .execute(conn)?;
    }
    // The unique phone and unionid are freed on the merged row before the survivor takes them;
    // the row itself goes last, its sessions with it.
    diesel::update(wx_user::table.find(merged.id))
        .set((wx_user::mobile.eq(""), wx_user::unionid.eq(None::<String>)))
        .execute(conn)?;
    let mobile = if survivor.mobile.is_empty() {
        merged.mobile.clone()
    } else {
        survivor.mobile.clone()
    };
    let unionid = survivor
        .unionid
        .clone()
        .or_else(|| unionid.map(str::to_string))
        .or_else(|| merged.unionid.clone());
    let survivor: WxUserRow = diesel::update(wx_user::table.find(survivor.id))
        .set((
            wx_user::mobile.eq(mobile),
            wx_user::unionid.eq(unionid),
            wx_user::update_time.eq(diesel::dsl::now),
        ))
        .returning(WxUserRow::as_returning())
        .get_result(conn)?;
    diesel::insert_into(account_merge::table)
        .values((
            account_merge::survivor_id.eq(survivor.id),
            account_merge::merged_id.eq(merged.id),
            account_merge::reason.eq(reason.as_str()),
        ))
        .execute(conn)?;
    diesel::delete(wx_user::table.find(merged.id)).execute(conn)?;
    Ok(survivor.into())
}

/// `auth/link_weixin` and `auth/link_wecom`: attaches `identity` (with the `unionid` WeChat
/// reported with it) to user `caller`. Every other account that had it, or has the unionid (two
/// accounts when they are not the same one), is merged into the caller's: the person chose this
/// account. `None` when the caller may not act (disabled, deleted); otherwise the caller's row
/// and the ids of the accounts merged into it.
pub(crate) fn link(
    conn: &mut PgConnection,
    caller: i64,
    identity: &Identity,
    unionid: Option<&str>,
) -> Result<Option<(WxUser, Vec<i64>)>, DbError> {
    conn.transaction(|conn| {
        let owner: Option<i64> = user_identity::table
            .filter(user_identity::app_id.eq(&identity.app_id))
            .filter(user_identity::subject.eq(&identity.subject))
            .select(user_identity::user_id)
            .first(conn)
            .optional()?;
        let unionid_owner: Option<i64> = match unionid {
            Some(u) => wx_user::table
                .filter(wx_user::unionid.eq(u))
                .select(wx_user::id)
                .first(conn)
                .optional()?,
            None => None,
        };
        // The unionid's holder first: merging it frees the unionid before the caller takes it.
        let mut others: Vec<i64> = Vec::new();
        for other in [unionid_owner, owner].into_iter().flatten() {
            if other != caller && !others.contains(&other) {
                others.push(other);
            }
        }
        let ids: Vec<i64> = std::iter::once(caller)
            .chain(others.iter().copied())
            .collect();
        let locked = lock_users(conn, &ids)?;
        let Some(me) = locked
            .iter()
            .find(|u| u.id == caller)
            .filter(|u| u.is_usable())
        else {
            return Ok(None);
        };
        let mut me = me.clone();
        let mut merged = Vec::new();
        for id in others {
            // Gone meanwhile (merged by another login): nothing of it is left to take in.
            let Some(other) = locked.iter().find(|u| u.id == id) else {
                continue;
            };
            me = merge_into(conn, &me, other, unionid, MergeReason::Link, None)?;
            merged.push(id);
        }
        diesel::sql_query(
            "INSERT INTO user_identity (user_id, kind, app_id, subject, unionid, last_login_time)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (app_id, subject) DO UPDATE SET user_id = EXCLUDED.user_id",
        )
        .bind::<BigInt, _>(caller)
        .bind::<diesel::sql_types::SmallInt, _>(identity.kind as i16)
        .bind::<Text, _>(&identity.app_id)
        .bind::<Text, _>(&identity.subject)
        .bind::<diesel::sql_types::Nullable<Text>, _>(unionid)
        .execute(conn)?;
        if let (None, Some(u)) = (&me.unionid, unionid) {
            me = diesel::update(wx_user::table.find(caller))
                .set(wx_user::unionid.eq(u))
                .returning(WxUserRow::as_returning())
                .get_result::<WxUserRow>(conn)?
                .into();
        }
        Ok(Some((me, merged)))
    })
}

/// The users among `ids`, locked for update in id order.
fn lock_users(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<WxUser>, DbError> {
    Ok(wx_user::table
        .filter(wx_user::id.eq_any(ids))
        .order(wx_user::id)
        .for_update()
        .select(WxUserRow::as_select())
        .load::<WxUserRow>(conn)?
        .into_iter()
        .map(WxUser::from)
        .collect())
}
