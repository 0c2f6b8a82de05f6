//! Middleware: the request deadline of the mini-program API, one log line per request, and the
//! headers every answer carries.

use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::web;
use actix_web::{Error, ResponseError};

use super::AppState;
use crate::error::{ApiError, BUSY_ERRNO, Errno};
use crate::logging::RequestId;
use crate::metrics::{UNMATCHED_ROUTE, method_label};

/// Every answer within the mini-program's 3 s `wx.request` timeout: an answer later than that is
/// never seen, while a 502 in time tells the client to retry. Work already handed to an actor
/// still completes; only the wait is cut.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_millis(2800);

pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// When the deadline started counting, in the request's extensions: a handler that must plan
/// its work (a login keeps time for the database after WeChat) knows how much is left.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeadlineStart(pub(crate) Instant);

impl DeadlineStart {
    /// The time left until the answer is due; the whole deadline when none is recorded.
    pub(crate) fn left(req: &actix_web::HttpRequest) -> Duration {
        use actix_web::HttpMessage;
        let started = req.extensions().get::<DeadlineStart>().map(|s| s.0);
        match started {
            Some(at) => REQUEST_DEADLINE.saturating_sub(at.elapsed()),
            None => REQUEST_DEADLINE,
        }
    }
}

/// Wraps each API resource (not the scope: a clone of the request taken before routing would
/// stop the router from writing the matched path into it).
pub(crate) async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    {
        use actix_web::HttpMessage;
        req.extensions_mut().insert(DeadlineStart(Instant::now()));
    }
    let http_req = req.request().clone();
    match tokio::time::timeout(REQUEST_DEADLINE, next.call(req)).await {
        Ok(res) => res.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            // The route pattern, not the raw path: the line's text is its kind in the log
            // throttle, so it must not vary with what the client typed.
            let route = http_req
                .match_pattern()
                .unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
            let err = ApiError::serious(format!(
                "{route} missed its {} ms deadline",
                REQUEST_DEADLINE.as_millis()
            ));
            Ok(ServiceResponse::new(http_req, err.error_response()))
        }
    }
}

/// `X-Content-Type-Options: nosniff` on every answer: a browser must never guess a JSON or
/// text answer (which can echo what a client sent) to be HTML or script.
pub(crate) fn nosniff() -> DefaultHeaders {
    DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

/// The client's request id when it is a sane token, else a new one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(crate::random::request_id)
}

/// One line per request: request id, method, route pattern (never the raw path or query, which
/// can carry codes), status, errno and latency; the id is also returned in `X-Request-Id`, so a
/// client's report can be matched to the line. Tokens, bodies and headers are never logged. The
/// request runs as `RequestId::scope`, so every line it causes carries the id in `json` logs.
pub(crate) async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let in_request = Some(RequestId::new(&id));
    // A made-up method can be kilobytes long: the log gets the same closed set as the metrics.
    let method = method_label(req.method());
    let mut res = RequestId::scope(in_request.clone(), next.call(req)).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
    let errno = res.response().extensions().get::<Errno>().map(|e| e.0);
    // Refusals are summarised once a second where they are decided; a line each would cost
    // as much as the refusal under exactly the load that causes them.
    if errno != Some(BUSY_ERRNO) {
        let errno = errno.map_or_else(|| "-".to_string(), |e| e.to_string());
        RequestId::sync_scope(in_request, || {
            log::info!(
                target: "wxauth::request",
                "{id} {method} {route} {} errno={errno} {:.1}ms",
                res.status().as_u16(),
                started.elapsed().as_secs_f64() * 1000.0
            )
        });
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

/// While the instance drains before stopping, every answer closes its connection: a proxy then
/// opens a new one for its next request (soon refused, and retried on another instance) instead
/// of reusing one this instance is about to close under it.
pub(crate) async fn close_when_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let drain = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.drain.clone());
    let mut res = next.call(req).await?;
    if drain.is_some_and(|d| d.is_draining()) {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

/// The `Host` names dev mode answers. Its fake WeChat logs anyone in as anyone, so a web page
/// the developer visits must not reach it: through DNS rebinding (a name of the attacker's that
/// first resolves to the attacker and then to 127.0.0.1) such a page's requests arrive with the
/// attacker's name as `Host`. Only names that cannot be rebound are answered: `localhost`, a
/// loopback address, the address of `BIND_ADDR`, and, when `ALLOW_DEV_MODE_ON_NETWORK=1` opened
/// dev mode to the network on purpose, any IP address (a device reaching it by address).
#[derive(Debug, Clone)]
pub(crate) struct DevHosts {
    bind_ip: std::net::IpAddr,
    any_ip: bool,
}

impl DevHosts {
    /// `None` in production, which answers any `Host` (its proxy routes by name).
    pub(crate) fn of(config: &crate::config::Config) -> Option<DevHosts> {
        config.is_dev_mode().then(|| DevHosts {
            bind_ip: config.http.bind_addr.ip(),
            any_ip: config.http.dev_mode_on_network,
        })
    }

    pub(crate) fn allows(&self, host: &str) -> bool {
        let host = host.trim();
        let name = match host.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((ip, rest))
                    if rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port) =>
                {
                    ip
                }
                _ => return false,
            },
            None => match host.rsplit_once(':') {
                Some((name, port)) if is_port(port) => name,
                _ => host,
            },
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match name.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                self.any_ip || ip.is_loopback() || ip == self.bind_ip.to_canonical()
            }
            Err(_) => false,
        }
    }
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// In dev mode, answers 421 to a request whose `Host` is not one `DevHosts` allows. A request
/// without `Host` (HTTP/1.0) comes from no browser and is answered.
pub(crate) async fn dev_hosts_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, Error> {
    let refused = req.app_data::<DevHosts>().is_some_and(|hosts| {
        req.headers()
            .get(header::HOST)
            .is_some_and(|h| h.to_str().map_or(true, |h| !hosts.allows(h)))
    });
    if refused {
        let res = actix_web::HttpResponse::MisdirectedRequest()
            .content_type("text/plain; charset=utf-8")
            .body(
                "dev mode answers only Host localhost, 127.0.0.1, [::1] or the address of \
                 BIND_ADDR (a web page must not reach its fake WeChat by DNS rebinding): \
                 use http://127.0.0.1:<port>/\n",
            );
        return Ok(req.into_response(res));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod dev_host_tests {
    use super::DevHosts;

    #[test]
    fn dev_mode_answers_only_names_that_cannot_be_rebound() {
        let local = DevHosts {
            bind_ip: "127.0.0.1".parse().expect("ip"),
            any_ip: false,
        };
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.:80",
            "127.0.0.1",
            "127.0.0.1:18080",
            "[::1]",
            "[::1]:8080",
            "127.0.0.2:1",
        ] {
            assert!(local.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "192.168.1.5:8080",
            "[::1]x",
            "[2001:db8::1]:80",
            "",
            "localhost:port",
        ] {
            assert!(!local.allows(host), "{host}");
        }
        let lan = DevHosts {
            bind_ip: "192.168.1.5".parse().expect("ip"),
            any_ip: false,
        };
        assert!(lan.allows("192.168.1.5:8080"), "the BIND_ADDR host");
        let network = DevHosts {
            bind_ip: "0.0.0.0".parse().expect("ip"),
            any_ip: true,
        };
        assert!(
            network.allows("10.1.2.3:8080"),
            "an address, on a network opened on purpose"
        );
        assert!(!network.allows("evil.example:8080"), "never a name");
    }
}
