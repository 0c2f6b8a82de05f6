//! The rows the database layer writes and reads. It answers with the values of `crate::domain`,
//! which know nothing of Diesel: each row read here becomes one of them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{login_log, meeting, meeting_member, swiper_image, wx_user};
use crate::domain::{LoginLogEntry, Meeting, SwiperImage, WxUser};

/// A user as stored.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = wx_user)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WxUserRow {
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
    pub add_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub deleted: bool,
}

impl From<WxUserRow> for WxUser {
    fn from(r: WxUserRow) -> Self {
        WxUser {
            id: r.id,
            username: r.username,
            nickname: r.nickname,
            avatar: r.avatar,
            gender: r.gender,
            mobile: r.mobile,
            weixin_openid: r.weixin_openid,
            unionid: r.unionid,
            user_level: r.user_level,
            status: r.status,
            last_login_time: r.last_login_time,
            last_login_ip: r.last_login_ip,
            add_time: r.add_time,
            deleted: r.deleted,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = meeting)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub(crate) struct MeetingRow {
    id: i64,
    title: String,
    content: String,
    location: String,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    publisher_id: i64,
    state: i16,
    cover: String,
    add_time: DateTime<Utc>,
    review_state: i16,
}

impl From<MeetingRow> for Meeting {
    fn from(r: MeetingRow) -> Self {
        Meeting {
            id: r.id,
            title: r.title,
            content: r.content,
            location: r.location,
            start_time: r.start_time,
            end_time: r.end_time,
            publisher_id: r.publisher_id,
            state: r.state,
            cover: r.cover,
            add_time: r.add_time,
            review_state: r.review_state,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = swiper_image)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub(crate) struct SwiperImageRow {
    id: i64,
    url: String,
    link: String,
}

impl From<SwiperImageRow> for SwiperImage {
    fn from(r: SwiperImageRow) -> Self {
        SwiperImage {
            id: r.id,
            url: r.url,
            link: r.link,
        }
    }
}

/// One login attempt, as `login_log` keeps it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = login_log)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct LoginLogRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub openid_masked: String,
    pub ip: String,
    pub user_agent: String,
    pub errno: i32,
    pub add_time: DateTime<Utc>,
}

impl From<LoginLogRow> for LoginLogEntry {
    fn from(r: LoginLogRow) -> Self {
        LoginLogEntry {
            user_id: r.user_id,
            openid_masked: r.openid_masked,
            ip: r.ip,
            user_agent: r.user_agent,
            errno: r.errno,
            add_time: r.add_time,
        }
    }
}

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
