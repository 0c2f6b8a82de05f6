//! `WeChatClient`: the one place that talks to WeChat's servers, as an async actor around awc
//! (awc's client is `!Send`, so it lives inside the actor).
//!
//! - Identical login codes in flight at once are exchanged once: WeChat would refuse the second
//!   exchange (40163), so a double tap in the mini-program would log in and then show an error.
//! - Access tokens (the mini-program's, each WeCom corp's) are cached and refreshed
//!   single-flight (`access_token.rs`).
//! - WeCom staff log in through their corp (`wecom.rs`), on the same transport.
//! - Content checks and subscribe messages (`content.rs`) use the mini-program's token;
//!   content checks stay within WeChat's per-app allowance.
//! - Every round trip goes through `transport.rs` (bounded, timed) and is counted for the status
//!   page (`stats.rs`) and the metrics.

mod access_token;
mod content;
mod single_flight;
mod stats;
mod transport;
pub(crate) mod wecom;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use self::access_token::{TokenCache, TokenOwner};
use self::content::CheckBudget;
pub(crate) use self::content::{CHECKS_PER_MINUTE, MsgSecCheck, Scene, SendSubscribeMessage};
use self::single_flight::SingleFlight;
pub(crate) use self::stats::{UpstreamStats, UpstreamWindow};
pub(crate) use self::transport::MAX_IN_FLIGHT;
use self::transport::Upstream;
use crate::config::{AccessTokenMode, Secret};
use crate::logging::RequestId;
use crate::metrics::Metrics;
use crate::wechat::crypto::login_state_signature;
use crate::wechat::wecom::{WeComApp, WeComSession};
use crate::wechat::{
    JsCode, PhoneInfo, SessionKey, WeChatError, WxSession, errcode, mask_openid,
    parse_code2session, parse_phone_reply, parse_reply,
};

type Reply<T> = Result<T, WeChatError>;

pub(crate) struct WeChatClient {
    upstream: Upstream,
    appid: String,
    secret: Secret,
    token_mode: AccessTokenMode,
    logins_in_flight: SingleFlight<JsCode, WxSession>,
    tokens: TokenCache,
    /// The callers waiting for each token refresh in flight, by whose token.
    token_refresh: SingleFlight<TokenOwner, String>,
    /// WeCom's API: the same client, permits and tallies as WeChat's, another base.
    wecom: Upstream,
    /// The configured corps; nothing else is ever asked for a token or accepted in an answer.
    wecom_apps: Vec<WeComApp>,
    wecom_logins_in_flight: SingleFlight<(String, JsCode), WeComSession>,
    /// What is left of WeChat's content-check allowance for this app.
    content_checks: CheckBudget,
}

impl WeChatClient {
    pub(crate) fn new(
        api_base: String,
        appid: String,
        secret: Secret,
        timeout: Duration,
        token_mode: AccessTokenMode,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Counted under its own appid, which comes from the configuration: the metrics' `app`
        // label is never one a request named.
        let upstream = Upstream::new(api_base, timeout, metrics.wechat_for(&appid));
        WeChatClient {
            wecom: upstream.with_base(crate::config::WECOM_API_BASE.default.to_string()),
            upstream,
            appid,
            secret,
            token_mode,
            logins_in_flight: SingleFlight::default(),
            tokens: TokenCache::default(),
            token_refresh: SingleFlight::default(),
            wecom_apps: Vec::new(),
            wecom_logins_in_flight: SingleFlight::default(),
            content_checks: CheckBudget::new(CHECKS_PER_MINUTE),
        }
    }

    /// WeCom staff login for these corps, through `api_base` (`WECOM_API_BASE`).
    pub(crate) fn with_wecom(mut self, api_base: String, apps: Vec<WeComApp>) -> Self {
        self.wecom = self.upstream.with_base(api_base);
        self.wecom_apps = apps;
        self
    }

    fn exchange_code(&self, code: &JsCode) -> impl Future<Output = Reply<WxSession>> + 'static {
        let upstream = self.upstream.clone();
        let request = upstream.get(
            "/sns/jscode2session",
            &[
                ("appid", self.appid.as_str()),
                ("secret", self.secret.expose()),
                ("js_code", code.expose()),
                ("grant_type", "authorization_code"),
            ],
        );
        async move { upstream.call(request?, None, parse_code2session).await }
    }
}

impl Actor for WeChatClient {
    type Context = Context<Self>;
}

/// Exchange a `wx.login()` code for the user's openid and session_key.
#[derive(Message)]
#[rtype(result = "Result<WxSession, WeChatError>")]
pub(crate) struct Code2Session {
    pub(crate) code: JsCode,
    /// The login's request: the exchange's log lines carry its id.
    pub(crate) request_id: Option<RequestId>,
}

