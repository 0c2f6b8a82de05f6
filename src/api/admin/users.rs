//! `POST /admin/users/{id}/disable`, `/enable`, `/logout` and `/delete` (bearer `ADMIN_TOKEN`,
//! plain HTTP statuses). Disabling sets `wx_user.status = 1`; the database trigger on that column revokes
//! every session of the user and notifies every instance, so the user's tokens die everywhere
//! within a second and new logins are refused (errno 700). Deleting erases the account's personal
//! data at once, without grace period, for requests that arrive by other ways than the app.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::refuse;
use crate::api::AppState;
use crate::domain::Revoked;
use crate::sessions::Invalidate;

#[derive(Serialize)]
struct UserStatus {
    id: i64,
    status: i16,
}

fn parse_id(raw_id: &str) -> Option<i64> {
    raw_id.parse::<i64>().ok().filter(|id| *id > 0)
}

fn bad_id() -> HttpResponse {
    refuse(
        StatusCode::BAD_REQUEST,
        "user id must be a positive integer",
    )
}

async fn set_status(state: &AppState, raw_id: &str, status: i16) -> HttpResponse {
    let Some(id) = parse_id(raw_id) else {
        return bad_id();
    };
    match state.db.set_user_status(id, status).await {
        Ok(Some(user)) => {
            if status != 0 {
                // This instance forgets the sessions before it answers, so the admin's next
                // request already sees them dead; the others hear the trigger's NOTIFY.
                if let Err(e) = state.sessions.send(Invalidate(Revoked::User(id))).await {
                    log::error!("admin: user {id}'s cached sessions not dropped: {e}");
                }
            }
            log::info!("admin: user {id} status set to {status}");
            HttpResponse::Ok().json(UserStatus {
                id: user.id,
                status: user.status,
            })
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, "no such user"),
        Err(e) => {
            log::error!("admin: cannot set user {id}'s status: {e}");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub(super) async fn disable(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    set_status(&state, &id, 1).await
}

pub(super) async fn enable(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    set_status(&state, &id, 0).await
}

#[derive(Serialize)]
struct UserLoggedOut {
    id: i64,
    /// How many sessions were live and are now ended.
    sessions_ended: usize,
}

/// `POST /admin/users/{id}/logout`: ends every session of the user on every instance (what to do
/// about a stolen token) while the account stays usable: the user logs in again. 404 when there
/// is no such account.
pub(super) async fn logout(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let Some(id) = parse_id(&id) else {
        return bad_id();
    };
    match state.db.end_sessions_of_user(id).await {
        Ok(Some(ended)) => {
            // The others hear the NOTIFY; this one forgets before it answers.
            if let Err(e) = state.sessions.send(Invalidate(Revoked::User(id))).await {
                log::error!("admin: user {id}'s cached sessions not dropped: {e}");
            }
            log::info!("admin: user {id} logged out everywhere ({ended} session(s) ended)");
            HttpResponse::Ok().json(UserLoggedOut {
                id,
                sessions_ended: ended,
            })
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, "no such user"),
        Err(e) => {
            log::error!("admin: cannot end user {id}'s sessions: {e}");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

#[derive(Serialize)]
struct UserDeleted {
    id: i64,
    deleted: bool,
}

/// `POST /admin/users/{id}/delete`: erases the account now, whatever its state (usable, disabled,
/// deletion pending), as the sweeper does at the end of a grace period. 404 when there is no such
/// account (which includes one already erased).
pub(super) async fn delete(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let Some(id) = parse_id(&id) else {
        return bad_id();
    };
    match state.db.erase_user(id).await {
        Ok(true) => {
            // The rows are gone and the trigger told every instance; this one forgets before
            // it answers.
            if let Err(e) = state.sessions.send(Invalidate(Revoked::User(id))).await {
                log::error!("admin: user {id}'s cached sessions not dropped: {e}");
            }
            log::info!("admin: user {id} deleted");
            HttpResponse::Ok().json(UserDeleted { id, deleted: true })
        }
        Ok(false) => refuse(StatusCode::NOT_FOUND, "no such user"),
        Err(e) => {
            log::error!("admin: cannot delete user {id}: {e}");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
