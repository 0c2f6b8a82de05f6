//! Queries on `wx_user`, as plain functions on a connection: testable without actors.

use diesel::prelude::*;

use super::DbError;
use super::models::{ProfileChange, WxUserRow};
use super::schema::{account_deletion, user_identity, wx_user};
use crate::domain::{MobileBinding, ProfileEdit, WxUser, user_status};

pub(crate) fn find_by_id(conn: &mut PgConnection, id: i64) -> Result<Option<WxUser>, DbError> {
    Ok(wx_user::table
        .find(id)
        .select(WxUserRow::as_select())
        .first::<WxUserRow>(conn)
        .optional()?
        .map(WxUser::from))
}

/// The user's openid in mini-program `appid`, when they have an identity there.
pub(crate) fn openid_in(
    conn: &mut PgConnection,
    user_id: i64,
    appid: &str,
) -> Result<Option<String>, DbError> {
    Ok(user_identity::table
        .filter(user_identity::user_id.eq(user_id))
        .filter(user_identity::app_id.eq(appid))
        .select(user_identity::subject)
        .first(conn)
        .optional()?)
}

/// Makes sure the user may act, for a write on their behalf: in the write's transaction, before
/// it writes. The row stays share-locked until the transaction ends, so disabling the user waits
/// for the write, and a write that waited for a disable sees it. The session cache can be a
/// moment behind a disable made elsewhere; this check cannot.
pub(crate) fn lock_usable(conn: &mut PgConnection, user_id: i64) -> Result<(), DbError> {
    let found: Option<i64> = wx_user::table
        .find(user_id)
        .filter(wx_user::status.eq(0))
        .filter(wx_user::deleted.eq(false))
        .select(wx_user::id)
        .for_share()
        .first(conn)
        .optional()?;
    found.map(|_| ()).ok_or(DbError::AccountNotUsable)
}

/// Stores the user's phone number, if the user is usable. The partial unique index on `mobile`
/// decides races: of two users binding one number at once, one gets it and the other
/// `TakenByAnother`.
pub(crate) fn bind_mobile(
    conn: &mut PgConnection,
    user_id: i64,
    mobile: &str,
) -> Result<MobileBinding, DbError> {
    let updated = diesel::update(
        wx_user::table
            .find(user_id)
            .filter(wx_user::status.eq(0))
            .filter(wx_user::deleted.eq(false)),
    )
    .set((
        wx_user::mobile.eq(mobile),
        wx_user::update_time.eq(diesel::dsl::now),
    ))
    .execute(conn);
    match updated {
        Ok(1) => Ok(MobileBinding::Bound),
        Ok(_) => Ok(MobileBinding::NoSuchUser),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(MobileBinding::TakenByAnother),
        Err(e) => Err(e.into()),
    }
}

/// Applies the fields that are `Some`; answers the updated user, `None` if there is no such
/// usable user (the same statement checks: a disabled or deleted user's profile stays as it is).
pub(crate) fn update_profile(
    conn: &mut PgConnection,
    user_id: i64,
    edit: &ProfileEdit,
) -> Result<Option<WxUser>, DbError> {
    let change = ProfileChange {
        nickname: edit.nickname.as_deref(),
        avatar: edit.avatar.as_deref(),
        gender: edit.gender,
    };
    Ok(diesel::update(
        wx_user::table
            .find(user_id)
            .filter(wx_user::status.eq(0))
            .filter(wx_user::deleted.eq(false)),
    )
    .set((&change, wx_user::update_time.eq(diesel::dsl::now)))
    .returning(WxUserRow::as_returning())
    .get_result::<WxUserRow>(conn)
    .optional()?
    .map(WxUser::from))
}

/// Sets the account status (0 usable, 1 disabled). The trigger `wx_user_revoke_sessions` revokes
/// the user's sessions when the account stops being usable. An account whose deletion is pending
/// keeps status 2; the new status is the one it returns to if the user restores it (so disabling
/// it also keeps the user from restoring it). `None`: no such user.
pub(crate) fn set_status(
    conn: &mut PgConnection,
    user_id: i64,
    status: i16,
) -> Result<Option<WxUser>, DbError> {
    conn.transaction(|conn| {
        let Some(user) = wx_user::table
            .find(user_id)
            .select(WxUserRow::as_select())
            .for_update()
            .first::<WxUserRow>(conn)
            .optional()?
            .map(WxUser::from)
        else {
            return Ok(None);
        };
        if user.status == user_status::DELETION_PENDING {
            let pending = diesel::update(
                account_deletion::table
                    .filter(account_deletion::user_id.eq(user_id))
                    .filter(account_deletion::completed_at.is_null()),
            )
            .set(account_deletion::prior_status.eq(status))
            .execute(conn)?;
            if pending == 1 {
                return Ok(Some(user));
            }
        }
        Ok(diesel::update(wx_user::table.find(user_id))
            .set((
                wx_user::status.eq(status),
                wx_user::update_time.eq(diesel::dsl::now),
            ))
            .returning(WxUserRow::as_returning())
            .get_result::<WxUserRow>(conn)
            .optional()?
            .map(WxUser::from))
    })
}
