//! An answer as the tests read it, from the in-process server (`TestApp`) or the binary
//! (`BinaryApp`): status, headers, and the body as JSON and as text.

use awc::error::PayloadError;
use serde_json::Value;

/// A response: HTTP status and the JSON body (Null when the body is not JSON).
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub raw: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// Reads a response to its end; an error when the body breaks off.
    pub async fn read<S>(mut response: awc::ClientResponse<S>) -> Result<Reply, PayloadError>
    where
        S: futures_util::Stream<Item = Result<actix_web::web::Bytes, PayloadError>> + Unpin,
    {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).to_string(),
                )
            })
            .collect();
        let bytes = response.body().limit(1 << 20).await?;
        Ok(Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            raw: String::from_utf8_lossy(&bytes).to_string(),
            headers,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn errno(&self) -> i64 {
        self.body["errno"].as_i64().unwrap_or(i64::MIN)
    }

    pub fn token(&self) -> String {
        self.body["data"]["token"]
            .as_str()
            .expect("a token in the answer")
            .to_string()
    }
}
