//! `auth/*`: WeChat login and logout.

use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::extract::{AuthUser, JsonBody, client_ip, user_agent};
use super::middleware::{DeadlineStart, REQUEST_DEADLINE};
use super::profile::{
    DEFAULT_NICKNAME, UserInfoView, validate_avatar, validate_gender, validate_nickname,
};
use super::{ApiResult, AppState, ok, ok_empty};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apps::{ServedApp, ServedCorps, UnknownApp};
use crate::china_time::china_clock_text;
use crate::domain::{
    Identity, IdentityKind, LoginAttempt, NewSessionMeta, Profile, Revoked, SignIn, WxUser,
};
use crate::error::{self, ApiError, UnloginReason};
use crate::logging::RequestId;
use crate::sessions::{EndSession, EndUserSessions, Invalidate, OpenSession, RefreshSession};
use crate::token::new_jti;
use crate::wechat::client::Code2Session;
use crate::wechat::client::WeChatClient;
use crate::wechat::client::wecom::WeComLogin;
use crate::wechat::crypto::raw_data_signature_matches;
use crate::wechat::latency::WeChatLatency;
use crate::wechat::wecom::WeComSession;
use crate::wechat::{JsCode, SessionKey, WeChatError, mask_openid};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginRequest {
    /// The mini-program the code is from (`wx.getAccountInfoSync().miniProgram.appId`). Absent:
    /// the appid in the `Referer` WeChat sets, else the default app. One that is not
    /// configured is refused (402).
    #[schema(max_length = 64)]
    appid: Option<String>,
    /// From `wx.login()`.
    #[schema(
        required = true,
        min_length = 1,
        max_length = 128,
        pattern = r"^\s*[!-~]+\s*$"
    )]
    code: Option<String>,
    user_info: Option<LoginProfile>,
    /// `wx.getUserInfo`'s signed profile: `signature = sha1(rawData + session_key)`.
    /// A JSON object of the `userInfo` shape.
    raw_data: Option<String>,
    /// Sent together with `rawData`.
    signature: Option<String>,
}

/// The profile old clients send at login (`wx.getUserInfo`'s shape). Optional: current clients
/// send the code alone and fill the profile in later.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginProfile {
    /// Blank: the default nickname.
    #[schema(max_length = 64)]
    nick_name: Option<String>,
    /// An http(s) URL; blank for none.
    #[schema(max_length = 512)]
    avatar_url: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    #[schema(minimum = 0, maximum = 2)]
    gender: Option<i64>,
}

