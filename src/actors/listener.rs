//! The NOTIFY listener: a dedicated PostgreSQL connection on its own thread that LISTENs for
//! session revocations from every instance and hands them to the SessionActor. It reconnects by
//! itself, and tells the SessionActor when it is down so the cache is not trusted meanwhile.

use std::thread;
use std::time::{Duration, Instant};

use actix::Addr;
use diesel::prelude::*;

use crate::actors::session::{Invalidate, ListenerStatus, SessionActor};
use crate::db::sessions::{NOTIFY_CHANNEL, Revoked};

/// How often pending notifications are read: the bound on cross-instance revocation delay.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How often the connection is checked with a query, to notice a connection that died silently.
const PING_EVERY: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The application_name of the listener's connection, to find it in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "wxauth-listener";

fn listener_url(database_url: &str) -> String {
    let sep = if database_url.contains('?') { '&' } else { '?' };
    format!("{database_url}{sep}application_name={APPLICATION_NAME}")
}

/// Starts the listener thread; it ends when the SessionActor stops.
pub fn spawn(
    database_url: &str,
    sessions: Addr<SessionActor>,
) -> std::io::Result<thread::JoinHandle<()>> {
    let url = listener_url(database_url);
    thread::Builder::new()
        .name("wxauth-listener".into())
        .spawn(move || run(&url, &sessions))
}

fn connect(url: &str) -> Result<PgConnection, String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("LISTEN {NOTIFY_CHANNEL}"))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

fn run(url: &str, sessions: &Addr<SessionActor>) {
    let mut backoff = Duration::from_millis(100);
    let mut was_connected = true;
    while sessions.connected() {
        match connect(url) {
            Ok(mut conn) => {
                if !was_connected {
                    log::info!("session listener reconnected");
                }
                was_connected = true;
                backoff = Duration::from_millis(100);
                sessions.do_send(ListenerStatus { connected: true });
                listen(&mut conn, sessions);
                if sessions.connected() {
                    log::warn!(
                        "session listener lost its connection: not trusting the session cache until it is back"
                    );
                    sessions.do_send(ListenerStatus { connected: false });
                }
            }
            Err(e) => {
                if was_connected {
                    log::warn!("session listener cannot connect: {e}");
                    sessions.do_send(ListenerStatus { connected: false });
                }
                was_connected = false;
                thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Forwards notifications until the connection fails or the SessionActor stops.
fn listen(conn: &mut PgConnection, sessions: &Addr<SessionActor>) {
    let mut last_ping = Instant::now();
    while sessions.connected() {
        for notification in conn.notifications_iter() {
            match notification {
                Ok(n) => match Revoked::parse(&n.payload) {
                    Some(what) => sessions.do_send(Invalidate(what)),
                    None => log::warn!("ignoring a malformed session notification"),
                },
                Err(_) => return,
            }
        }
        if last_ping.elapsed() >= PING_EVERY {
            if diesel::sql_query("SELECT 1").execute(conn).is_err() {
                return;
            }
            last_ping = Instant::now();
        }
        thread::sleep(POLL_EVERY);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_listener_connection_is_named() {
        assert_eq!(
            super::listener_url("postgres://h/db"),
            "postgres://h/db?application_name=wxauth-listener"
        );
        assert_eq!(
            super::listener_url("postgres://h/db?sslmode=disable"),
            "postgres://h/db?sslmode=disable&application_name=wxauth-listener"
        );
    }
}
