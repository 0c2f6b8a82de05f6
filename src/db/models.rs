use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::wx_user;

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

/// A profile edit: `None` fields are left as they are.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = wx_user)]
pub struct ProfileChange {
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<i16>,
}

impl ProfileChange {
    pub fn is_empty(&self) -> bool {
        self.nickname.is_none() && self.avatar.is_none() && self.gender.is_none()
    }
}