impl LoginProfile {
    fn validate(self) -> Result<Profile, ApiError> {
        let nickname = self.nick_name.as_deref().map(str::trim).unwrap_or_default();
        let nickname = if nickname.is_empty() {
            DEFAULT_NICKNAME.to_string()
        } else {
            validate_nickname(nickname)?
        };
        let avatar = match self.avatar_url.as_deref().map(str::trim) {
            None | Some("") => String::new(),
            Some(url) => validate_avatar(url)?,
        };
        let gender = validate_gender(self.gender.unwrap_or(0))?;
        Ok(Profile {
            nickname,
            avatar,
            gender,
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginAnswer {
    pub(crate) token: String,
    /// When the token stops working, `yyyy-MM-dd HH:mm:ss` China Standard Time.
    pub(crate) token_expire: String,
    pub(crate) user_info: UserInfoView,
    /// Present (true) only on the login that cancelled the account's pending deletion.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub(crate) restored: bool,
}

/// A login that went through, and what it cost this instance: the round trip of its statements
/// through the DbExecutor (queue included), the shared resource whose congestion sizes the login
/// admission. Neither WeChat's time (not our capacity) nor the HTTP workers' (busy refusing a
/// spike, which admitting fewer logins would not relieve) counts.
struct SignedIn {
    answer: LoginAnswer,
    database_time: Duration,
}

/// Kept free at the end of the deadline for the answer to be written and sent.
const ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// Kept for the database after the code is exchanged: WeChat gets the time left minus this, so
/// a spent code always has time to become a session. A login's statement takes milliseconds;
/// this covers a database that is slow for a moment, and the login's place is reserved there.
const DATABASE_RESERVE: Duration = Duration::from_millis(600);

/// `POST auth/login_by_weixin` `{code, userInfo?}`.
pub(crate) async fn login_by_weixin(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult {
    let began = Utc::now();
    let ip = client_ip(&req);
    if let Ok(addr) = ip.parse() {
        state.limits.login_from(addr)?;
    }
    let code = login_code(body.code, "wx.login()")?;
    let app = login_app(&state, body.appid.as_deref(), &req)?;
    // Checked before the exchange, so a bad profile does not burn the user's code.
    let signed = match (body.raw_data, body.signature) {
        (Some(raw), Some(sig)) => Some((raw, sig)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_argument(
                "rawData and signature must be sent together",
            ));
        }
    };
    let profile = match &signed {
        // A signed profile is the one WeChat vouches for; it wins over an unsigned userInfo.
        Some((raw, _)) => serde_json::from_str::<LoginProfile>(raw)
            .map_err(|_| ApiError::bad_value("rawData is not a JSON user profile"))?,
        None => body.user_info.unwrap_or_default(),
    }
    .validate()?;
    let attempt = LoginAttemptIn {
        app,
        credential: Credential::MiniProgram { code, signed },
        profile,
        began,
    };
    log_in(&state, &req, attempt, ip).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WeComCodeRequest {
    /// The mini-program opened inside WeCom, as `login_by_weixin`'s `appid`: absent, the appid
    /// in the `Referer`, else the default app. Its WeCom corp exchanges the code; a mini-program
    /// without one is refused (402).
    #[schema(max_length = 64)]
    appid: Option<String>,
    /// From `wx.qy.login()`.
    #[schema(
        required = true,
        min_length = 1,
        max_length = 128,
        pattern = r"^\s*[!-~]+\s*$"
    )]
    code: Option<String>,
}

/// `POST auth/login_by_wecom` `{code}`: staff who opened the mini-program inside WeCom log in as
/// (corpid, userid), through the corp configured for that mini-program. The same login as
/// `login_by_weixin` from the exchange on, with the same answer.
pub(crate) async fn login_by_wecom(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<WeComCodeRequest>,
) -> ApiResult {
    let began = Utc::now();
    let ip = client_ip(&req);
    if let Ok(addr) = ip.parse() {
        state.limits.login_from(addr)?;
    }
    let code = login_code(body.code, "wx.qy.login()")?;
    let app = login_app(&state, body.appid.as_deref(), &req)?;
    corps_of(app)?;
    let attempt = LoginAttemptIn {
        app,
        credential: Credential::WeCom { code },
        // A new account starts as any other; WeCom's login gives no profile.
        profile: LoginProfile::default().validate()?,
        began,
    };
    log_in(&state, &req, attempt, ip).await
}

/// The app a login (or a WeCom link) is for: see `ServedApps::for_login`.
fn login_app<'a>(
    state: &'a AppState,
    body_appid: Option<&str>,
    req: &HttpRequest,
) -> Result<&'a ServedApp, ApiError> {
    state.apps.for_login(body_appid, req).map_err(|unknown| {
        ApiError::bad_value(match unknown {
            UnknownApp::InBody => "appid is not one of this service's mini-programs",
            UnknownApp::InReferer => {
                "the Referer's appid is not one of this service's mini-programs"
            }
        })
    })
}

/// The WeCom corps of `app`: refused (402, WeCom not asked) when none is configured for it.
fn corps_of(app: &ServedApp) -> Result<&ServedCorps, ApiError> {
    app.wecom.as_ref().ok_or_else(|| {
        ApiError::bad_value(
            "no WeCom corp is configured for this mini-program: WeCom login is not available in it",
        )
    })
}

/// The login from admission on, whichever upstream vouches for the person: counted, written to
/// `login_log` (with the mini-program it was for), and answered.
async fn log_in(
    state: &AppState,
    req: &HttpRequest,
    attempt: LoginAttemptIn<'_>,
    ip: String,
) -> ApiResult {
    let app = attempt.app;
    // The time budget, once: what is left of the request's deadline after the answer's margin
    // and the database's reserve is for the admission queue and WeChat together.
    let budget = DeadlineStart::left(req).saturating_sub(ANSWER_MARGIN + DATABASE_RESERVE);
    let wechat_deadline = Instant::now() + budget;

    // Admission before anything is spent: a login is let in only if this instance can finish
    // it in time, so a refused user's code is still good for the retry.
    let mut permit = state.login_admission.acquire(budget).await?;

    // From here on every outcome is a login attempt: counted and written to login_log.
    let mut who = Who::default();
    let result = match sign_in(state, req, attempt, wechat_deadline, &ip, &mut who).await {
        Err(busy) if busy.is(error::BUSY) => {
            // Refused before WeChat was asked (its calls are at their cap): not an attempt either.
            state.metrics.refused.with_label_values(&["wechat"]).inc();
            crate::admission::log_refusal("wechat");
            return Err(busy);
        }
        result => result,
    };
    if let Ok(signed_in) = &result {
        permit.succeeded(signed_in.database_time);
    }
    drop(permit);
    let result = result.map(|signed_in| signed_in.answer);
    let errno = result.as_ref().map_or_else(ApiError::errno, |_| 0);
    state.metrics.observe_login(&app.appid, errno);
    state.login_log.record(LoginAttempt {
        app_id: app.appid.clone(),
        user_id: who.user_id,
        openid_masked: who.openid_masked,
        ip,
        user_agent: user_agent(req),
        errno,
        at: Utc::now(),
    });
    ok(result?)
}

/// What a login attempt learned about the user before it ended, for `login_log`.
#[derive(Default)]
struct Who {
    user_id: Option<i64>,
    /// The openid, or inside WeCom the userid, masked.
    openid_masked: String,
}

/// What a login exchanges upstream for the person's identity.
enum Credential {
    /// A `wx.login()` code, with `wx.getUserInfo`'s signed profile when sent.
    MiniProgram {
        code: JsCode,
        signed: Option<(String, String)>,
    },
    /// A `wx.qy.login()` code, exchanged as the app's WeCom corp.
    WeCom { code: JsCode },
}

/// What a login attempt brings to `sign_in`, checked.
struct LoginAttemptIn<'a> {
    app: &'a ServedApp,
    credential: Credential,
    profile: Profile,
    began: DateTime<Utc>,
}

