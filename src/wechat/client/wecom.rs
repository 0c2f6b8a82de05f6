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
    /// The request it serves: the exchange's lines carry its id.
    pub(crate) request_id: Option<crate::logging::RequestId>,
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
        let exchange = Self::with_access_token(
            ctx,
            TokenOwner::Corp(key.0.clone()),
            msg.request_id,
            move |token| {
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
            },
        );
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

#[cfg(test)]
mod tests {
    //! The client against the fake over real HTTP, as in production: WeCom's endpoints on a
    //! port of their own, the mini-program's on the same fake.

    use std::net::TcpListener;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    use actix_web::{App, HttpServer};

    use super::*;
    use crate::config::{AccessTokenMode, Secret};
    use crate::dev::fake_wechat::{self as fake, FakeWeChat, Fault};
    use crate::error::ApiError;
    use crate::metrics::Metrics;

    const CORP: &str = "ww1111111111111111";
    /// Configured too, for the same mini-program.
    const SISTER: &str = "ww2222222222222222";
    /// Linked to the same mini-program in WeCom, but not configured here.
    const STRANGER: &str = "ww3333333333333333";
    const APPID: &str = "wxwecomtest0000001";

    // ---- every log line of these tests, to look for leaked secrets ----

    static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct CaptureLogger;

    impl log::Log for CaptureLogger {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            LOGS.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
        fn flush(&self) {}
    }

