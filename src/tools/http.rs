//! Outgoing HTTP for tools: webhook look-ups and ticket forwarding.
//!
//! Requests carry JSON; when a signing secret is configured they carry
//! `X-Voxgate-Timestamp: <unix seconds>` and
//! `X-Voxgate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, so the receiver
//! can check both origin and freshness. An `Idempotency-Key` header, the same on every retry,
//! lets the receiver drop duplicates. Answers are read up to [`MAX_BODY`] bytes. Secrets never
//! appear in errors or logs.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::{debug, info};

/// Largest answer body kept; the rest is cut (the model gets a note that it was cut).
pub const MAX_BODY: usize = 16 * 1024;

/// HTTP method of a tool request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Arguments as query parameters.
    Get,
    /// JSON body.
    Post,
    /// JSON body.
    Put,
    /// JSON body.
    Patch,
}

/// One tool request, possibly retried.
#[derive(Debug, Clone)]
pub struct Request {
    /// Target URL.
    pub url: String,
    /// Method.
    pub method: Method,
    /// Extra headers, as configured.
    pub headers: BTreeMap<String, String>,
    /// The JSON arguments (query parameters for GET).
    pub json: serde_json::Value,
    /// The HMAC secret, if requests are signed.
    pub secret: Option<Vec<u8>>,
    /// Sent as `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Limit per attempt.
    pub timeout: Duration,
    /// Further attempts after a retryable failure (network, timeout, 429, 5xx).
    pub retries: u32,
    /// Pause before the first retry; doubles each time, at most 4 s.
    pub backoff: Duration,
}

/// A final answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body, at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
    /// The body was longer and was cut.
    pub truncated: bool,
    /// Attempts made.
    pub attempts: u32,
}

impl Reply {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON if it is JSON, else as a string.
    pub fn body_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&self.body).into())
        })
    }
}

/// The request could not get a final answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(pub String);

/// `sha256=<hex>` over `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(), // not reachable: HMAC takes keys of any length
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Sends `req`, retrying retryable failures with doubling pauses; returns the final answer
/// (which may be a 4xx) or why none came.
pub async fn send(client: &reqwest::Client, req: &Request) -> Result<Reply, HttpError> {
    let body = serde_json::to_vec(&req.json).map_err(|e| HttpError(e.to_string()))?;
    let mut pause = req.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = once(client, req, &body).await;
        let retryable = match &result {
            Ok(r) => r.status == 429 || r.status >= 500,
            Err(_) => true,
        };
        if !retryable || attempt > req.retries {
            return match result {
                Ok(mut r) => {
                    r.attempts = attempt;
                    Ok(r)
                }
                Err(e) => Err(HttpError(format!("{e} (after {attempt} attempts)"))),
            };
        }
        match &result {
            Ok(r) => info!(status = r.status, attempt, "tool request failed; retrying"),
            Err(e) => info!(error = %e, attempt, "tool request failed; retrying"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(4));
    }
}

async fn once(client: &reqwest::Client, req: &Request, body: &[u8]) -> Result<Reply, HttpError> {
    let mut rb = match req.method {
        Method::Get => {
            let query: Vec<(String, String)> = req
                .json
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let s = match v {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            (k.clone(), s)
                        })
                        .collect()
                })
                .unwrap_or_default();
            client.get(&req.url).query(&query)
        }
        Method::Post => client.post(&req.url),
        Method::Put => client.put(&req.url),
        Method::Patch => client.patch(&req.url),
    };
    if req.method != Method::Get {
        rb = rb
            .header("Content-Type", "application/json")
            .body(body.to_vec());
    }
    for (k, v) in &req.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    if let Some(key) = &req.idempotency_key {
        rb = rb.header("Idempotency-Key", key.as_str());
    }
    if let Some(secret) = &req.secret {
        let ts = chrono::Utc::now().timestamp();
        let signed: &[u8] = if req.method == Method::Get { b"" } else { body };
        rb = rb
            .header("X-Voxgate-Timestamp", ts.to_string())
            .header("X-Voxgate-Signature", signature(secret, ts, signed));
    }
    let send = async {
        let mut resp = rb.send().await.map_err(|e| HttpError(describe(&e)))?;
        let status = resp.status().as_u16();
        let mut out = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = resp.chunk().await.map_err(|e| HttpError(describe(&e)))? {
            let room = MAX_BODY - out.len();
            if chunk.len() > room {
                out.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            body: out,
            truncated,
            attempts: 1,
        })
    };
    match tokio::time::timeout(req.timeout, send).await {
        Ok(r) => r,
        Err(_) => {
            debug!(url = %req.url, "tool request timed out");
            Err(HttpError(format!("no answer within {:?}", req.timeout)))
        }
    }
}

/// A short reason without the URL's query string (it may carry tokens).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "bad answer body"
    } else if e.is_request() {
        "request failed"
    } else {
        "HTTP error"
    };
    match e.url() {
        Some(u) => format!(
            "{kind}: {}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.path()
        ),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 key/data, with the "timestamp." prefix folded into the data.
        let sig = signature(b"Jefe", 0, b"");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert_eq!(signature(b"Jefe", 0, b""), sig, "deterministic");
        assert_ne!(signature(b"Jefe", 1, b""), sig, "timestamp is signed");
        assert_ne!(signature(b"Jefe", 0, b"x"), sig, "body is signed");
        // Known value: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("key");
        mac.update(b"The quick brown fox jumps over the lazy dog");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
