//! Access tokens: the mini-program's (for `getuserphonenumber` and `checksession`) and each WeCom
//! corp's (for its `jscode2session`). Each is cached with an early-expiry margin and refreshed
//! single-flight, so however many callers need one, the upstream sees one request per owner. A
//! call refused with a stale-token errcode refreshes that token once and retries once, never
//! more. Only the fetch differs between owners; the caching, the single flight and the retry are
//! this one code.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

use super::{Reply, WeChatClient};
use crate::config::AccessTokenMode;
use crate::logging::RequestId;
use crate::wechat::{AccessTokenReply, WeChatError, errcode, parse_reply};

/// Refresh this long before WeChat says the token expires (WeChat's own overlap is 5 minutes).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Whose access token. Corps come only from the configuration, so the cache stays bounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum TokenOwner {
    /// The mini-program's: appid + AppSecret, from `WECHAT_API_BASE`.
    MiniProgram,
    /// A WeCom corp's, by corpid: corpid + corpsecret, from `WECOM_API_BASE`.
    Corp(String),
}

impl fmt::Display for TokenOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenOwner::MiniProgram => f.write_str("WeChat access token"),
            TokenOwner::Corp(corpid) => write!(f, "access token of WeCom corp {corpid}"),
        }
    }
}

pub(super) struct CachedToken {
    token: String,
    fetched_at: Instant,
    usable_until: Instant,
}

/// The tokens held, by owner.
#[derive(Default)]
pub(super) struct TokenCache {
    tokens: HashMap<TokenOwner, CachedToken>,
}

impl TokenCache {
    /// The owner's token if it is still usable; a token just `refused` upstream is dropped
    /// instead (a token refreshed meanwhile by another caller is kept and handed out).
    fn usable(&mut self, owner: &TokenOwner, refused: Option<&str>) -> Option<String> {
        if let (Some(refused), Some(cached)) = (refused, self.tokens.get(owner))
            && cached.token == refused
        {
            self.tokens.remove(owner);
        }
        self.tokens
            .get(owner)
            .filter(|t| t.usable_until > Instant::now())
            .map(|t| t.token.clone())
    }

    fn store(&mut self, owner: TokenOwner, reply: &AccessTokenReply, fetched_at: Instant) {
        let lifetime = Duration::from_secs(reply.expires_in);
        let margin = TOKEN_MARGIN.min(lifetime / 10);
        self.tokens.insert(
            owner,
            CachedToken {
                token: reply.access_token.clone(),
                fetched_at,
                usable_until: fetched_at + lifetime - margin,
            },
        );
    }

    fn age(&self, owner: &TokenOwner) -> Option<Duration> {
        self.tokens.get(owner).map(|t| t.fetched_at.elapsed())
    }
}

/// A fetch's answer, and for the mini-program which endpoint gave it.
type Fetched = (AccessTokenReply, Option<AccessTokenMode>);

impl WeChatClient {
    /// How long ago the mini-program's cached token was fetched; `None` before the first one.
    pub(super) fn access_token_age(&self) -> Option<Duration> {
        self.tokens.age(&TokenOwner::MiniProgram)
    }

    /// Fetches the mini-program's token the configured way, and answers which way worked. A
    /// server without `stable_token` (HTTP 404 or 405: some WeChat-compatible gateways and
    /// fakes) gets the plain `cgi-bin/token` instead, which every such server has; the caller
    /// then stays with it.
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

