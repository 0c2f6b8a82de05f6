//! Probes for orchestrators: `/healthz` (liveness) and `/readyz` (readiness).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::AppState;
use crate::log_throttle::ERRORS;
use crate::sessions::listener::ListenerReport;

const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 when the server is up and the database answers, 503 otherwise.
pub(crate) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let ping = tokio::time::timeout(PING_TIMEOUT, state.db.ping()).await;
    match ping {
        Ok(Ok(())) => {
            HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "ok"}))
        }
        other => {
            let why = match other {
                Err(_) => "timeout".to_string(),
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(())) => String::new(),
            };
            ERRORS.log(
                log::Level::Warn,
                "healthz: database unavailable",
                Some(&why),
            );
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "database": "unreachable"}))
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Readiness {
    pub(crate) status: &'static str,
    pub(crate) database: &'static str,
    /// `ok`, `pending` or `unknown` (database unreachable).
    pub(crate) migrations: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) pending: Vec<String>,
    /// The NOTIFY listener: `ok`, or `stale`/`down` while every token check goes to PostgreSQL.
    pub(crate) listener: ListenerReport,
}

/// `GET /readyz`: 200 when the database answers and has every migration this binary embeds; 503
/// otherwise, so an orchestrator sends no traffic to an instance that would fail every login.
///
/// A listener that is not `ok` is reported but does not make the instance unready: it still
/// answers every request correctly, from PostgreSQL instead of its cache. Taking it out of
/// rotation would gain nothing, and when the cause is shared (the database, the network to it)
/// every instance would go out at once.
///
/// 503 `{"status":"draining"}` once the instance is shutting down.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.drain.is_draining() {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "status": "draining",
        }));
    }
    let check = tokio::time::timeout(PING_TIMEOUT, state.db.pending_migrations()).await;
    let (ready, database, migrations, pending) = match check {
        Ok(Ok(pending)) if pending.is_empty() => (true, "ok", "ok", pending),
        Ok(Ok(pending)) => {
            ERRORS.log(
                log::Level::Warn,
                "readyz: migrations not applied",
                Some(&pending.join(", ")),
            );
            (false, "ok", "pending", pending)
        }
        Ok(Err(e)) => {
            ERRORS.log(log::Level::Warn, "readyz: database unavailable", Some(&e));
            (false, "unreachable", "unknown", Vec::new())
        }
        Err(_) => {
            ERRORS.log(
                log::Level::Warn,
                &format!("readyz: database did not answer within {PING_TIMEOUT:?}"),
                None,
            );
            (false, "unreachable", "unknown", Vec::new())
        }
    };
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        database,
        migrations,
        pending,
        listener: state.listener.report(),
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
