//! The three actors behind the handlers: sessions in memory, the database on a `SyncArbiter`, and
//! the WeChat upstream as an async actor; plus the upkeep of `login_log` and the sweeper of due
//! account deletions.

pub mod db_executor;
pub mod deletion;
pub mod listener;
pub mod login_log;
pub mod session;
pub mod wechat;

pub use db_executor::DbHandle;
pub use session::SessionActor;
pub use wechat::WeChatClient;
