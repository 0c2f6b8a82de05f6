//! `GET /metrics` (Prometheus text format) and the middleware that counts every request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};

use super::AppState;
use crate::error::Errno;
use crate::log_throttle::ERRORS;
use crate::metrics::{UNMATCHED_ROUTE, method_label};
use crate::sessions::CountSessions;

/// How long `/metrics` waits for the SessionActor before reporting the last known count.
const SESSION_COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Counts and times every request by route pattern and errno. The errno is the one the answer
/// carries: `ApiError::error_response` and `api::ok` leave it in the response's extensions.
pub(crate) async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = method_label(req.method());
    let res = next.call(req).await;
    if let Some(metrics) = metrics {
        let seconds = started.elapsed().as_secs_f64();
        let (route, status, errno) = match &res {
            Ok(res) => (
                res.request().match_pattern(),
                res.status(),
                res.response().extensions().get::<Errno>().map(|e| e.0),
            ),
            Err(e) => (None, e.as_response_error().status_code(), None),
        };
        // The matched pattern, never the raw path: one series per route, not per URL typed.
        let route = route.unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
        metrics.observe_request(&route, method, status.as_u16(), errno, seconds);
    }
    res
}

/// `GET /metrics`: gauges that are cheaper to read than to keep current are read now.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.db.pool();
    state.metrics.set_pool(&pool.state(), pool.max_size());
    state.login_admission.report(&state.metrics.admission);
    state.db.admission().report(&state.metrics.admission);
    match tokio::time::timeout(SESSION_COUNT_TIMEOUT, state.sessions.send(CountSessions)).await {
        Ok(Ok(live)) => state.metrics.sessions_live.set(live as i64),
        _ => ERRORS.log(
            log::Level::Warn,
            "metrics: the session count did not answer; reporting the last one",
            None,
        ),
    }
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            log::error!("metrics: cannot render: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}
