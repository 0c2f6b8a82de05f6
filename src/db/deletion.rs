//! Account deletion: the request (status 2 and a row in `account_deletion`), the restore by a
//! login within the grace period, and the erasure of the personal data once it is over.
//!
//! Locks, so that concurrent requests, logins, admin deletions and sweepers on several instances
//! neither deadlock nor see a half-deleted user: everything that waits takes the user's `wx_user`
//! row first and its `account_deletion` row second. The sweeper takes them the other way round
//! but never waits for either (`SKIP LOCKED`), so it cannot close a cycle. Each user is erased in
//! one transaction: a crash mid-way rolls that user back whole, and the next sweep starts over.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;

use super::DbError;
use super::models::WxUserRow;
use super::schema::{account_deletion, login_log, meeting, meeting_member, wx_user};
use crate::domain::{DeletionCounts, Pending, Restore, WxUser, user_status};
use crate::wechat::mask_openid;

/// The `wx_user` row that publishes the meetings of deleted accounts, so the other members keep
/// them and nothing ties a meeting to the account it came from (nor two meetings of one deleted
/// user to each other). Its openid is not one WeChat issues (those are 28 characters of
/// `[A-Za-z0-9_-]`), so no login reaches it; it is disabled, so it never holds a session.
pub(crate) const STAND_IN_OPENID: &str = "(deleted account)";
/// The name the meetings of a deleted account show as their publisher.
pub const STAND_IN_NICKNAME: &str = "已注销用户";

/// Starts the deletion of the account: status 2 (the `wx_user_revoke_sessions` trigger revokes
/// every session and notifies every instance in this transaction) and a pending request due after
/// `grace`. Asking again while one is pending answers the pending one. `None`: no such user.
pub fn request(
    conn: &mut PgConnection,
    user_id: i64,
    grace: TimeDelta,
) -> Result<Option<Pending>, DbError> {
    conn.transaction(|conn| {
        let Some(user) = lock_user(conn, user_id)? else {
            return Ok(None);
        };
        let existing: Option<(DateTime<Utc>, DateTime<Utc>)> = account_deletion::table
            .filter(account_deletion::user_id.eq(user.id))
            .filter(account_deletion::completed_at.is_null())
            .select((account_deletion::requested_at, account_deletion::due_at))
            .first(conn)
            .optional()?;
        if let Some((requested_at, due_at)) = existing {
            return Ok(Some(Pending {
                requested_at,
                due_at,
            }));
        }
        let now: DateTime<Utc> =
            diesel::select(diesel::dsl::now.into_sql::<diesel::sql_types::Timestamptz>())
                .get_result(conn)?;
        let due_at = now + grace;
        diesel::insert_into(account_deletion::table)
            .values((
                account_deletion::user_id.eq(user.id),
                account_deletion::requested_at.eq(now),
                account_deletion::due_at.eq(due_at),
                account_deletion::prior_status.eq(user.status),
            ))
            .execute(conn)?;
        diesel::update(wx_user::table.find(user.id))
            .set((
                wx_user::status.eq(user_status::DELETION_PENDING),
                wx_user::update_time.eq(now),
            ))
            .execute(conn)?;
        Ok(Some(Pending {
            requested_at: now,
            due_at,
        }))
    })
}

#[derive(Queryable)]
struct PendingRow {
    id: i64,
    requested_at: DateTime<Utc>,
    prior_status: i16,
    /// Read with the database's clock, like `due_at` was written.
    in_grace: bool,
}

