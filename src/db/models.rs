//! The rows the database layer writes. What it reads and answers is in `crate::domain`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{login_log, meeting, meeting_member, swiper_image, wx_user};

/// The row a login writes when the openid is new.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = wx_user)]
pub(crate) struct NewWxUser {
    pub(crate) username: String,
    pub(crate) nickname: String,
    pub(crate) avatar: String,
    pub(crate) gender: i16,
    pub(crate) weixin_openid: String,
    pub(crate) unionid: Option<String>,
    pub(crate) last_login_time: Option<DateTime<Utc>>,
    pub(crate) last_login_ip: String,
    pub(crate) add_time: DateTime<Utc>,
    pub(crate) update_time: DateTime<Utc>,
}

/// A profile edit: `None` fields are left as they are.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = wx_user)]
pub(crate) struct ProfileChange<'a> {
    pub(crate) nickname: Option<&'a str>,
    pub(crate) avatar: Option<&'a str>,
    pub(crate) gender: Option<i16>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = meeting)]
pub(crate) struct NewMeeting {
    pub(crate) title: String,
    pub(crate) content: String,
    pub(crate) location: String,
    pub(crate) start_time: DateTime<Utc>,
    pub(crate) end_time: DateTime<Utc>,
    pub(crate) publisher_id: i64,
    pub(crate) state: i16,
    pub(crate) cover: String,
    pub(crate) add_time: DateTime<Utc>,
    pub(crate) update_time: DateTime<Utc>,
    pub(crate) review_state: i16,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = meeting_member)]
pub(crate) struct NewMeetingMember {
    pub(crate) meeting_id: i64,
    pub(crate) user_id: i64,
    pub(crate) join_time: DateTime<Utc>,
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
pub(crate) struct NewLoginLogEntry {
    pub(crate) app_id: String,
    pub(crate) user_id: Option<i64>,
    pub(crate) openid_masked: String,
    pub(crate) ip: String,
    pub(crate) user_agent: String,
    pub(crate) errno: i32,
    pub(crate) add_time: DateTime<Utc>,
}
