//! The values the HTTP layer and the database layer exchange: what a handler asks the database
//! for, and what it gets back. The rows the database reads and writes (`db::models`), its
//! queries and its schema stay in `db`; a handler sees only these, which know nothing of Diesel.

use chrono::{DateTime, Utc};

use crate::wechat::SessionKey;

// ---- users ----

#[derive(Debug, Clone)]
pub struct WxUser {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar: String,
    pub gender: i16,
    pub mobile: String,
    pub(crate) weixin_openid: String,
    pub unionid: Option<String>,
    pub(crate) user_level: i16,
    pub(crate) status: i16,
    pub last_login_time: Option<DateTime<Utc>>,
    pub last_login_ip: String,
    pub(crate) add_time: DateTime<Utc>,
    pub deleted: bool,
}

impl WxUser {
    /// Status 0 is the only one that may log in or hold a session.
    pub(crate) fn is_usable(&self) -> bool {
        self.status == user_status::USABLE && !self.deleted
    }
}

/// `wx_user.status`.
pub(crate) mod user_status {
    pub(crate) const USABLE: i16 = 0;
    pub(crate) const DISABLED: i16 = 1;
    /// The user asked for the account to be deleted; a login within the grace period restores
    /// it. See `db::deletion`.
    pub(crate) const DELETION_PENDING: i16 = 2;
}

/// A profile that passed validation.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub(crate) nickname: String,
    pub(crate) avatar: String,
    pub(crate) gender: i16,
}

/// A profile edit that passed validation: `None` fields are left as they are.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProfileEdit {
    pub(crate) nickname: Option<String>,
    pub(crate) avatar: Option<String>,
    pub(crate) gender: Option<i16>,
}

impl ProfileEdit {
    pub(crate) fn is_empty(&self) -> bool {
        self.nickname.is_none() && self.avatar.is_none() && self.gender.is_none()
    }
}

/// What binding a phone number came to.
pub(crate) enum MobileBinding {
    Bound,
    /// Another live account has this number; nothing changed.
    TakenByAnother,
    NoSuchUser,
}

// ---- sessions ----

/// `user_identity.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityKind {
    /// (appid, openid)
    MiniProgram = 1,
    /// (corpid, userid)
    WeCom = 2,
}

/// Who WeChat says someone is, in one app: a mini-program's (appid, openid) or a WeCom corp's
/// (corpid, userid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) kind: IdentityKind,
    /// The appid, or the corpid.
    pub(crate) app_id: String,
    /// The openid, or the userid.
    pub(crate) subject: String,
}

impl Identity {
    pub(crate) fn mini_program(appid: &str, openid: &str) -> Self {
        Identity {
            kind: IdentityKind::MiniProgram,
            app_id: appid.to_string(),
            subject: openid.to_string(),
        }
    }

    pub(crate) fn wecom(corpid: &str, userid: &str) -> Self {
        Identity {
            kind: IdentityKind::WeCom,
            app_id: corpid.to_string(),
            subject: userid.to_string(),
        }
    }

    /// What a user this identity creates gets as `wx_user.weixin_openid`, which stays unique
    /// and non-null while the previous release still reads it: a mini-program's openid (unique
    /// across apps: WeChat never gives two apps the same one), or for WeCom a value no openid
    /// can be.
    pub(crate) fn user_key(&self) -> String {
        match self.kind {
            IdentityKind::MiniProgram => self.subject.clone(),
            IdentityKind::WeCom => {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(format!("{}:{}", self.app_id, self.subject));
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("wecom:{}", &hex[..48])
            }
        }
    }
}

/// A login WeChat vouched for: the user it is (found through its identity, or through its
/// unionid, or created) and the session it opens.
#[derive(Clone)]
pub(crate) struct SignIn {
    pub(crate) identity: Identity,
    /// The identity is the default app's: a user the previous release made, known only by
    /// `wx_user.weixin_openid`, is found too.
    pub(crate) default_app: bool,
    pub(crate) unionid: Option<String>,
    /// What a new account starts with; an existing account keeps its own (edited through its
    /// own endpoint).
    pub(crate) profile: Profile,
    pub(crate) session_id: String,
    pub(crate) session_key: SessionKey,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) client_ip: String,
    pub(crate) user_agent: String,
    pub(crate) at: DateTime<Utc>,
}

