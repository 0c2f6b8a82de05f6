//! Queries on `wx_user`, as plain functions on a connection: testable without actors.

use diesel::prelude::*;

use super::DbError;
use super::models::{ProfileChange, WxUser};
use super::schema::wx_user;

pub fn find_by_id(conn: &mut PgConnection, id: i64) -> Result<Option<WxUser>, DbError> {
    Ok(wx_user::table
        .find(id)
        .select(WxUser::as_select())
        .first(conn)
        .optional()?)
}

/// What binding a phone number came to.
pub enum MobileBinding {
    Bound,
    /// Another live account has this number; nothing changed.
    TakenByAnother,
    NoSuchUser,
}

/// Stores the user's phone number. The partial unique index on `mobile` decides races: of two
/// users binding one number at once, one gets it and the other `TakenByAnother`.
pub fn bind_mobile(
    conn: &mut PgConnection,
    user_id: i64,
    mobile: &str,
) -> Result<MobileBinding, DbError> {
    let updated = diesel::update(
        wx_user::table
            .find(user_id)
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

/// Applies the fields that are `Some`; answers the updated user, `None` if there is none.
pub fn update_profile(
    conn: &mut PgConnection,
    user_id: i64,
    change: &ProfileChange,
) -> Result<Option<WxUser>, DbError> {
    Ok(diesel::update(
        wx_user::table
            .find(user_id)
            .filter(wx_user::deleted.eq(false)),
    )
    .set((change, wx_user::update_time.eq(diesel::dsl::now)))
    .returning(WxUser::as_returning())
    .get_result(conn)
    .optional()?)
}

/// Sets the account status (0 usable, 1 disabled). The trigger `wx_user_revoke_sessions` revokes
/// the user's sessions when the account stops being usable. `None`: no such user.
pub fn set_status(
    conn: &mut PgConnection,
    user_id: i64,
    status: i16,
) -> Result<Option<WxUser>, DbError> {
    Ok(diesel::update(wx_user::table.find(user_id))
        .set((
            wx_user::status.eq(status),
            wx_user::update_time.eq(diesel::dsl::now),
        ))
        .returning(WxUser::as_returning())
        .get_result(conn)
        .optional()?)
}
