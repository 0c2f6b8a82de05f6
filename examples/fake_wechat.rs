//! The WeChat fake as a server of its own, for tests that run several wxauth processes against one
//! WeChat (scripts/deploy-test): a code minted here is known to every instance, as a real
//! `wx.login()` code is. Configured by FAKE_BIND_ADDR (default 127.0.0.1:0), FAKE_APPID and
//! FAKE_SECRET; prints `listening on ADDR` once it serves.

use std::net::TcpListener;

use actix_web::{App, HttpServer};
use wxauth::dev::fake_wechat::{self, FakeWeChat};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let fake = FakeWeChat::new(
        var("FAKE_APPID", "wxfake0000000000"),
        var("FAKE_SECRET", "fake-secret"),
    );
    let listener = TcpListener::bind(var("FAKE_BIND_ADDR", "127.0.0.1:0"))?;
    println!("listening on {}", listener.local_addr()?);
    HttpServer::new(move || App::new().configure(fake_wechat::configure(fake.clone())))
        .listen(listener)?
        .workers(2)
        .run()
        .await
}
