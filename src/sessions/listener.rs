//! The NOTIFY listener: a dedicated PostgreSQL connection that LISTENs for session revocations
//! from every instance and hands them to the SessionActor, and the proof that it still works.
//!
//! A connection can hang without closing (a NAT or firewall that forgot the flow, a frozen
//! proxy): nothing arrives, nothing fails, and a cache trusted meanwhile keeps revoked tokens
//! alive. So the listener is not assumed alive, it is shown to be: about every second this
//! instance NOTIFYs a heartbeat through the pool (the path every revocation takes) carrying its
//! instance id and a sequence number, and the listener must hear it. PostgreSQL delivers
//! notifications in commit order, so hearing a heartbeat sent at `t` proves every revocation
//! committed before `t` has arrived. The session cache is trusted only while the newest heartbeat
//! heard on the current connection was sent less than `STALE_AFTER` ago; otherwise every token
//! check goes to PostgreSQL.
//!
//! Three kinds of thread:
//! - the watcher, which alone decides whether the cache is trusted, and replaces a connection
//!   that failed, went silent or never finished connecting;
//! - the heartbeat sender;
//! - one listener thread per connection. A thread stuck in a blocking libpq call may never
//!   return, so nothing waits for it: a replaced connection's thread is abandoned, every report it
//!   makes is ignored (reports carry the connection's number), and it ends by itself if it ever
//!   wakes up. After LISTEN it only polls without blocking, so usually it ends at once.

use std::collections::VecDeque;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use actix::Addr;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde::Serialize;

use crate::db::PgPool;
use crate::db::sessions::NOTIFY_CHANNEL;
use crate::domain::Revoked;
use crate::metrics::Metrics;
use crate::sessions::{Invalidate, SessionActor, SessionCache};

/// The application_name of the listener's connection, to find it in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "wxauth-listener";
/// Where the heartbeats go. Every instance hears every instance's and keeps its own; instances of
/// older versions do not listen here, so they never see them.
pub(crate) const HEARTBEAT_CHANNEL: &str = "wxauth_heartbeat";

/// How often pending notifications are read.
const POLL_EVERY: Duration = Duration::from_millis(50);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// The bound on how old the newest heard heartbeat may be while the cache is trusted: one
/// heartbeat may be lost or late without the cache being dropped. It is also about the longest
/// a revocation made on another instance can go unnoticed here.
pub(crate) const STALE_AFTER: Duration = Duration::from_millis(2500);
/// A heartbeat committed this long ago and still not heard proves the connection deaf.
const DELIVERY_BOUND: Duration = Duration::from_secs(1);
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// How long after start a listener not yet proven alive is "starting" rather than a problem.
const STARTUP_GRACE: Duration = Duration::from_secs(5);
/// A connection attempt this old is abandoned (libpq's `connect_timeout` should end it first).
const CONNECT_GIVE_UP: Duration = Duration::from_secs(15);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Heartbeats remembered until heard; older ones are too old to matter.
const REMEMBERED_HEARTBEATS: usize = 16;
/// Bounds each statement on the listener's connection (LISTEN, in practice).
const STATEMENT_TIMEOUT_MS: u32 = 5000;

/// libpq settings for the listener's connection, unless the URL sets them itself: a bounded
/// connection attempt, and TCP keepalive so the kernel notices a peer that went away (within
/// about 11 s of silence) and unacknowledged data fails within 10 s. They do not notice a peer
/// whose TCP stack still answers while nothing is forwarded (a frozen proxy): the heartbeat does.
const CONNECTION_DEFAULTS: [(&str, &str); 6] = [
    ("connect_timeout", "5"),
    ("keepalives", "1"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "2"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
];

fn listener_url(database_url: &str) -> String {
    let (base, query) = database_url.split_once('?').unwrap_or((database_url, ""));
    let key = |param: &str| param.split('=').next().unwrap_or_default().to_string();
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && key(p) != "application_name")
        .map(str::to_string)
        .collect();
    for (name, value) in CONNECTION_DEFAULTS {
        if !params.iter().any(|p| key(p) == name) {
            params.push(format!("{name}={value}"));
        }
    }
    params.push(format!("application_name={APPLICATION_NAME}"));
    format!("{base}?{}", params.join("&"))
}