    fn captured_logs() -> Vec<String> {
        LOGS.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    struct Setup {
        fake: Arc<FakeWeChat>,
        client: Addr<WeChatClient>,
        corpsecret: String,
    }

    fn corp_app(corpid: &str, secret: &str) -> WeComApp {
        WeComApp {
            corpid: corpid.to_string(),
            corpsecret: Secret::new(secret),
            appid: APPID.to_string(),
        }
    }

    /// The fake on its own port, knowing `CORP`, `SISTER` and `STRANGER`; a client configured
    /// with `CORP` (with `secret`) and `SISTER`.
    fn setup_with(secret_given: Option<&str>, timeout: Duration) -> Setup {
        static INIT: OnceLock<()> = OnceLock::new();
        INIT.get_or_init(|| {
            if log::set_logger(&CaptureLogger).is_ok() {
                log::set_max_level(log::LevelFilter::Trace);
            }
        });
        let fake = FakeWeChat::new(APPID, "app-secret");
        let corpsecret = format!("corpsecret-{}", crate::random::token_hex(8));
        fake.wecom().add_corp(CORP, &corpsecret, APPID);
        fake.wecom().add_corp(SISTER, "sister-secret", APPID);
        fake.wecom().add_corp(STRANGER, "stranger-secret", APPID);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake");
        let base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let served = fake.clone();
        let server = HttpServer::new(move || App::new().configure(fake::configure(served.clone())))
            .listen(listener)
            .expect("fake listens")
            .workers(1)
            .disable_signals()
            .run();
        actix_web::rt::spawn(server);
        let apps = vec![
            corp_app(CORP, secret_given.unwrap_or(&corpsecret)),
            corp_app(SISTER, "sister-secret"),
        ];
        let client = WeChatClient::new(
            base.clone(),
            APPID.to_string(),
            Secret::new("app-secret"),
            timeout,
            AccessTokenMode::Stable,
            Arc::new(Metrics::new().expect("metrics")),
        )
        .with_wecom(base, apps)
        .start();
        Setup {
            fake,
            client,
            corpsecret,
        }
    }

    fn setup() -> Setup {
        setup_with(None, Duration::from_secs(2))
    }

    impl Setup {
        fn code(&self, corpid: &str, userid: &str) -> JsCode {
            let minted = self
                .fake
                .wecom()
                .mint_code(corpid, userid)
                .expect("a corp the fake knows");
            JsCode::parse(&minted.code).expect("a code")
        }

        async fn login_as(&self, corpid: &str, code: JsCode) -> Reply<WeComSession> {
            self.client
                .send(WeComLogin {
                    corpid: corpid.to_string(),
                    code,
                    request_id: None,
                })
                .await
                .expect("client running")
        }

        async fn login(&self, code: JsCode) -> Reply<WeComSession> {
            self.login_as(CORP, code).await
        }

        async fn errno(&self, code: JsCode) -> i32 {
            let refused = self.login(code).await.expect_err("refused");
            ApiError::from(refused).errno()
        }
    }

    #[actix_web::test]
    async fn a_good_code_gives_the_employee_and_a_fresh_session_key() {
        let s = setup();
        let got = s.login(s.code(CORP, "zhangsan")).await.expect("login");
        assert_eq!(
            (got.corpid.as_str(), got.userid.as_str()),
            (CORP, "zhangsan")
        );
        let key = s.fake.wecom().session_key_of(CORP, "zhangsan");
        assert_eq!(Some(got.session_key.expose()), key.as_deref());
        let again = s.login(s.code(CORP, "zhangsan")).await.expect("login");
        assert_ne!(again.session_key, got.session_key, "each login its own key");
        assert_eq!(s.fake.calls("gettoken"), 1, "the corp token is cached");
        assert_eq!(s.fake.calls("wecom_jscode2session"), 2);
        assert_eq!(
            s.fake.calls("jscode2session"),
            0,
            "not the mini-program's API"
        );
        let stats = s
            .client
            .send(super::super::GetUpstreamStats)
            .await
            .expect("stats");
        assert_eq!(stats.calls_total, 3, "WeCom's calls are on the status page");
        assert_eq!(
            stats.access_token_age_secs, None,
            "the mini-program's token untouched"
        );
    }

    #[actix_web::test]
    async fn used_expired_and_unknown_codes_are_710() {
        let s = setup();
        let code = s.code(CORP, "lisi");
        s.login(code.clone()).await.expect("first use");
        assert_eq!(s.errno(code).await, 710, "used");
        let old = s
            .fake
            .wecom()
            .mint_code_aged(CORP, "lisi", fake::CODE_TTL + Duration::from_secs(1))
            .expect("known corp");
        assert_eq!(s.errno(JsCode::parse(&old.code).expect("code")).await, 710);
        assert_eq!(s.errno(JsCode::parse("qunknown").expect("code")).await, 710);
    }

    #[actix_web::test]
    async fn a_double_tap_exchanges_the_code_once() {
        let s = setup();
        let code = s.code(CORP, "wangwu");
        let (a, b) = futures_util::future::join(s.login(code.clone()), s.login(code)).await;
        assert_eq!(a.expect("first").userid, "wangwu");
        assert_eq!(b.expect("joined").userid, "wangwu");
        assert_eq!(s.fake.calls("wecom_jscode2session"), 1);
    }

    #[actix_web::test]
    async fn an_expired_corp_token_is_refreshed_once_and_the_login_retried() {
        let s = setup();
        s.login(s.code(CORP, "a")).await.expect("login");
        s.fake.wecom().expire_tokens();
        let got = s.login(s.code(CORP, "b")).await.expect("after a refresh");
        assert_eq!(got.userid, "b");
        assert_eq!(s.fake.calls("gettoken"), 2, "one refresh");
        assert_eq!(
            s.fake.calls("wecom_jscode2session"),
            3,
            "refused once, retried once"
        );

        s.fake.wecom().invalidate_tokens();
        s.login(s.code(CORP, "c"))
            .await
            .expect("an invalid token too");
        assert_eq!(s.fake.calls("gettoken"), 3);
        assert!(
            captured_logs()
                .iter()
                .any(|l| l.contains("access token of WeCom corp") && l.contains("refreshing once")),
            "the refresh is logged"
        );
    }

    #[actix_web::test]
    async fn a_token_refused_even_when_fresh_is_retried_once_only() {
        let s = setup();
        s.fake
            .set_fault_on("wecom_jscode2session", Fault::Errcode { errcode: 42001 });
        let errno = s.errno(s.code(CORP, "a")).await;
        assert_eq!(errno, 716, "a WeCom that keeps refusing is a bad response");
        assert_eq!(s.fake.calls("gettoken"), 2, "fetched, refreshed once");
        assert_eq!(
            s.fake.calls("wecom_jscode2session"),
            2,
            "tried, retried once"
        );
    }

    #[actix_web::test]
    async fn concurrent_logins_fetch_the_corp_token_once() {
        let s = setup();
        s.fake
            .set_fault_on("gettoken", Fault::Slow { delay_ms: 100 });
        let logins: Vec<_> = (0..20)
            .map(|i| s.login(s.code(CORP, &format!("staff{i}"))))
            .collect();
        let results = futures_util::future::join_all(logins).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.expect("login").userid, format!("staff{i}"));
        }
        assert_eq!(s.fake.calls("gettoken"), 1, "single flight");
        assert_eq!(s.fake.calls("wecom_jscode2session"), 20);
    }

    #[actix_web::test]
    async fn each_corp_has_its_own_token() {
        let s = setup();
        s.login(s.code(CORP, "a")).await.expect("login");
        let sister = s
            .login_as(SISTER, s.code(SISTER, "b"))
            .await
            .expect("login");
        assert_eq!(sister.corpid, SISTER);
        assert_eq!(s.fake.calls("gettoken"), 2);
    }

    #[actix_web::test]
    async fn an_answer_for_a_corp_not_configured_is_refused_as_an_invalid_code() {
        let s = setup();
        let errno = s.errno(s.code(STRANGER, "spy")).await;
        assert_eq!(errno, 710);
        assert_eq!(s.fake.calls("wecom_jscode2session"), 1, "WeCom did answer");
        assert!(
            captured_logs()
                .iter()
                .any(|l| l.contains(STRANGER) && l.contains("not configured")),
            "the refusal names the corp"
        );
        let sister = s
            .login(s.code(SISTER, "colleague"))
            .await
            .expect("configured");
        assert_eq!(
            sister.corpid, SISTER,
            "a configured corp of the same mini-program"
        );
    }

    #[actix_web::test]
    async fn a_corp_not_configured_is_never_asked() {
        let s = setup();
        let refused = s
            .login_as(STRANGER, s.code(STRANGER, "x"))
            .await
            .expect_err("refused");
        assert_eq!(
            ApiError::from(refused).errno(),
            502,
            "a wiring mistake is ours"
        );
        assert_eq!(s.fake.calls("gettoken"), 0);
        assert_eq!(s.fake.calls("wecom_jscode2session"), 0);
    }

    #[actix_web::test]
    async fn a_wrong_corpsecret_is_502_like_a_wrong_appsecret() {
        let s = setup_with(Some("not-the-corpsecret"), Duration::from_secs(2));
        assert_eq!(s.errno(s.code(CORP, "a")).await, 502);
        assert_eq!(
            s.fake.calls("wecom_jscode2session"),
            0,
            "no token, no exchange"
        );
    }

    #[actix_web::test]
    async fn busy_slow_and_garbage_wecom_map_like_wechat() {
        let s = setup_with(None, Duration::from_millis(300));
        s.fake.set_fault_on("wecom_jscode2session", Fault::Busy);
        assert_eq!(s.errno(s.code(CORP, "a")).await, 714);
        s.fake.set_fault_on(
            "wecom_jscode2session",
            Fault::Errcode {
                errcode: crate::wechat::wecom::errcode::RATE_LIMITED,
            },
        );
        assert_eq!(s.errno(s.code(CORP, "a")).await, 714, "the corp's quota");
        s.fake
            .set_fault_on("wecom_jscode2session", Fault::Slow { delay_ms: 1000 });
        assert_eq!(s.errno(s.code(CORP, "a")).await, 715);
        s.fake.set_fault_on("wecom_jscode2session", Fault::Garbage);
        assert_eq!(s.errno(s.code(CORP, "a")).await, 716);
        s.fake.set_fault_on("gettoken", Fault::Busy);
        s.fake.wecom().invalidate_tokens();
        s.fake.set_fault_on("wecom_jscode2session", Fault::None);
        assert_eq!(s.errno(s.code(CORP, "a")).await, 714, "busy gettoken");
    }

    #[actix_web::test]
    async fn corpsecrets_session_keys_and_corp_tokens_stay_out_of_logs() {
        let s = setup();
        let got = s.login(s.code(CORP, "zhaoliu")).await.expect("login");
        let _ = s.login(s.code(STRANGER, "x")).await;
        s.fake.wecom().expire_tokens();
        s.login(s.code(CORP, "zhaoliu")).await.expect("login");
        let key = s.fake.wecom().session_key_of(CORP, "zhaoliu").expect("key");
        let logs = captured_logs();
        assert!(logs.iter().any(|l| l.contains("wecom jscode2session ok")));
        for line in &logs {
            assert!(!line.contains(&s.corpsecret), "corpsecret in {line:.60}");
            assert!(!line.contains("sister-secret"), "corpsecret in {line:.60}");
            assert!(
                !line.contains(got.session_key.expose()),
                "session_key in a log"
            );
            assert!(!line.contains(&key), "session_key in a log");
            assert!(!line.contains("CORP_"), "a corp token in a log");
            assert!(!line.contains("zhaoliu"), "the userid unmasked in a log");
        }
    }
}
