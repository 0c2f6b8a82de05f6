//! Extractors shared by the handlers: a JSON body and query parameters that fail into the
//! envelope (never an actix 400 page), the logged-in user behind the token header (`TOKEN_HEADER`,
//! `X-OA-Token` by default), and the client's IP.

use std::collections::HashMap;
use std::future::{Future, Ready, ready};
use std::ops::RangeInclusive;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderName;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::{Either, LocalBoxFuture};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::{ApiError, UnloginReason};
use crate::sessions::CheckSession;
use crate::token::{MAX_TOKEN_LEN, TokenError};

/// Request bodies above this are refused: no mini-program call needs more.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON body: empty or not JSON → 401, wrong types or too large → 402.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // A declared length over the limit is refused before a byte is read: waiting for a body
        // we would refuse anyway only holds the connection open until the deadline.
        if declared_length(req).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Box::pin(ready(Err(too_large())));
        }
        let mut payload = payload.take();
        Box::pin(async move {
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|_| ApiError::bad_argument("request body could not be read"))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::bad_argument(
                    "request body is empty; expected a JSON object",
                ));
            }
            let mut json = serde_json::Deserializer::from_slice(&body);
            let value = serde_path_to_error::deserialize::<_, T>(&mut json)
                .map_err(|e| refused_body(&e))?;
            // Characters after the value are a syntax error, as `serde_json::from_slice` says.
            json.end().map_err(|e| not_json(&e))?;
            Ok(JsonBody(value))
        })
    }
}

/// A body serde refused, in words that name the field: `id must be a number`. The serde
/// message quotes the client's value (`invalid type: string "9"`): only its kind is used.
fn refused_body(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    if inner.classify() != serde_json::error::Category::Data {
        return not_json(inner);
    }
    let path = e.path().to_string();
    let field: String = if path == "." {
        "the body".into()
    } else {
        path.chars().take(MAX_FIELD_CHARS).collect()
    };
    ApiError::bad_value(type_error_reason(&field, &inner.to_string()))
}

fn not_json(e: &serde_json::Error) -> ApiError {
    let at = format!("line {}, column {}", e.line(), e.column());
    ApiError::bad_argument(format!("request body is not valid JSON ({at})"))
}

/// Longer field paths (only a client's own map keys can make them long) are cut.
const MAX_FIELD_CHARS: usize = 64;

/// serde's `invalid type: KIND …, expected WHAT at line …` as `FIELD must be WHAT`.
fn type_error_reason(field: &str, serde_message: &str) -> String {
    let message = serde_message
        .rsplit_once(" at line ")
        .map_or(serde_message, |(m, _)| m);
    if let Some(missing) = message.strip_prefix("missing field `") {
        let name = missing.trim_end_matches('`');
        return format!("{name} is missing");
    }
    let (got, expected) = match message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "))
    {
        Some(pair) => pair,
        None => return format!("{field} has the wrong type or value"),
    };
    const INTEGERS: [&str; 10] = [
        "i8", "i16", "i32", "i64", "i128", "u8", "u16", "u32", "u64", "u128",
    ];
    let integer = INTEGERS.contains(&expected);
    let number = integer || matches!(expected, "f32" | "f64");
    if number {
        let got_number = got.starts_with("integer") || got.starts_with("floating point");
        return match (integer, got_number) {
            (true, true) if got.starts_with("floating point") => {
                format!("{field} must be a whole number")
            }
            (_, true) => format!("{field} is out of range"),
            (_, false) => format!("{field} must be a number"),
        };
    }
    let wanted = if expected.contains("string") {
        "a string"
    } else if expected.contains("bool") {
        "true or false"
    } else if expected.contains("sequence") {
        "a list"
    } else if expected.starts_with("struct") || expected.contains("map") {
        "an object"
    } else {
        return format!("{field} has the wrong type or value");
    };
    format!("{field} must be {wanted}")
}

fn too_large() -> ApiError {
    ApiError::bad_value(format!(
        "request body is larger than {MAX_BODY_BYTES} bytes"
    ))
}

/// The body length the client declared. actix-http has already refused a malformed or
/// repeated `Content-Length` (400) before a handler runs.
fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The query string as named values. Read by hand, so that a bad value is a 402 envelope rather
/// than actix's 400 page. An empty value counts as absent (`state=` means "any state").
pub(crate) struct QueryParams(HashMap<String, String>);

impl FromRequest for QueryParams {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            web::Query::<HashMap<String, String>>::from_query(req.query_string())
                .map(|q| QueryParams(q.into_inner()))
                .map_err(|_| ApiError::bad_value("the query string could not be decoded")),
        )
    }
}

impl QueryParams {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A whole number within `range`; `None` when absent.
    pub(crate) fn number(
        &self,
        name: &str,
        range: RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        match raw.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_value(format!(
                "{name} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ))),
        }
    }
}

/// The user behind a live token. Any failure is 501: the client logs in again, told why in
/// `data.reason` (see `UnloginReason`).
#[derive(Debug, Clone)]
pub(crate) struct AuthUser {
    pub(crate) user_id: i64,
    pub(crate) jti: String,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future =
        Either<Ready<Result<Self, ApiError>>, LocalBoxFuture<'static, Result<Self, ApiError>>>;

