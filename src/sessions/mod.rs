//! The live sessions: `SessionActor` (`actor.rs`), the one that changes them. PostgreSQL's
//! `user_session` is the truth; in front of it is a bounded LRU cache (`cache.rs`), so the hot
//! path — a request with a live cached token — touches no database, and memory stays flat
//! however many sessions exist.
//!
//! The cache is shared: the token check on the HTTP workers reads it on their own threads, and
//! only a miss becomes a message to this actor, which reads the database and fills the cache. A
//! message per request would cost a cross-thread wake-up each way, about as much as the rest of
//! the token check together. Every change to the cache is made under its lock, by the actor, so
//! reads and invalidations stay in one order.
//!
//! The cache is only trusted while the NOTIFY listener is proven alive (it heard its own
//! heartbeat recently; `listener.rs`): revocations made by other instances arrive through it.
//! Otherwise the cache is emptied and bypassed, and every check goes to PostgreSQL, until the
//! listener is healthy again (notifications sent meanwhile may be lost), so a revoked token is
//! never served from a memory nobody keeps current. Those checks go through the database
//! handle's reads lane like any read: bounded, and refused with errno 721 beyond the bound.

mod actor;
mod cache;
pub mod listener;

pub use self::actor::*;
pub(crate) use self::cache::SessionCache;
