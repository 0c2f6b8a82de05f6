//! Start-up: make sure the database exists and is migrated, then build the pool.
//! Several instances may start at once against one server; both steps are safe for that.

use std::time::Duration;

use diesel::connection::CacheSize;
use diesel::prelude::*;
use diesel::r2d2::Pool;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbError, PgPool};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Arbitrary, fixed: every wxauth instance takes this advisory lock around its migrations.
const MIGRATION_LOCK_KEY: i64 = 0x7778_6175_7468; // "wxauth"

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot connect to PostgreSQL at {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error("cannot create database {name}: {cause}")]
    Create { name: String, cause: String },
    #[error("migrations failed: {0}")]
    Migrate(String),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
}

/// Splits `postgres://user@host:5432/db?opts` into (`postgres://user@host:5432`, `db`, `?opts`).
/// The database name is limited to characters that need no quoting games.
pub(crate) fn split_database_url(url: &str) -> Option<(String, String, String)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let scheme_len = url.len() - rest.len();
    let slash = rest.find('/')?;
    let (path, query) = match rest[slash + 1..].find('?') {
        Some(q) => (&rest[slash + 1..slash + 1 + q], &rest[slash + 1 + q..]),
        None => (&rest[slash + 1..], ""),
    };
    let valid = !path.is_empty()
        && path.len() <= 63
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return None;
    }
    Some((
        url[..scheme_len + slash].to_string(),
        path.to_string(),
        query.to_string(),
    ))
}

/// A URL for a database, hiding the password for log lines.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn connect(url: &str) -> Result<PgConnection, SetupError> {
    let mut conn = PgConnection::establish(url).map_err(|e| SetupError::Connect {
        url: redacted(url),
        cause: e.to_string(),
    })?;
    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
    Ok(conn)
}

/// Creates the database named in `url` when it does not exist yet (connecting to the server's
/// `postgres` database to do it).
pub(crate) fn create_database_if_missing(url: &str) -> Result<bool, SetupError> {
    let Some((server, name, query)) = split_database_url(url) else {
        return Err(SetupError::Create {
            name: url.into(),
            cause: "unsupported DATABASE_URL".into(),
        });
    };
    let mut admin = connect(&format!("{server}/postgres{query}"))?;
    let existing: Found =
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(&name)
            .get_result(&mut admin)
            .map_err(|e| SetupError::Create {
                name: name.clone(),
                cause: e.to_string(),
            })?;
    if existing.n > 0 {
        return Ok(false);
    }
    // The name was checked by split_database_url: only [A-Za-z0-9_-], so quoting it is enough.
    match diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin) {
        Ok(_) => Ok(true),
        // Another instance created it between our check and our CREATE.
        Err(e) if e.to_string().contains("already exists") => Ok(false),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(SetupError::Create {
            name,
            cause: e.to_string(),
        }),
    }
}

/// All pending migrations in one transaction, under a transaction-scoped advisory lock: through a
/// transaction pooler (PgBouncer) a session lock would be taken on one server connection and
/// released on another. The lock key is the one older versions take as a session lock, and both
/// kinds exclude each other, so old and new instances starting together still take turns. A
/// failing migration leaves the schema as it was.
fn migrate(conn: &mut PgConnection) -> Result<Vec<String>, SetupError> {
    conn.transaction::<_, Box<dyn std::error::Error + Send + Sync>, _>(|conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
            .execute(conn)?;
        let applied = conn.run_pending_migrations(MIGRATIONS)?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    })
    .map_err(|e| SetupError::Migrate(e.to_string()))
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

/// The embedded migrations this database has not applied yet (empty when it is up to date), for
/// `/readyz`. Read-only on purpose: Diesel's own `has_pending_migration` would create the
/// bookkeeping table when it is missing, and a probe must not write. Versions the database has
/// and this binary lacks (a newer instance migrated it) do not count: the schema is a superset.
pub(crate) fn pending_migrations(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    let embedded = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(|e| DbError::Migrations(e.to_string()))?;
    let embedded: Vec<String> = embedded
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let table: Present = diesel::sql_query(
        "SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS present",
    )
    .get_result(conn)?;
    if !table.present {
        return Ok(embedded);
    }
    let applied: Vec<Version> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations").load(conn)?;
    Ok(embedded
        .into_iter()
        .filter(|v| !applied.iter().any(|a| &a.version == v))
        .collect())
}

pub(crate) fn build_pool(url: &str, size: u32) -> Result<PgPool, SetupError> {
    Pool::builder()
        .max_size(size)
        .min_idle(Some(size.min(2)))
        // A database outage must turn into a quick 502, not a request that hangs.
        .connection_timeout(Duration::from_secs(2))
        .build(super::pool::PgManager::new(url))
        .map_err(|e| SetupError::Pool(e.to_string()))
}

/// Everything the database needs before serving: exists, migrated, pooled.
pub fn prepare(url: &str, pool_size: u32) -> Result<PgPool, SetupError> {
    // Usually the database exists: one connection checks the migrations. Only when it cannot be
    // reached (it may be missing) is the server's `postgres` database asked to create it. Each
    // PostgreSQL connection is a 5-20 ms handshake, much of the start-up.
    let mut conn = match connect(url) {
        Ok(conn) => conn,
        Err(_) => {
            if create_database_if_missing(url)? {
                log::info!("created database {}", redacted(url));
            }
            connect(url)?
        }
    };
    let applied = migrate(&mut conn)?;
    drop(conn);
    if !applied.is_empty() {
        log::info!("applied migrations: {}", applied.join(", "));
    }
    build_pool(url, pool_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_server_name_and_options() {
        assert_eq!(
            split_database_url("postgres://postgres@127.0.0.1:5432/wxauth"),
            Some((
                "postgres://postgres@127.0.0.1:5432".into(),
                "wxauth".into(),
                "".into()
            ))
        );
        assert_eq!(
            split_database_url("postgresql://u:p@h/db_1?sslmode=disable"),
            Some((
                "postgresql://u:p@h".into(),
                "db_1".into(),
                "?sslmode=disable".into()
            ))
        );
        assert_eq!(split_database_url("postgres://h"), None);
        assert_eq!(split_database_url("postgres://h/"), None);
        assert_eq!(split_database_url("postgres://h/a;drop"), None);
        assert_eq!(split_database_url("mysql://h/db"), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redacted("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
    }
}
