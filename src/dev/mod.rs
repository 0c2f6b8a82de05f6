//! Tools for development and tests, never used against real WeChat: the built-in WeChat fake
//! that dev mode serves and the tests use as WeChat.

pub mod fake_wechat;
