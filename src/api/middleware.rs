//! Middleware of the mini-program API.

use std::time::Duration;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::error::ApiError;

/// Every answer within the mini-program's 3 s `wx.request` timeout: an answer later than that is
/// never seen, while a 502 in time tells the client to retry. Work already handed to an actor
/// still completes; only the wait is cut.
pub const REQUEST_DEADLINE: Duration = Duration::from_millis(2800);

pub async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let path = req.path().to_string();
    match tokio::time::timeout(REQUEST_DEADLINE, next.call(req)).await {
        Ok(res) => res,
        // An error becomes its envelope through ApiError's ResponseError impl.
        Err(_) => Err(ApiError::serious(format!(
            "{path} missed its {} ms deadline",
            REQUEST_DEADLINE.as_millis()
        ))
        .into()),
    }
}