/// What `/readyz`, the status page and `/metrics` say about the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ListenerState {
    /// Heard its own heartbeat within `STALE_AFTER`: the session cache is in use.
    Ok,
    /// Connected, but no recent heartbeat heard: every token check goes to PostgreSQL.
    Stale,
    /// Not connected (connecting, or waiting to retry): every token check goes to PostgreSQL.
    Down,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ListenerReport {
    pub(crate) state: ListenerState,
    /// Since the newest own heartbeat was heard; `None` if none was yet.
    pub(crate) last_heartbeat_ms_ago: Option<u64>,
    /// Connections replaced because they went silent or never finished connecting.
    pub(crate) replacements: u64,
    /// Not yet proven alive, but only just started: not worth reporting as a problem.
    #[serde(skip)]
    pub(crate) starting: bool,
}

/// The listener's shared state: written by its threads, read by the probes.
pub(crate) struct ListenerHealth {
    inner: Mutex<Health>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the first connection.
    Start,
    Connecting {
        since: Instant,
    },
    Listening {
        since: Instant,
    },
    Failed {
        at: Instant,
    },
}

#[derive(Debug)]
struct Beat {
    seq: u64,
    sent_at: Instant,
    committed_at: Option<Instant>,
}

struct Health {
    created: Instant,
    /// Whether the cache was ever trusted.
    ever_trusted: bool,
    instance: String,
    /// The number of the current connection; reports about any other are ignored.
    connection: u64,
    phase: Phase,
    /// When the newest heartbeat heard on the current connection was sent.
    fresh_as_of: Option<Instant>,
    /// When the newest own heartbeat was heard (on whichever connection was current then).
    last_heard: Option<Instant>,
    /// Whether the session cache is trusted: set by the watcher only.
    trusted: bool,
    replacements: u64,
    beats: VecDeque<Beat>,
    /// Why the current connection failed, for the watcher to log.
    failure: Option<String>,
}

/// What the watcher must do after a look at the state.
#[derive(Debug, Default, PartialEq, Eq)]
struct Step {
    /// Open this connection (its number).
    connect: Option<u64>,
    /// Why the previous connection is being given up, when it is.
    gave_up: Option<GaveUp>,
    /// Whether the cache may be trusted now.
    trusted: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum GaveUp {
    Failed(String),
    Silent,
    ConnectTooSlow,
}

impl Health {
    fn new() -> Health {
        Health {
            created: Instant::now(),
            ever_trusted: false,
            instance: crate::random::token_hex(8),
            connection: 0,
            phase: Phase::Start,
            fresh_as_of: None,
            last_heard: None,
            trusted: false,
            replacements: 0,
            beats: VecDeque::new(),
            failure: None,
        }
    }

    fn is_fresh(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::Listening { .. })
            && self
                .fresh_as_of
                .is_some_and(|sent| now.saturating_duration_since(sent) < STALE_AFTER)
    }

    /// A heartbeat committed after the connection was listening, long enough ago that it must
    /// have been delivered, and not heard.
    fn missed_a_heartbeat(&self, listening_since: Instant, now: Instant) -> bool {
        self.beats.iter().any(|b| {
            b.committed_at.is_some_and(|c| {
                c >= listening_since && now.saturating_duration_since(c) >= DELIVERY_BOUND
            })
        })
    }

    fn decide(&mut self, now: Instant, backoff: Duration) -> Step {
        let gave_up = match self.phase {
            Phase::Failed { at } if now.saturating_duration_since(at) >= backoff => {
                Some(GaveUp::Failed(self.failure.take().unwrap_or_default()))
            }
            Phase::Connecting { since }
                if now.saturating_duration_since(since) >= CONNECT_GIVE_UP =>
            {
                Some(GaveUp::ConnectTooSlow)
            }
            // Stale only because no heartbeat could be sent is not the connection's fault.
            Phase::Listening { since }
                if !self.is_fresh(now) && self.missed_a_heartbeat(since, now) =>
            {
                Some(GaveUp::Silent)
            }
            _ => None,
        };
        let mut connect = None;
        if gave_up.is_some() || self.phase == Phase::Start {
            if matches!(gave_up, Some(GaveUp::Silent | GaveUp::ConnectTooSlow)) {
                self.replacements += 1;
            }
            self.connection += 1;
            self.phase = Phase::Connecting { since: now };
            self.fresh_as_of = None;
            connect = Some(self.connection);
        }
        // A new connection is never trusted on the look that opens it, so the cache is emptied
        // between any two connections: what was revoked while neither listened is not kept.
        self.trusted = self.is_fresh(now);
        self.ever_trusted |= self.trusted;
        Step {
            connect,
            gave_up,
            trusted: self.trusted,
        }
    }

