//! The access token that `getuserphonenumber` and `checksession` need: cached with an
//! early-expiry margin and refreshed single-flight, so however many callers need one, WeChat
//! sees one request. A call refused with 40001/42001 refreshes the token once and retries once,
//! never more.

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

use super::{Reply, WeChatClient};
use crate::config::AccessTokenMode;
use crate::logging::RequestId;
use crate::wechat::{AccessTokenReply, WeChatError, errcode, parse_reply};

/// Refresh this long before WeChat says the token expires (WeChat's own overlap is 5 minutes).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

pub(super) struct CachedToken {
    token: String,
    fetched_at: Instant,
    usable_until: Instant,
}

impl WeChatClient {
    /// How long ago the cached token was fetched; `None` before the first one.
    pub(super) fn access_token_age(&self) -> Option<Duration> {
        self.token.as_ref().map(|t| t.fetched_at.elapsed())
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
    /// The call's lines, and those of a token fetch it starts, carry `request_id`.
    pub(super) fn with_access_token<T: 'static>(
        ctx: &mut Context<Self>,
        request_id: Option<RequestId>,
        call: impl Fn(String) -> LocalBoxFuture<'static, Reply<T>> + 'static,
    ) -> LocalBoxFuture<'static, Reply<T>> {
        let me = ctx.address();
        Box::pin(RequestId::scope(request_id.clone(), async move {
            let stopped = |_| WeChatError::Transport("wechat client stopped".into());
            let token = me
                .send(AccessToken {
                    refused: None,
                    request_id: request_id.clone(),
                })
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
                            request_id,
                        })
                        .await
                        .map_err(stopped)??;
                    call(fresh).await
                }
                other => other,
            }
        }))
    }
}

/// A usable access token. `refused` names a token WeChat just refused, so it is not handed out
/// again; a token refreshed meanwhile by another caller is used as is.
#[derive(Message)]
#[rtype(result = "Result<String, WeChatError>")]
struct AccessToken {
    refused: Option<String>,
    /// The request that needs it: a fetch it starts logs with its id.
    request_id: Option<RequestId>,
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
        let (first, answer) = self.token_refresh.join(());
        if first {
            let started = Instant::now();
            // The request that started the fetch: those that joined it share its lines.
            let request_id = msg.request_id;
            ctx.spawn(
                self.fetch_access_token()
                    .into_actor(self)
                    .map(move |result, act, _| {
                        RequestId::sync_scope(request_id, || {
                            act.access_token_fetched(result, started)
                        })
                    }),
            );
        }
        answer
    }
}

impl WeChatClient {
    /// Caches (or not) what a token fetch brought, logs it, and answers its waiters.
    fn access_token_fetched(
        &mut self,
        result: Reply<(AccessTokenReply, AccessTokenMode)>,
        started: Instant,
    ) {
        let result = result.map(|(reply, mode)| {
                            if mode != self.token_mode {
                                log::warn!(
                                    "WECHAT_API_BASE has no /cgi-bin/stable_token: access tokens come from /cgi-bin/token from now on (WECHAT_TOKEN_MODE=plain says so up front)"
                                );
                                self.token_mode = mode;
                            }
                            let lifetime = Duration::from_secs(reply.expires_in);
                            let margin = TOKEN_MARGIN.min(lifetime / 10);
                            self.token = Some(CachedToken {
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
        self.token_refresh.finish(&(), &result);
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
