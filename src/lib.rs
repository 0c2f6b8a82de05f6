//! wxauth: the backend a WeChat Mini Program talks to for authorized login (微信授权登录).
//!
//! `startup::Application` wires the pieces: `api` (actix-web handlers) calls the three `actors`
//! (`SessionActor`, the `DbExecutor` through its `DbHandle`, `WeChatClient`) with the values of
//! `domain`; `db` holds the schema, the rows and the queries, `wechat` the protocol and crypto;
//! `dev` holds the fake of WeChat's servers that dev mode and the tests use.

// Nothing the network or the database hands us may be unwrapped.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod actors;
pub mod admission;
pub mod announce;
pub mod api;
pub(crate) mod apps;
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
pub(crate) mod shutdown;
pub mod startup;
pub(crate) mod text;
pub(crate) mod thread_memo;
pub(crate) mod token;
pub mod wechat;