    fn report(&self, now: Instant) -> ListenerReport {
        ListenerReport {
            state: if self.trusted {
                ListenerState::Ok
            } else if matches!(self.phase, Phase::Listening { .. }) {
                ListenerState::Stale
            } else {
                ListenerState::Down
            },
            last_heartbeat_ms_ago: self
                .last_heard
                .map(|at| now.saturating_duration_since(at).as_millis() as u64),
            replacements: self.replacements,
            starting: !self.ever_trusted
                && now.saturating_duration_since(self.created) < STARTUP_GRACE,
        }
    }
}

impl ListenerHealth {
    fn new() -> ListenerHealth {
        ListenerHealth {
            inner: Mutex::new(Health::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Health> {
        // Nothing in the critical sections panics; if something did, the state is still whole.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn report(&self) -> ListenerReport {
        self.lock().report(Instant::now())
    }

    fn is_current(&self, connection: u64) -> bool {
        self.lock().connection == connection
    }

    /// Answers false when the connection was replaced meanwhile.
    fn listening(&self, connection: u64) -> bool {
        let mut h = self.lock();
        if h.connection != connection {
            return false;
        }
        h.phase = Phase::Listening {
            since: Instant::now(),
        };
        true
    }

    fn failed(&self, connection: u64, why: String) {
        let mut h = self.lock();
        if h.connection == connection {
            h.phase = Phase::Failed { at: Instant::now() };
            h.failure = Some(why);
        }
    }

    fn heard(&self, connection: u64, payload: &str) {
        let Some((instance, seq)) = payload.split_once(':') else {
            return;
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return;
        };
        let mut h = self.lock();
        if h.connection != connection || h.instance != instance {
            return;
        }
        let Some(sent_at) = h.beats.iter().find(|b| b.seq == seq).map(|b| b.sent_at) else {
            return;
        };
        h.beats.retain(|b| b.seq > seq);
        h.fresh_as_of = h.fresh_as_of.max(Some(sent_at));
        h.last_heard = Some(Instant::now());
    }

    /// Records a heartbeat about to be sent; answers its payload.
    fn sending(&self, seq: u64) -> String {
        let mut h = self.lock();
        if h.beats.len() >= REMEMBERED_HEARTBEATS {
            h.beats.pop_front();
        }
        h.beats.push_back(Beat {
            seq,
            sent_at: Instant::now(),
            committed_at: None,
        });
        format!("{}:{seq}", h.instance)
    }

    fn committed(&self, seq: u64) {
        let mut h = self.lock();
        if let Some(beat) = h.beats.iter_mut().find(|b| b.seq == seq) {
            beat.committed_at = Some(Instant::now());
        }
    }
}

/// Starts the listener (its connection to `database_url`, heartbeats through `pool`); it stops
/// when the SessionActor does. The cache is untrusted until the first heartbeat is heard.
pub(crate) fn spawn(
    database_url: &str,
    pool: PgPool,
    sessions: Addr<SessionActor>,
    cache: Arc<SessionCache>,
    metrics: Arc<Metrics>,
) -> std::io::Result<Arc<ListenerHealth>> {
    let health = Arc::new(ListenerHealth::new());
    let (nudge, nudges) = mpsc::channel();
    let watcher = Watcher {
        url: listener_url(database_url),
        sessions: sessions.clone(),
        cache,
        health: health.clone(),
        metrics,
        nudge,
    };
    thread::Builder::new()
        .name("wxauth-listener-watch".into())
        .spawn(move || watcher.run())?;
    let beats = health.clone();
    thread::Builder::new()
        .name("wxauth-heartbeat".into())
        .spawn(move || send_heartbeats(&pool, &beats, &sessions, &nudges))?;
    Ok(health)
}

struct Watcher {
    url: String,
    sessions: Addr<SessionActor>,
    cache: Arc<SessionCache>,
    health: Arc<ListenerHealth>,
    metrics: Arc<Metrics>,
    /// Wakes the heartbeat sender when a new connection is listening.
    nudge: mpsc::Sender<()>,
}

impl Watcher {
    fn run(self) {
        let mut backoff = MIN_BACKOFF;
        let mut trusted = false;
        let mut ever_trusted = false;
        // Connections given up since the cache was last trusted; only the first is logged.
        let mut given_up = 0u32;
        while self.sessions.connected() {
            let now = Instant::now();
            let (step, report) = {
                let mut h = self.health.lock();
                let step = h.decide(now, backoff);
                (step, h.report(now))
            };
            if let Some(why) = &step.gave_up {
                given_up += 1;
                if !matches!(why, GaveUp::Failed(_)) {
                    self.metrics.session_listener_replacements.inc();
                }
                if matches!(why, GaveUp::Failed(_)) {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                let message = match why {
                    GaveUp::Failed(e) if e.is_empty() => None,
                    GaveUp::Failed(e) => Some(format!("its connection failed: {e}")),
                    GaveUp::Silent => Some(format!(
                        "no heartbeat heard for {STALE_AFTER:?}: replacing its connection"
                    )),
                    GaveUp::ConnectTooSlow => Some(format!(
                        "connecting took over {CONNECT_GIVE_UP:?}: trying again"
                    )),
                };
                if let Some(message) = message {
                    if given_up == 1 {
                        log::warn!("session listener: {message}");
                    } else {
                        log::debug!("session listener: {message}");
                    }
                }
            }
            if let Some(connection) = step.connect {
                self.open(connection);
            }
            if step.trusted != trusted {
                trusted = step.trusted;
                self.cache.set_trusted(trusted);
                if trusted {
                    backoff = MIN_BACKOFF;
                    if ever_trusted {
                        log::info!(
                            "session listener healthy again ({} connection(s) given up): the session cache is in use",
                            given_up
                        );
                    }
                    ever_trusted = true;
                    given_up = 0;
                } else {
                    log::warn!(
                        "session listener not proven alive: checking every session in PostgreSQL until it is"
                    );
                }
            }
            self.metrics
                .session_listener_healthy
                .set(i64::from(trusted));
            self.metrics.session_listener_heartbeat_age.set(
                report
                    .last_heartbeat_ms_ago
                    .map_or(f64::NAN, |ms| ms as f64 / 1000.0),
            );
            thread::sleep(WATCH_EVERY);
        }
    }

    fn open(&self, connection: u64) {
        let url = self.url.clone();
        let sessions = self.sessions.clone();
        let health = self.health.clone();
        let nudge = self.nudge.clone();
        let spawned = thread::Builder::new()
            .name("wxauth-listener".into())
            .spawn(move || listen(connection, &url, &sessions, &health, &nudge));
        if let Err(e) = spawned {
            self.health
                .failed(connection, format!("cannot start a thread: {e}"));
        }
    }
}

fn connect(url: &str) -> Result<PgConnection, String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    conn.batch_execute(&format!(
        "SET statement_timeout = {STATEMENT_TIMEOUT_MS}; LISTEN {NOTIFY_CHANNEL}; LISTEN {HEARTBEAT_CHANNEL}"
    ))
    .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// One connection's thread: connects, then forwards notifications until the connection fails,
/// is replaced, or the SessionActor stops. After LISTEN nothing here blocks.
fn listen(
    connection: u64,
    url: &str,
    sessions: &Addr<SessionActor>,
    health: &ListenerHealth,
    nudge: &mpsc::Sender<()>,
) {
    let mut conn = match connect(url) {
        Ok(conn) => conn,
        Err(e) => return health.failed(connection, e),
    };
    if !health.listening(connection) {
        return;
    }
    let _ = nudge.send(());
    while sessions.connected() && health.is_current(connection) {
        for notification in conn.notifications_iter() {
            match notification {
                Ok(n) if n.channel == HEARTBEAT_CHANNEL => health.heard(connection, &n.payload),
                Ok(n) => match Revoked::parse(&n.payload) {
                    Some(what) => sessions.do_send(Invalidate(what)),
                    None => log::warn!("ignoring a malformed session notification"),
                },
                Err(e) => return health.failed(connection, e.to_string()),
            }
        }
        thread::sleep(POLL_EVERY);
    }
}

/// Sends a heartbeat every `HEARTBEAT_EVERY`, and at once when a new connection listens.
fn send_heartbeats(
    pool: &PgPool,
    health: &ListenerHealth,
    sessions: &Addr<SessionActor>,
    nudges: &mpsc::Receiver<()>,
) {
    let mut seq = 0u64;
    let mut failing = false;
    while sessions.connected() {
        match nudges.recv_timeout(HEARTBEAT_EVERY) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        seq += 1;
        match send_heartbeat(pool, health, seq) {
            Ok(()) if failing => {
                failing = false;
                log::info!("session listener: heartbeats are sent again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                log::warn!("session listener: cannot send a heartbeat: {e}");
            }
            Err(_) => {}
        }
    }
}

fn send_heartbeat(pool: &PgPool, health: &ListenerHealth, seq: u64) -> Result<(), String> {
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let payload = health.sending(seq);
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(HEARTBEAT_CHANNEL)
        .bind::<Text, _>(payload)
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    health.committed(seq);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_connection_is_named_bounded_and_kept_alive() {
        assert_eq!(
            listener_url("postgres://h/db"),
            "postgres://h/db?connect_timeout=5&keepalives=1&keepalives_idle=5&keepalives_interval=2\
             &keepalives_count=3&tcp_user_timeout=10000&application_name=wxauth-listener"
        );
        assert_eq!(
            listener_url(
                "postgres://h/db?sslmode=disable&keepalives_idle=30&application_name=other"
            ),
            "postgres://h/db?sslmode=disable&keepalives_idle=30&connect_timeout=5&keepalives=1\
             &keepalives_interval=2&keepalives_count=3&tcp_user_timeout=10000\
             &application_name=wxauth-listener",
            "the URL's own settings win, except the name"
        );
    }

    const MS: Duration = Duration::from_millis(1);

    /// A health whose connection 1 is listening since `t0`, as the watcher and thread leave it.
    fn listening_since(t0: Instant) -> Health {
        let mut h = Health::new();
        let step = h.decide(t0, MIN_BACKOFF);
        assert_eq!(step.connect, Some(1), "the first look opens connection 1");
        assert!(!step.trusted);
        h.phase = Phase::Listening { since: t0 };
        h
    }

    fn beat(h: &mut Health, seq: u64, sent_at: Instant, heard: bool) {
        h.beats.push_back(Beat {
            seq,
            sent_at,
            committed_at: Some(sent_at + 2 * MS),
        });
        if heard {
            h.beats.retain(|b| b.seq > seq);
            h.fresh_as_of = h.fresh_as_of.max(Some(sent_at));
            h.last_heard = Some(sent_at + 3 * MS);
        }
    }

    #[test]
    fn trusted_only_while_a_recent_heartbeat_was_heard() {
        let t0 = Instant::now();
        let mut h = listening_since(t0);
        assert!(
            !h.decide(t0 + 50 * MS, MIN_BACKOFF).trusted,
            "none heard yet"
        );
        assert_eq!(h.report(t0).state, ListenerState::Stale);
        assert!(h.report(t0).starting, "not yet a problem");
        assert!(
            !h.report(t0 + STARTUP_GRACE + Duration::from_secs(1))
                .starting,
            "now it is"
        );

        beat(&mut h, 1, t0 + 60 * MS, true);
        assert!(h.decide(t0 + 100 * MS, MIN_BACKOFF).trusted);
        assert_eq!(h.report(t0 + 100 * MS).state, ListenerState::Ok);

        // Silence: trusted until the newest heard heartbeat is STALE_AFTER old, not after.
        beat(&mut h, 2, t0 + 1060 * MS, false);
        let edge = t0 + 60 * MS + STALE_AFTER;
        assert!(h.decide(edge - MS, MIN_BACKOFF).trusted);
        let step = h.decide(edge, MIN_BACKOFF);
        assert!(!step.trusted);
        assert_eq!(step.gave_up, Some(GaveUp::Silent), "heartbeat 2 was missed");
        assert_eq!(step.connect, Some(2), "replaced");
        assert_eq!(h.replacements, 1);
        assert_eq!(h.report(edge).state, ListenerState::Down);
        assert!(
            !h.report(edge).starting,
            "it was up once: a problem at once"
        );
    }

    #[test]
    fn a_stale_connection_that_missed_nothing_is_kept() {
        let t0 = Instant::now();
        let mut h = listening_since(t0);
        beat(&mut h, 1, t0 + 10 * MS, true);
        assert!(h.decide(t0 + 20 * MS, MIN_BACKOFF).trusted);
        // No heartbeat could be sent since (the pool is busy or the database away).
        let later = t0 + 10 * MS + STALE_AFTER + 5 * DELIVERY_BOUND;
        let step = h.decide(later, MIN_BACKOFF);
        assert_eq!((step.trusted, step.connect), (false, None));
        assert_eq!(h.report(later).state, ListenerState::Stale);
        // A heartbeat gets through again and is heard: trusted again on the same connection.
        beat(&mut h, 2, later, true);
        assert!(h.decide(later + MS, MIN_BACKOFF).trusted);
    }

    #[test]
    fn reports_about_a_replaced_connection_are_ignored() {
        let health = ListenerHealth::new();
        let t0 = Instant::now();
        assert_eq!(health.lock().decide(t0, MIN_BACKOFF).connect, Some(1));
        assert!(health.listening(1));
        let payload = health.sending(1);
        health.committed(1);
        // Connection 1 goes deaf and is replaced.
        let step = health
            .lock()
            .decide(t0 + STALE_AFTER + DELIVERY_BOUND, MIN_BACKOFF);
        assert_eq!(step.connect, Some(2));

        // Its thread wakes up later and hears the heartbeat: that proves nothing about 2.
        health.heard(1, &payload);
        assert!(!health.listening(1), "nor may it claim to listen for 2");
        assert!(health.listening(2));
        assert!(!health.lock().decide(Instant::now(), MIN_BACKOFF).trusted);
        assert_eq!(health.report().last_heartbeat_ms_ago, None);

        // Connection 2 hears its own heartbeat; another instance's is not taken for it.
        let other = format!("{}:2", "0".repeat(16));
        health.sending(2);
        health.heard(2, &other);
        assert!(!health.lock().decide(Instant::now(), MIN_BACKOFF).trusted);
        let mine = health.sending(3);
        health.heard(2, &mine);
        assert!(health.lock().decide(Instant::now(), MIN_BACKOFF).trusted);
        assert_eq!(health.report().state, ListenerState::Ok);
    }

    #[test]
    fn failed_connections_are_retried_after_the_backoff_and_slow_ones_abandoned() {
        let t0 = Instant::now();
        let mut h = Health::new();
        assert_eq!(h.decide(t0, MIN_BACKOFF).connect, Some(1));
        assert_eq!(h.report(t0).state, ListenerState::Down);
        h.phase = Phase::Failed { at: t0 };
        h.failure = Some("refused".into());
        assert_eq!(h.decide(t0 + 50 * MS, MIN_BACKOFF).connect, None);
        let step = h.decide(t0 + MIN_BACKOFF, MIN_BACKOFF);
        assert_eq!(step.gave_up, Some(GaveUp::Failed("refused".into())));
        assert_eq!(step.connect, Some(2));
        assert_eq!(h.replacements, 0, "a failure is not a replacement");

        let step = h.decide(t0 + MIN_BACKOFF + CONNECT_GIVE_UP, MIN_BACKOFF);
        assert_eq!(step.gave_up, Some(GaveUp::ConnectTooSlow));
        assert_eq!(step.connect, Some(3));
        assert_eq!(h.replacements, 1);
    }
}
