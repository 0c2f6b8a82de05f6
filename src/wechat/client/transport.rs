//! The HTTP side of the WeChat client: one awc client with bounded connections and calls in
//! flight, a timeout over the whole round trip, and every round trip counted.

use crate::text::loggable_upstream_text;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use super::Reply;
use super::stats::{Tally, UpstreamStats};
use crate::metrics::WeChatMetrics;
use crate::wechat::WeChatError;

/// Bodies larger than this are not a WeChat answer.
const MAX_BODY: usize = 64 * 1024;
/// At most this many WeChat calls in flight; more are refused at once rather than queued behind
/// a slow WeChat (each waits up to WECHAT_TIMEOUT_MS, so a queue would only grow). The client may
/// open as many connections, so a call that got through never waits for one: a login code that
/// waited there would reach WeChat late, be spent, and be abandoned at the timeout that started
/// before it was sent. A stalled WeChat still cannot make us open sockets without end.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;

/// What the actor needs to make a request; cloned into each request's future.
#[derive(Clone)]
pub(super) struct Upstream {
    http: awc::Client,
    api_base: String,
    timeout: Duration,
    permits: Arc<Semaphore>,
    /// Every real round trip is counted here and in the metrics, under the client's app (the
    /// futures run on the actor's thread, so a `RefCell` is enough).
    tally: Rc<RefCell<Tally>>,
    metrics: WeChatMetrics,
}

impl Upstream {
    pub(super) fn new(api_base: String, timeout: Duration, metrics: WeChatMetrics) -> Self {
        Self::bounded(api_base, timeout, metrics, MAX_IN_FLIGHT)
    }

    fn bounded(
        api_base: String,
        timeout: Duration,
        metrics: WeChatMetrics,
        max_in_flight: usize,
    ) -> Self {
        let http = awc::Client::builder()
            .connector(awc::Connector::new().limit(max_in_flight))
            .timeout(timeout)
            .disable_redirects()
            .finish();
        Upstream {
            http,
            api_base,
            timeout,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            tally: Rc::new(RefCell::new(Tally::default())),
            metrics,
        }
    }

    /// The same client, permits, tallies and metrics, for another server (WeCom's API): every
    /// upstream call counts against one bound and shows on one status page.
    pub(super) fn with_base(&self, api_base: String) -> Self {
        Upstream {
            api_base,
            ..self.clone()
        }
    }

    /// The round trips so far, as the status page shows them.
    pub(super) fn stats(&self, now: Instant) -> UpstreamStats {
        self.tally.borrow_mut().stats(now)
    }

    /// One round trip and the parsing of its answer, counted for the status page and metrics
    /// (WeChat's errcodes included: they arrive in HTTP 200 bodies).
    pub(super) async fn call<T>(
        &self,
        request: awc::ClientRequest,
        json: Option<serde_json::Value>,
        parse: impl FnOnce(&[u8]) -> Reply<T>,
    ) -> Reply<T> {
        let started = Instant::now();
        let result = self
            .round_trip(request, json)
            .await
            .and_then(|body| parse(&body));
        let latency = started.elapsed();
        let error = result.as_ref().err().map(WeChatError::errcode_label);
        self.metrics
            .observe(latency.as_secs_f64(), error.as_deref());
        self.tally.borrow_mut().record(latency, error);
        result
    }

    /// One round trip, bounded by the configured timeout as a whole (awc's own timeout does not
    /// cover reading the body). Answers the body bytes of an HTTP 200.
    async fn round_trip(
        &self,
        request: awc::ClientRequest,
        json: Option<serde_json::Value>,
    ) -> Reply<actix_web::web::Bytes> {
        let _permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| WeChatError::Overloaded)?;
        let round_trip = async move {
            let sent = match json {
                Some(body) => request.send_json(&body).await,
                None => request.send().await,
            };
            let mut response = sent.map_err(|e| match e {
                awc::error::SendRequestError::Timeout => WeChatError::Timeout,
                // An HTTP client's error may quote what the server sent.
                other => WeChatError::Transport(loggable_upstream_text(&other.to_string())),
            })?;
            if !response.status().is_success() {
                return Err(WeChatError::HttpStatus(response.status().as_u16()));
            }
            response.body().limit(MAX_BODY).await.map_err(|e| match e {
                awc::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                    WeChatError::Timeout
                }
                other => WeChatError::BadResponse(format!(
                    "unreadable body: {}",
                    loggable_upstream_text(&other.to_string())
                )),
            })
        };
        match tokio::time::timeout(self.timeout, round_trip).await {
            Ok(result) => result,
            Err(_) => Err(WeChatError::Timeout),
        }
    }

    pub(super) fn get<Q: Serialize>(&self, path: &str, query: &Q) -> Reply<awc::ClientRequest> {
        self.http
            .get(format!("{}{path}", self.api_base))
            .query(query)
            .map_err(|e| WeChatError::Transport(format!("cannot build request: {e}")))
    }

    pub(super) fn post<Q: Serialize>(&self, path: &str, query: &Q) -> Reply<awc::ClientRequest> {
        self.http
            .post(format!("{}{path}", self.api_base))
            .query(query)
            .map_err(|e| WeChatError::Transport(format!("cannot build request: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use actix_web::{App, HttpResponse, HttpServer, web};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream answering every request after `delay`, counting the requests it received.
    fn slow_upstream(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = HttpServer::new(move || {
            let counter = counter.clone();
            App::new().default_service(web::to(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    actix_web::rt::time::sleep(delay).await;
                    HttpResponse::Ok().body("{}")
                }
            }))
        })
        .listen(listener)
        .expect("listen")
        .workers(1)
        .disable_signals()
        .run();
        actix_web::rt::spawn(server);
        (base, received)
    }

    #[actix_web::test]
    async fn every_call_let_through_is_sent_at_once_and_the_rest_never_reach_the_upstream() {
        // An upstream answering in 300 ms, a timeout of 500 ms: a call that waited for a
        // connection behind a full round trip would be sent late and abandoned after the
        // upstream received it (a spent login code). With as many connections as permits, every
        // permitted call is sent at once and answered; the ones beyond are refused unsent.
        const LIMIT: usize = 16;
        let (base, received) = slow_upstream(Duration::from_millis(300));
        let metrics = Metrics::new().expect("metrics").wechat_for("wxtest");
        let upstream = Upstream::bounded(base, Duration::from_millis(500), metrics, LIMIT);
        let calls = (0..LIMIT + 4).map(|_| {
            let upstream = upstream.clone();
            async move {
                let request = upstream.get("/sns/jscode2session", &())?;
                upstream.call(request, None, |body| Ok(body.len())).await
            }
        });
        let results = futures_util::future::join_all(calls).await;
        let answered = results.iter().filter(|r| r.is_ok()).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(WeChatError::Overloaded)))
            .count();
        assert_eq!((answered, refused), (LIMIT, 4), "{results:?}");
        assert_eq!(received.load(Ordering::SeqCst), LIMIT);
    }
}
