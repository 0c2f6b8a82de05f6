//! WeChat's content check (`wxa/msg_sec_check`, version 2) and subscribe messages
//! (`cgi-bin/message/subscribe/send`) as the fake plays them. The check is a word list: a text
//! holding one of `RISKY_WORDS` is `risky`, one of `REVIEW_WORDS` is `review`, anything else
//! `pass`, all with errcode 0 as version 2 answers. Every subscribe message received is kept,
//! answered or not, so tests can read exactly what was sent.

use serde::Deserialize;

use super::{FakeWeChat, Fault, wx_error};
use crate::wechat::errcode;

/// Words that make the fake's content check answer `risky`.
pub const RISKY_WORDS: &[&str] = &["违禁词", "fake-risky"];
/// Words that make the fake's content check answer `review`.
pub const REVIEW_WORDS: &[&str] = &["待审词", "fake-review"];

/// The longest text version 2 checks.
const MAX_CONTENT_CHARS: usize = 2500;
/// The most characters a `thing` value may have.
const MAX_THING_CHARS: usize = 20;

#[derive(Deserialize)]
pub(super) struct SecCheckRequest {
    version: Option<i64>,
    openid: Option<String>,
    scene: Option<i64>,
    content: Option<String>,
    nickname: Option<String>,
}

impl SecCheckRequest {
    pub(super) fn openid(&self) -> Option<&str> {
        self.openid.as_deref()
    }
}

/// A subscribe message as the fake received it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct SubscribeRequest {
    touser: Option<String>,
}

impl SubscribeRequest {
    pub(super) fn touser(&self) -> Option<&str> {
        self.touser.as_deref()
    }
}

impl FakeWeChat {
    /// `wxa/msg_sec_check`: the verdict of the word lists.
    pub(super) fn sec_check(
        &self,
        token: Option<&str>,
        req: &SecCheckRequest,
    ) -> serde_json::Value {
        if let Err(err) = self.check_access_token(token) {
            return err;
        }
        if req.version != Some(2) {
            return wx_error(47001, "data format error: version");
        }
        if !matches!(req.scene, Some(1..=4)) {
            return wx_error(40129, "invalid scene");
        }
        if req.openid.as_deref().is_none_or(str::is_empty) {
            return wx_error(40003, "invalid openid");
        }
        let Some(content) = req.content.as_deref() else {
            return wx_error(47001, "data format error: content");
        };
        if content.chars().count() > MAX_CONTENT_CHARS {
            return wx_error(47001, "data format error: content too long");
        }
        let texts = [Some(content), req.nickname.as_deref()];
        let holds = |words: &[&str]| {
            texts
                .iter()
                .flatten()
                .any(|t| words.iter().any(|w| t.contains(w)))
        };
        let (suggest, label) = if holds(RISKY_WORDS) {
            ("risky", 20001)
        } else if holds(REVIEW_WORDS) {
            ("review", 20002)
        } else {
            ("pass", 100)
        };
        serde_json::json!({
            "errcode": 0,
            "errmsg": "ok",
            "result": { "suggest": suggest, "label": label },
            "detail": [{ "strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label }],
            "trace_id": crate::random::token_hex(8),
        })
    }

    /// `cgi-bin/message/subscribe/send`: WeChat's checks of the body and of each value's rule.
    pub(super) fn subscribe_send(
        &self,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        if let Err(err) = self.check_access_token(token) {
            return err;
        }
        let text = |key: &str| body.get(key).and_then(serde_json::Value::as_str);
        if text("touser").is_none_or(str::is_empty) {
            return wx_error(40003, "invalid openid");
        }
        if text("template_id").is_none_or(str::is_empty) {
            return wx_error(40037, "invalid template_id");
        }
        if let Some(state) = body.get("miniprogram_state")
            && !matches!(state.as_str(), Some("developer" | "trial" | "formal"))
        {
            return wx_error(47001, "data format error: miniprogram_state");
        }
        let Some(data) = body.get("data").and_then(serde_json::Value::as_object) else {
            return wx_error(47001, "data format error: data");
        };
        for (key, entry) in data {
            let Some(value) = entry.get("value").and_then(serde_json::Value::as_str) else {
                return wx_error(47001, "data format error: value");
            };
            let kind = key.trim_end_matches(|c: char| c.is_ascii_digit());
            let ok = match kind {
                "thing" => !value.is_empty() && value.chars().count() <= MAX_THING_CHARS,
                "time" | "date" => is_wechat_time(value),
                "phrase" => !value.is_empty() && value.chars().count() <= 5,
                "number" => value.len() <= 32 && value.chars().all(|c| c.is_ascii_digit()),
                _ => value.chars().count() <= 32,
            };
            if !ok {
                return wx_error(
                    errcode::BAD_ARGUMENT,
                    &format!("argument invalid! data.{key}.value invalid"),
                );
            }
        }
        serde_json::json!({ "errcode": 0, "errmsg": "ok", "msgid": rand_msgid() })
    }

    /// Every subscribe message received so far, in order, as its JSON body.
    pub fn subscribe_messages(&self) -> Vec<serde_json::Value> {
        let st = self.state();
        st.subscribe_messages
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The subscribe messages received with an access token of app `appid`, in order.
    pub fn subscribe_messages_in(&self, appid: &str) -> Vec<serde_json::Value> {
        let st = self.state();
        st.subscribe_messages
            .iter()
            .filter(|(app, _)| app.as_deref() == Some(appid))
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Keeps a message as received, with the app whose access token came with it (`None`: no
    /// token this WeChat handed out).
    pub(super) fn record_subscribe_message(&self, token: Option<&str>, body: &serde_json::Value) {
        let mut st = self.state();
        let app = token
            .and_then(|t| st.access_tokens.get(t))
            .map(|(appid, _)| appid.clone());
        st.subscribe_messages.push((app, body.clone()));
    }

    /// Makes `endpoint` misbehave for one user only (`Fault::None` heals): e.g.
    /// `Fault::Errcode { errcode: 61010 }` on `msg_sec_check` plays a user who has not opened the
    /// mini-program in two hours, `Fault::Errcode { errcode: 43101 }` on `subscribe_send` one who
    /// withdrew consent, `Fault::Slow` a send that hangs.
    pub fn set_user_fault(&self, endpoint: &str, openid: &str, fault: Fault) {
        let mut st = self.state();
        let key = (endpoint.to_string(), openid.to_string());
        match fault {
            Fault::None => st.user_faults.remove(&key),
            f => st.user_faults.insert(key, f),
        };
    }

    /// The fault set for this user on this endpoint, if any.
    pub(super) fn user_fault(&self, endpoint: &str, openid: Option<&str>) -> Option<Fault> {
        let openid = openid?;
        self.state()
            .user_faults
            .get(&(endpoint.to_string(), openid.to_string()))
            .cloned()
    }
}

/// `2026年12月6日 09:30` or `2026-12-06 09:30`, as WeChat's `time` keys take them.
fn is_wechat_time(value: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(value, "%Y年%m月%d日 %H:%M").is_ok()
        || chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M").is_ok()
}

fn rand_msgid() -> u64 {
    u64::from_str_radix(&crate::random::token_hex(6), 16).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechat_times_in_either_form() {
        assert!(is_wechat_time("2026年12月6日 09:30"));
        assert!(is_wechat_time("2026-12-06 09:30"));
        assert!(!is_wechat_time("tomorrow"));
        assert!(!is_wechat_time("2026-12-06T09:30:00+08:00"));
    }
}