/// Cancels the user's pending deletion on a login that began at `login_began`.
pub(crate) fn restore(
    conn: &mut PgConnection,
    user_id: i64,
    login_began: DateTime<Utc>,
) -> Result<Restore, DbError> {
    conn.transaction(|conn| {
        let Some(user) = lock_user(conn, user_id)? else {
            return Ok(Restore::Gone);
        };
        let pending: Option<PendingRow> = account_deletion::table
            .filter(account_deletion::user_id.eq(user.id))
            .filter(account_deletion::completed_at.is_null())
            .select((
                account_deletion::id,
                account_deletion::requested_at,
                account_deletion::prior_status,
                account_deletion::due_at.gt(diesel::dsl::now),
            ))
            .for_update()
            .first(conn)
            .optional()?;
        let Some(PendingRow {
            id: request_id,
            requested_at,
            prior_status,
            in_grace,
        }) = pending
        else {
            return Ok(Restore::NothingPending);
        };
        if !in_grace {
            return Ok(Restore::Expired);
        }
        if requested_at >= login_began || prior_status != user_status::USABLE {
            return Ok(Restore::Kept);
        }
        diesel::delete(account_deletion::table.find(request_id)).execute(conn)?;
        diesel::update(wx_user::table.find(user.id))
            .set((
                wx_user::status.eq(prior_status),
                wx_user::update_time.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
        Ok(Restore::Restored)
    })
}

/// Erases the account now, whatever its state (usable, disabled, pending): the admin's deletion,
/// a deletion without grace period, and a login that finds the grace period over. `false`: no
/// such user (or already erased).
pub(crate) fn erase_now(conn: &mut PgConnection, user_id: i64) -> Result<bool, DbError> {
    conn.transaction(|conn| {
        let Some(user) = lock_user(conn, user_id)? else {
            return Ok(false);
        };
        let pending: Option<i64> = account_deletion::table
            .filter(account_deletion::user_id.eq(user.id))
            .filter(account_deletion::completed_at.is_null())
            .select(account_deletion::id)
            .for_update()
            .first(conn)
            .optional()?;
        let request_id = match pending {
            Some(id) => id,
            None => diesel::insert_into(account_deletion::table)
                .values((
                    account_deletion::user_id.eq(user.id),
                    account_deletion::due_at.eq(diesel::dsl::now),
                    account_deletion::prior_status.eq(user.status),
                ))
                .returning(account_deletion::id)
                .get_result(conn)?,
        };
        erase(conn, &user, request_id)?;
        Ok(true)
    })
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub erased: usize,
    /// Due, but another transaction holds the user (another instance's sweeper, a login, an
    /// admin): left for the next sweep.
    pub skipped: usize,
}

/// Erases up to `limit` accounts whose grace period is over, each in its own transaction.
/// Several instances may sweep at once: each request is taken by one of them, the others skip it.
pub(crate) fn sweep_due(conn: &mut PgConnection, limit: usize) -> Result<Swept, DbError> {
    let mut swept = Swept::default();
    let mut passed_over: Vec<i64> = Vec::new();
    while swept.erased + swept.skipped < limit {
        match sweep_one(conn, &passed_over)? {
            SweepOne::NothingDue => break,
            SweepOne::Erased => swept.erased += 1,
            SweepOne::Busy(request_id) => {
                swept.skipped += 1;
                passed_over.push(request_id);
            }
        }
    }
    Ok(swept)
}

enum SweepOne {
    NothingDue,
    Erased,
    Busy(i64),
}

fn sweep_one(conn: &mut PgConnection, passed_over: &[i64]) -> Result<SweepOne, DbError> {
    conn.transaction(|conn| {
        let due: Option<(i64, Option<i64>)> = account_deletion::table
            .filter(account_deletion::completed_at.is_null())
            .filter(account_deletion::due_at.le(diesel::dsl::now))
            .filter(diesel::dsl::not(account_deletion::id.eq_any(passed_over)))
            .order(account_deletion::due_at)
            .select((account_deletion::id, account_deletion::user_id))
            .limit(1)
            .for_update()
            .skip_locked()
            .first(conn)
            .optional()?;
        let Some((request_id, user_id)) = due else {
            return Ok(SweepOne::NothingDue);
        };
        let user = match user_id {
            Some(user_id) => {
                let locked = wx_user::table
                    .find(user_id)
                    .select(WxUserRow::as_select())
                    .for_update()
                    .skip_locked()
                    .first::<WxUserRow>(conn)
                    .optional()?;
                match locked {
                    Some(user) => Some(WxUser::from(user)),
                    None if user_exists(conn, user_id)? => return Ok(SweepOne::Busy(request_id)),
                    None => None,
                }
            }
            None => None,
        };
        match user {
            Some(user) => erase(conn, &user, request_id)?,
            // The account went some other way (a support engineer's DELETE): only the record
            // is left to close.
            None => close_request(conn, request_id)?,
        }
        Ok(SweepOne::Erased)
    })
}

fn user_exists(conn: &mut PgConnection, user_id: i64) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(wx_user::table.find(user_id))).get_result(conn)?)
}

