//! The Prometheus metrics this service exports at `/metrics`. One `Metrics` is built at start and
//! shared through `AppState` (and handed to the WeChatClient); it owns its own `Registry`, so two
//! apps in one process (the tests) never count into each other. The `prometheus` crate also has a
//! process-wide default registry; nothing here uses it.
//!
//! Label values are bounded on purpose: a route is the matched pattern, never the raw path; a
//! method is one of the standard ones or `other`; an errno comes from a fixed list, an errcode
//! from WeChat's known codes or `other` (see `WeChatError::errcode_label`); an app is the appid
//! of a configured mini-program (the WeChat families take it from a `WeChatMetrics` made for
//! each configured app at start, so no request can add one).

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The label used when an answer carries no errno (health probes, the admin API, static files).
pub(crate) const NO_ERRNO: &str = "none";
/// The route label of a request no route matched.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";
/// The method label of anything but the standard methods.
pub(crate) const OTHER_METHOD: &str = "other";

/// The method as a label from a closed set: HTTP allows any token as a method, and a client
/// sending a new one per request must not add a series (or a long log field) per request.
pub(crate) fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => OTHER_METHOD,
    }
}

pub(crate) struct Metrics {
    registry: Registry,
    /// `wxauth_http_requests_total{route, method, status, errno}`
    pub(crate) http_requests: IntCounterVec,
    /// `wxauth_http_request_duration_seconds{route, errno}`
    pub(crate) http_duration: HistogramVec,
    /// `wxauth_logins_total{errno}`: login attempts past argument checks, by outcome.
    pub(crate) logins: IntCounterVec,
    /// `wxauth_app_logins_total{app, errno}`: the same attempts by app. `app` is a configured
    /// appid and nothing else: an appid that is not configured is refused before the attempt.
    pub(crate) app_logins: IntCounterVec,
    /// `wxauth_account_merges_total`: accounts merged into another because they were one person.
    pub(crate) account_merges: IntCounter,
    /// `wxauth_requests_refused_total{kind}`: requests refused with errno 721 (server busy)
    /// before any work, by what was full: `login`, `read`, `wechat`.
    pub(crate) refused: IntCounterVec,
    /// `wxauth_login_log_dropped_total`: login_log rows not written because too many were queued.
    pub(crate) login_log_dropped: IntCounter,
    /// `wxauth_wechat_request_duration_seconds{app}`: one observation per real upstream round
    /// trip. These three families are written through `WeChatMetrics` only.
    wechat_duration: HistogramVec,
    /// `wxauth_wechat_requests_total{app}`
    wechat_requests: IntCounterVec,
    /// `wxauth_wechat_errors_total{app, errcode}`: WeChat's errcode, or
    /// `timeout`/`unreachable`/`bad_response`.
    wechat_errors: IntCounterVec,
    /// `wxauth_db_pool_connections{state}`: `idle` and `in_use`, read at scrape time.
    pub(crate) db_pool_connections: IntGaugeVec,
    /// `wxauth_db_pool_max_connections`
    pub(crate) db_pool_max: IntGauge,
    /// `wxauth_sessions_live`, read from the SessionActor at scrape time.
    pub(crate) sessions_live: IntGauge,
    /// `wxauth_session_listener_healthy`: 1 while the NOTIFY listener is proven alive and the
    /// session cache is in use, 0 while every token check goes to PostgreSQL.
    pub(crate) session_listener_healthy: IntGauge,
    /// `wxauth_session_listener_heartbeat_age_seconds`: since the listener last heard this
    /// instance's heartbeat (NaN before the first).
    pub(crate) session_listener_heartbeat_age: Gauge,
    /// `wxauth_session_listener_replacements_total`: listener connections given up because they
    /// went silent or did not finish connecting.
    pub(crate) session_listener_replacements: IntCounter,
    /// `wxauth_admission{kind, what}`: each admission's `limit`, `in_flight` and `queued`, read
    /// at scrape time (kind `login` or `read`).
    pub(crate) admission: IntGaugeVec,
    /// `wxauth_reminders_total{outcome}`: meeting reminders this instance tried to send, by
    /// outcome: `sent`, `refused` (43101: no consent any more), `failed` (given up), `retried`
    /// (WeChat busy or slow: tried again at the next tick).
    pub(crate) reminders: IntCounterVec,
}

