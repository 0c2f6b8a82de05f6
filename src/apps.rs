//! The mini-programs this service logs users in for, as the handlers see them: each with its own
//! WeChatClient (its own access token, its own calls in flight), and the rule that says which
//! one a login is for.

use actix::Addr;
use actix_web::HttpRequest;
use actix_web::http::header::REFERER;

use crate::wechat::client::WeChatClient;

/// One configured mini-program.
pub(crate) struct ServedApp {
    pub(crate) appid: String,
    /// For people (the status page); may be empty.
    pub(crate) name: String,
    pub(crate) wechat: Addr<WeChatClient>,
    /// How long a code exchange at this app's WeChat takes now: a login is sent only with that
    /// much time left.
    pub(crate) latency: std::sync::Arc<crate::wechat::latency::WeChatLatency>,
    /// The WeCom corps whose staff open this mini-program; `None` when there are none.
    pub(crate) wecom: Option<ServedCorps>,
    /// The template of this app's meeting reminders: the one `meeting/subscribe` with a token of
    /// this app accepts, and the reminders it records are sent with. `None`: none in this app.
    pub(crate) reminder_template: Option<String>,
}

/// The WeCom side of a mini-program: its staff log in through `wechat` too.
pub(crate) struct ServedCorps {
    /// The corp a staff login is exchanged as (`corp_for_app`): WeCom answers with the
    /// employee's own corp, which may be any of `linked`.
    pub(crate) corpid: String,
    /// Every configured corp linked to the mini-program.
    pub(crate) linked: Vec<String>,
    /// WeCom's round trip (a corp token fetch included, now and then), apart from WeChat's:
    /// another upstream, another estimate.
    pub(crate) latency: std::sync::Arc<crate::wechat::latency::WeChatLatency>,
}

/// Every configured mini-program; the first is the default app.
pub(crate) struct ServedApps {
    apps: Vec<ServedApp>,
}

/// Why a request names no usable app.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UnknownApp {
    /// The body's `appid`.
    InBody,
    /// The appid WeChat put in the `Referer`.
    InReferer,
}

/// Where WeChat's `wx.request` says a request comes from:
/// `https://servicewechat.com/{appid}/{version}/page-frame.html`.
const REFERER_PREFIX: &str = "https://servicewechat.com/";

impl ServedApps {
    /// `apps` must not be empty: the configuration never is.
    pub(crate) fn new(apps: Vec<ServedApp>) -> Self {
        assert!(!apps.is_empty(), "at least one mini-program is configured");
        ServedApps { apps }
    }

    pub(crate) fn default_app(&self) -> &ServedApp {
        &self.apps[0]
    }

    pub(crate) fn all(&self) -> &[ServedApp] {
        &self.apps
    }

    pub(crate) fn get(&self, appid: &str) -> Option<&ServedApp> {
        self.apps.iter().find(|app| app.appid == appid)
    }

    /// The mini-program a configured corp is linked to.
    pub(crate) fn of_corp(&self, corpid: &str) -> Option<&ServedApp> {
        self.apps.iter().find(|app| {
            app.wecom
                .as_ref()
                .is_some_and(|corps| corps.linked.iter().any(|c| c == corpid))
        })
    }

    /// Whether any app has meeting reminders.
    pub(crate) fn reminders_on(&self) -> bool {
        self.apps.iter().any(|app| app.reminder_template.is_some())
    }

    /// The app a login is for: the body's `appid` when given, else the one in the `Referer`
    /// WeChat sets on every `wx.request`, else the default app. An appid that is given but not
    /// configured is refused rather than replaced by the default: a code from another app
    /// would only be refused by WeChat, after a round trip, with a less telling error.
    pub(crate) fn for_login(
        &self,
        body_appid: Option<&str>,
        req: &HttpRequest,
    ) -> Result<&ServedApp, UnknownApp> {
        if let Some(appid) = body_appid.map(str::trim).filter(|a| !a.is_empty()) {
            return self.get(appid).ok_or(UnknownApp::InBody);
        }
        let referer = req.headers().get(REFERER).and_then(|v| v.to_str().ok());
        match referer.and_then(appid_in_referer) {
            Some(appid) => self.get(appid).ok_or(UnknownApp::InReferer),
            None => Ok(self.default_app()),
        }
    }
}

/// The appid in a mini-program's `Referer`; `None` for any other `Referer` (a browser's, a
/// tool's), which says nothing about the app.
pub(crate) fn appid_in_referer(referer: &str) -> Option<&str> {
    let path = referer.strip_prefix(REFERER_PREFIX)?;
    let mut parts = path.split('/');
    let appid = parts.next()?;
    let version = parts.next()?;
    let page = parts.next()?;
    let well_formed = !appid.is_empty()
        && appid.len() <= 64
        && appid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !version.is_empty()
        && page == "page-frame.html"
        && parts.next().is_none();
    well_formed.then_some(appid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_referer_of_a_mini_program_names_its_app() {
        for (referer, appid) in [
            (
                "https://servicewechat.com/wx1111111111111111/3/page-frame.html",
                Some("wx1111111111111111"),
            ),
            (
                "https://servicewechat.com/wx1111111111111111/devtools/page-frame.html",
                Some("wx1111111111111111"),
            ),
            ("https://servicewechat.com/wx1111111111111111/3/", None),
            ("https://servicewechat.com//3/page-frame.html", None),
            ("https://servicewechat.com/wx11 11/3/page-frame.html", None),
            ("https://servicewechat.com/wx1/3/page-frame.html/x", None),
            ("http://servicewechat.com/wx1/3/page-frame.html", None),
            ("https://example.com/wx1/3/page-frame.html", None),
            ("", None),
        ] {
            assert_eq!(appid_in_referer(referer), appid, "{referer}");
        }
    }
}
