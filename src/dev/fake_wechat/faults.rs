//! Misbehaviour on demand, to test how wxauth copes with a bad WeChat day: every endpoint or one
//! of them answers busy, slowly, garbage, an errcode or HTTP 404 until told otherwise.

use std::time::Duration;

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

use super::http::wechat_reply;
use super::{FakeWeChat, wx_error};
use crate::wechat::errcode;

/// What the fake does to the next calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Fault {
    /// Behave like WeChat on a good day.
    None,
    /// Answer `{"errcode":-1,"errmsg":"system error"}`.
    Busy,
    /// Wait this long before answering normally.
    Slow { delay_ms: u64 },
    /// Wait a random time in `min_ms..=max_ms` before answering normally: WeChat's round trip
    /// varies from call to call.
    Jitter { min_ms: u64, max_ms: u64 },
    /// Answer an HTML error page instead of JSON.
    Garbage,
    /// Answer this errcode.
    Errcode { errcode: i64 },
    /// Answer this errcode with exactly this errmsg: what a broken or hostile server in
    /// WeChat's place might send.
    Message { errcode: i64, errmsg: String },
    /// Answer HTTP 404, as a server without this endpoint does.
    Missing,
}

impl FakeWeChat {
    /// Makes every endpoint misbehave (`Fault::None` heals them all).
    pub fn set_fault(&self, fault: Fault) {
        let mut st = self.state();
        st.faults.clear();
        if fault != Fault::None {
            st.faults.insert("*".into(), fault);
        }
    }

    /// Makes one endpoint (e.g. `getuserphonenumber`) misbehave.
    pub fn set_fault_on(&self, endpoint: &str, fault: Fault) {
        let mut st = self.state();
        match fault {
            Fault::None => st.faults.remove(endpoint),
            f => st.faults.insert(endpoint.to_string(), f),
        };
    }

    /// Counts a call to `endpoint` and answers the fault it is to suffer, if any.
    pub(super) fn count(&self, endpoint: &'static str) -> Option<Fault> {
        let mut st = self.state();
        *st.calls.entry(endpoint).or_insert(0) += 1;
        st.faults
            .get(endpoint)
            .or_else(|| st.faults.get("*"))
            .cloned()
    }
}

/// Applies a configured fault; `Some` is the answer to send instead of the real one.
pub(super) async fn apply_fault(fault: Option<Fault>) -> Option<HttpResponse> {
    match fault? {
        Fault::None => None,
        Fault::Busy => Some(wechat_reply(&wx_error(
            errcode::SYSTEM_BUSY,
            "system error",
        ))),
        Fault::Slow { delay_ms } => {
            actix_web::rt::time::sleep(Duration::from_millis(delay_ms)).await;
            None
        }
        Fault::Jitter { min_ms, max_ms } => {
            let spread = max_ms.saturating_sub(min_ms) + 1;
            let delay_ms = min_ms + u64::from_le_bytes(crate::random::bytes::<8>()) % spread;
            actix_web::rt::time::sleep(Duration::from_millis(delay_ms)).await;
            None
        }
        Fault::Garbage => Some(
            HttpResponse::Ok()
                .content_type("text/html")
                .body("<html><body>502 Bad Gateway</body></html>"),
        ),
        Fault::Errcode { errcode } => Some(wechat_reply(&wx_error(errcode, "injected error"))),
        Fault::Message { errcode, errmsg } => Some(wechat_reply(
            &serde_json::json!({ "errcode": errcode, "errmsg": errmsg }),
        )),
        Fault::Missing => Some(HttpResponse::NotFound().finish()),
    }
}
