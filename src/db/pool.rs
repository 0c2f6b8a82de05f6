//! The connection pool's manager: diesel's r2d2 `ConnectionManager`, except that a connection
//! which answered a query successfully less than `FRESH_FOR` ago is handed out without a ping.
//!
//! r2d2 tests every connection on checkout with `SELECT 1`. On the login path that doubles the
//! round trips (two checkouts, two pings, two statements), and under load the pings take a large
//! share of the database threads' CPU. Pinging only connections that have been idle, or whose last
//! query failed, is what HikariCP does (its "alive bypass window"). The price: a connection that
//! dies within the window fails one query; that failure marks it stale, its next checkout pings,
//! and r2d2 replaces it.

use std::time::{Duration, Instant};

use diesel::PgConnection;
use diesel::connection::{CacheSize, Connection, Instrumentation, InstrumentationEvent};
use diesel::r2d2::{ConnectionManager, Error, ManageConnection};

/// How long after a successful query a connection is trusted without a ping.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Installed on each pooled connection: when it last answered a query without an error.
#[derive(Default)]
struct LastSuccess(Option<Instant>);

impl Instrumentation for LastSuccess {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error, .. } = event {
            self.0 = match error {
                None => Some(Instant::now()),
                Some(_) => None,
            };
        }
    }
}

pub struct PgManager {
    inner: ConnectionManager<PgConnection>,
}

impl PgManager {
    pub(crate) fn new(url: &str) -> Self {
        PgManager {
            inner: ConnectionManager::new(url),
        }
    }
}

fn recently_ok(conn: &mut PgConnection) -> bool {
    conn.instrumentation()
        .downcast_ref::<LastSuccess>()
        .and_then(|last| last.0)
        .is_some_and(|at| at.elapsed() < FRESH_FOR)
}

impl ManageConnection for PgManager {
    type Connection = PgConnection;
    type Error = Error;

    fn connect(&self) -> Result<PgConnection, Error> {
        let mut conn = self.inner.connect()?;
        conn.set_instrumentation(LastSuccess::default());
        // Unnamed statements only (parsed with each execution, in the same round trip): behind a
        // transaction pooler such as PgBouncer, consecutive transactions of one connection run on
        // different server connections, where a named statement prepared earlier does not exist
        // or is another one.
        conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Error> {
        if recently_ok(conn) {
            return Ok(());
        }
        self.inner.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        self.inner.has_broken(conn)
    }
}
