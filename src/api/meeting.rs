//! `meeting/*`: the OA meeting app. Anyone may list and read meetings (a meeting held for
//! review only its publisher); publishing, joining, leaving and asking for a reminder need a
//! token. Published text goes through the content check (`content_check`).
//!
//! Times: answers are RFC 3339 in China Standard Time (`2026-12-01T09:30:00+08:00`). Requests may
//! send ISO 8601 with an offset or `Z`, or without an offset (`2026-12-01T09:30[:00]`), which is
//! read as China Standard Time: that is what the mini-program's date and time pickers produce.

use actix_web::{HttpRequest, web};
use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::content_check::{self, Text, Verdict};
use super::extract::{AuthUser, JsonBody, QueryParams};
use super::{ApiResult, AppState, ok};
use crate::china_time::{china_time, from_china_clock};
use crate::db::reminders::{Consent, SubscribeOutcome};
use crate::domain::{JoinOutcome, MeetingDraft, MeetingInfo, meeting_state, review_state};
use crate::error::{ApiError, UnloginReason};
use crate::wechat::client::Scene;

pub(crate) const DEFAULT_LIMIT: i64 = 10;
pub(crate) const MAX_LIMIT: i64 = 100;
/// Far beyond any real list; it keeps `(page - 1) * limit` well inside an i64.
pub(crate) const MAX_PAGE: i64 = i32::MAX as i64;
pub(crate) const MAX_TITLE_CHARS: usize = 100;
pub(crate) const MAX_LOCATION_CHARS: usize = 100;
/// A meeting notice, not a document; with 3 bytes a character it also fits the 16 KiB body limit.
pub(crate) const MAX_CONTENT_CHARS: usize = 2000;
pub(crate) const MAX_COVER_LEN: usize = 512;

/// A meeting as the client shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeetingView {
    pub(crate) id: i64,
    pub(crate) title: String,
    pub(crate) content: String,
    pub(crate) location: String,
    pub(crate) start_time: String,
    pub(crate) end_time: String,
    /// 1 published, 2 cancelled.
    pub(crate) state: i16,
    pub(crate) cover: String,
    pub(crate) publisher_id: i64,
    pub(crate) publisher_nickname: String,
    pub(crate) member_count: i64,
    pub(crate) add_time: String,
    /// Content security: `visible` to everyone, or (only its publisher sees these) `pending` an
    /// admin's review, or `rejected`.
    #[schema(example = "visible")]
    pub(crate) review: &'static str,
}

impl From<MeetingInfo> for MeetingView {
    fn from(info: MeetingInfo) -> Self {
        let m = info.meeting;
        MeetingView {
            id: m.id,
            title: m.title,
            content: m.content,
            location: m.location,
            start_time: client_time(m.start_time),
            end_time: client_time(m.end_time),
            state: m.state,
            cover: m.cover,
            publisher_id: m.publisher_id,
            publisher_nickname: info.publisher_nickname,
            member_count: info.member_count,
            add_time: client_time(m.add_time),
            review: review_state::word(m.review_state),
        }
    }
}

/// litemall's list shape, which the client's list pages already understand.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Page<T: Serialize + utoipa::ToSchema> {
    pub(crate) list: Vec<T>,
    pub(crate) total: i64,
    pub(crate) page: i64,
    pub(crate) limit: i64,
    pub(crate) pages: i64,
}

/// A time as the client reads it: RFC 3339 in China Standard Time.
pub(crate) fn client_time(t: DateTime<Utc>) -> String {
    china_time(t).to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Reads ISO 8601 with an offset or `Z`, or without one as China Standard Time.
pub(crate) fn parse_client_time(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M"))
        .ok()?;
    from_china_clock(naive)
}

/// `GET meeting/list?page=1&limit=10&state=`: newest start time first; `state` empty means all.
pub(crate) async fn list(state: web::Data<AppState>, query: QueryParams) -> ApiResult {
    let page = query.number("page", 1..=MAX_PAGE)?.unwrap_or(1);
    let limit = query
        .number("limit", 1..=MAX_LIMIT)?
        .unwrap_or(DEFAULT_LIMIT);
    let wanted = match query.get("state") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i16>()
                .ok()
                .filter(|s| meeting_state::ALL.contains(s))
                .ok_or_else(|| {
                    ApiError::bad_value("state must be 1 (published), 2 (cancelled) or empty")
                })?,
        ),
    };
    let found = state.db.meetings(wanted, (page - 1) * limit, limit).await?;
    ok(Page {
        list: found.items.into_iter().map(MeetingView::from).collect(),
        total: found.total,
        page,
        limit,
        pages: (found.total + limit - 1) / limit,
    })
}

