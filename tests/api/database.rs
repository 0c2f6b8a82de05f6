//! The test PostgreSQL server, the guard that drops a test's database when the test ends, and
//! the counts tests check rows with.

use diesel::prelude::*;

pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// The URL of a database on the test server, without TLS. Loopback needs none, and libpq's TLS
/// is OpenSSL, which registers an exit-time cleanup: when the test binary exits while pool
/// threads of earlier tests are still alive, that cleanup can crash the process (SIGSEGV after
/// every test passed). Without TLS, libpq never initialises OpenSSL in this process.
pub fn pg_url(database: &str) -> String {
    format!("{PG_SERVER}/{database}?sslmode=disable")
}

/// Drops the database of this name when it goes out of scope: at the end of the test, passed or
/// failed. Connections still open to it are closed by the server.
pub struct DropDb(pub String);

impl DropDb {
    /// A name no other test uses; the server creates the database when it first starts on it.
    pub fn fresh() -> DropDb {
        DropDb(format!("wxauth_t_{}", uuid::Uuid::new_v4().simple()))
    }
}

impl Drop for DropDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&pg_url("postgres")) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.0
            ))
            .execute(&mut conn);
        }
    }
}

/// The row of a `SELECT count(*) AS n ...`.
#[derive(QueryableByName)]
pub struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// `sql`'s count (a `SELECT count(*) AS n ...`) in the database at `url`.
pub fn count(url: &str, sql: &str) -> i64 {
    let mut conn = PgConnection::establish(url).expect("connect to the test database");
    diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}
