//! PostgreSQL: schema, models, queries (plain functions on `&mut PgConnection`), `DbHandle` (the
//! way the rest of the service runs them, on the private executor's threads), and start-up
//! (create the database, run the embedded migrations, build the pool).

pub mod deletion;
pub mod demo;
mod executor;
pub(crate) mod export;
mod handle;
pub mod login_log;
pub(crate) mod meetings;
pub(crate) mod merge;
pub mod models;
pub mod pool;
pub(crate) mod reminders;
pub mod schema;
pub mod sealed;
pub mod sessions;
pub mod setup;
pub(crate) mod swiper;
pub(crate) mod users;

pub use handle::{DbFailure, DbHandle, DbResult};

use diesel::r2d2::{Pool, PoolError};

pub(crate) type PgPool = Pool<pool::PgManager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection: {0}")]
    Pool(#[from] PoolError),
    #[error("query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A stored session_key that does not decrypt: another SESSION_ENCRYPTION_KEY, or tampering.
    #[error("a stored session_key does not decrypt with the configured key")]
    Sealed,
    #[error("embedded migrations unreadable: {0}")]
    Migrations(String),
    /// The user a write was for is disabled or deleted: nothing was written.
    #[error("the account is disabled or deleted")]
    AccountNotUsable,
    /// A login met concurrent logins of the same person at every one of its attempts.
    #[error("the login kept meeting concurrent logins of the same person")]
    Contended,
}
