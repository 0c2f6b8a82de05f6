//! `WeChatClient`: the one place that talks to WeChat's servers, as an async actor around awc
//! (awc's client is `!Send`, so it lives inside the actor).
//!
//! - Identical login codes in flight at once are exchanged once: WeChat would refuse the second
//!   exchange (40163), so a double tap in the mini-program would log in and then show an error.
//! - The access token is cached with an early-expiry margin and refreshed single-flight: however
//!   many callers need one, WeChat sees one request. A call refused with 40001/42001 refreshes
//!   the token once and retries once, never more.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::{AccessTokenMode, Secret};
use crate::metrics::Metrics;
use crate::wechat::crypto::login_state_signature;
use crate::wechat::{
    AccessTokenReply, JsCode, PhoneInfo, SessionKey, WeChatError, WxSession, errcode, mask_openid,
    parse_code2session, parse_phone_reply, parse_reply,
};

/// Bodies larger than this are not a WeChat answer.
const MAX_BODY: usize = 64 * 1024;
/// Connections to WeChat open at once. awc's default, 100, capped logins at 100 per WeChat round
/// trip: 500/s when WeChat takes 200 ms, while 256 waiting clients could use 1280/s (issue 8,
/// figure 3). 512 is far more than one instance's CPU can use at WeChat's usual latency, and
/// still a bound: a stalled WeChat cannot make us open sockets without end (calls beyond it wait
/// for a free connection, within the same `WECHAT_TIMEOUT_MS`).
const MAX_CONNECTIONS: usize = 512;
/// Refresh this long before WeChat says the token expires (WeChat's own overlap is 5 minutes).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

type Reply<T> = Result<T, WeChatError>;
type Waiters<T> = Vec<oneshot::Sender<Reply<T>>>;

/// The status page's error rate looks back this far.
const WINDOW: Duration = Duration::from_secs(3600);
/// At most this many round trips are remembered for the window (a few MB at worst); beyond it the
/// window is the most recent calls only, which is still the right picture of an upstream outage.
const MAX_WINDOW_CALLS: usize = 100_000;

/// WeChat as this process has seen it: every real round trip (a joined double tap counts once).
#[derive(Default)]
struct Tally {
    calls: u64,
    errors: BTreeMap<String, u64>,
    last_latency: Option<Duration>,
    last_at: Option<DateTime<Utc>>,
    last_outcome: Option<String>,
    /// (when, errcode label if it failed), oldest first.
    recent: VecDeque<(Instant, Option<String>)>,
}

impl Tally {
    fn record(&mut self, latency: Duration, error: Option<String>) {
        self.calls += 1;
        if let Some(label) = &error {
            *self.errors.entry(label.clone()).or_default() += 1;
        }
        self.last_latency = Some(latency);
        self.last_at = Some(Utc::now());
        self.last_outcome = Some(error.clone().unwrap_or_else(|| "ok".into()));
        self.recent.push_back((Instant::now(), error));
        while self.recent.len() > MAX_WINDOW_CALLS {
            self.recent.pop_front();
        }
    }

    fn stats(&mut self, now: Instant) -> UpstreamStats {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            self.recent.pop_front();
        }
        let mut window_errors: BTreeMap<String, u64> = BTreeMap::new();
        for label in self.recent.iter().filter_map(|(_, e)| e.as_ref()) {
            *window_errors.entry(label.clone()).or_default() += 1;
        }
        let window_calls = self.recent.len() as u64;
        let window_failed: u64 = window_errors.values().sum();
        UpstreamStats {
            calls_total: self.calls,
            errors_total: self.errors.values().sum(),
            errors_by_errcode: self.errors.clone(),
            last_hour: UpstreamWindow {
                calls: window_calls,
                errors: window_failed,
                error_rate: (window_calls > 0).then(|| window_failed as f64 / window_calls as f64),
                errors_by_errcode: window_errors,
            },
            last_latency_ms: self.last_latency.map(|d| d.as_millis() as u64),
            last_call_at: self
                .last_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            last_outcome: self.last_outcome.clone(),
            access_token_age_secs: None,
        }
    }
}