/// The outcomes of `wxauth_reminders_total`, a closed set.
pub(crate) const REMINDER_OUTCOMES: [&str; 4] = ["sent", "refused", "failed", "retried"];

impl Metrics {
    pub(crate) fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("wxauth".into()), None)?;

        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["route", "method", "status", "errno"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request to response head",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "errno"],
        )?;
        let logins = IntCounterVec::new(
            Opts::new(
                "logins_total",
                "Login attempts past argument checks, by errno",
            ),
            &["errno"],
        )?;
        let app_logins = IntCounterVec::new(
            Opts::new(
                "app_logins_total",
                "Login attempts past argument checks, by configured app (appid) and errno",
            ),
            &["app", "errno"],
        )?;
        let account_merges = IntCounter::new(
            "account_merges_total",
            "Accounts merged into an older one of the same person",
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "requests_refused_total",
                "Requests refused with errno 721 (server busy) before any work, by what was full",
            ),
            &["kind"],
        )?;
        let login_log_dropped = IntCounter::new(
            "login_log_dropped_total",
            "Login attempts not written to login_log because the database fell behind",
        )?;
        // Covers the client's 3 s budget: anything above 3 s is already a failed login.
        let wechat_duration = HistogramVec::new(
            HistogramOpts::new(
                "wechat_request_duration_seconds",
                "WeChat (and WeCom) round trips by configured app (appid)",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0]),
            &["app"],
        )?;
        let wechat_requests = IntCounterVec::new(
            Opts::new(
                "wechat_requests_total",
                "WeChat (and WeCom) round trips by configured app (appid)",
            ),
            &["app"],
        )?;
        let wechat_errors = IntCounterVec::new(
            Opts::new(
                "wechat_errors_total",
                "Failed WeChat round trips by configured app (appid) and errcode (or timeout, unreachable, bad_response)",
            ),
            &["app", "errcode"],
        )?;
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "PostgreSQL pool connections by state",
            ),
            &["state"],
        )?;
        let db_pool_max = IntGauge::new(
            "db_pool_max_connections",
            "PostgreSQL pool size (DB_POOL_SIZE)",
        )?;
        let sessions_live = IntGauge::new("sessions_live", "Live login sessions")?;
        let session_listener_healthy = IntGauge::new(
            "session_listener_healthy",
            "1 while the session listener is proven alive by its heartbeat and the session cache is in use; 0 while every token check goes to PostgreSQL",
        )?;
        let session_listener_heartbeat_age = Gauge::new(
            "session_listener_heartbeat_age_seconds",
            "Seconds since the session listener last heard this instance's heartbeat (NaN before the first)",
        )?;
        session_listener_heartbeat_age.set(f64::NAN);
        let session_listener_replacements = IntCounter::new(
            "session_listener_replacements_total",
            "Session listener connections replaced because they went silent or did not finish connecting",
        )?;
        let admission = IntGaugeVec::new(
            Opts::new(
                "admission",
                "Admission control: the concurrency limit, requests in progress and requests queued, by kind",
            ),
            &["kind", "what"],
        )?;
        let reminders = IntCounterVec::new(
            Opts::new(
                "reminders_total",
                "Meeting reminders (subscribe messages) tried, by outcome",
            ),
            &["outcome"],
        )?;
        for outcome in REMINDER_OUTCOMES {
            reminders.with_label_values(&[outcome]);
        }
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Always 1; the version is in the label"),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(app_logins.clone()))?;
        registry.register(Box::new(account_merges.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(login_log_dropped.clone()))?;
        registry.register(Box::new(wechat_duration.clone()))?;
        registry.register(Box::new(wechat_requests.clone()))?;
        registry.register(Box::new(wechat_errors.clone()))?;
        registry.register(Box::new(db_pool_connections.clone()))?;
        registry.register(Box::new(db_pool_max.clone()))?;
        registry.register(Box::new(sessions_live.clone()))?;
        registry.register(Box::new(session_listener_healthy.clone()))?;
        registry.register(Box::new(session_listener_heartbeat_age.clone()))?;
        registry.register(Box::new(session_listener_replacements.clone()))?;
        registry.register(Box::new(admission.clone()))?;
        registry.register(Box::new(reminders.clone()))?;
        registry.register(Box::new(build_info))?;

        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            logins,
            app_logins,
            account_merges,
            refused,
            login_log_dropped,
            wechat_duration,
            wechat_requests,
            wechat_errors,
            db_pool_connections,
            db_pool_max,
            sessions_live,
            session_listener_healthy,
            session_listener_heartbeat_age,
            session_listener_replacements,
            admission,
            reminders,
        })
    }

    pub(crate) fn observe_request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        errno: Option<i32>,
        seconds: f64,
    ) {
        let errno = errno.map(|e| e.to_string());
        let errno = errno.as_deref().unwrap_or(NO_ERRNO);
        self.http_requests
            .with_label_values(&[route, method, &status.to_string(), errno])
            .inc();
        self.http_duration
            .with_label_values(&[route, errno])
            .observe(seconds);
    }

    /// A login attempt in app `appid`, which the caller took from the configured apps.
    pub(crate) fn observe_login(&self, appid: &str, errno: i32) {
        let errno = errno.to_string();
        self.logins.with_label_values(&[&errno]).inc();
        self.app_logins.with_label_values(&[appid, &errno]).inc();
    }

    /// Where the WeChatClient of the configured app `appid` counts its round trips. Made once
    /// per configured app at start: the `app` label of the WeChat families is never anything a
    /// request sent. Its series start at zero, so every configured app is listed before its
    /// first call.
    pub(crate) fn wechat_for(&self, appid: &str) -> WeChatMetrics {
        WeChatMetrics {
            requests: self.wechat_requests.with_label_values(&[appid]),
            duration: self.wechat_duration.with_label_values(&[appid]),
            errors: self.wechat_errors.clone(),
            appid: appid.to_string(),
        }
    }

    pub(crate) fn set_pool(&self, state: &diesel::r2d2::State, max: u32) {
        let idle = i64::from(state.idle_connections);
        let in_use = i64::from(state.connections) - idle;
        self.db_pool_connections
            .with_label_values(&["idle"])
            .set(idle);
        self.db_pool_connections
            .with_label_values(&["in_use"])
            .set(in_use);
        self.db_pool_max.set(i64::from(max));
    }

    /// Everything, in the Prometheus text exposition format.
    pub(crate) fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// One configured app's share of the WeChat families (`Metrics::wechat_for`).
