//! Integration tests: one binary (it links once), the real server against real PostgreSQL, the
//! WeChat fake as WeChat. Each module is one part of the client's story.

mod admin;
mod apps;
mod bench;
mod binary;
mod content;
mod database;
mod db_proxy;
mod deletion;
mod edge;
mod errors;
mod helpers;
mod hostile;
mod limits;
mod listener;
mod login;
mod logs;
mod meetings;
mod openapi;
mod phone;
mod pipeline;
mod pool;
mod process;
mod profile;
mod reminders;
mod reply;
mod sessions;
mod startup;
mod tokens;
mod wechat_faults;
mod wecom;
