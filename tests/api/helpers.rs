//! The test harness: a real wxauth on the actix test system, a fresh PostgreSQL database per
//! test, and the WeChat fake on its own port as the upstream.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{App, HttpServer};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use wxauth::api::AppState;
use wxauth::config::{Config, MiniProgram, Secret, WeChatMode, WeComApp};
use wxauth::db::models::WxUserRow;
use wxauth::db::schema::wx_user;
use wxauth::dev::fake_wechat::{self as fake, FakeWeChat, MintedCode};
use wxauth::startup::Application;

use crate::database::{DropDb, pg_url};
pub use crate::reply::Reply;

// Letters only: tests look for numbers (errcodes, ids) in /metrics, where appids are labels.
pub const TEST_APPID: &str = "wxtestoaappidabcde";
/// The second mini-program of `TestAppBuilder::two_apps`.
pub const TEST_APPID2: &str = "wxtestshopappidxyz";
/// The WeCom corp of `TestAppBuilder::wecom`, whose staff open the default app `TEST_APPID`.
pub const TEST_CORPID: &str = "wwtestcorpabcdefgh";

// ---- log capture: every log line of every test, to look for leaked secrets ----

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The same records as the binary's `LOG_FORMAT=json` writes them.
static JSON_LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    /// Each record in both formats, so the searches for leaked secrets cover both.
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOGS.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        let json = wxauth::logging::json_line(record);
        JSON_LOGS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(json);
    }
    fn flush(&self) {}
}

pub fn init_logging() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if log::set_logger(&CaptureLogger).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}