/// What a login stored: the user (created or updated), and whether the session went in with it.
pub(crate) struct LoginRecord {
    pub(crate) user: WxUser,
    /// `false` when the user may not log in (disabled or deleted): no session was stored.
    pub(crate) session_stored: bool,
    /// The user the identity belongs to. Another than `user` only when a concurrent login
    /// gave the identity to another user first: the login is then run again.
    pub(crate) identity_user_id: Option<i64>,
    /// Another user holding the unionid this login reported, which its own user lacks: the two
    /// are one person, to be merged.
    pub(crate) unionid_user_id: Option<i64>,
}

/// The new session of a refresh; its session_key comes from the old one.
pub(crate) struct NewSessionMeta {
    pub(crate) id: String,
    pub(crate) user_id: i64,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) client_ip: String,
    pub(crate) user_agent: String,
}

/// A session that may be used now: stored, not revoked, not expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveSession {
    pub(crate) user_id: i64,
    pub(crate) expires_at: i64,
}

/// Why a session whose token verified is not live (a client is told which, in the 501's
/// `data.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    /// Past its end: its expiry, or the maximum lifetime since its login.
    Expired,
    /// Logged out (this device or all of them), or replaced by a refresh.
    Revoked,
    /// Its account is disabled, deleted, or its deletion was asked for.
    Disabled,
    /// No session of ours matches: none is stored under its id (never issued, or erased with
    /// its account), or the session belongs to another user than the token names. Told as a
    /// forged token is.
    Unknown,
    /// Its account was merged into another one. Nothing sets it yet: account merging says so
    /// where it revokes the merged account's sessions (see `db::sessions::why_not_live`).
    #[allow(dead_code)]
    Merged,
}

/// What a revocation ended, as every instance's cache hears of it (`db::sessions` writes it as
/// a NOTIFY payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revoked {
    Session(String),
    User(i64),
}

// ---- meetings ----

/// `meeting.state`: see the migration for why only these two exist.
pub(crate) mod meeting_state {
    pub(crate) const PUBLISHED: i16 = 1;
    pub(crate) const CANCELLED: i16 = 2;
    pub(crate) const ALL: [i16; 2] = [PUBLISHED, CANCELLED];
}

/// `meeting.review_state`: whether others may see the meeting (content security).
pub(crate) mod review_state {
    /// Passed WeChat's check, or approved by an admin.
    pub(crate) const VISIBLE: i16 = 0;
    /// Waiting for an admin: only its publisher sees it.
    pub(crate) const PENDING: i16 = 1;
    /// Refused by an admin: in no list; only its publisher can still open it.
    pub(crate) const REJECTED: i16 = 2;

