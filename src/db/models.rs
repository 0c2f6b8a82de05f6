use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{login_log, meeting, meeting_member, swiper_image, wx_user};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
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
        self.status == user_status::USABLE && !self.deleted
    }
}

/// `wx_user.status`.
pub mod user_status {
    pub const USABLE: i16 = 0;
    pub const DISABLED: i16 = 1;
    /// The user asked for the account to be deleted; a login within the grace period restores
    /// it. See `db::deletion`.
    pub const DELETION_PENDING: i16 = 2;
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

/// `meeting.state`: see the migration for why only these two exist.
pub mod meeting_state {
    pub const PUBLISHED: i16 = 1;
    pub const CANCELLED: i16 = 2;
    pub const ALL: [i16; 2] = [PUBLISHED, CANCELLED];
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = meeting)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Meeting {
    pub id: i64,
    pub title: String,
    pub content: String,
    pub location: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub publisher_id: i64,
    pub state: i16,
    pub cover: String,
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = meeting)]
pub struct NewMeeting {
    pub title: String,
    pub content: String,
    pub location: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub publisher_id: i64,
    pub state: i16,
    pub cover: String,
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = meeting_member)]
pub struct NewMeetingMember {
    pub meeting_id: i64,
    pub user_id: i64,
    pub join_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = swiper_image)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct SwiperImage {
    pub id: i64,
    pub url: String,
    pub link: String,
    pub sort_order: i32,
    pub enabled: bool,
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = swiper_image)]
pub struct NewSwiperImage {
    pub url: String,
    pub link: String,
    pub sort_order: i32,
    pub enabled: bool,
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
