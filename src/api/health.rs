use std::time::Duration;

use actix_web::{HttpResponse, web};

use super::AppState;
use crate::actors::db::Ping;

const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 when the server is up and the database answers, 503 otherwise.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let ping = tokio::time::timeout(PING_TIMEOUT, state.db.send(Ping)).await;
    match ping {
        Ok(Ok(Ok(()))) => {
            HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "ok"}))
        }
        other => {
            let why = match other {
                Err(_) => "timeout".to_string(),
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(Err(e))) => e.to_string(),
                Ok(Ok(Ok(()))) => String::new(),
            };
            log::warn!("healthz: database unavailable: {why}");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "database": "unreachable"}))
        }
    }
}
