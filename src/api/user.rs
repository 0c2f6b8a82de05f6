use super::extract::AuthUser;
use super::{ApiResult, ok};

#[derive(serde::Serialize)]
pub struct UserIndex {
    /// Meetings the user published. The name is the client's, typo included.
    pub metting_pubs: i64,
    /// Meetings the user joined.
    pub metting_joins: i64,
}

/// `GET user/index`: the numbers on the user's page. No meetings exist yet, so both are 0.
pub async fn index(_user: AuthUser) -> ApiResult {
    ok(UserIndex {
        metting_pubs: 0,
        metting_joins: 0,
    })
}
