//! The rows the database layer writes. What it reads and answers is in `crate::domain`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{login_log, meeting, meeting_member, swiper_image, wx_user};

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
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = wx_user)]
pub struct ProfileChange<'a> {
    pub nickname: Option<&'a str>,
    pub avatar: Option<&'a str>,
    pub gender: Option<i16>,
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

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = swiper_image)]
pub struct NewSwiperImage {
    pub url: String,
    pub link: String,
    pub sort_order: i32,
    pub enabled: bool,
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
