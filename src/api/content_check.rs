//! Content security: text that other users will see goes through WeChat's `msgSecCheck` before
//! it is stored, as the author (the openid of the app the request's token belongs to).
//!
//! The verdict is `result.suggest`, never errcode alone: `risky` refuses the request (errno 730,
//! `data.field`), `review` stores a meeting pending an admin's decision, `pass` changes nothing.
//! A check that cannot be made (WeChat busy, slow, garbage, 61010, over the app's allowance) is
//! never a pass: with `CONTENT_CHECK_ON_ERROR=refuse` it answers WeChat's errno (714/715/716),
//! with `review` it is a review.

use std::time::Duration;

use actix_web::HttpRequest;

use super::AppState;
use super::extract::AuthUser;
use super::middleware::DeadlineStart;
use super::phone::TokenApp;
use crate::config::CheckFailure;
use crate::error::{ApiError, UnloginReason};
use crate::log_throttle::ERRORS;
use crate::wechat::client::{MsgSecCheck, Scene};
use crate::wechat::{Suggest, WeChatError};

/// What the request keeps of its deadline for the database and the answer after the checks.
const RESERVE_AFTER_CHECK: Duration = Duration::from_millis(700);

/// `CONTENT_CHECK` and `CONTENT_CHECK_ON_ERROR`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContentCheck {
    pub(crate) enabled: bool,
    pub(crate) on_error: CheckFailure,
}

/// What may be done with checked text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Show it to everyone.
    Pass,
    /// Store it for an admin to decide.
    Review,
}

/// The app and openid a request acts for: the app of the request's token, and the user's openid
/// there. Every content check asks this one function.
pub(crate) struct ActingAs {
    /// That app's WeChatClient: its access token, its allowance.
    pub(crate) wechat: actix::Addr<crate::wechat::client::WeChatClient>,
    pub(crate) openid: String,
}

/// Which app and openid the request of `user` acts for; `None` for a WeCom staff login without
/// a WeChat identity in the corp's mini-program: nobody WeChat could check the text as.
pub(crate) async fn acting_for(
    state: &AppState,
    user: &AuthUser,
) -> Result<Option<ActingAs>, ApiError> {
    let found = state.db.user(user.user_id).await?;
    let account = found
        .filter(crate::domain::WxUser::is_usable)
        .ok_or(ApiError::unlogin(UnloginReason::Disabled))?;
    match super::phone::token_app(state, &account, user.jti.clone()).await? {
        TokenApp::MiniProgram(in_app) => Ok(Some(ActingAs {
            wechat: in_app.wechat,
            openid: in_app.openid,
        })),
        // Staff who also linked their WeChat in the corp's mini-program are checked as that
        // openid; WeChat knows no one else to check them as.
        TokenApp::WeCom { corpid } => {
            let Some(app) = state.apps.of_corp(&corpid) else {
                return Ok(None);
            };
            let openid = state.db.openid_in(account.id, app.appid.clone()).await?;
            Ok(openid.map(|openid| ActingAs {
                wechat: app.wechat.clone(),
                openid,
            }))
        }
    }
}

/// One text to check, under the name the request gave it (`data.field` when refused).
pub(crate) struct Text<'a> {
    pub(crate) field: &'static str,
    pub(crate) value: &'a str,
}

/// Checks `texts` (concurrently, within what the request's deadline leaves) as written by
/// `user`. `Err` refuses the request: 730 for a risky text, else why it could not be checked
/// (when `CONTENT_CHECK_ON_ERROR=refuse` or `review_allowed` is false).
pub(crate) async fn check(
    state: &AppState,
    req: &HttpRequest,
    user: &AuthUser,
    scene: Scene,
    texts: &[Text<'_>],
    review_allowed: bool,
) -> Result<Verdict, ApiError> {
    if !state.content_check.enabled || texts.is_empty() {
        return Ok(Verdict::Pass);
    }
    let Some(author) = acting_for(state, user).await? else {
        // WeChat checks text as an openid's; a WeCom login has none, so its text cannot be
        // checked: a check that could not be made, which is never a pass.
        if review_allowed && state.content_check.on_error == CheckFailure::Review {
            return Ok(Verdict::Review);
        }
        return Err(ApiError::bad_value(
            "WeChat's content check needs a login with wx.login(): text from a WeCom login cannot be checked",
        ));
    };
    let budget = DeadlineStart::left(req).saturating_sub(RESERVE_AFTER_CHECK);
    let calls = texts.iter().map(|text| {
        author.wechat.send(MsgSecCheck {
            openid: author.openid.clone(),
            scene,
            content: text.value.to_string(),
        })
    });
    let answers = match tokio::time::timeout(budget, futures_util::future::join_all(calls)).await {
        Ok(answers) => answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|e| Err(WeChatError::Transport(e.to_string()))))
            .collect(),
        Err(_) => vec![Err(WeChatError::Timeout); texts.len()],
    };
    let mut failure = None;
    let mut review = None;
    for (text, answer) in texts.iter().zip(answers) {
        match answer {
            Ok(Suggest::Risky) => return Err(ApiError::content_refused(text.field)),
            Ok(Suggest::Review) => review = review.or(Some(text.field)),
            Ok(Suggest::Pass) => {}
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        ERRORS.log(
            log::Level::Warn,
            "content check could not be made",
            Some(&e.errcode_label()),
        );
        if !review_allowed || state.content_check.on_error == CheckFailure::Refuse {
            return Err(ApiError::unchecked(e));
        }
        return Ok(Verdict::Review);
    }
    match (review, review_allowed) {
        (None, _) => Ok(Verdict::Pass),
        (Some(_), true) => Ok(Verdict::Review),
        // Nothing to keep pending (a nickname): what WeChat would not pass is refused.
        (Some(field), false) => Err(ApiError::content_refused(field)),
    }
}
