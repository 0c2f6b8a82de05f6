//! The `AppState` every handler reaches, and what fills it: the database handle on the prepared
//! pool, the sessions and the WeChat clients. Their upkeep is started by `crate::background`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use actix::Actor;

use super::{DEV_FAKE_PATH, StartupError};
use crate::admission;
use crate::api::admin::AdminToken;
use crate::api::limits::RateLimits;
use crate::api::{AppState, Started};
use crate::apps::{ServedApp, ServedCorps};
use crate::background::login_log::LoginLogWriter;
use crate::config::{Apps, Config, WeChatMode, WeComApp};
use crate::db::DbHandle;
use crate::db::PgPool;
use crate::db::sealed::SessionKeyCipher;
use crate::dev::fake_wechat::FakeWeChat;
use crate::metrics::Metrics;
use crate::sessions::{SessionActor, listener};
use crate::shutdown::Drain;
use crate::token::TokenIssuer;
use crate::wechat::client::WeChatClient;
use crate::wechat::wecom::corp_for_app;

/// Where the WeChatClients send their calls, as which apps.
pub(super) struct WeChatUpstream {
    api_base: String,
    apps: Apps,
    wecom_api_base: String,
}

impl WeChatUpstream {
    /// The configured upstream, or in dev mode the built-in fake (returned too, for mounting)
    /// reached through this process's own listener at `local`, knowing the demo apps.
    pub(super) fn for_mode(
        config: &Config,
        local: SocketAddr,
    ) -> (WeChatUpstream, Option<Arc<FakeWeChat>>) {
        let apps = &config.wechat.apps;
        match &config.wechat.mode {
            WeChatMode::Upstream { api_base } => (
                WeChatUpstream {
                    api_base: api_base.clone(),
                    apps: apps.clone(),
                    wecom_api_base: config.wechat.wecom_api_base.clone(),
                },
                None,
            ),
            WeChatMode::Dev => {
                let default = apps.default_app();
                let fake = FakeWeChat::new(&default.appid, default.secret.expose());
                for app in &apps.miniprograms[1..] {
                    fake.add_app(&app.appid, app.secret.expose());
                }
                // The demo apps are one company's: a person has one unionid across them.
                for app in &apps.miniprograms {
                    fake.bind_open_platform(&app.appid);
                }
                for corp in &apps.wecom {
                    fake.wecom()
                        .add_corp(&corp.corpid, corp.corpsecret.expose(), &corp.appid);
                }
                let api_base = format!("http://{}{DEV_FAKE_PATH}", loopback_for(local));
                (
                    WeChatUpstream {
                        wecom_api_base: api_base.clone(),
                        api_base,
                        apps: apps.clone(),
                    },
                    Some(fake),
                )
            }
        }
    }
}

/// Users made before identities existed (or by the previous release, still running beside this
/// one during an upgrade) become the default app's: the migration cannot know its appid.
fn adopt_users_without_identity(pool: &PgPool, default_appid: &str) -> Result<(), StartupError> {
    let mut conn = pool
        .get()
        .map_err(|e| StartupError::Identities(e.to_string()))?;
    let adopted = crate::db::sessions::adopt_users_without_identity(&mut conn, default_appid)
        .map_err(|e| StartupError::Identities(e.to_string()))?;
    if adopted > 0 {
        log::info!(
            "{adopted} users without an identity became users of the default app {default_appid}"
        );
    }
    Ok(())
}

/// The address a client on this machine uses to reach a listener bound to `addr`.
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, addr.port())
}

