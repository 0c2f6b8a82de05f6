//! The values the HTTP layer and the database layer exchange: what a handler asks the database
//! for, and what it gets back. The rows the database writes (`db::models`), its queries and its
//! schema stay in `db`; a handler sees only these. Some are loaded straight from a query, hence
//! their Diesel derives.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer};

use crate::db::schema::{login_log, meeting, swiper_image, wx_user};
use crate::wechat::SessionKey;

// ---- users ----

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

/// A profile that passed validation.
#[derive(Debug, Clone)]
pub struct Profile {
    pub nickname: String,
    pub avatar: String,
    pub gender: i16,
}

/// A profile edit that passed validation: `None` fields are left as they are.
#[derive(Debug, Clone, Default)]
pub struct ProfileEdit {
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<i16>,
}

impl ProfileEdit {
    pub fn is_empty(&self) -> bool {
        self.nickname.is_none() && self.avatar.is_none() && self.gender.is_none()
    }
}

/// What binding a phone number came to.
pub enum MobileBinding {
    Bound,
    /// Another live account has this number; nothing changed.
    TakenByAnother,
    NoSuchUser,
}

// ---- sessions ----

/// A login WeChat vouched for: the user it is (created when the openid is new) and the session
/// it opens.
#[derive(Clone)]
pub struct SignIn {
    pub openid: String,
    pub unionid: Option<String>,
    /// What a new account starts with; an existing account keeps its own (edited through its
    /// own endpoint).
    pub profile: Profile,
    pub session_id: String,
    pub session_key: SessionKey,
    pub expires_at: DateTime<Utc>,
    pub client_ip: String,
    pub user_agent: String,
    pub at: DateTime<Utc>,
}

/// What a login stored: the user (created or updated), and whether the session went in with it.
#[derive(QueryableByName)]
pub struct LoginRecord {
    #[diesel(embed)]
    pub user: WxUser,
    /// `false` when the user may not log in (disabled or deleted): no session was stored.
    #[diesel(sql_type = Bool)]
    pub session_stored: bool,
}

/// The new session of a refresh; its session_key comes from the old one.
pub struct NewSessionMeta {
    pub id: String,
    pub user_id: i64,
    pub expires_at: DateTime<Utc>,
    pub client_ip: String,
    pub user_agent: String,
}

/// A session that may be used now: stored, not revoked, not expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSession {
    pub user_id: i64,
    pub expires_at: i64,
}

/// What a revocation ended, as every instance's cache hears of it (`db::sessions` writes it as
/// a NOTIFY payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Session(String),
    User(i64),
}

// ---- meetings ----

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

/// A meeting as its publisher describes it, validated; published as it is stored.
#[derive(Debug, Clone)]
pub struct MeetingDraft {
    pub title: String,
    pub content: String,
    pub location: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub cover: String,
}

/// A meeting with what the client shows next to it: who published it and how many joined.
#[derive(Debug, Clone)]
pub struct MeetingInfo {
    pub meeting: Meeting,
    pub publisher_nickname: String,
    pub member_count: i64,
}

/// One page of a list, and how many rows the whole list has.
#[derive(Debug, Clone)]
pub struct MeetingPage {
    pub items: Vec<MeetingInfo>,
    pub total: i64,
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The user is a member now (or already was); the meeting has this many members.
    Joined {
        member_count: i64,
    },
    NoSuchMeeting,
    Cancelled,
    Ended,
}

/// How many meetings a user published and joined, for `user/index`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserMeetingCounts {
    pub published: i64,
    pub joined: i64,
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

/// The home page: swiper images and the next meetings.
pub struct HomePage {
    pub swiper_images: Vec<SwiperImage>,
    pub upcoming: Vec<MeetingInfo>,
}

// ---- logins ----

/// One login attempt, as the login handler reports it to `login_log`.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub user_id: Option<i64>,
    pub openid_masked: String,
    pub ip: String,
    pub user_agent: String,
    /// 0 for a successful login, else the errno the client got.
    pub errno: i32,
    pub at: DateTime<Utc>,
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

/// Attempts with one errno in the last minute and the last hour.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct ErrnoCount {
    #[diesel(sql_type = Integer)]
    pub errno: i32,
    #[diesel(sql_type = BigInt)]
    pub last_minute: i64,
    #[diesel(sql_type = BigInt)]
    pub last_hour: i64,
}

/// One bar of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    /// The minute's first instant.
    pub minute: DateTime<Utc>,
    pub success: i64,
    pub failure: i64,
}

/// What the admin page shows about logins.
#[derive(Debug, Clone)]
pub struct LoginSummary {
    pub by_errno: Vec<ErrnoCount>,
    /// `CHART_MINUTES` entries, oldest first, the last one being the current minute.
    pub per_minute: Vec<MinuteCount>,
    /// Newest first.
    pub recent: Vec<LoginLogEntry>,
}

// ---- account deletion and export ----

/// A pending deletion, as the user is told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub requested_at: DateTime<Utc>,
    /// When the data goes; `requested_at` itself when there is no grace period.
    pub due_at: DateTime<Utc>,
}

/// What a login of an account found about its deletion.
#[derive(Debug)]
pub enum Restore {
    /// The deletion was pending and is cancelled; the account is as it was before (this login is
    /// the one that restored it: of two at once, the other finds `NothingPending`).
    Restored(WxUser),
    /// No deletion pending (any more): the account as it is now.
    NothingPending(WxUser),
    /// Pending, and it stays so: the request was made after this login began (the two raced, and
    /// the deletion wins), or the account was disabled when it was made (a disabled user cannot
    /// cancel a deletion by logging in).
    Kept,
    /// The grace period is over; the data is to be erased, not restored.
    Expired,
    /// The account is gone.
    Gone,
}

/// Deletions for the admin page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct DeletionCounts {
    /// Requested, grace period not over or not yet swept.
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    #[diesel(sql_type = BigInt)]
    pub completed: i64,
}

/// A live session, without what makes it usable (its id and sealed session_key).
#[derive(Debug, Clone, Queryable)]
pub struct SessionRecord {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub client_ip: String,
    pub user_agent: String,
}

/// Everything kept about one user, for `auth/export`.
#[derive(Debug, Clone)]
pub struct PersonalData {
    pub user: WxUser,
    pub sessions: Vec<SessionRecord>,
    pub logins: Vec<LoginLogEntry>,
    pub published: Vec<Meeting>,
    /// Meetings joined, with when.
    pub joined: Vec<(Meeting, DateTime<Utc>)>,
}