/// `GET meeting/detail?id=`. A meeting pending review or rejected is shown only to its
/// publisher (with the token); to anyone else it does not exist.
pub(crate) async fn detail(
    state: web::Data<AppState>,
    query: QueryParams,
    viewer: Option<AuthUser>,
) -> ApiResult {
    let id = query
        .number("id", 1..=i64::MAX)?
        .ok_or_else(|| ApiError::bad_argument("id is required"))?;
    let found = state
        .db
        .meeting(id)
        .await?
        .filter(|m| {
            m.meeting.review_state == review_state::VISIBLE
                || viewer
                    .as_ref()
                    .is_some_and(|v| v.user_id == m.meeting.publisher_id)
        })
        .ok_or_else(|| no_such_meeting(id))?;
    ok(MeetingView::from(found))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PublishRequest {
    /// Required; one line.
    #[schema(required = true, min_length = 1, max_length = 100)]
    title: Option<String>,
    /// Required; line breaks and tabs allowed.
    #[schema(required = true, min_length = 1, max_length = 2000)]
    content: Option<String>,
    /// Required; one line.
    #[schema(required = true, min_length = 1, max_length = 100)]
    location: Option<String>,
    /// Required. ISO 8601; without an offset it is China Standard Time.
    #[schema(required = true, format = DateTime, example = "2026-12-01T09:30:00+08:00")]
    start_time: Option<String>,
    /// Required, after `startTime`.
    #[schema(required = true, format = DateTime, example = "2026-12-01T11:30:00+08:00")]
    end_time: Option<String>,
    /// An http(s) URL; blank for none.
    #[schema(max_length = 512)]
    cover: Option<String>,
}

impl PublishRequest {
    /// Missing or blank fields are 401, values out of shape 402, the first problem wins.
    fn validate(self) -> Result<MeetingDraft, ApiError> {
        let title = one_line("title", required("title", self.title)?, MAX_TITLE_CHARS)?;
        let content = required("content", self.content)?;
        if content.chars().count() > MAX_CONTENT_CHARS {
            return Err(ApiError::bad_value(format!(
                "content must be at most {MAX_CONTENT_CHARS} characters"
            )));
        }
        if content
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ApiError::bad_value(
                "content must not contain control characters other than line breaks and tabs",
            ));
        }
        user_text("content", &content)?;
        let location = one_line(
            "location",
            required("location", self.location)?,
            MAX_LOCATION_CHARS,
        )?;
        let start_time = time_value("startTime", required("startTime", self.start_time)?)?;
        let end_time = time_value("endTime", required("endTime", self.end_time)?)?;
        if end_time <= start_time {
            return Err(ApiError::bad_value("endTime must be after startTime"));
        }
        let cover = match self.cover.as_deref().map(str::trim) {
            None | Some("") => String::new(),
            Some(url) => cover_url(url)?,
        };
        Ok(MeetingDraft {
            title,
            content,
            location,
            start_time,
            end_time,
            cover,
        })
    }
}

fn required(name: &str, value: Option<String>) -> Result<String, ApiError> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_argument(format!("{name} is required")))
}

fn one_line(name: &str, value: String, max_chars: usize) -> Result<String, ApiError> {
    if value.chars().count() > max_chars {
        return Err(ApiError::bad_value(format!(
            "{name} must be at most {max_chars} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_value(format!(
            "{name} must be one line without control characters"
        )));
    }
    user_text(name, &value)?;
    Ok(value)
}

fn user_text(name: &str, value: &str) -> Result<(), ApiError> {
    crate::text::check_user_text(value)
        .map_err(|problem| ApiError::bad_value(problem.message(name)))
}

/// Meeting times outside these years (China Standard Time) are typing errors or probes: year 0,
/// negative years and far futures parse as ISO 8601, but no meeting happens then, and every list
/// sorted by start time would show them first or last forever.
pub(crate) const MEETING_YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

fn time_value(name: &str, raw: String) -> Result<DateTime<Utc>, ApiError> {
    let time = parse_client_time(&raw).ok_or_else(|| {
        ApiError::bad_value(format!(
            "{name} must be an ISO 8601 time such as 2026-12-01T09:30:00+08:00 \
             (without an offset it is China Standard Time)"
        ))
    })?;
    let year = china_time(time).year();
    if !MEETING_YEARS.contains(&year) {
        return Err(ApiError::bad_value(format!(
            "{name} must be in the years {} to {} (got {year})",
            MEETING_YEARS.start(),
            MEETING_YEARS.end()
        )));
    }
    Ok(time)
}

