//! Queries on `wx_user`, as plain functions on a connection: testable without actors.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::DbError;
use super::models::{NewWxUser, WxUser};
use super::schema::wx_user;

diesel::define_sql_function! {
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Varchar>, y: diesel::sql_types::Nullable<diesel::sql_types::Varchar>) -> diesel::sql_types::Nullable<diesel::sql_types::Varchar>;
}

/// Creates the user on first login, or records the login of an existing one, in one statement:
/// concurrent first logins of the same openid meet at the unique constraint and end in one row.
/// An existing user's profile is left alone (it is edited through its own endpoint), but a unionid
/// WeChat newly reports is kept.
pub fn upsert_on_login(conn: &mut PgConnection, new: &NewWxUser) -> Result<WxUser, DbError> {
    let user = diesel::insert_into(wx_user::table)
        .values(new)
        .on_conflict(wx_user::weixin_openid)
        .do_update()
        .set((
            wx_user::last_login_time.eq(excluded(wx_user::last_login_time)),
            wx_user::last_login_ip.eq(excluded(wx_user::last_login_ip)),
            wx_user::update_time.eq(excluded(wx_user::update_time)),
            wx_user::unionid.eq(coalesce(excluded(wx_user::unionid), wx_user::unionid)),
        ))
        .returning(WxUser::as_returning())
        .get_result(conn)?;
    Ok(user)
}

pub fn find_by_id(conn: &mut PgConnection, id: i64) -> Result<Option<WxUser>, DbError> {
    Ok(wx_user::table
        .find(id)
        .select(WxUser::as_select())
        .first(conn)
        .optional()?)
}
