//! The binary's logger (env_logger, as `text` or `json` lines on stderr) and the request id that
//! every line caused by a request carries in `json`.
//!
//! How a line finds its request: the request-log middleware runs the whole request under
//! `RequestId::scope`, a task-local, so every line written while that request's future is polled
//! (handlers, extractors, error answers, middleware) sees it. A task-local does not follow a
//! message to an actor: the actor handles it on its own task, often on another thread. So the
//! messages whose handling logs (the WeChatClient's) carry the sender's `RequestId::current()`
//! in their envelope, and the actor writes those lines under `RequestId::sync_scope` (or runs its
//! reply future under `RequestId::scope`). Work shared by many requests (a batch of `login_log`
//! rows, a periodic sweep, a throttled summary line) belongs to none and has no id.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{LogFormat, RUST_LOG};

tokio::task_local! {
    static CURRENT: Option<RequestId>;
}

/// A request's id, as answered in `X-Request-Id`: at most 64 characters of `[A-Za-z0-9_-]`
/// (the middleware checks a client's), so it is safe in any log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub(crate) fn new(id: &str) -> RequestId {
        RequestId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the request whose work is running here, if any.
    pub fn current() -> Option<RequestId> {
        CURRENT.try_with(Clone::clone).ok().flatten()
    }

    /// Runs `work` as part of request `id`: every line it writes, across awaits, carries the id.
    pub(crate) fn scope<F: Future>(
        id: Option<RequestId>,
        work: F,
    ) -> impl Future<Output = F::Output> {
        CURRENT.scope(id, work)
    }

    /// Runs `work` (synchronous) as part of request `id`.
    pub(crate) fn sync_scope<R>(id: Option<RequestId>, work: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(id, work)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `json` line's fields, in this order.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    level: &'a str,
    target: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// `record` as one line of JSON (no newline): the same message text as the `text` format, plus
/// the time (RFC 3339, UTC, microseconds) and the current request's id. serde_json escapes
/// control characters, so a message with a newline in it still makes one line.
pub fn json_line(record: &log::Record) -> String {
    json_text(record.level(), record.target(), &record.args().to_string())
}

/// A line in the `json` format for text that is not a `log` record (a fatal start error, a
/// panic).
pub fn json_text(level: log::Level, target: &str, message: &str) -> String {
    let request_id = RequestId::current();
    let line = JsonLine {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        level: level.as_str(),
        target,
        message: message.to_string(),
        request_id: request_id.as_ref().map(RequestId::as_str),
    };
    // Serialising strings into a String cannot fail; the fallback keeps the line valid JSON.
    serde_json::to_string(&line).unwrap_or_else(|_| {
        format!(
            r#"{{"level":"{}","target":"wxauth","message":"unprintable log line"}}"#,
            level.as_str()
        )
    })
}

/// Starts the process's logger: `RUST_LOG` filters, `format` decides the lines. In `json`, a
/// panic is logged as one `json` line too, instead of the default hook's text.
pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(
        env_logger::Env::default().filter_or(RUST_LOG.name, RUST_LOG.default),
    );
    if format == LogFormat::Json {
        builder.format(|buf, record| writeln!(buf, "{}", json_line(record)));
        std::panic::set_hook(Box::new(|info| {
            eprintln!(
                "{}",
                json_text(log::Level::Error, "panic", &info.to_string())
            );
        }));
    }
    builder.init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> serde_json::Value {
        let text = json_line(
            &log::Record::builder()
                .args(format_args!("{message}"))
                .level(log::Level::Warn)
                .target("wxauth::test")
                .build(),
        );
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).expect("valid JSON")
    }

    #[test]
    fn a_line_has_its_fields_and_stays_one_line_whatever_the_message() {
        let parsed = line("two\nlines with \"quotes\" and \u{1} a control character");
        assert_eq!(parsed["level"], "WARN");
        assert_eq!(parsed["target"], "wxauth::test");
        assert_eq!(
            parsed["message"],
            "two\nlines with \"quotes\" and \u{1} a control character"
        );
        let time = parsed["time"].as_str().expect("time");
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert!(time.ends_with('Z'), "UTC: {time}");
        assert!(parsed.get("request_id").is_none(), "no request, no id");
    }

    #[test]
    fn the_request_id_is_there_inside_its_scope_only() {
        let inside = RequestId::sync_scope(Some(RequestId::new("req-1")), || line("in"));
        assert_eq!(inside["request_id"], "req-1");
        let none = RequestId::sync_scope(None, || line("in, without an id"));
        assert!(none.get("request_id").is_none());
        assert!(line("after").get("request_id").is_none());
    }

    #[actix_web::test]
    async fn the_request_id_follows_the_work_across_awaits() {
        let id = RequestId::scope(Some(RequestId::new("req-2")), async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            RequestId::current()
        })
        .await;
        assert_eq!(id, Some(RequestId::new("req-2")));
        assert_eq!(RequestId::current(), None);
    }
}