/// WeChat upstream health for the status page.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStats {
    /// Round trips since start.
    pub calls_total: u64,
    pub errors_total: u64,
    /// Since start, keyed by WeChat's errcode or `timeout`/`unreachable`/`bad_response`.
    pub errors_by_errcode: BTreeMap<String, u64>,
    pub last_hour: UpstreamWindow,
    pub last_latency_ms: Option<u64>,
    /// RFC 3339, UTC.
    pub last_call_at: Option<String>,
    /// `ok`, or the errcode label of the newest round trip.
    pub last_outcome: Option<String>,
    /// Age of the cached access token; `None` until a call needed one (bindPhone, checksession).
    pub access_token_age_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamWindow {
    pub calls: u64,
    pub errors: u64,
    /// errors / calls, `None` without calls.
    pub error_rate: Option<f64>,
    pub errors_by_errcode: BTreeMap<String, u64>,
}

struct CachedToken {
    token: String,
    fetched_at: Instant,
    usable_until: Instant,
}

/// At most this many WeChat calls in flight; more are refused at once rather than queued behind
/// a slow WeChat (each waits up to WECHAT_TIMEOUT_MS, so a queue would only grow).
pub const MAX_IN_FLIGHT: usize = 1024;

/// What the actor needs to make a request; cloned into each request's future.
#[derive(Clone)]
struct Upstream {
    http: awc::Client,
    api_base: String,
    timeout: Duration,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// Every real round trip is counted here and in the metrics (the futures run on the
    /// actor's thread, so a `RefCell` is enough).
    tally: Rc<RefCell<Tally>>,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// One round trip and the parsing of its answer, counted for the status page and metrics
    /// (WeChat's errcodes included: they arrive in HTTP 200 bodies).
    async fn call<T>(
        &self,
        request: awc::ClientRequest,
        json: Option<serde_json::Value>,
        parse: impl FnOnce(&[u8]) -> Reply<T>,
    ) -> Reply<T> {
        let started = Instant::now();
        let result = self
            .round_trip(request, json)
            .await
            .and_then(|body| parse(&body));
        let latency = started.elapsed();
        let error = result.as_ref().err().map(WeChatError::errcode_label);
        self.metrics
            .observe_wechat(latency.as_secs_f64(), error.as_deref());
        self.tally.borrow_mut().record(latency, error);
        result
    }

    /// One round trip, bounded by the configured timeout as a whole (awc's own timeout does not
    /// cover reading the body). Answers the body bytes of an HTTP 200.
    async fn round_trip(
        &self,
        request: awc::ClientRequest,
        json: Option<serde_json::Value>,
    ) -> Reply<actix_web::web::Bytes> {
        let _permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| WeChatError::Overloaded)?;
        let round_trip = async move {
            let sent = match json {
                Some(body) => request.send_json(&body).await,
                None => request.send().await,
            };
            let mut response = sent.map_err(|e| match e {
                awc::error::SendRequestError::Timeout => WeChatError::Timeout,
                other => WeChatError::Transport(other.to_string()),
            })?;
            if !response.status().is_success() {
                return Err(WeChatError::HttpStatus(response.status().as_u16()));
            }
            response.body().limit(MAX_BODY).await.map_err(|e| match e {
                awc::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                    WeChatError::Timeout
                }
                other => WeChatError::BadResponse(format!("unreadable body: {other}")),
            })
        };
        match tokio::time::timeout(self.timeout, round_trip).await {
            Ok(result) => result,
            Err(_) => Err(WeChatError::Timeout),
        }
    }

    fn get<Q: Serialize>(&self, path: &str, query: &Q) -> Reply<awc::ClientRequest> {
        self.http
            .get(format!("{}{path}", self.api_base))
            .query(query)
            .map_err(|e| WeChatError::Transport(format!("cannot build request: {e}")))
    }

    fn post<Q: Serialize>(&self, path: &str, query: &Q) -> Reply<awc::ClientRequest> {
        self.http
            .post(format!("{}{path}", self.api_base))
            .query(query)
            .map_err(|e| WeChatError::Transport(format!("cannot build request: {e}")))
    }
}

