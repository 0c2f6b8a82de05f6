use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{login_log, wx_user};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = wx_user)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WxUser {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar: String,
    pub gender: i16,
    pub mobile: String,
    pub weixin_openid: String,
    pub unionid: Option<String>,
    pub user_level: i16,
    pub status: i16,
    pub last_login_time: Option<DateTime<Utc>>,
    pub last_login_ip: String,
    pub share_user_id: Option<i64>,
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub deleted: bool,
}

impl WxUser {
    /// Status 0 is the only one that may log in or hold a session.
    pub fn is_usable(&self) -> bool {
        self.status == 0 && !self.deleted
    }
}

/// The row a login writes when the openid is new.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = wx_user)]
pub struct NewWxUser {
    pub username: String,
    pub nickname: String,
    pub avatar: String,
    pub gender: i16,
    pub weixin_openid: String,
    pub unionid: Option<String>,
    pub last_login_time: Option<DateTime<Utc>>,
    pub last_login_ip: String,
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// One login attempt, as `login_log` keeps it.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = login_log)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct LoginLogEntry {
    pub id: i64,
    pub user_id: Option<i64>,
    pub openid_masked: String,
    pub ip: String,
    pub user_agent: String,
    pub errno: i32,
    pub add_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = login_log)]
pub struct NewLoginLogEntry {
    pub user_id: Option<i64>,
    pub openid_masked: String,
    pub ip: String,
    pub user_agent: String,
    pub errno: i32,
    pub add_time: DateTime<Utc>,
}
