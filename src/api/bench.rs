//! Comparison routes for `scripts/bench`, mounted at `/bench/` only with `BENCH_ENDPOINTS=1`.
//!
//! Both answer the same fixed envelope, shaped like `user/index`'s. `plain` is the ceiling: what
//! this binary serves when a request costs nothing but HTTP and JSON. `auth` adds exactly the
//! token check (`AuthUser`: JWT verification and the SessionActor's liveness check), so the ratio
//! of the two is the cost of authentication and nothing else.

use actix_web::web;

use super::extract::AuthUser;
use super::user::UserIndex;
use super::{ApiResult, ok};

fn fixed_body() -> UserIndex {
    UserIndex {
        metting_pubs: 0,
        metting_joins: 0,
    }
}

/// `GET /bench/plain`: the fixed body, no authentication.
pub(crate) async fn plain() -> ApiResult {
    ok(fixed_body())
}

/// `GET /bench/auth`: the same body behind the token check.
pub(crate) async fn auth(_user: AuthUser) -> ApiResult {
    ok(fixed_body())
}

/// The routes, relative to `/bench`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/plain", web::get().to(plain))
        .route("/auth", web::get().to(auth));
}
