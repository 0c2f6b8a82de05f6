//! The actors behind the handlers: sessions in memory and the WeChat upstream as an async actor;
//! plus the upkeep of `login_log`, the sweeper of due account deletions and the sender of meeting
//! reminders. The database is `crate::db::DbHandle`.

pub(crate) mod deletion;
pub mod listener;
pub mod login_log;
pub(crate) mod reminder;
pub mod session;
pub(crate) mod wechat;

pub(crate) use session::SessionActor;
pub(crate) use wechat::WeChatClient;