/// Who WeChat (or WeCom) says the person is, and what the session keeps.
struct Vouched {
    identity: Identity,
    unionid: Option<String>,
    session_key: SessionKey,
}

/// Exchanges the credential within `wechat_time` and checks what came back.
async fn vouch(
    state: &AppState,
    app: &ServedApp,
    credential: Credential,
    wechat_time: Duration,
    who: &mut Who,
) -> Result<Vouched, ApiError> {
    match credential {
        Credential::MiniProgram { code, signed } => {
            let session = exchange_code(app, code, wechat_time).await?;
            who.openid_masked = mask_openid(&session.openid);
            state.limits.login_of(&app.appid, &session.openid)?;
            if let Some((raw, sig)) = &signed
                && !raw_data_signature_matches(raw, session.session_key.expose(), sig)
            {
                log::warn!(
                    "login refused: rawData signature mismatch for {}",
                    who.openid_masked
                );
                return Err(ApiError::new(error::SIGNATURE_MISMATCH));
            }
            Ok(Vouched {
                identity: Identity::mini_program(&app.appid, &session.openid),
                unionid: session.unionid,
                session_key: session.session_key,
            })
        }
        Credential::WeCom { code } => {
            let session = exchange_wecom_code(app, code, wechat_time).await?;
            who.openid_masked = mask_openid(&session.userid);
            state.limits.login_of(&session.corpid, &session.userid)?;
            // WeCom's login gives no unionid: staff join a WeChat account by link only.
            Ok(Vouched {
                identity: Identity::wecom(&session.corpid, &session.userid),
                unionid: None,
                session_key: session.session_key,
            })
        }
    }
}

