//! The operator's side under `/admin`: the status page's files from `ADMIN_STATIC_DIR`, and behind
//! `Authorization: Bearer <ADMIN_TOKEN>` (`guard`) the JSON it draws (`status`), the user
//! actions (`users`) and the review of meetings (`meetings`). Plain HTTP status codes here, not the mini-program envelope; 404 for
//! everything when `ADMIN_TOKEN` is not configured. The answers never hold a token, a
//! session_key, a secret or a full openid.

mod guard;
mod meetings;
mod status;
mod users;

use std::path::Path;

use actix_files::Files;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::{Error, HttpResponse, web};
use serde::Serialize;

pub use guard::AdminToken;

use crate::log_throttle::ERRORS;

/// The body of every refusal on the admin side.
#[derive(Serialize)]
struct AdminError {
    error: &'static str,
}

fn refuse(status: StatusCode, error: &'static str) -> HttpResponse {
    HttpResponse::build(status).json(AdminError { error })
}

fn not_found_response() -> HttpResponse {
    refuse(StatusCode::NOT_FOUND, "not found")
}

/// Everything under `/admin` when the admin side is off, and unknown paths under `/admin/api`.
pub(crate) async fn not_found() -> HttpResponse {
    not_found_response()
}

/// Headers for everything under `/admin`: the page loads only its own files, is never framed,
/// and neither it nor the API answers are cached or sent on as a referrer.
pub(crate) fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// The page's files answer a path they cannot serve as a plain 404, like any missing file:
/// actix-files would answer 400 with its path parser's message (`segment started with invalid
/// character`), telling a prober how paths are checked, and an I/O error as a 500.
async fn plain_file_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse, Error> {
    // No clone of the request before the call: the router must still be able to write the
    // matched path into it. actix-files answers its errors as responses, never as `Err`.
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let kept = status.is_success()
        || status.is_redirection()
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::METHOD_NOT_ALLOWED
        || status == StatusCode::PRECONDITION_FAILED
        || status == StatusCode::RANGE_NOT_SATISFIABLE;
    if kept {
        return Ok(res);
    }
    if status.is_server_error() {
        ERRORS.log(
            log::Level::Warn,
            "admin page: a file could not be served",
            Some(&status),
        );
    }
    let (http_req, _) = res.into_parts();
    Ok(ServiceResponse::new(http_req, not_found_response()))
}

/// Mounts `/admin`: the page from `static_dir` and the API under `/admin/api`, or, with `None`
/// (no `ADMIN_TOKEN`), a plain 404 for everything under it.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, static_dir: Option<&Path>) {
    let Some(static_dir) = static_dir else {
        cfg.service(
            web::scope("/admin")
                .wrap(security_headers())
                .default_service(web::to(not_found)),
        );
        return;
    };
    let scope = web::scope("/admin")
        .wrap(security_headers())
        // The token check wraps the whole API scope, unknown paths included: without the
        // token nobody learns which admin endpoints exist.
        .service(
            web::scope("/api")
                .wrap(from_fn(guard::require_admin))
                .route("/status", web::get().to(status::status))
                .default_service(web::to(not_found)),
        )
        .service(
            web::scope("/users")
                .wrap(from_fn(guard::require_admin))
                .route("/{id}/disable", web::post().to(users::disable))
                .route("/{id}/enable", web::post().to(users::enable))
                .route("/{id}/logout", web::post().to(users::logout))
                .route("/{id}/delete", web::post().to(users::delete))
                .default_service(web::to(not_found)),
        )
        .service(
            web::scope("/meetings")
                .wrap(from_fn(guard::require_admin))
                .route("/{id}/approve", web::post().to(meetings::approve))
                .route("/{id}/reject", web::post().to(meetings::reject))
                .default_service(web::to(not_found)),
        );
    // No `show_files_listing()`: a directory without index.html is a 404. `/admin` redirects to
    // `/admin/` so the page's relative links resolve under it. Without the directory (start-up
    // warned about it) the page is a 404 rather than an error logged per worker.
    let scope = if static_dir.is_dir() {
        scope.service(
            web::scope("").wrap(from_fn(plain_file_errors)).service(
                Files::new("", static_dir)
                    .index_file("index.html")
                    .redirect_to_slash_directory()
                    .default_handler(web::to(not_found)),
            ),
        )
    } else {
        scope.default_service(web::to(not_found))
    };
    cfg.service(scope);
}
