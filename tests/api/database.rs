//! The test PostgreSQL server, and the guard that drops a test's database when the test ends.

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