    /// The one fetch for `owner`'s token.
    fn fetch_token(&self, owner: &TokenOwner) -> LocalBoxFuture<'static, Reply<Fetched>> {
        match owner {
            TokenOwner::MiniProgram => {
                let fetch = self.fetch_access_token();
                Box::pin(async move { fetch.await.map(|(reply, mode)| (reply, Some(mode))) })
            }
            TokenOwner::Corp(corpid) => match self.fetch_corp_token(corpid) {
                Ok(fetch) => Box::pin(async move { fetch.await.map(|reply| (reply, None)) }),
                Err(refused) => Box::pin(async move { Err(refused) }),
            },
        }
    }

    /// Runs a call that needs `owner`'s access token; on a stale-token errcode, refreshes once
    /// and retries once. The call's lines, and those of a token fetch it starts, carry
    /// `request_id`.
    pub(super) fn with_access_token<T: 'static>(
        ctx: &mut Context<Self>,
        owner: TokenOwner,
        request_id: Option<RequestId>,
        call: impl Fn(String) -> LocalBoxFuture<'static, Reply<T>> + 'static,
    ) -> LocalBoxFuture<'static, Reply<T>> {
        let me = ctx.address();
        Box::pin(RequestId::scope(request_id.clone(), async move {
            let stopped = |_| WeChatError::Transport("wechat client stopped".into());
            let token = me
                .send(AccessToken {
                    owner: owner.clone(),
                    refused: None,
                    request_id: request_id.clone(),
                })
                .await
                .map_err(stopped)??;
            match call(token.clone()).await {
                Err(WeChatError::Api { errcode, .. })
                    if errcode::is_stale_access_token(errcode) =>
                {
                    log::info!("{owner} refused (errcode {errcode}): refreshing once");
                    let fresh = me
                        .send(AccessToken {
                            owner,
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

impl WeChatClient {
    /// `POST path?access_token=…` with a JSON body, on the mini-program's token (refreshed once
    /// if refused), the answer read by `parse`: the shape of every token-authenticated WeChat
    /// call that sends a body.
    pub(super) fn post_with_token<T: 'static>(
        &self,
        ctx: &mut Context<Self>,
        path: &'static str,
        body: serde_json::Value,
        request_id: Option<RequestId>,
        parse: fn(&[u8]) -> Reply<T>,
    ) -> LocalBoxFuture<'static, Reply<T>> {
        let upstream = self.upstream.clone();
        Self::with_access_token(ctx, TokenOwner::MiniProgram, request_id, move |token| {
            let upstream = upstream.clone();
            let body = body.clone();
            Box::pin(async move {
                let request = upstream.post(path, &[("access_token", token.as_str())])?;
                upstream.call(request, Some(body), parse).await
            })
        })
    }
}

/// A usable access token of `owner`. `refused` names a token the upstream just refused, so it
/// is not handed out again; a token refreshed meanwhile by another caller is used as is.
#[derive(Message)]
#[rtype(result = "Result<String, WeChatError>")]
struct AccessToken {
    owner: TokenOwner,
    refused: Option<String>,
    /// The request that needs it: a fetch it starts logs with its id.
    request_id: Option<RequestId>,
}

impl Handler<AccessToken> for WeChatClient {
    type Result = ResponseFuture<Reply<String>>;

    fn handle(&mut self, msg: AccessToken, ctx: &mut Self::Context) -> Self::Result {
        if let Some(token) = self.tokens.usable(&msg.owner, msg.refused.as_deref()) {
            return Box::pin(async move { Ok(token) });
        }
        let (first, answer) = self.token_refresh.join(msg.owner.clone());
        if first {
            let started = Instant::now();
            let owner = msg.owner;
            // The request that started the fetch: those that joined it share its lines.
            let request_id = msg.request_id;
            ctx.spawn(
                self.fetch_token(&owner)
                    .into_actor(self)
                    .map(move |result, act, _| {
                        RequestId::sync_scope(request_id, || {
                            act.access_token_fetched(owner, result, started)
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
        owner: TokenOwner,
        result: Reply<Fetched>,
        started: Instant,
    ) {
        let result = result.map(|(reply, mode)| {
            if let Some(mode) = mode.filter(|m| *m != self.token_mode) {
                log::warn!(
                    "WECHAT_API_BASE has no /cgi-bin/stable_token: access tokens come from /cgi-bin/token from now on (WECHAT_TOKEN_MODE=plain says so up front)"
                );
                self.token_mode = mode;
            }
            self.tokens.store(owner.clone(), &reply, started);
            log::info!("fetched a {owner} valid for {} s", reply.expires_in);
            reply.access_token
        });
        if let Err(e) = &result {
            log::warn!("cannot fetch a {owner}: {e}");
        }
        self.token_refresh.finish(&owner, &result);
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