/// The login proper: code → WeChat (or WeCom) session → (through the SessionActor, the
/// sessions' one owner) identity → user → session → token.
async fn sign_in(
    state: &AppState,
    req: &HttpRequest,
    attempt: LoginAttemptIn<'_>,
    wechat_deadline: Instant,
    ip: &str,
    who: &mut Who,
) -> Result<SignedIn, ApiError> {
    let LoginAttemptIn {
        app,
        credential,
        profile,
        began,
    } = attempt;
    let wechat_time = wechat_deadline.saturating_duration_since(Instant::now());
    let vouched = vouch(state, app, credential, wechat_time, who).await?;
    let identity = vouched.identity;

    let now = Utc::now();
    let jti = new_jti();
    let expires_at = state.tokens.expires_at(now.timestamp());
    let login = SignIn {
        identity: identity.clone(),
        // Only the default mini-program's users can predate identities.
        default_app: identity.kind == IdentityKind::MiniProgram
            && app.appid == state.apps.default_app().appid,
        unionid: vouched.unionid,
        profile,
        session_id: jti.clone(),
        session_key: vouched.session_key,
        expires_at: DateTime::<Utc>::from_timestamp(expires_at, 0).unwrap_or(now),
        client_ip: ip.to_string(),
        user_agent: user_agent(req),
        at: now,
    };
    let opened = state.sessions.send(OpenSession { login, began }).await??;
    let user = opened.record.user;
    who.user_id = Some(user.id);
    if let Some(merged) = opened.merged_id {
        state.metrics.account_merges.inc();
        log::info!(
            "login: user {merged} was the same person as user {} (unionid): merged into it",
            user.id
        );
    }
    if !opened.record.session_stored {
        log::info!("login refused: user {} is disabled", user.id);
        return Err(ApiError::new(error::ACCOUNT_DISABLED));
    }

    let issued = state
        .tokens
        .issue_for(user.id, jti, now.timestamp(), expires_at)
        .map_err(|e| ApiError::internal("cannot sign token", e))?;
    log::info!(
        "login ok: user {} {} in {}",
        user.id,
        who.openid_masked,
        place(&identity, app)
    );

    Ok(SignedIn {
        answer: LoginAnswer {
            token: issued.token,
            token_expire: token_expire(issued.expires_at),
            user_info: user_view(&user, &identity),
            restored: opened.restored,
        },
        database_time: opened.database_time,
    })
}

/// The account as an answer shows it; a WeCom identity's corp and userid with it.
fn user_view(user: &WxUser, identity: &Identity) -> UserInfoView {
    let view = UserInfoView::from(user);
    match identity.kind {
        IdentityKind::WeCom => view.in_corp(&identity.app_id, &identity.subject),
        IdentityKind::MiniProgram => view,
    }
}

/// Where an identity is, for the log: the app, or the corp and the app it opened.
fn place(identity: &Identity, app: &ServedApp) -> String {
    match identity.kind {
        IdentityKind::WeCom => format!("WeCom corp {} ({})", identity.app_id, app.appid),
        IdentityKind::MiniProgram => app.appid.clone(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LinkWeixinRequest {
    /// From `wx.login()` in the other mini-program.
    #[schema(
        required = true,
        min_length = 1,
        max_length = 128,
        pattern = r"^\s*[!-~]+\s*$"
    )]
    code: Option<String>,
    /// The other mini-program's appid; one this service is configured for.
    #[schema(required = true, max_length = 64)]
    appid: Option<String>,
}

/// `POST auth/link_weixin` `{code, appid}`: the person's identity in another mini-program joins
/// the caller's account, for apps whose logins give no unionid. When another account had it (or
/// its unionid), that account is merged into the caller's.
pub(crate) async fn link_weixin(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    JsonBody(body): JsonBody<LinkWeixinRequest>,
) -> ApiResult {
    let code = login_code(body.code, "wx.login()")?;
    let appid = body
        .appid
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| ApiError::bad_argument("appid is required: the other mini-program's"))?;
    let app = state
        .apps
        .get(appid.trim())
        .ok_or_else(|| ApiError::bad_value("appid is not one of this service's mini-programs"))?;
    let wechat_time = DeadlineStart::left(&req).saturating_sub(ANSWER_MARGIN + DATABASE_RESERVE);
    let session = exchange_code(app, code, wechat_time).await?;
    let identity = Identity::mini_program(&app.appid, &session.openid);
    let masked = mask_openid(&session.openid);
    link(&state, &user, identity, session.unionid, app, &masked).await
}