fn cover_url(url: &str) -> Result<String, ApiError> {
    super::profile::http_url("cover", url, MAX_COVER_LEN)
}

/// `POST meeting/publish` `{title, content, location, startTime, endTime, cover?}` → the meeting.
/// Title, content and location go through the content check first (see `content_check`): a
/// risky one is refused with nothing stored, one WeChat wants reviewed is stored pending.
pub(crate) async fn publish(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
    JsonBody(body): JsonBody<PublishRequest>,
) -> ApiResult {
    let draft = body.validate()?;
    let texts = [
        Text {
            field: "title",
            value: &draft.title,
        },
        Text {
            field: "content",
            value: &draft.content,
        },
        Text {
            field: "location",
            value: &draft.location,
        },
    ];
    let verdict = content_check::check(&state, &req, &user, Scene::Forum, &texts, true).await?;
    let review = match verdict {
        Verdict::Pass => review_state::VISIBLE,
        Verdict::Review => review_state::PENDING,
    };
    let published = state
        .db
        .publish_meeting(user.user_id, draft, review, Utc::now())
        .await?;
    log::info!(
        "meeting {} published by user {}{}",
        published.meeting.id,
        user.user_id,
        if review == review_state::PENDING {
            ", pending review"
        } else {
            ""
        }
    );
    ok(MeetingView::from(published))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct MeetingIdRequest {
    #[schema(required = true, minimum = 1)]
    id: Option<i64>,
}

impl MeetingIdRequest {
    fn id(&self) -> Result<i64, ApiError> {
        match self.id {
            None => Err(ApiError::bad_argument("id is required")),
            Some(id) if id < 1 => Err(no_such_meeting(id)),
            Some(id) => Ok(id),
        }
    }
}

/// The user's membership after a join or leave.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Membership {
    pub(crate) id: i64,
    pub(crate) joined: bool,
    pub(crate) member_count: i64,
}

fn no_such_meeting(id: i64) -> ApiError {
    ApiError::bad_value(format!("there is no meeting with id {id}"))
}

/// `POST meeting/join` `{id}`: joining twice is no error and counts once.
pub(crate) async fn join(
    state: web::Data<AppState>,
    user: AuthUser,
    JsonBody(body): JsonBody<MeetingIdRequest>,
) -> ApiResult {
    let id = body.id()?;
    match state.db.join_meeting(id, user.user_id, Utc::now()).await? {
        JoinOutcome::Joined { member_count } => ok(Membership {
            id,
            joined: true,
            member_count,
        }),
        JoinOutcome::NoSuchMeeting => Err(no_such_meeting(id)),
        JoinOutcome::Cancelled => Err(ApiError::bad_value(format!("meeting {id} was cancelled"))),
        JoinOutcome::Ended => Err(ApiError::bad_value(format!("meeting {id} has ended"))),
    }
}

/// `POST meeting/leave` `{id}`: leaving a meeting one is not a member of is no error.
pub(crate) async fn leave(
    state: web::Data<AppState>,
    user: AuthUser,
    JsonBody(body): JsonBody<MeetingIdRequest>,
) -> ApiResult {
    let id = body.id()?;
    let member_count = state
        .db
        .leave_meeting(id, user.user_id)
        .await?
        .ok_or_else(|| no_such_meeting(id))?;
    ok(Membership {
        id,
        joined: false,
        member_count,
    })
}

/// What `wx.requestSubscribeMessage` answered for the reminder template.
const CONSENTS: [&str; 3] = ["accept", "acceptWithAlert", "acceptWithAudio"];
const DECLINES: [&str; 3] = ["reject", "ban", "filter"];

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscribeRequest {
    /// The meeting, which the user has joined.
    #[schema(required = true, minimum = 1)]
    id: Option<i64>,
    /// The reminder template id the client asked the user about: the token's app's.
    #[schema(required = true, max_length = 128)]
    template_id: Option<String>,
    /// The user's answer for that template: `accept`, `acceptWithAlert` or `acceptWithAudio`
    /// consent to one reminder; `reject`, `ban` or `filter` do not.
    #[schema(required = true, example = "accept")]
    result: Option<String>,
}

/// The member's reminder after `meeting/subscribe`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subscription {
    pub(crate) id: i64,
    pub(crate) template_id: String,
    /// Whether a reminder for this meeting will be (or was) sent to the user.
    pub(crate) subscribed: bool,
}

