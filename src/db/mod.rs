//! PostgreSQL: schema, models, queries (plain functions on `&mut PgConnection`), and start-up
//! (create the database, run the embedded migrations, build the pool).

pub mod login_log;
pub mod models;
pub mod schema;
pub mod setup;
pub mod users;

use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PoolError};

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection: {0}")]
    Pool(#[from] PoolError),
    #[error("query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("embedded migrations unreadable: {0}")]
    Migrations(String),
}