#[derive(Clone)]
pub(crate) struct WeChatMetrics {
    requests: IntCounter,
    duration: Histogram,
    errors: IntCounterVec,
    appid: String,
}

impl WeChatMetrics {
    /// One upstream round trip; `error` is the errcode label when it failed.
    pub(crate) fn observe(&self, seconds: f64, error: Option<&str>) {
        self.requests.inc();
        self.duration.observe(seconds);
        if let Some(errcode) = error {
            self.errors.with_label_values(&[&self.appid, errcode]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_families_with_their_labels() {
        let m = Metrics::new().expect("metrics");
        m.observe_request("/oapro/wx/auth/login_by_weixin", "POST", 200, Some(0), 0.01);
        m.observe_login("wx1111111111111111", 712);
        m.wechat_for("wx1111111111111111")
            .observe(0.2, Some("45011"));
        m.wechat_for("wx2222222222222222");
        let text = m.render().expect("render");
        assert!(text.contains(
            r#"wxauth_http_requests_total{errno="0",method="POST",route="/oapro/wx/auth/login_by_weixin",status="200"} 1"#
        ));
        assert!(text.contains(r#"wxauth_logins_total{errno="712"} 1"#));
        assert!(
            text.contains(r#"wxauth_app_logins_total{app="wx1111111111111111",errno="712"} 1"#)
        );
        assert!(
            text.contains(
                r#"wxauth_wechat_errors_total{app="wx1111111111111111",errcode="45011"} 1"#
            )
        );
        assert!(text.contains(r#"wxauth_wechat_requests_total{app="wx1111111111111111"} 1"#));
        assert!(text.contains(
            r#"wxauth_wechat_request_duration_seconds_count{app="wx1111111111111111"} 1"#
        ));
        // An app without calls yet is listed at zero.
        assert!(text.contains(r#"wxauth_wechat_requests_total{app="wx2222222222222222"} 0"#));
        assert!(text.contains(r#"wxauth_build_info{version=""#));
    }

    #[test]
    fn methods_outside_the_standard_ones_are_other() {
        use actix_web::http::Method;
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["FOO", "get", "PROPFIND", &"X".repeat(16 * 1024)] {
            let method = Method::from_bytes(made_up.as_bytes()).expect("a token");
            assert_eq!(method_label(&method), OTHER_METHOD, "{made_up:.20}");
        }
    }
}
