//! Stopping without losing a request. Behind a proxy that keeps connections open to each
//! instance, closing the listener at once is not enough: a request the proxy sends on a pooled
//! connection just as it is closed fails, and a proxy does not retry a POST it already sent. So
//! on SIGTERM (or SIGINT) the server first *drains*: `/readyz` answers 503 and every answer says
//! `Connection: close`, while requests are still served, for `SHUTDOWN_DRAIN_SECS`. By then the
//! proxy holds no connection to this instance; the listener closes (new connections are refused,
//! which a proxy safely retries elsewhere), requests in flight finish, and the writes that were
//! queued or batched are flushed before the process exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_rt::signal::unix::{Signal, SignalKind, signal};
use actix_web::dev::ServerHandle;
use futures_util::future::{Either, select};

/// Whether this instance is draining: set once, never cleared.
#[derive(Default)]
pub(crate) struct Drain(AtomicBool);

impl Drain {
    pub(crate) fn new() -> Arc<Drain> {
        Arc::new(Drain::default())
    }

    pub(crate) fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the next SIGTERM or SIGINT.
    async fn next(&mut self) -> &'static str {
        let term = std::pin::pin!(self.term.recv());
        let int = std::pin::pin!(self.int.recv());
        match select(term, int).await {
            Either::Left(_) => "SIGTERM",
            Either::Right(_) => "SIGINT",
        }
    }
}

/// Waits for SIGTERM or SIGINT, drains for `drain_for` (a second signal cuts the drain short),
/// then stops the server gracefully; returns once it has stopped. The handlers are installed
/// before this returns its future's first poll, so call it before announcing that the server is
/// up. When they cannot be installed the signals keep their default action (the process ends).
pub(crate) fn on_signal(
    drain: Arc<Drain>,
    drain_for: Duration,
    server: ServerHandle,
    grace_secs: u64,
) -> impl Future<Output = ()> {
    let signals = Signals::install();
    async move {
        let mut signals = match signals {
            Ok(s) => s,
            Err(e) => {
                log::error!(
                    "cannot handle SIGTERM/SIGINT ({e}): they will end the process at once"
                );
                return;
            }
        };
        let name = signals.next().await;
        drain.start();
        if !drain_for.is_zero() {
            log::info!(
                "{name} received: draining for {} s (/readyz answers 503, every answer closes its connection, requests are still served); send it again to stop at once",
                drain_for.as_secs()
            );
            let sleep = std::pin::pin!(actix_rt::time::sleep(drain_for));
            if let Either::Right((again, _)) = select(sleep, std::pin::pin!(signals.next())).await {
                log::info!("{again} received: drain cut short");
            }
        }
        log::info!(
            "{name}: graceful shutdown: no longer accepting connections, finishing requests in flight (at most {grace_secs} s)"
        );
        server.stop(true).await;
    }
}
