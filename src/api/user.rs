use actix_web::web;

use super::extract::AuthUser;
use super::{ApiResult, AppState, ok};

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct UserIndex {
    /// Meetings the user published. The name is the client's, typo included.
    pub(crate) metting_pubs: i64,
    /// Meetings the user joined.
    pub(crate) metting_joins: i64,
}

/// `GET user/index`: the numbers on the user's page.
pub(crate) async fn index(state: web::Data<AppState>, user: AuthUser) -> ApiResult {
    let counts = state.db.meeting_counts(user.user_id).await?;
    ok(UserIndex {
        metting_pubs: counts.published,
        metting_joins: counts.joined,
    })
}
