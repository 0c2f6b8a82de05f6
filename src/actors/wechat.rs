//! `WeChatClient`: the one place that talks to WeChat's servers, as an async actor around awc
//! (awc's client is `!Send`, so it lives inside the actor). Identical codes in flight at once are
//! exchanged once: WeChat would refuse the second exchange (40163), so a double tap in the
//! mini-program would otherwise log the user in and then show an error.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::Secret;
use crate::metrics::Metrics;
use crate::wechat::{JsCode, WeChatError, WxSession, mask_openid, parse_code2session};

/// Bodies larger than this are not a WeChat answer.
const MAX_BODY: usize = 64 * 1024;

type Waiters = Vec<oneshot::Sender<Result<WxSession, WeChatError>>>;

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
    /// Age of the cached `access_token` (stable_token). This service does not fetch one yet, so
    /// it is always `None`; the field is here so the page and its readers need no change then.
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

pub struct WeChatClient {
    http: awc::Client,
    api_base: String,
    appid: String,
    secret: Secret,
    timeout: Duration,
    inflight: HashMap<JsCode, Waiters>,
    tally: Tally,
    metrics: Arc<Metrics>,
}

impl WeChatClient {
    pub fn new(
        api_base: String,
        appid: String,
        secret: Secret,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let http = awc::Client::builder()
            .timeout(timeout)
            .disable_redirects()
            .finish();
        WeChatClient {
            http,
            api_base,
            appid,
            secret,
            timeout,
            inflight: HashMap::new(),
            tally: Tally::default(),
            metrics,
        }
    }

    /// One `jscode2session` round trip, bounded by the configured timeout as a whole (awc's own
    /// timeout does not cover reading the body).
    fn exchange(
        &self,
        code: &JsCode,
    ) -> impl Future<Output = Result<WxSession, WeChatError>> + 'static {
        let request = self
            .http
            .get(format!("{}/sns/jscode2session", self.api_base))
            .query(&[
                ("appid", self.appid.as_str()),
                ("secret", self.secret.expose()),
                ("js_code", code.expose()),
                ("grant_type", "authorization_code"),
            ]);
        let timeout = self.timeout;
        async move {
            let request = request
                .map_err(|e| WeChatError::Transport(format!("cannot build request: {e}")))?;
            let round_trip = async move {
                let mut response = request.send().await.map_err(|e| match e {
                    awc::error::SendRequestError::Timeout => WeChatError::Timeout,
                    other => WeChatError::Transport(other.to_string()),
                })?;
                if !response.status().is_success() {
                    return Err(WeChatError::BadResponse(format!(
                        "HTTP {}",
                        response.status()
                    )));
                }
                let body = response.body().limit(MAX_BODY).await.map_err(|e| match e {
                    awc::error::PayloadError::Io(io)
                        if io.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        WeChatError::Timeout
                    }
                    other => WeChatError::BadResponse(format!("unreadable body: {other}")),
                })?;
                parse_code2session(&body)
            };
            match tokio::time::timeout(timeout, round_trip).await {
                Ok(result) => result,
                Err(_) => Err(WeChatError::Timeout),
            }
        }
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
    type Result = ResponseFuture<Result<WxSession, WeChatError>>;

    fn handle(&mut self, msg: Code2Session, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let code = msg.0;
        if let Some(waiters) = self.inflight.get_mut(&code) {
            log::debug!("jscode2session: joining an exchange already in flight for the same code");
            waiters.push(tx);
        } else {
            self.inflight.insert(code.clone(), vec![tx]);
            let started = Instant::now();
            let exchange = self.exchange(&code);
            ctx.spawn(exchange.into_actor(self).map(move |result, act, _| {
                let latency = started.elapsed();
                let error = result.as_ref().err().map(WeChatError::errcode_label);
                act.metrics
                    .observe_wechat(latency.as_secs_f64(), error.as_deref());
                act.tally.record(latency, error);
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
                for waiter in act.inflight.remove(&code).unwrap_or_default() {
                    // A waiter that went away (client disconnected) does not matter.
                    let _ = waiter.send(result.clone());
                }
            }));
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(WeChatError::Transport("wechat client stopped".into())))
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
        MessageResult(self.tally.stats(Instant::now()))
    }
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