/// Starts the actors on the prepared `pool` (in dev mode after
/// loading the demo data into an empty database) and gathers them into the `AppState`.
pub(super) async fn build(
    config: &Config,
    pool: PgPool,
    metrics: Arc<Metrics>,
    upstream: WeChatUpstream,
) -> Result<AppState, StartupError> {
    let db_threads = config.database.pool_size as usize;
    let cipher = match config.sessions.encryption_key {
        Some(key) => SessionKeyCipher::new(&key),
        None => SessionKeyCipher::derived_from(config.sessions.jwt_secret.expose()),
    };
    let capacity = admission::Capacity {
        db_connections: db_threads,
        // Under the WeChat clients' own cap on calls in flight, so that an admitted login is never
        // refused there, with room left for bindPhone's calls.
        max_logins: crate::wechat::client::MAX_IN_FLIGHT - 64,
    };
    let (login_admission, db_admission) = admission::for_instance(capacity, &metrics);
    let db = DbHandle::start(pool.clone(), cipher, db_threads, db_admission);
    // Only dev mode: a production database must never receive demo rows by accident.
    if config.is_dev_mode() {
        let seeded = db
            .background()
            .seed_demo_if_empty(chrono::Utc::now())
            .await
            .map_err(|e| StartupError::Demo(e.to_string()))?;
        if let Some(report) = seeded {
            log::info!("dev mode: loaded demo data into an empty app: {report}");
        }
    }
    adopt_users_without_identity(&pool, &config.wechat.apps.default_app().appid)?;
    let sessions = SessionActor::new(
        db.clone(),
        config.sessions.cache_capacity,
        config.sessions.max_lifetime,
    );
    let session_cache = sessions.cache();
    let sessions = sessions.start();
    let session_listener = listener::spawn(
        &config.database.listen_url,
        pool,
        sessions.clone(),
        session_cache.clone(),
        metrics.clone(),
    )?;
    let WeChatUpstream {
        api_base,
        apps,
        wecom_api_base,
    } = upstream;
    // One client per app: each keeps its own access token, and a slow or refused app does not
    // hold up another's calls. A WeCom corp is served by the client of the mini-program its
    // staff open.
    let served = crate::apps::ServedApps::new(
        apps.miniprograms
            .iter()
            .map(|app| {
                let corps: Vec<WeComApp> = apps
                    .wecom
                    .iter()
                    .filter(|corp| corp.appid == app.appid)
                    .cloned()
                    .collect();
                let wecom = corp_for_app(&corps, &app.appid).map(|corp| ServedCorps {
                    corpid: corp.corpid.clone(),
                    linked: corps.iter().map(|c| c.corpid.clone()).collect(),
                    latency: Default::default(),
                });
                ServedApp {
                    appid: app.appid.clone(),
                    name: app.name.clone(),
                    wechat: WeChatClient::new(
                        api_base.clone(),
                        app.appid.clone(),
                        app.secret.clone(),
                        config.wechat.timeout,
                        config.wechat.access_token_mode,
                        metrics.clone(),
                    )
                    .with_wecom(wecom_api_base.clone(), corps)
                    .start(),
                    latency: Default::default(),
                    wecom,
                    reminder_template: app.reminder_template.clone(),
                }
            })
            .collect(),
    );
    let admin = config
        .admin
        .token
        .as_ref()
        .map(|t| Arc::new(AdminToken::new(t)));
    if admin.is_some() && !config.admin.static_dir.join("index.html").is_file() {
        log::warn!(
            "admin page: no index.html in {} (ADMIN_STATIC_DIR); /admin/ will answer 404, the admin API still works",
            config.admin.static_dir.display()
        );
    }
    let limits = Arc::new(RateLimits::new(&config.limits));
    let login_log = LoginLogWriter::new(&db, metrics.clone());
    Ok(AppState {
        login_log,
        db,
        login_admission,
        sessions,
        session_cache,
        listener: session_listener,
        apps: Arc::new(served),
        // A login's token never outlives its session's maximum lifetime.
        tokens: Arc::new(TokenIssuer::new(
            config.sessions.jwt_secret.expose().as_bytes(),
            config.sessions.token_ttl.min(config.sessions.max_lifetime),
        )),
        limits,
        content_check: crate::api::content_check::ContentCheck {
            enabled: config.content.check,
            on_error: config.content.on_error,
        },
        metrics,
        admin,
        started: Started::now(),
        dev_mode: config.is_dev_mode(),
        deletion_grace: chrono::TimeDelta::from_std(config.retention.account_deletion_grace)
            .unwrap_or(chrono::TimeDelta::days(30)),
        token_header: config.http.token_header.clone(),
        drain: Drain::new(),
    })
}