pub struct WeChatClient {
    upstream: Upstream,
    appid: String,
    secret: Secret,
    token_mode: AccessTokenMode,
    logins_in_flight: HashMap<JsCode, Waiters<WxSession>>,
    token: Option<CachedToken>,
    /// `Some` while a token refresh is in flight: the callers waiting for it.
    token_waiters: Option<Waiters<String>>,
}

impl WeChatClient {
    pub fn new(
        api_base: String,
        appid: String,
        secret: Secret,
        timeout: Duration,
        token_mode: AccessTokenMode,
        metrics: Arc<Metrics>,
    ) -> Self {
        let http = awc::Client::builder()
            .connector(awc::Connector::new().limit(MAX_CONNECTIONS))
            .timeout(timeout)
            .disable_redirects()
            .finish();
        WeChatClient {
            upstream: Upstream {
                http,
                api_base,
                timeout,
                permits: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
                tally: Rc::new(RefCell::new(Tally::default())),
                metrics,
            },
            appid,
            secret,
            token_mode,
            logins_in_flight: HashMap::new(),
            token: None,
            token_waiters: None,
        }
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

    /// Fetches a token the configured way, and answers which way worked. A server without
    /// `stable_token` (HTTP 404 or 405: some WeChat-compatible gateways and fakes) gets the plain
    /// `cgi-bin/token` instead, which every such server has; the caller then stays with it.
    fn fetch_access_token(
        &self,
    ) -> impl Future<Output = Reply<(AccessTokenReply, AccessTokenMode)>> + 'static {
        let upstream = self.upstream.clone();
        let stable = (self.token_mode == AccessTokenMode::Stable).then(|| {
            let body = serde_json::json!({
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret.expose(),
                "force_refresh": false,
            });
            upstream
                .post("/cgi-bin/stable_token", &())
                .map(|request| (request, body))
        });
        let plain = upstream.get(
            "/cgi-bin/token",
            &[
                ("grant_type", "client_credential"),
                ("appid", self.appid.as_str()),
                ("secret", self.secret.expose()),
            ],
        );
        async move {
            if let Some(stable) = stable {
                let (request, body) = stable?;
                match upstream.call(request, Some(body), parse_access_token).await {
                    Err(WeChatError::HttpStatus(404 | 405)) => {}
                    other => return other.map(|reply| (reply, AccessTokenMode::Stable)),
                }
            }
            upstream
                .call(plain?, None, parse_access_token)
                .await
                .map(|reply| (reply, AccessTokenMode::Plain))
        }
    }

    /// Runs a call that needs the access token; on a stale-token errcode, refreshes once and
    /// retries once.
    fn with_access_token<T: 'static>(
        ctx: &mut Context<Self>,
        call: impl Fn(String) -> LocalBoxFuture<'static, Reply<T>> + 'static,
    ) -> LocalBoxFuture<'static, Reply<T>> {
        let me = ctx.address();
        Box::pin(async move {
            let stopped = |_| WeChatError::Transport("wechat client stopped".into());
            let token = me
                .send(AccessToken { refused: None })
                .await
                .map_err(stopped)??;
            match call(token.clone()).await {
                Err(WeChatError::Api { errcode, .. })
                    if errcode::is_stale_access_token(errcode) =>
                {
                    log::info!(
                        "WeChat refused our access token (errcode {errcode}): refreshing once"
                    );
                    let fresh = me
                        .send(AccessToken {
                            refused: Some(token),
                        })
                        .await
                        .map_err(stopped)??;
                    call(fresh).await
                }
                other => other,
            }
        })
    }
}