/// Every log line captured so far, from all tests in this process.
pub fn captured_logs() -> Vec<String> {
    LOGS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Every log line captured so far, as `LOG_FORMAT=json` writes it.
pub fn captured_json_logs() -> Vec<String> {
    JSON_LOGS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Every log line captured so far in both formats, `text` then `json`: what a search for
/// leaked secrets must look through.
pub fn captured_logs_in_every_format() -> Vec<String> {
    let mut lines = captured_logs();
    lines.extend(captured_json_logs());
    lines
}

// ---- the app under test ----

pub struct TestApp {
    /// The configuration it was built from, to start siblings on the same database.
    config: Config,
    /// Shared with its siblings: the database is dropped when the last of them goes.
    database: Arc<DropDb>,
    pub handle: actix_web::dev::ServerHandle,
    pub base: String,
    pub api: String,
    /// `http://127.0.0.1:PORT` of the separate metrics listener, when METRICS_BIND_ADDR is set.
    pub metrics_base: Option<String>,
    /// The running app's actors, for tests that send them messages directly.
    pub state: AppState,
    pub fake: Arc<FakeWeChat>,
    /// The test's database, directly (even when this instance reaches it through a proxy).
    pub db_url: String,
    pub jwt_secret: String,
    pub wechat_secret: String,
    pub http: awc::Client,
}

/// A change to the configuration the harness made, typed: `|c| c.database.pool_size = 2`.
type Change = Box<dyn FnOnce(&mut Config)>;

pub struct TestAppBuilder {
    changes: Vec<Change>,
    dev_mode: bool,
    two_apps: bool,
    wecom: bool,
}

impl TestAppBuilder {
    /// Changes the configuration after the harness has made it.
    pub fn config(mut self, change: impl FnOnce(&mut Config) + 'static) -> Self {
        self.changes.push(Box::new(change));
        self
    }

    /// The admin page and API on, behind this token.
    pub fn admin_token(self, token: &'static str) -> Self {
        self.config(move |c| {
            c.admin.token = Some(Secret::new(token));
            c.admin.token_generated = false;
        })
    }

    /// The test client (127.0.0.1) is a trusted proxy: its `X-Forwarded-For` is believed.
    pub fn trust_forwarded_for(self) -> Self {
        self.config(|c| {
            c.limits.trusted_proxies = vec![ipnet::IpNet::from(std::net::IpAddr::from(
                std::net::Ipv4Addr::LOCALHOST,
            ))]
        })
    }

    /// WeChat at another address than the harness's fake.
    pub fn wechat_api_base(self, base: &'static str) -> Self {
        self.config(move |c| match &mut c.wechat.mode {
            WeChatMode::Upstream { api_base, .. } => *api_base = base.to_string(),
            WeChatMode::Dev => panic!("WECHAT_API_BASE for a dev-mode app"),
        })
    }

    /// Another AppSecret than the one the fake knows.
    pub fn wechat_secret(self, wrong: &'static str) -> Self {
        self.config(move |c| match &mut c.wechat.mode {
            WeChatMode::Upstream { .. } => {
                c.wechat.apps.miniprograms[0].secret = Secret::new(wrong)
            }
            WeChatMode::Dev => panic!("WECHAT_SECRET for a dev-mode app"),
        })
    }

    /// Two mini-programs of one company (`TEST_APPID`, the default, and `TEST_APPID2`), both
    /// bound to its open platform: a named test user has one unionid in both.
    pub fn two_apps(mut self) -> Self {
        self.two_apps = true;
        self
    }

    /// A WeCom corp (`TEST_CORPID`) whose staff open the default app inside WeCom, known to
    /// the fake with its corpsecret.
    pub fn wecom(mut self) -> Self {
        self.wecom = true;
        self
    }

    /// No WECHAT_APPID: the app serves its own fake, as `cargo run` does.
    pub fn dev_mode(mut self) -> Self {
        self.dev_mode = true;
        self
    }

    pub async fn spawn(self) -> TestApp {
        init_logging();
        let database = Arc::new(DropDb::fresh());
        let db_url = pg_url(&database.0);
        let jwt_secret = format!("jwt-{}", uuid::Uuid::new_v4().simple());
        let wechat_secret = format!("appsecret-{}", uuid::Uuid::new_v4().simple());

        // As an operator would write it; the tests' changes are typed, applied after.
        let mut vars: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", db_url.as_str()),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("JWT_SECRET", jwt_secret.as_str()),
            ("DB_POOL_SIZE", "3"),
            ("HTTP_WORKERS", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let upstream_fake = if self.dev_mode {
            None
        } else {
            let fake = FakeWeChat::new(TEST_APPID, &wechat_secret);
            vars.insert("WECHAT_APPID".into(), TEST_APPID.into());
            vars.insert("WECHAT_SECRET".into(), wechat_secret.clone());
            let fake_base = spawn_fake(fake.clone());
            // The fake plays WeCom too: no test ever reaches the real one.
            vars.insert("WECOM_API_BASE".into(), fake_base.clone());
            vars.insert("WECHAT_API_BASE".into(), fake_base);
            Some(fake)
        };
        let mut config = Config::from_vars(&vars).expect("test config is valid");
        if let Some(fake) = upstream_fake.as_ref().filter(|_| self.two_apps) {
            let secret = format!("appsecret2-{}", uuid::Uuid::new_v4().simple());
            fake.add_app(TEST_APPID2, &secret);
            fake.bind_open_platform(TEST_APPID);
            fake.bind_open_platform(TEST_APPID2);
            config.wechat.apps.miniprograms.push(MiniProgram {
                appid: TEST_APPID2.to_string(),
                secret: Secret::new(secret),
                name: "商城".to_string(),
                reminder_template: None,
            });
        }
        if let Some(fake) = upstream_fake.as_ref().filter(|_| self.wecom) {
            let corpsecret = corpsecret_for(&wechat_secret);
            fake.wecom().add_corp(TEST_CORPID, &corpsecret, TEST_APPID);
            config.wechat.apps.wecom.push(WeComApp {
                corpid: TEST_CORPID.to_string(),
                corpsecret: Secret::new(corpsecret),
                appid: TEST_APPID.to_string(),
            });
        }
        for change in self.changes {
            change(&mut config);
        }
        TestApp::start(config, database, upstream_fake, jwt_secret, wechat_secret).await
    }
}

/// The test corp's secret: its own, and known from the app's AppSecret.
fn corpsecret_for(wechat_secret: &str) -> String {
    wechat_secret.replace("appsecret-", "corpsecret-")
}

/// Serves a fake WeChat on its own port, as the real one would be: another host.
pub fn spawn_fake(fake: Arc<FakeWeChat>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake");
    let port = listener.local_addr().expect("fake addr").port();
    let server = HttpServer::new(move || App::new().configure(fake::configure(fake.clone())))
        .listen(listener)
        .expect("fake listens")
        .workers(1)
        .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

// ---- the meeting app's props ----

/// As a client with a UTC clock sends a time.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A valid publish body for a one-hour meeting.
pub fn meeting_body_at(title: &str, start: DateTime<Utc>) -> Value {
    json!({
        "title": title,
        "content": "议程：1. 上周工作回顾；2. 本周计划。",
        "location": "3号楼305会议室",
        "startTime": iso(start),
        "endTime": iso(start + TimeDelta::hours(1)),
    })
}

/// A valid publish body for a one-hour meeting starting `hours` from now.
pub fn meeting_body(title: &str, hours: i64) -> Value {
    meeting_body_at(title, Utc::now() + TimeDelta::hours(hours))
}

/// The id of a meeting as the API shows it.
pub fn id_of(meeting: &Value) -> i64 {
    meeting["id"].as_i64().expect("a meeting id")
}

impl TestApp {
    /// Polls until `user/index` with this token answers `errno`, or the deadline passes; how
    /// long that took.
    pub async fn errno_within(&self, token: &str, errno: i64, deadline: Duration) -> Duration {
        let started = std::time::Instant::now();
        loop {
            let got = self.get("user/index", Some(token)).await.errno();
            if got == errno {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < deadline,
                "still errno {got} after {deadline:?}, expected {errno}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Another instance on the same database, with the same secrets and the same WeChat: as
    /// behind a load balancer, or the same deployment after a restart.
    pub async fn sibling(&self) -> TestApp {
        self.sibling_with(|_| {}).await
    }

    /// A sibling whose configuration differs by `change` (an instance of the next deployment,
    /// say).
    pub async fn sibling_with(&self, change: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = self.config.clone();
        change(&mut config);
        TestApp::start(
            config,
            self.database.clone(),
            Some(self.fake.clone()),
            self.jwt_secret.clone(),
            self.wechat_secret.clone(),
        )
        .await
    }

    /// Builds and serves an app; `upstream` is the WeChat fake it talks to, unless it serves
    /// its own (dev mode).
    async fn start(
        config: Config,
        database: Arc<DropDb>,
        upstream: Option<Arc<FakeWeChat>>,
        jwt_secret: String,
        wechat_secret: String,
    ) -> TestApp {
        let api_root = config.http.api_root();
        let spawned = Application::build(config.clone())
            .await
            .expect("app starts")
            .spawn();
        let base = format!("http://127.0.0.1:{}", spawned.port);
        TestApp {
            config,
            db_url: pg_url(&database.0),
            database,
            state: spawned.state,
            handle: spawned.handle,
            api: format!("{base}{api_root}"),
            base,
            metrics_base: spawned
                .metrics_port
                .map(|p| format!("http://127.0.0.1:{p}")),
            fake: spawned.dev_fake.or(upstream).expect("a WeChat fake"),
            jwt_secret,
            wechat_secret,
            http: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish(),
        }
    }

    /// Stops this instance's HTTP server (its in-memory state is gone with it).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            changes: Vec::new(),
            dev_mode: false,
            two_apps: false,
            wecom: false,
        }
    }

    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    /// The harness's app with the named test user logged in; the app and the user's token.
    pub async fn with_user(user: &str) -> (TestApp, String) {
        let app = Self::spawn().await;
        let token = app.login_ok(user).await;
        (app, token)
    }

    async fn finish<S>(response: awc::ClientResponse<S>) -> Reply
    where
        S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    {
        Reply::read(response).await.expect("body")
    }

    /// POST a raw body (so tests can send broken JSON) to a path under the API root.
    pub async fn post_raw(&self, path: &str, body: &str, token: Option<&str>) -> Reply {
        let mut req = self
            .http
            .post(format!("{}/{path}", self.api))
            .insert_header(("content-type", "application/json"));
        if let Some(t) = token {
            req = req.insert_header(("X-OA-Token", t));
        }
        Self::finish(req.send_body(body.to_string()).await.expect("request")).await
    }

    /// POST JSON to a path under the API root with extra request headers.
    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut req = self
            .http
            .post(format!("{}/{path}", self.api))
            .insert_header(("content-type", "application/json"));
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        Self::finish(req.send_body(body.to_string()).await.expect("request")).await
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Reply {
        self.post_raw(path, &body.to_string(), token).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.http.get(format!("{}/{path}", self.api));
        if let Some(t) = token {
            req = req.insert_header(("X-OA-Token", t));
        }
        Self::finish(req.send().await.expect("request")).await
    }

    pub async fn get_abs(&self, path: &str) -> Reply {
        Self::finish(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// A request with this method and no body to a path under the API root.
    pub async fn get_with_method(&self, method: &str, path: &str) -> Reply {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
        Self::finish(
            self.http
                .request(method, format!("{}/{path}", self.api))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// GET an absolute path with optional request headers, without following redirects.
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .disable_redirects()
            .finish();
        let mut req = client.get(url);
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        Self::finish(req.send().await.expect("request")).await
    }

    /// POST, without a body, to `/admin/{path}` with this bearer token (none: no header).
    pub async fn admin_post(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.http.post(format!("{}/admin/{path}", self.base));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        Self::finish(req.send().await.expect("admin request")).await
    }

    pub fn code_for(&self, user: &str) -> MintedCode {
        self.fake.mint_code(user)
    }

    /// The client's story step one: wx.login() then auth/login_by_weixin with the code alone.
    pub async fn login(&self, user: &str) -> Reply {
        let code = self.code_for(user).code;
        self.post(
            "auth/login_by_weixin",
            &serde_json::json!({ "code": code }),
            None,
        )
        .await
    }

    /// wx.login() in app `appid`, then auth/login_by_weixin naming the app in the body.
    pub async fn login_in(&self, appid: &str, user: &str) -> Reply {
        let code = self.fake.mint_code_in(appid, user).code;
        self.post(
            "auth/login_by_weixin",
            &serde_json::json!({ "code": code, "appid": appid }),
            None,
        )
        .await
    }

    /// Inside WeCom: `wx.qy.login()` as employee `userid` of `TEST_CORPID`, then
    /// auth/login_by_wecom with the code alone.
    pub async fn login_wecom(&self, userid: &str) -> Reply {
        let code = self.wecom_code(userid);
        self.post(
            "auth/login_by_wecom",
            &serde_json::json!({ "code": code }),
            None,
        )
        .await
    }

    /// What `wx.qy.login()` gives employee `userid` of `TEST_CORPID`.
    pub fn wecom_code(&self, userid: &str) -> String {
        self.fake
            .wecom()
            .mint_code(TEST_CORPID, userid)
            .expect("the fake knows the test corp")
            .code
    }

    /// The corpsecret of `TestAppBuilder::wecom`'s corp.
    pub fn corpsecret(&self) -> String {
        corpsecret_for(&self.wechat_secret)
    }

    pub async fn login_ok(&self, user: &str) -> String {
        let reply = self.login(user).await;
        assert_eq!(reply.errno(), 0, "login of {user} failed: {}", reply.raw);
        reply.token()
    }

    /// Publishes a meeting; the meeting as the answer shows it.
    pub async fn publish(&self, token: &str, body: &Value) -> Value {
        let reply = self.post("meeting/publish", body, Some(token)).await;
        assert_eq!(reply.errno(), 0, "publish {body}: {}", reply.raw);
        reply.body["data"].clone()
    }

    /// A current client's getPhoneNumber: the button's code, sent to `auth/bindPhone`.
    pub async fn bind_phone_code(&self, code: &str, token: &str) -> Reply {
        self.post(
            "auth/bindPhone",
            &serde_json::json!({ "code": code }),
            Some(token),
        )
        .await
    }

    /// An old client's getPhoneNumber: the phone as open data encrypted with the user's current
    /// session_key (stamped with our appid), sent to `auth/bindPhone`.
    pub async fn bind_phone_encrypted(&self, openid: &str, phone: &str, token: &str) -> Reply {
        let (data, iv) = self
            .fake
            .encrypted_phone(openid, phone, TEST_APPID)
            .expect("the user has a session_key");
        self.bind_phone_open_data(&data, &iv, token).await
    }

    /// Open data as `getPhoneNumber` hands it to an old client, sent to `auth/bindPhone`.
    pub async fn bind_phone_open_data(&self, data: &str, iv: &str, token: &str) -> Reply {
        self.post(
            "auth/bindPhone",
            &serde_json::json!({ "encryptedData": data, "iv": iv }),
            Some(token),
        )
        .await
    }

    pub fn db(&self) -> PgConnection {
        PgConnection::establish(&self.db_url).expect("test db connection")
    }

    pub fn user_by_openid(&self, openid: &str) -> Option<WxUserRow> {
        wx_user::table
            .filter(wx_user::weixin_openid.eq(openid))
            .select(WxUserRow::as_select())
            .first(&mut self.db())
            .optional()
            .expect("query")
    }

    pub fn count_users(&self) -> i64 {
        wx_user::table
            .count()
            .get_result(&mut self.db())
            .expect("count")
    }
}
