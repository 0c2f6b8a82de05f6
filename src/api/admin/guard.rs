//! The bearer-token check in front of `/admin/api/*` and `/admin/users/*`: 401 without a token,
//! 403 with a wrong one, 429 (with `Retry-After`) for the rest of the minute after 10 wrong ones
//! from one client. The right token is never refused for other clients' wrong ones (see
//! `AdminFailures`).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AdminError, not_found_response};
use crate::api::AppState;
use crate::config::Secret;
use crate::log_throttle::ERRORS;

/// The configured admin token, kept as its SHA-256 so every comparison is over 32 bytes in
/// constant time: neither the content nor the length of the right token leaks through timing.
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    pub(crate) fn new(token: &Secret) -> Self {
        AdminToken {
            digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.digest).into()
    }
}

/// 401 or 403, with the `WWW-Authenticate` challenge that says which.
fn challenge(status: StatusCode, error: &'static str) -> HttpResponse {
    let challenge = if status == StatusCode::FORBIDDEN {
        r#"Bearer realm="wxauth-admin", error="invalid_token""#
    } else {
        r#"Bearer realm="wxauth-admin""#
    };
    HttpResponse::build(status)
        .insert_header((header::WWW_AUTHENTICATE, challenge))
        .json(AdminError { error })
}

fn too_many(wait: std::time::Duration) -> HttpResponse {
    // Whole seconds, rounded up: a client that waits exactly this long is served.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, secs.to_string()))
        .json(AdminError {
            error: "too many wrong admin tokens from this address; try again later",
        })
}

/// Lets a request through only with the right bearer token.
pub(super) async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.into_response(not_found_response()));
    };
    let Some(admin) = state.admin.clone() else {
        return Ok(req.into_response(not_found_response()));
    };
    let client = state.limits.client_ip_of(req.request());
    // Checked before the token is looked at, so a blocked client learns nothing from a guess,
    // not even a right one.
    if let Some(wait) =
        client.and_then(|ip| state.limits.admin_failures.blocked(ip, Instant::now()))
    {
        ERRORS.log(
            log::Level::Warn,
            "admin: refused a client over the wrong-token limit",
            client.as_ref().map(|ip| ip as &dyn std::fmt::Display),
        );
        return Ok(req.into_response(too_many(wait)));
    }
    let Some(presented) = bearer_token(&req) else {
        return Ok(req.into_response(challenge(
            StatusCode::UNAUTHORIZED,
            "admin token required: send Authorization: Bearer <ADMIN_TOKEN>",
        )));
    };
    if !admin.matches(&presented) {
        let overflow_spent =
            client.and_then(|ip| state.limits.admin_failures.failed(ip, Instant::now()));
        ERRORS.log(
            log::Level::Warn,
            "admin: wrong token",
            client.as_ref().map(|ip| ip as &dyn std::fmt::Display),
        );
        if let Some(wait) = overflow_spent {
            return Ok(req.into_response(too_many(wait)));
        }
        return Ok(req.into_response(challenge(StatusCode::FORBIDDEN, "wrong admin token")));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case), if not empty.
fn bearer_token(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_matches_only_itself() {
        let token = AdminToken::new(&Secret::new("admin-token-value-0123"));
        assert!(token.matches("admin-token-value-0123"));
        assert!(!token.matches("admin-token-value-0124"));
        assert!(!token.matches("admin-token-value-012"));
        assert!(!token.matches(""));
    }
}
