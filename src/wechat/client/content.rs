//! The calls for what users publish and what the app tells them: WeChat's content check
//! (`msgSecCheck` version 2) and subscribe messages (`subscribe/send`). Both use the cached
//! access token like every other token call (refresh once on 40001/42001).
//!
//! WeChat allows 4000 content checks a minute per app and answers 44991 beyond; the client keeps
//! itself under that with a token bucket of its own, so a burst of publishing is refused here at once
//! (the caller counts that as "cannot be checked") instead of being sent to be refused.

use std::time::Instant;

use actix::prelude::*;

use super::{Reply, WeChatClient};
use crate::logging::RequestId;
use crate::wechat::{Suggest, WeChatError, parse_sec_check, parse_subscribe_send};

/// WeChat's per-app content-check allowance.
pub(crate) const CHECKS_PER_MINUTE: u32 = 4000;

/// A token bucket that lets at most `per_minute` calls through in any 60 s: a burst of a tenth
/// of the allowance, refilled at the other nine tenths spread over the minute (burst + refill
/// over 60 s is exactly the allowance, wherever the 60 s begin).
pub(super) struct CheckBudget {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl CheckBudget {
    pub(super) fn new(per_minute: u32) -> Self {
        let burst = f64::from(per_minute) / 10.0;
        CheckBudget {
            burst,
            per_sec: (f64::from(per_minute) - burst) / 60.0,
            tokens: burst,
            last: None,
        }
    }

    /// Takes one call from the allowance; `false` when it is spent.
    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_sec;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// The content security scene of a text (`msgSecCheck`'s `scene`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scene {
    /// 1: a profile (the nickname).
    Profile = 1,
    /// 3: a forum post; what a published meeting is.
    Forum = 3,
}

/// Checks one text as written by `openid`.
#[derive(Message)]
#[rtype(result = "Result<Suggest, WeChatError>")]
pub(crate) struct MsgSecCheck {
    pub(crate) openid: String,
    pub(crate) scene: Scene,
    pub(crate) content: String,
}

impl Handler<MsgSecCheck> for WeChatClient {
    type Result = ResponseFuture<Reply<Suggest>>;

    fn handle(&mut self, msg: MsgSecCheck, ctx: &mut Self::Context) -> Self::Result {
        if !self.content_checks.take(Instant::now()) {
            return Box::pin(async { Err(WeChatError::Overloaded) });
        }
        let mut body = serde_json::json!({
            "version": 2,
            "openid": msg.openid,
            "scene": msg.scene as i32,
            "content": msg.content,
        });
        if msg.scene == Scene::Profile {
            body["nickname"] = body["content"].clone();
        }
        self.post_with_token(
            ctx,
            "/wxa/msg_sec_check",
            body,
            RequestId::current(),
            parse_sec_check,
        )
    }
}

/// Sends one subscribe message (`cgi-bin/message/subscribe/send`); the body is built by the
/// caller (template values already fitted to their rules).
#[derive(Message)]
#[rtype(result = "Result<(), WeChatError>")]
pub(crate) struct SendSubscribeMessage {
    pub(crate) body: serde_json::Value,
}

impl Handler<SendSubscribeMessage> for WeChatClient {
    type Result = ResponseFuture<Reply<()>>;

    fn handle(&mut self, msg: SendSubscribeMessage, ctx: &mut Self::Context) -> Self::Result {
        self.post_with_token(
            ctx,
            "/cgi-bin/message/subscribe/send",
            msg.body,
            RequestId::current(),
            parse_subscribe_send,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_budget_keeps_any_minute_under_the_limit() {
        let start = Instant::now();
        let mut budget = CheckBudget::new(CHECKS_PER_MINUTE);
        let mut taken = 0;
        // One attempt every 5 ms for a minute: 12,000 attempts.
        for ms in (0..60_000).step_by(5) {
            if budget.take(start + Duration::from_millis(ms)) {
                taken += 1;
            }
        }
        assert!(taken <= CHECKS_PER_MINUTE, "{taken}");
        assert!(taken >= CHECKS_PER_MINUTE - 10, "{taken}");
        assert!(budget.take(start + Duration::from_secs(61)));
    }
}
