//! The three actors behind the handlers: sessions in memory, the database on a `SyncArbiter`, and
//! the WeChat upstream as an async actor; plus the upkeep of `login_log`, the sweeper of due
//! account deletions and the sender of meeting reminders.

pub(crate) mod db_executor;
pub(crate) mod deletion;
pub mod listener;
pub mod login_log;
pub(crate) mod reminder;
pub mod session;
pub(crate) mod wechat;

pub use db_executor::DbHandle;
pub(crate) use session::SessionActor;
pub(crate) use wechat::WeChatClient;
