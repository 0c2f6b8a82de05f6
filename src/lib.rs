//! wxauth: the backend a WeChat Mini Program talks to for authorized login (微信授权登录).
//!
//! `startup::Application` wires the pieces: `api` (actix-web handlers) calls `sessions` (the
//! `SessionActor`, its cache and the NOTIFY listener), `db` (the `DbHandle`, the schema, the rows
//! and the queries) and `wechat` (the `WeChatClient`, the protocol and crypto) with the values of
//! `domain`; `background` holds the upkeep beside the requests, `dev` the fake of WeChat's
//! servers that dev mode and the tests use.

// Nothing the network or the database hands us may be unwrapped.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admission;
pub mod announce;
pub mod api;
pub(crate) mod apps;
pub mod background;
pub mod china_time;
pub mod config;
pub mod db;
pub mod dev;
pub mod domain;
pub mod error;
pub(crate) mod log_throttle;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod random;
pub(crate) mod read_batch;
pub mod sessions;
pub(crate) mod shutdown;
pub mod startup;
pub(crate) mod text;
pub(crate) mod thread_memo;
pub(crate) mod token;
pub mod wechat;