/// `POST meeting/subscribe` `{id, templateId, result}`: the user's answer to the reminder
/// template of the token's app, for a meeting the user has joined. A consent gives one reminder,
/// sent `REMINDER_LEAD_MINS` before the start, in that app.
pub(crate) async fn subscribe(
    state: web::Data<AppState>,
    user: AuthUser,
    JsonBody(body): JsonBody<SubscribeRequest>,
) -> ApiResult {
    let id = MeetingIdRequest { id: body.id }.id()?;
    let template_id = required("templateId", body.template_id)?;
    let result = required("result", body.result)?;
    let consent = if CONSENTS.contains(&result.as_str()) {
        true
    } else if DECLINES.contains(&result.as_str()) {
        false
    } else {
        return Err(ApiError::bad_value(
            "result must be accept, acceptWithAlert, acceptWithAudio, reject, ban or filter",
        ));
    };
    if !state.apps.reminders_on() {
        return Err(ApiError::bad_value(
            "meeting reminders are off on this server",
        ));
    }
    // A consent is given in one mini-program, for its template: the token's.
    let app = token_app(&state, &user).await?;
    let Some(configured) = app.reminder_template.as_deref() else {
        return Err(ApiError::bad_value(
            "meeting reminders are off in this mini-program",
        ));
    };
    if template_id != configured {
        return Err(ApiError::bad_value(
            "templateId is not this app's meeting reminder template",
        ));
    }
    let outcome = state
        .db
        .subscribe_reminder(Consent {
            meeting_id: id,
            user_id: user.user_id,
            app_id: app.appid.clone(),
            template_id: template_id.clone(),
            given: consent,
            at: Utc::now(),
        })
        .await?;
    match outcome {
        SubscribeOutcome::Done { subscribed } => ok(Subscription {
            id,
            template_id,
            subscribed,
        }),
        SubscribeOutcome::NoSuchMeeting => Err(no_such_meeting(id)),
        SubscribeOutcome::NotMember => Err(ApiError::bad_value(format!(
            "join meeting {id} before asking for its reminder"
        ))),
        SubscribeOutcome::Cancelled => {
            Err(ApiError::bad_value(format!("meeting {id} was cancelled")))
        }
        SubscribeOutcome::Started => Err(ApiError::bad_value(format!("meeting {id} has started"))),
    }
}

/// The app of the request's token. A session of an app no longer configured is refused, as
/// bindPhone refuses it: there is no WeChat to send its reminders through.
async fn token_app<'a>(
    state: &'a AppState,
    user: &AuthUser,
) -> Result<&'a crate::apps::ServedApp, ApiError> {
    let default_appid = state.apps.default_app().appid.clone();
    let appid = state
        .db
        .session_appid(user.jti.clone(), default_appid)
        .await?
        .ok_or(ApiError::unlogin(UnloginReason::Revoked))?;
    state
        .apps
        .get(&appid)
        .ok_or(ApiError::unlogin(UnloginReason::Revoked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn times_with_an_offset_or_z_are_taken_as_given() {
        let want = utc(2026, 12, 1, 1, 30, 0);
        assert_eq!(parse_client_time("2026-12-01T09:30:00+08:00"), Some(want));
        assert_eq!(parse_client_time("2026-12-01T01:30:00Z"), Some(want));
        assert_eq!(parse_client_time("2026-12-01T02:30:00+01:00"), Some(want));
        assert_eq!(
            parse_client_time("2026-12-01T01:30:00.250Z"),
            Some(want + chrono::TimeDelta::milliseconds(250))
        );
    }

    #[test]
    fn times_without_an_offset_are_china_standard_time() {
        let want = utc(2026, 12, 1, 1, 30, 0);
        assert_eq!(parse_client_time("2026-12-01T09:30:00"), Some(want));
        assert_eq!(parse_client_time("2026-12-01T09:30"), Some(want));
        assert_eq!(
            parse_client_time("2026-12-01T09:30:00.5"),
            Some(want + chrono::TimeDelta::milliseconds(500))
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for raw in [
            "",
            "tomorrow",
            "2026-12-01",
            "09:30",
            "2026-13-01T09:30:00",
            "2026-02-30T09:30:00",
            "2026-12-01T25:00:00",
            "2026-12-01T09:30:00+25:00",
            "1764552600",
            "2026/12/01 09:30",
        ] {
            assert_eq!(parse_client_time(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn answers_are_rfc3339_in_china_standard_time() {
        assert_eq!(
            client_time(utc(2026, 12, 1, 17, 0, 0)),
            "2026-12-02T01:00:00+08:00"
        );
    }
}