    /// A live token whose session is cached is answered here, synchronously, on the worker's
    /// thread: no allocation of a future, no message. Only a cache miss waits for the actor.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return Either::Left(ready(Err(ApiError::serious(
                "AppState missing from the app",
            ))));
        };
        let refused = |reason| Either::Left(ready(Err(ApiError::unlogin(reason))));
        let Some(token) = req
            .headers()
            .get(&state.token_header)
            // Not `to_str`, which checks byte by byte for visible ASCII (a tenth of a
            // microsecond for a token): anything but base64url and dots fails `verify` anyway.
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return refused(absent_token_reason(req, &state.token_header));
        };
        let now = chrono::Utc::now().timestamp();
        let verified = match state.tokens.verify(token, now) {
            Ok(verified) => verified,
            Err(TokenError::Malformed) => return refused(UnloginReason::Malformed),
            Err(TokenError::Invalid) => return refused(UnloginReason::Invalid),
            Err(TokenError::Expired) => return refused(UnloginReason::Expired),
        };
        let user = AuthUser {
            user_id: verified.user_id,
            jti: verified.jti,
        };
        match state.session_cache.verdict(&user.jti, user.user_id, now) {
            Some(verdict) => Either::Left(ready(match verdict {
                Ok(()) => Ok(user),
                Err(end) => Err(ApiError::unlogin(end.into())),
            })),
            None => {
                let sessions = state.sessions.clone();
                Either::Right(Box::pin(async move {
                    let verdict = sessions
                        .send(CheckSession {
                            jti: user.jti.clone(),
                            user_id: user.user_id,
                        })
                        .await??;
                    match verdict {
                        Ok(()) => Ok(user),
                        Err(end) => Err(ApiError::unlogin(end.into())),
                    }
                }))
            }
        }
    }
}

/// Headers a client may put its token under by mistake: the usual bearer header, and the token
/// headers of wxauth's default and of litemall.
const OTHER_TOKEN_HEADERS: [&str; 3] = ["authorization", "x-oa-token", "x-litemall-token"];

/// No token in the configured header: `wrong_header` when one of `OTHER_TOKEN_HEADERS` carries
/// something token-shaped (the client reads another server's docs), `missing` otherwise. Only
/// the shape is looked at: the value is neither verified nor logged.
fn absent_token_reason(req: &HttpRequest, configured: &HeaderName) -> UnloginReason {
    let misplaced = OTHER_TOKEN_HEADERS
        .iter()
        .filter(|name| **name != configured.as_str())
        .filter_map(|name| req.headers().get(*name))
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            let v = v.trim();
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        })
        .any(is_token_shaped);
    if misplaced {
        UnloginReason::WrongHeader
    } else {
        UnloginReason::Missing
    }
}

/// Three non-empty base64url parts separated by dots, as a JWT is.
fn is_token_shaped(value: &str) -> bool {
    value.len() <= MAX_TOKEN_LEN
        && value.split('.').count() == 3
        && value.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Longer user agents are cut before they reach `login_log` (`user_session` keeps 255).
pub(crate) const MAX_USER_AGENT_CHARS: usize = 256;

/// The client's user agent, cut to `MAX_USER_AGENT_CHARS`, without control characters and
/// without what would make it read otherwise than it is (`text::clean_for_display`): the status
/// page shows it to the operator.
pub(crate) fn user_agent(req: &HttpRequest) -> String {
    let raw = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    crate::text::clean_for_display(&raw)
        .take(MAX_USER_AGENT_CHARS)
        .collect()
}

/// The client's IP: the socket peer, or `X-Forwarded-For` when the peer is a trusted proxy.
pub(crate) fn client_ip(req: &HttpRequest) -> String {
    let resolved = match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.limits.client_ip_of(req),
        None => req.peer_addr().map(|a| a.ip()),
    };
    resolved.map(|ip| ip.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_s_type_errors_become_the_field_s_reason_without_the_value() {
        let cases = [
            (
                "invalid type: string \"9\", expected i64 at line 1 column 9",
                "id must be a number",
            ),
            (
                "invalid type: floating point `1.5`, expected i64 at line 1 column 9",
                "id must be a whole number",
            ),
            (
                "invalid value: integer `-1`, expected u32 at line 1 column 9",
                "id is out of range",
            ),
            (
                "invalid type: integer `1`, expected a string at line 1 column 9",
                "id must be a string",
            ),
            (
                "invalid type: string \"x\", expected a boolean at line 1 column 9",
                "id must be true or false",
            ),
            (
                "invalid type: map, expected a sequence at line 1 column 9",
                "id must be a list",
            ),
            (
                "invalid type: string \"x\", expected struct Profile at line 1 column 9",
                "id must be an object",
            ),
            ("missing field `code` at line 1 column 2", "code is missing"),
            ("something else entirely", "id has the wrong type or value"),
        ];
        for (serde, ours) in cases {
            assert_eq!(type_error_reason("id", serde), ours, "{serde}");
        }
    }
}