    /// The word answers use (`review` in `MeetingView`).
    pub(crate) fn word(state: i16) -> &'static str {
        match state {
            PENDING => "pending",
            REJECTED => "rejected",
            _ => "visible",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Meeting {
    pub(crate) id: i64,
    pub(crate) title: String,
    pub(crate) content: String,
    pub(crate) location: String,
    pub(crate) start_time: DateTime<Utc>,
    pub(crate) end_time: DateTime<Utc>,
    pub(crate) publisher_id: i64,
    pub(crate) state: i16,
    pub(crate) cover: String,
    pub(crate) add_time: DateTime<Utc>,
    pub(crate) review_state: i16,
}

/// A meeting as its publisher describes it, validated; published as it is stored.
#[derive(Debug, Clone)]
pub(crate) struct MeetingDraft {
    pub(crate) title: String,
    pub(crate) content: String,
    pub(crate) location: String,
    pub(crate) start_time: DateTime<Utc>,
    pub(crate) end_time: DateTime<Utc>,
    pub(crate) cover: String,
}

/// What an admin decides about a meeting pending review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReviewDecision {
    Approve,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReviewOutcome {
    Decided {
        review_state: i16,
    },
    NoSuchMeeting,
    /// Approving a meeting already rejected.
    AlreadyRejected,
}

/// A meeting with what the client shows next to it: who published it and how many joined.
#[derive(Debug, Clone)]
pub(crate) struct MeetingInfo {
    pub(crate) meeting: Meeting,
    pub(crate) publisher_nickname: String,
    pub(crate) member_count: i64,
}

/// One page of a list, and how many rows the whole list has.
#[derive(Debug, Clone)]
pub(crate) struct MeetingPage {
    pub(crate) items: Vec<MeetingInfo>,
    pub(crate) total: i64,
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinOutcome {
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
pub(crate) struct UserMeetingCounts {
    pub(crate) published: i64,
    pub(crate) joined: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct SwiperImage {
    pub(crate) id: i64,
    pub(crate) url: String,
    pub(crate) link: String,
}

/// The home page: swiper images and the next meetings.
pub(crate) struct HomePage {
    pub(crate) swiper_images: Vec<SwiperImage>,
    pub(crate) upcoming: Vec<MeetingInfo>,
}

// ---- logins ----

/// One login attempt, as the login handler reports it to `login_log`.
#[derive(Debug, Clone)]
pub(crate) struct LoginAttempt {
    /// The configured app the login was for.
    pub(crate) app_id: String,
    pub(crate) user_id: Option<i64>,
    pub(crate) openid_masked: String,
    pub(crate) ip: String,
    pub(crate) user_agent: String,
    /// 0 for a successful login, else the errno the client got.
    pub(crate) errno: i32,
    pub(crate) at: DateTime<Utc>,
}

/// One login attempt, as `login_log` keeps it.
#[derive(Debug, Clone)]
pub(crate) struct LoginLogEntry {
    pub(crate) user_id: Option<i64>,
    pub(crate) openid_masked: String,
    pub(crate) ip: String,
    pub(crate) user_agent: String,
    pub(crate) errno: i32,
    pub(crate) add_time: DateTime<Utc>,
}

/// Attempts with one errno in the last minute and the last hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrnoCount {
    pub(crate) errno: i32,
    pub(crate) last_minute: i64,
    pub(crate) last_hour: i64,
}

/// An app's attempts in the last hour. `app_id` is as stored: '' for the previous release's
/// rows (the default app's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppCount {
    pub(crate) app_id: String,
    pub(crate) success: i64,
    pub(crate) failure: i64,
}

/// One bar of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MinuteCount {
    /// The minute's first instant.
    pub(crate) minute: DateTime<Utc>,
    pub(crate) success: i64,
    pub(crate) failure: i64,
}

/// What the admin page shows about logins.
#[derive(Debug, Clone)]
pub(crate) struct LoginSummary {
    pub(crate) by_errno: Vec<ErrnoCount>,
    /// The last hour by app.
    pub(crate) by_app: Vec<AppCount>,
    /// `CHART_MINUTES` entries, oldest first, the last one being the current minute.
    pub(crate) per_minute: Vec<MinuteCount>,
    /// Newest first.
    pub(crate) recent: Vec<LoginLogEntry>,
}

// ---- account deletion and export ----

/// A pending deletion, as the user is told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub(crate) requested_at: DateTime<Utc>,
    /// When the data goes; `requested_at` itself when there is no grace period.
    pub(crate) due_at: DateTime<Utc>,
}

/// What a login of an account found about its deletion.
#[derive(Debug)]
pub(crate) enum Restore {
    /// The deletion was pending and is cancelled; the account is as it was before (this login is
    /// the one that restored it: of two at once, the other finds `NothingPending`).
    Restored,
    /// No deletion pending (any more).
    NothingPending,
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DeletionCounts {
    /// Requested, grace period not over or not yet swept.
    pub(crate) pending: i64,
    pub(crate) completed: i64,
    /// Accounts merged into an older one of the same person (not deletions: counted here because
    /// the status page reads both in one query).
    pub(crate) merged: i64,
}

/// A live session, without what makes it usable (its id and sealed session_key).
#[derive(Debug, Clone)]
pub(crate) struct SessionRecord {
    pub(crate) id: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) last_seen_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) client_ip: String,
    pub(crate) user_agent: String,
}

/// Everything kept about one user, for `auth/export`.
#[derive(Debug, Clone)]
pub(crate) struct PersonalData {
    pub(crate) user: WxUser,
    pub(crate) sessions: Vec<SessionRecord>,
    pub(crate) logins: Vec<LoginLogEntry>,
    pub(crate) published: Vec<Meeting>,
    /// Meetings joined, with when.
    pub(crate) joined: Vec<(Meeting, DateTime<Utc>)>,
    /// (kind, app id, subject) of each identity.
    pub(crate) identities: Vec<(i16, String, String)>,
    /// (merged user id, reason, when) of each account merged into this one.
    pub(crate) merged: Vec<(i64, String, DateTime<Utc>)>,
    /// Reminders consented to.
    pub(crate) reminders: Vec<ReminderRecord>,
}

/// A meeting reminder the user consented to, as `auth/export` shows it.
#[derive(Debug, Clone)]
pub(crate) struct ReminderRecord {
    pub(crate) meeting_id: i64,
    pub(crate) title: String,
    /// `meeting_reminder.status`.
    pub(crate) status: i16,
    pub(crate) consented_at: DateTime<Utc>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}