impl Actor for WeChatClient {
    type Context = Context<Self>;
}

/// Exchange a `wx.login()` code for the user's openid and session_key.
#[derive(Message)]
#[rtype(result = "Result<WxSession, WeChatError>")]
pub struct Code2Session(pub JsCode);

impl Handler<Code2Session> for WeChatClient {
    type Result = ResponseFuture<Reply<WxSession>>;

    fn handle(&mut self, msg: Code2Session, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let code = msg.0;
        if let Some(waiters) = self.logins_in_flight.get_mut(&code) {
            log::debug!("jscode2session: joining an exchange already in flight for the same code");
            waiters.push(tx);
        } else {
            self.logins_in_flight.insert(code.clone(), vec![tx]);
            let started = Instant::now();
            ctx.spawn(
                self.exchange_code(&code)
                    .into_actor(self)
                    .map(move |result, act, _| {
                        match &result {
                            Ok(s) => log::debug!(
                                "jscode2session ok for {} in {} ms",
                                mask_openid(&s.openid),
                                started.elapsed().as_millis()
                            ),
                            Err(e) => log::warn!(
                                "jscode2session failed in {} ms: {e}",
                                started.elapsed().as_millis()
                            ),
                        }
                        for waiter in act.logins_in_flight.remove(&code).unwrap_or_default() {
                            // A waiter that went away (client disconnected) does not matter.
                            let _ = waiter.send(result.clone());
                        }
                    }),
            );
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(WeChatError::Transport("wechat client stopped".into())))
        })
    }
}

/// A usable access token. `refused` names a token WeChat just refused, so it is not handed out
/// again; a token refreshed meanwhile by another caller is used as is.
#[derive(Message)]
#[rtype(result = "Result<String, WeChatError>")]
struct AccessToken {
    refused: Option<String>,
}

impl Handler<AccessToken> for WeChatClient {
    type Result = ResponseFuture<Reply<String>>;

    fn handle(&mut self, msg: AccessToken, ctx: &mut Self::Context) -> Self::Result {
        if let (Some(refused), Some(cached)) = (&msg.refused, &self.token)
            && &cached.token == refused
        {
            self.token = None;
        }
        if let Some(cached) = self
            .token
            .as_ref()
            .filter(|t| t.usable_until > Instant::now())
        {
            let token = cached.token.clone();
            return Box::pin(async move { Ok(token) });
        }
        let (tx, rx) = oneshot::channel();
        match &mut self.token_waiters {
            Some(waiters) => waiters.push(tx),
            None => {
                self.token_waiters = Some(vec![tx]);
                let started = Instant::now();
                ctx.spawn(
                    self.fetch_access_token()
                        .into_actor(self)
                        .map(move |result, act, _| {
                            let result = result.map(|(reply, mode)| {
                                if mode != act.token_mode {
                                    log::warn!(
                                        "WECHAT_API_BASE has no /cgi-bin/stable_token: access tokens come from /cgi-bin/token from now on (WECHAT_TOKEN_MODE=plain says so up front)"
                                    );
                                    act.token_mode = mode;
                                }
                                let lifetime = Duration::from_secs(reply.expires_in);
                                let margin = TOKEN_MARGIN.min(lifetime / 10);
                                act.token = Some(CachedToken {
                                    token: reply.access_token.clone(),
                                    fetched_at: started,
                                    usable_until: started + lifetime - margin,
                                });
                                log::info!(
                                    "fetched a WeChat access token valid for {} s",
                                    reply.expires_in
                                );
                                reply.access_token
                            });
                            if let Err(e) = &result {
                                log::warn!("cannot fetch a WeChat access token: {e}");
                            }
                            for waiter in act.token_waiters.take().unwrap_or_default() {
                                let _ = waiter.send(result.clone());
                            }
                        }),
                );
            }
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(WeChatError::Transport("wechat client stopped".into())))
        })
    }
}

