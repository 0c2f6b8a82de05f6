//! `POST /admin/meetings/{id}/approve` and `/reject` (bearer `ADMIN_TOKEN`, plain HTTP statuses,
//! as `/admin/users/{id}/disable`): the admin's decision on a meeting WeChat's content check
//! wanted reviewed. Approving shows it in every list; rejecting takes it out of every list (its
//! publisher can still open it, marked `rejected`). Rejecting also takes down a meeting already
//! shown; a rejected meeting cannot be approved (409).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Serialize;

use super::refuse;
use crate::api::AppState;
use crate::domain::{ReviewDecision, ReviewOutcome, review_state};

#[derive(Serialize)]
struct MeetingReview {
    id: i64,
    review: &'static str,
}

async fn decide(state: &AppState, raw_id: &str, decision: ReviewDecision) -> HttpResponse {
    let Some(id) = raw_id.parse::<i64>().ok().filter(|id| *id > 0) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "meeting id must be a positive integer",
        );
    };
    match state.db.review_meeting(id, decision, Utc::now()).await {
        Ok(ReviewOutcome::Decided { review_state: now }) => {
            log::info!(
                "admin: meeting {id} review set to {}",
                review_state::word(now)
            );
            HttpResponse::Ok().json(MeetingReview {
                id,
                review: review_state::word(now),
            })
        }
        Ok(ReviewOutcome::NoSuchMeeting) => refuse(StatusCode::NOT_FOUND, "no such meeting"),
        Ok(ReviewOutcome::AlreadyRejected) => {
            refuse(StatusCode::CONFLICT, "the meeting was rejected")
        }
        Err(e) => {
            log::error!("admin: cannot review meeting {id}: {e}");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub(super) async fn approve(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    decide(&state, &id, ReviewDecision::Approve).await
}

pub(super) async fn reject(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    decide(&state, &id, ReviewDecision::Reject).await
}
