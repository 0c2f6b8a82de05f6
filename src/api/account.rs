//! `auth/deactivate` (delete my account) and `auth/export` (a copy of my personal data).

use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, HeaderValue};
use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::extract::AuthUser;
use super::{ApiResult, AppState, ok};
use crate::china_time::{china_clock_text, china_time};
use crate::db::reminders::reminder_status;
use crate::domain::{PersonalData, Revoked};
use crate::error::{ApiError, UnloginReason};
use crate::sessions::Invalidate;
use crate::wechat::mask_openid;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeactivateAnswer {
    /// When the data is erased unless the user logs in before.
    delete_at: String,
    /// True when it already is (no grace period configured).
    deleted: bool,
}

/// `POST auth/deactivate`: every session of the user dies at once on every instance, and the
/// account is erased after ACCOUNT_DELETION_GRACE_DAYS unless the user logs in before. Repeating
/// it while the token still works (a double tap) answers the same pending deletion.
pub(crate) async fn deactivate(state: web::Data<AppState>, user: AuthUser) -> ApiResult {
    let pending = state
        .db
        .request_deletion(user.user_id, state.deletion_grace)
        .await?
        .ok_or(ApiError::unlogin(UnloginReason::Disabled))?;
    // The request's transaction already revoked the sessions in the database and notified every
    // instance; this drops them from this instance's memory before the answer goes out. Only
    // the memory: the deletion is committed, so nothing here may be refused for want of a place
    // at the database.
    state
        .sessions
        .send(Invalidate(Revoked::User(user.user_id)))
        .await?;
    log::info!(
        "deactivate: user {} asked for deletion, due {}",
        user.user_id,
        pending.due_at
    );

    let mut deleted = false;
    if pending.due_at <= pending.requested_at {
        // No grace period. Should this fail, the request stays due and the sweeper erases the
        // account within minutes: the user's answer does not depend on it.
        match state.db.erase_user(user.user_id).await {
            Ok(erased) => deleted = erased,
            Err(e) => log::warn!("deactivate: user {} not erased yet: {e}", user.user_id),
        }
        if deleted {
            log::info!("deactivate: user {} erased", user.user_id);
        }
    }
    ok(DeactivateAnswer {
        delete_at: china_clock_text(pending.due_at),
        deleted,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExportView {
    exported_at: String,
    profile: ProfileExport,
    /// Empty when no phone number is bound.
    mobile: String,
    wechat: WeChatExport,
    registered_at: String,
    last_login_at: Option<String>,
    last_login_ip: String,
    sessions: Vec<SessionExport>,
    login_history: Vec<LoginExport>,
    meetings_published: Vec<PublishedExport>,
    meetings_joined: Vec<JoinedExport>,
    /// Meeting reminders the user consented to.
    meeting_reminders: Vec<ReminderExport>,
    /// Who WeChat says the person is in each app: `(appid, openid)` or `(corpid, userid)`,
    /// the identifier masked as `wechat.openidMasked` is.
    identities: Vec<IdentityExport>,
    /// Accounts of the same person merged into this one.
    merged_accounts: Vec<MergedExport>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ReminderExport {
    /// The meeting.
    id: i64,
    title: String,
    /// `waiting`, `sending`, `sent`, `refused` (WeChat: no consent any more) or `failed`.
    status: &'static str,
    consented_at: String,
    /// When it was sent, refused or given up.
    finished_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct IdentityExport {
    /// `miniprogram` or `wecom`.
    kind: &'static str,
    /// The appid or the corpid.
    app_id: String,
    subject_masked: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct MergedExport {
    /// The merged account's former userId.
    user_id: i64,
    /// `unionid`: a login showed both accounts have the person's unionid.
    reason: String,
    merged_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProfileExport {
    user_id: i64,
    username: String,
    nick_name: String,
    avatar_url: String,
    gender: i16,
    user_level: i16,
    status: i16,
}

/// The WeChat identifiers are the keys to the account elsewhere: the file says which exist, not
/// what they are.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct WeChatExport {
    openid_masked: String,
    has_unionid: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionExport {
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    ip: String,
    user_agent: String,
    /// The session this export was asked with.
    current: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct LoginExport {
    time: String,
    ip: String,
    user_agent: String,
    /// 0 for a successful login, else the errno the client got.
    errno: i32,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct PublishedExport {
    id: i64,
    title: String,
    content: String,
    location: String,
    start_time: String,
    end_time: String,
    state: i16,
    cover: String,
    add_time: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct JoinedExport {
    id: i64,
    title: String,
    location: String,
    start_time: String,
    end_time: String,
    joined_at: String,
}

impl ExportView {
    fn new(data: PersonalData, current_jti: &str, now: DateTime<Utc>) -> Self {
        let u = data.user;
        ExportView {
            exported_at: china_clock_text(now),
            profile: ProfileExport {
                user_id: u.id,
                username: u.username,
                nick_name: u.nickname,
                avatar_url: u.avatar,
                gender: u.gender,
                user_level: u.user_level,
                status: u.status,
            },
            mobile: u.mobile,
            wechat: WeChatExport {
                openid_masked: mask_openid(&u.weixin_openid),
                has_unionid: u.unionid.is_some(),
            },
            registered_at: china_clock_text(u.add_time),
            last_login_at: u.last_login_time.map(china_clock_text),
            last_login_ip: u.last_login_ip,
            sessions: data
                .sessions
                .into_iter()
                .map(|s| SessionExport {
                    current: s.id == current_jti,
                    created_at: china_clock_text(s.created_at),
                    last_seen_at: china_clock_text(s.last_seen_at),
                    expires_at: china_clock_text(s.expires_at),
                    ip: s.client_ip,
                    user_agent: s.user_agent,
                })
                .collect(),
            login_history: data
                .logins
                .into_iter()
                .map(|l| LoginExport {
                    time: china_clock_text(l.add_time),
                    ip: l.ip,
                    user_agent: l.user_agent,
                    errno: l.errno,
                })
                .collect(),
            meetings_published: data
                .published
                .into_iter()
                .map(|m| PublishedExport {
                    id: m.id,
                    title: m.title,
                    content: m.content,
                    location: m.location,
                    start_time: china_clock_text(m.start_time),
                    end_time: china_clock_text(m.end_time),
                    state: m.state,
                    cover: m.cover,
                    add_time: china_clock_text(m.add_time),
                })
                .collect(),
            meetings_joined: data
                .joined
                .into_iter()
                .map(|(m, joined_at)| JoinedExport {
                    id: m.id,
                    title: m.title,
                    location: m.location,
                    start_time: china_clock_text(m.start_time),
                    end_time: china_clock_text(m.end_time),
                    joined_at: china_clock_text(joined_at),
                })
                .collect(),
            meeting_reminders: data
                .reminders
                .into_iter()
                .map(|r| ReminderExport {
                    id: r.meeting_id,
                    title: r.title,
                    status: reminder_status::word(r.status),
                    consented_at: china_clock_text(r.consented_at),
                    finished_at: r.finished_at.map(china_clock_text),
                })
                .collect(),
            identities: data
                .identities
                .into_iter()
                .map(|(kind, app_id, subject)| IdentityExport {
                    kind: if kind == 2 { "wecom" } else { "miniprogram" },
                    app_id,
                    subject_masked: mask_openid(&subject),
                })
                .collect(),
            merged_accounts: data
                .merged
                .into_iter()
                .map(|(user_id, reason, at)| MergedExport {
                    user_id,
                    reason,
                    merged_at: china_clock_text(at),
                })
                .collect(),
        }
    }
}

/// `GET auth/export`: everything kept about the user, in the usual envelope (`data`), with
/// `Content-Disposition: attachment` so a browser or `wx.downloadFile` saves it as a file.
pub(crate) async fn export(state: web::Data<AppState>, user: AuthUser) -> ApiResult {
    let data = state
        .db
        .personal_data(user.user_id)
        .await?
        .ok_or(ApiError::unlogin(UnloginReason::Disabled))?;
    let now = Utc::now();
    let filename = format!(
        "wxauth-personal-data-{}-{}.json",
        user.user_id,
        china_time(now).format("%Y%m%d")
    );
    let mut response = ok(ExportView::new(data, &user.jti, now))?;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    // Personal data: no proxy or browser cache keeps a copy.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    log::info!("export: user {}", user.user_id);
    Ok(response)
}