/// `POST auth/link_wecom` `{code}`: the person's WeCom identity (a `wx.qy.login()` code, exchanged
/// as the corp of the mini-program the request is for, chosen as a login's is) joins the
/// caller's account. When another account had it, that account is merged into the caller's.
pub(crate) async fn link_wecom(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    JsonBody(body): JsonBody<WeComCodeRequest>,
) -> ApiResult {
    let code = login_code(body.code, "wx.qy.login()")?;
    let app = login_app(&state, body.appid.as_deref(), &req)?;
    corps_of(app)?;
    let wechat_time = DeadlineStart::left(&req).saturating_sub(ANSWER_MARGIN + DATABASE_RESERVE);
    let session = exchange_wecom_code(app, code, wechat_time).await?;
    let identity = Identity::wecom(&session.corpid, &session.userid);
    let masked = mask_openid(&session.userid);
    link(&state, &user, identity, None, app, &masked).await
}

/// Attaches `identity` to the caller's account, merging the account that had it (or its
/// `unionid`), and answers the account as it is after.
async fn link(
    state: &AppState,
    user: &AuthUser,
    identity: Identity,
    unionid: Option<String>,
    app: &ServedApp,
    masked: &str,
) -> ApiResult {
    let linked = state
        .db
        .link_identity(user.user_id, identity.clone(), unionid)
        .await?;
    let Some((account, merged)) = linked else {
        return Err(ApiError::unlogin(UnloginReason::Disabled));
    };
    for merged in merged {
        // Its sessions went with its row and the trigger tells every instance; this one
        // forgets them before it answers, so the client's next call with one is already 501.
        state
            .sessions
            .send(Invalidate(Revoked::User(merged)))
            .await?;
        state.metrics.account_merges.inc();
        log::info!(
            "link: user {merged} was the same person as user {}: merged into it",
            account.id
        );
    }
    log::info!(
        "link: user {} linked {masked} in {}",
        account.id,
        place(&identity, app)
    );
    ok(LinkAnswer {
        user_info: user_view(&account, &identity),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LinkAnswer {
    /// The caller's account, as it is after the link (and merge).
    pub(crate) user_info: UserInfoView,
}

/// The body's `code` from `source` (`wx.login()`, `wx.qy.login()`): present, not blank, and
/// shaped like a code.
fn login_code(raw: Option<String>, source: &str) -> Result<JsCode, ApiError> {
    let raw = raw.filter(|c| !c.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_argument(format!("code is required: pass the code from {source}"))
    })?;
    JsCode::parse(&raw).map_err(ApiError::bad_value)
}

/// Exchanges a login code at `app`'s WeChat within `wechat_time`: see `exchange`.
async fn exchange_code(
    app: &ServedApp,
    code: JsCode,
    wechat_time: Duration,
) -> Result<crate::wechat::WxSession, ApiError> {
    let message = Code2Session {
        code,
        request_id: RequestId::current(),
    };
    exchange(&app.latency, &app.wechat, message, wechat_time).await
}

/// Exchanges a `wx.qy.login()` code as `app`'s WeCom corp within `wechat_time`: see `exchange`.
/// The caller has checked that the app has a corp.
async fn exchange_wecom_code(
    app: &ServedApp,
    code: JsCode,
    wechat_time: Duration,
) -> Result<WeComSession, ApiError> {
    let corps = corps_of(app)?;
    let message = WeComLogin {
        corpid: corps.corpid.clone(),
        code,
        request_id: RequestId::current(),
    };
    exchange(&corps.latency, &app.wechat, message, wechat_time).await
}

/// Sends a code exchange to `wechat` within `wechat_time`, if that covers the upstream's round
/// trip (`latency`) as it is now. A login that waited in the admission queue may have less time
/// left than WeChat takes: its code is then not sent at all (721, the code still good for the
/// retry) rather than sent and abandoned at the deadline with no session. WECHAT_TIMEOUT_MS still
/// bounds the call; this bounds it by the deadline too.
async fn exchange<M, T>(
    latency: &Arc<WeChatLatency>,
    wechat: &actix::Addr<WeChatClient>,
    message: M,
    wechat_time: Duration,
) -> Result<T, ApiError>
where
    M: actix::Message<Result = Result<T, WeChatError>> + Send + 'static,
    T: Send + 'static,
    WeChatClient: actix::Handler<M>,
{
    // Capped below what a login that did not queue has: an estimate above that would refuse every
    // login, and with no code sent no round trip would ever bring it down again.
    let needed = latency.expected().min(
        REQUEST_DEADLINE
            .saturating_sub(ANSWER_MARGIN + DATABASE_RESERVE)
            .mul_f64(0.9),
    );
    if wechat_time < needed {
        return Err(ApiError::busy(
            "no time left for WeChat within the deadline",
            needed.as_millis().clamp(200, 5000) as u64,
        ));
    }
    let in_flight = latency.start();
    let exchange = tokio::time::timeout(wechat_time, wechat.send(message)).await;
    in_flight.ended();
    Ok(exchange.map_err(|_| ApiError::new(error::WX_TIMEOUT))???)
}

/// `POST auth/logout`: the token is dead from this moment on.
pub(crate) async fn logout(state: web::Data<AppState>, user: AuthUser) -> ApiResult {
    state.sessions.send(EndSession { jti: user.jti }).await??;
    log::info!("logout: user {}", user.user_id);
    ok_empty()
}

/// `POST auth/logout_all`: every session of the user, on every instance, is dead at once.
pub(crate) async fn logout_all(state: web::Data<AppState>, user: AuthUser) -> ApiResult {
    let ended = state
        .sessions
        .send(EndUserSessions {
            user_id: user.user_id,
        })
        .await??;
    log::info!("logout_all: user {} ended {ended} sessions", user.user_id);
    ok_empty()
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshAnswer {
    pub(crate) token: String,
    pub(crate) token_expire: String,
}

/// `POST auth/refresh`: a new token for the same session_key; the old token is dead at once.
/// Lets a client stay logged in without calling wx.login() again. The new token lives a full
/// TTL, but never past the session's maximum lifetime counted from its login: near that end a
/// refresh still succeeds, with the shorter expiry, and after it the session is dead (501).
pub(crate) async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
) -> ApiResult {
    let now = Utc::now();
    let jti = new_jti();
    let wanted =
        DateTime::<Utc>::from_timestamp(now.timestamp() + state.tokens.ttl().as_secs() as i64, 0)
            .unwrap_or(now);
    let refreshed = state
        .sessions
        .send(RefreshSession {
            old_jti: user.jti,
            new: NewSessionMeta {
                id: jti.clone(),
                user_id: user.user_id,
                expires_at: wanted,
                client_ip: client_ip(&req),
                user_agent: user_agent(&req),
            },
        })
        .await??;
    // None: revoked between the check and the rotation (a concurrent refresh or logout), or
    // past its maximum lifetime.
    let expires_at = refreshed.ok_or(ApiError::unlogin(UnloginReason::Revoked))?;
    let issued = state
        .tokens
        .issue_for(user.user_id, jti, now.timestamp(), expires_at.timestamp())
        .map_err(|e| ApiError::internal("cannot sign token", e))?;
    ok(RefreshAnswer {
        token: issued.token,
        token_expire: token_expire(issued.expires_at),
    })
}

/// `yyyy-MM-dd HH:mm:ss` China Standard Time, as litemall-style clients show it.
fn token_expire(expires_at: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp(expires_at, 0).unwrap_or_else(Utc::now);
    china_clock_text(at)
}