impl Handler<Code2Session> for WeChatClient {
    type Result = ResponseFuture<Reply<WxSession>>;

    fn handle(&mut self, msg: Code2Session, ctx: &mut Self::Context) -> Self::Result {
        let Code2Session { code, request_id } = msg;
        let (first, answer) = self.logins_in_flight.join(code.clone());
        if !first {
            RequestId::sync_scope(request_id, || {
                log::debug!(
                    "jscode2session: joining an exchange already in flight for the same code"
                )
            });
            return answer;
        }
        let started = Instant::now();
        ctx.spawn(
            self.exchange_code(&code)
                .into_actor(self)
                .map(move |result, act, _| {
                    // The first caller's request: the ones that joined it share its exchange.
                    RequestId::sync_scope(request_id, || match &result {
                        Ok(s) => log::debug!(
                            "jscode2session ok for {} in {} ms",
                            mask_openid(&s.openid),
                            started.elapsed().as_millis()
                        ),
                        Err(e) => log::warn!(
                            "jscode2session failed in {} ms: {e}",
                            started.elapsed().as_millis()
                        ),
                    });
                    act.logins_in_flight.finish(&code, &result);
                }),
        );
        answer
    }
}

/// Exchange a `getPhoneNumber` button's code for the phone number (new clients).
#[derive(Message)]
#[rtype(result = "Result<PhoneInfo, WeChatError>")]
pub(crate) struct GetPhoneNumber {
    pub(crate) code: String,
    /// Lets WeChat check that the code belongs to this user.
    pub(crate) openid: String,
    /// The request it serves: the access token's log lines carry its id.
    pub(crate) request_id: Option<RequestId>,
}

impl Handler<GetPhoneNumber> for WeChatClient {
    type Result = ResponseFuture<Reply<PhoneInfo>>;

    fn handle(&mut self, msg: GetPhoneNumber, ctx: &mut Self::Context) -> Self::Result {
        let body = serde_json::json!({ "code": msg.code, "openid": msg.openid });
        self.post_with_token(
            ctx,
            "/wxa/business/getuserphonenumber",
            body,
            msg.request_id,
            parse_phone_reply,
        )
    }
}

/// Does WeChat still consider this session_key the user's current one? (`/wxa/checksession`)
#[derive(Message)]
#[rtype(result = "Result<bool, WeChatError>")]
pub(crate) struct CheckSessionKey {
    pub(crate) openid: String,
    pub(crate) session_key: SessionKey,
    /// The request it serves: the access token's log lines carry its id.
    pub(crate) request_id: Option<RequestId>,
}

impl Handler<CheckSessionKey> for WeChatClient {
    type Result = ResponseFuture<Reply<bool>>;

    fn handle(&mut self, msg: CheckSessionKey, ctx: &mut Self::Context) -> Self::Result {
        let upstream = self.upstream.clone();
        // The key itself never travels: WeChat checks an HMAC made with it.
        let signature = login_state_signature(msg.session_key.expose(), "");
        let openid = msg.openid;
        Self::with_access_token(ctx, TokenOwner::MiniProgram, msg.request_id, move |token| {
            let upstream = upstream.clone();
            let query = [
                ("access_token", token),
                ("openid", openid.clone()),
                ("signature", signature.clone()),
                ("sig_method", "hmac_sha256".to_string()),
            ];
            Box::pin(async move {
                let request = upstream.get("/wxa/checksession", &query)?;
                // 87009 is WeChat's verdict on the key, not a failure of WeChat.
                let verdict =
                    |bytes: &[u8]| match parse_reply::<serde_json::Value>("checksession", bytes) {
                        Ok(_) => Ok(true),
                        Err(WeChatError::Api {
                            errcode: errcode::INVALID_SIGNATURE,
                            ..
                        }) => Ok(false),
                        Err(e) => Err(e),
                    };
                upstream.call(request, None, verdict).await
            })
        })
    }
}

/// What the status page shows about WeChat.
#[derive(Message)]
#[rtype(result = "UpstreamStats")]
pub(crate) struct GetUpstreamStats;

impl Handler<GetUpstreamStats> for WeChatClient {
    type Result = MessageResult<GetUpstreamStats>;

    fn handle(&mut self, _: GetUpstreamStats, _: &mut Self::Context) -> Self::Result {
        let mut stats = self.upstream.stats(Instant::now());
        stats.access_token_age_secs = self.access_token_age().map(|age| age.as_secs());
        MessageResult(stats)
    }
}