/// The user's row, locked against every other deletion step and against rows that reference it
/// being added (a session, a membership, a log row: their foreign key checks wait for this lock
/// and then find the user gone). The stand-in publisher is never anybody's account.
fn lock_user(conn: &mut PgConnection, user_id: i64) -> Result<Option<WxUser>, DbError> {
    Ok(wx_user::table
        .find(user_id)
        .filter(wx_user::weixin_openid.ne(STAND_IN_OPENID))
        .select(WxUserRow::as_select())
        .for_update()
        .first::<WxUserRow>(conn)
        .optional()?
        .map(WxUser::from))
}

fn close_request(conn: &mut PgConnection, request_id: i64) -> Result<(), DbError> {
    diesel::update(account_deletion::table.find(request_id))
        .set((
            account_deletion::user_id.eq(None::<i64>),
            account_deletion::completed_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The erasure proper, inside the caller's transaction, which holds the user's row and request.
fn erase(conn: &mut PgConnection, user: &WxUser, request_id: i64) -> Result<(), DbError> {
    diesel::delete(meeting_member::table.filter(meeting_member::user_id.eq(user.id)))
        .execute(conn)?;

    let published: i64 = meeting::table
        .filter(meeting::publisher_id.eq(user.id))
        .count()
        .get_result(conn)?;
    if published > 0 {
        let stand_in = stand_in_publisher(conn)?;
        diesel::update(meeting::table.filter(meeting::publisher_id.eq(user.id)))
            .set(meeting::publisher_id.eq(stand_in))
            .execute(conn)?;
    }

    // The log keeps that a login happened, and its outcome, for the admin page's counts; nothing
    // says whose. Attempts that failed before the account was known carry only the masked openid.
    let masked = mask_openid(&user.weixin_openid);
    diesel::update(
        login_log::table.filter(
            login_log::user_id.eq(user.id).or(login_log::user_id
                .is_null()
                .and(login_log::openid_masked.eq(&masked))),
        ),
    )
    .set((
        login_log::user_id.eq(None::<i64>),
        login_log::openid_masked.eq(""),
        login_log::ip.eq(""),
        login_log::user_agent.eq(""),
    ))
    .execute(conn)?;

    diesel::update(wx_user::table.filter(wx_user::share_user_id.eq(user.id)))
        .set(wx_user::share_user_id.eq(None::<i64>))
        .execute(conn)?;

    close_request(conn, request_id)?;
    // Its sessions (and their sealed session_keys) go with it (ON DELETE CASCADE); the trigger
    // tells every instance to drop them from memory. The openid goes with the row, so the same
    // WeChat user logging in later gets a new, empty account.
    diesel::delete(wx_user::table.find(user.id)).execute(conn)?;
    Ok(())
}

/// The stand-in publisher's id, created by the first erasure that needs it. Two instances
/// creating it at once meet at the openid's unique constraint.
fn stand_in_publisher(conn: &mut PgConnection) -> Result<i64, DbError> {
    diesel::insert_into(wx_user::table)
        .values((
            wx_user::username.eq("deleted"),
            wx_user::nickname.eq(STAND_IN_NICKNAME),
            wx_user::weixin_openid.eq(STAND_IN_OPENID),
            wx_user::status.eq(user_status::DISABLED),
            wx_user::deleted.eq(true),
        ))
        .on_conflict(wx_user::weixin_openid)
        .do_nothing()
        .execute(conn)?;
    Ok(wx_user::table
        .filter(wx_user::weixin_openid.eq(STAND_IN_OPENID))
        .select(wx_user::id)
        .first(conn)?)
}

pub(crate) fn counts(conn: &mut PgConnection) -> Result<DeletionCounts, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        pending: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        completed: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        merged: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE completed_at IS NULL) AS pending, \
                count(*) FILTER (WHERE completed_at IS NOT NULL) AS completed, \
                (SELECT count(*) FROM account_merge) AS merged \
         FROM account_deletion",
    )
    .get_result(conn)?;
    Ok(DeletionCounts {
        pending: row.pending,
        completed: row.completed,
        merged: row.merged,
    })
}
