//! WeCom staff login: a `wx.qy.login()` code exchanged with the corp's access token (cached and
//! refreshed like the mini-program's, in `access_token.rs`) for the employee's corpid, userid and
//! session_key. The same transport, timeouts, double-tap joining, tallies and log hygiene as
//! `Code2Session`.

use std::time::Instant;

use actix::prelude::*;

use super::access_token::TokenOwner;
use super::{Reply, WeChatClient};
use crate::wechat::wecom::{WeComApp, WeComSession, parse_gettoken, parse_jscode2session};
use crate::wechat::{AccessTokenReply, JsCode, WeChatError, errcode, mask_openid};

impl WeChatClient {
    fn wecom_app(&self, corpid: &str) -> Option<&WeComApp> {
        self.wecom_apps.iter().find(|a| a.corpid == corpid)
    }

    /// `cgi-bin/gettoken` for a configured corp.
    pub(super) fn fetch_corp_token(
        &self,
        corpid: &str,
    ) -> Reply<impl Future<Output = Reply<AccessTokenReply>> + 'static> {
        let app = self
            .wecom_app(corpid)
            .ok_or_else(|| not_configured(corpid))?;
        let upstream = self.wecom.clone();
        let request = upstream.get(
            "/cgi-bin/gettoken",
            &[
                ("corpid", app.corpid.as_str()),
                ("corpsecret", app.corpsecret.expose()),
            ],
        )?;
        Ok(async move { upstream.call(request, None, parse_gettoken).await })
    }

    /// Is an answer naming `answered` acceptable for a code exchanged as `asked`? When several
    /// corps link one mini-program, WeCom answers the employee's own corp, whoever's token was
    /// used; that corp must be configured, for the same mini-program.
    fn corp_accepted(&self, asked: &str, answered: &str) -> bool {
        let Some(asked) = self.wecom_app(asked) else {
            return false;
        };
        self.wecom_apps
            .iter()
            .any(|a| a.corpid == answered && a.appid == asked.appid)
    }
}

/// The errno a wiring mistake gets (a corp the handler should never have asked for): ours, 502.
fn not_configured(corpid: &str) -> WeChatError {
    WeChatError::Api {
        errcode: errcode::INVALID_APPID,
        errmsg: format!("WeCom corp {corpid} is not configured"),
    }
}

/// Exchange a `wx.qy.login()` code, as the configured corp `corpid`, for the employee's corpid,
/// userid and session_key. A code answered for a corp that is not configured for the same
/// mini-program is refused as an invalid code (710).
#[derive(Message)]
#[rtype(result = "Result<WeComSession, WeChatError>")]
pub(crate) struct WeComLogin {
    pub(crate) corpid: String,
    pub(crate) code: JsCode,
}

impl Handler<WeComLogin> for WeChatClient {
    type Result = ResponseFuture<Reply<WeComSession>>;

    fn handle(&mut self, msg: WeComLogin, ctx: &mut Self::Context) -> Self::Result {
        if self.wecom_app(&msg.corpid).is_none() {
            let refused = not_configured(&msg.corpid);
            return Box::pin(async move { Err(refused) });
        }
        let key = (msg.corpid, msg.code);
        let (first, answer) = self.wecom_logins_in_flight.join(key.clone());
        if !first {
            log::debug!(
                "wecom jscode2session: joining an exchange already in flight for the same code"
            );
            return answer;
        }
        let started = Instant::now();
        let upstream = self.wecom.clone();
        let code = key.1.clone();
        let exchange =
            Self::with_access_token(ctx, TokenOwner::Corp(key.0.clone()), move |token| {
                let upstream = upstream.clone();
                let code = code.clone();
                Box::pin(async move {
                    let request = upstream.get(
                        "/cgi-bin/miniprogram/jscode2session",
                        &[
                            ("access_token", token.as_str()),
                            ("js_code", code.expose()),
                            ("grant_type", "authorization_code"),
                        ],
                    )?;
                    upstream.call(request, None, parse_jscode2session).await
                })
            });
        ctx.spawn(exchange.into_actor(self).map(move |result, act, _| {
            let (asked, _) = &key;
            let result = result.and_then(|s| {
                if act.corp_accepted(asked, &s.corpid) {
                    Ok(s)
                } else {
                    Err(WeChatError::Api {
                        errcode: errcode::INVALID_CODE,
                        errmsg: format!(
                            "WeCom answered for corp {}, which is not configured for this mini-program",
                            s.corpid
                        ),
                    })
                }
            });
            match &result {
                Ok(s) => log::debug!(
                    "wecom jscode2session ok for {} of corp {} in {} ms",
                    mask_openid(&s.userid),
                    s.corpid,
                    started.elapsed().as_millis()
                ),
                Err(e) => log::warn!(
                    "wecom jscode2session as corp {asked} failed in {} ms: {e}",
                    started.elapsed().as_millis()
                ),
            }
            act.wecom_logins_in_flight.finish(&key, &result);
        }));
        answer
    }
}
