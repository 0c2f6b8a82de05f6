//! `WeChatClient`: the one place that talks to WeChat's servers, as an async actor around awc
//! (awc's client is `!Send`, so it lives inside the actor). Identical codes in flight at once are
//! exchanged once: WeChat would refuse the second exchange (40163), so a double tap in the
//! mini-program would otherwise log the user in and then show an error.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::config::Secret;
use crate::wechat::{JsCode, WeChatError, WxSession, mask_openid, parse_code2session};

/// Bodies larger than this are not a WeChat answer.
const MAX_BODY: usize = 64 * 1024;

type Waiters = Vec<oneshot::Sender<Result<WxSession, WeChatError>>>;

pub struct WeChatClient {
    http: awc::Client,
    api_base: String,
    appid: String,
    secret: Secret,
    timeout: Duration,
    inflight: HashMap<JsCode, Waiters>,
}

impl WeChatClient {
    pub fn new(api_base: String, appid: String, secret: Secret, timeout: Duration) -> Self {
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
