//! Integration tests: one binary (it links once), the real server against real PostgreSQL, the
//! WeChat fake as WeChat. Each module is one part of the client's story.

mod admin;
mod errors;
mod helpers;
mod login;
mod startup;
mod tokens;
mod wechat_faults;