/// Exchange a `getPhoneNumber` button's code for the phone number (new clients).
#[derive(Message)]
#[rtype(result = "Result<PhoneInfo, WeChatError>")]
pub struct GetPhoneNumber {
    pub code: String,
    /// Lets WeChat check that the code belongs to this user.
    pub openid: String,
}

impl Handler<GetPhoneNumber> for WeChatClient {
    type Result = ResponseFuture<Reply<PhoneInfo>>;

    fn handle(&mut self, msg: GetPhoneNumber, ctx: &mut Self::Context) -> Self::Result {
        let upstream = self.upstream.clone();
        let body = serde_json::json!({ "code": msg.code, "openid": msg.openid });
        Self::with_access_token(ctx, move |token| {
            let upstream = upstream.clone();
            let body = body.clone();
            Box::pin(async move {
                let request = upstream.post(
                    "/wxa/business/getuserphonenumber",
                    &[("access_token", token.as_str())],
                )?;
                upstream.call(request, Some(body), parse_phone_reply).await
            })
        })
    }
}

/// Does WeChat still consider this session_key the user's current one? (`/wxa/checksession`)
#[derive(Message)]
#[rtype(result = "Result<bool, WeChatError>")]
pub struct CheckSessionKey {
    pub openid: String,
    pub session_key: SessionKey,
}

impl Handler<CheckSessionKey> for WeChatClient {
    type Result = ResponseFuture<Reply<bool>>;

    fn handle(&mut self, msg: CheckSessionKey, ctx: &mut Self::Context) -> Self::Result {
        let upstream = self.upstream.clone();
        // The key itself never travels: WeChat checks an HMAC made with it.
        let signature = login_state_signature(msg.session_key.expose(), "");
        let openid = msg.openid;
        Self::with_access_token(ctx, move |token| {
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
pub struct GetUpstreamStats;

impl Handler<GetUpstreamStats> for WeChatClient {
    type Result = MessageResult<GetUpstreamStats>;

    fn handle(&mut self, _: GetUpstreamStats, _: &mut Self::Context) -> Self::Result {
        let mut stats = self.upstream.tally.borrow_mut().stats(Instant::now());
        stats.access_token_age_secs = self
            .token
            .as_ref()
            .map(|t| t.fetched_at.elapsed().as_secs());
        MessageResult(stats)
    }
}

/// An access token answer; an empty token or lifetime is as bad as garbage.
fn parse_access_token(bytes: &[u8]) -> Reply<AccessTokenReply> {
    let reply: AccessTokenReply = parse_reply("access token", bytes)?;
    if reply.access_token.is_empty() || reply.expires_in == 0 {
        return Err(WeChatError::BadResponse(
            "access token answer is empty".into(),
        ));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_errors_by_errcode_and_forgets_the_window_after_an_hour() {
        let mut tally = Tally::default();
        tally.record(Duration::from_millis(40), None);
        tally.record(Duration::from_millis(90), Some("45011".into()));
        tally.record(Duration::from_millis(2000), Some("timeout".into()));
        let stats = tally.stats(Instant::now());
        assert_eq!(stats.calls_total, 3);
        assert_eq!(stats.errors_total, 2);
        assert_eq!(stats.errors_by_errcode.get("45011"), Some(&1));
        assert_eq!(stats.last_latency_ms, Some(2000));
        assert_eq!(stats.last_outcome.as_deref(), Some("timeout"));
        assert_eq!(stats.last_hour.calls, 3);
        assert!(
            stats
                .last_hour
                .error_rate
                .is_some_and(|r| (r - 2.0 / 3.0).abs() < 1e-9)
        );
        assert_eq!(stats.access_token_age_secs, None);

        let later = Instant::now() + WINDOW + Duration::from_secs(1);
        let stats = tally.stats(later);
        assert_eq!(stats.last_hour.calls, 0);
        assert_eq!(stats.last_hour.error_rate, None);
        assert_eq!(stats.calls_total, 3, "totals are since start");
    }
}
