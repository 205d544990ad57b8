//! WebSocket session with a Realtime server: connect, then a thin handle over two tasks.
//!
//! [`connect`] performs the HTTP upgrade (with `Authorization: Bearer …` when a key is set, and
//! never the `OpenAI-Beta` header: GA servers answer it with `beta_api_shape_disabled` and close).
//! It then spawns one reader task (frames → [`ModelInput`]) and one writer task
//! ([`ClientEvent`] → frames). The call task talks to them through bounded channels only.
//!
//! Sending never waits: [`ModelSender::send`] uses `try_send` on a bounded queue, so a slow model
//! socket can never stall the media path; a full queue is reported as [`ModelError::QueueFull`]
//! and the caller decides (drop the audio frame and count it). Receiving is a plain bounded
//! `mpsc::Receiver`; if the call task falls behind, the reader stops reading the socket and TCP
//! pushes back on the server.
//!
//! Left out: reconnecting (a Realtime session cannot be resumed; the call falls back instead),
//! and the 60-minute session limit (the server closes; that arrives as [`ModelInput::Closed`]).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, warn};

use super::protocol::{self, ClientEvent, ServerEvent};
use crate::ops::metrics;

/// Events queued towards the server: ~5 s of 20 ms audio appends plus control events.
pub const SEND_QUEUE: usize = 256;
/// Server events queued towards the call task.
pub const RECV_QUEUE: usize = 512;
/// How long the writer waits for the server's close reply before dropping the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How much of a refusal body is kept in [`ModelError::Refused`].
const REFUSAL_BODY_MAX: usize = 512;

/// A credential that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself; only for building the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where and how to reach the model.
#[derive(Debug, Clone)]
pub struct ModelEndpoint {
    /// `wss://api.openai.com/v1/realtime`, an Azure-style URL, or the simulator's `ws://` URL.
    pub url: String,
    /// Model name, appended as `?model=` for api.openai.com when the URL has none.
    pub model: String,
    /// Bearer token; `None` for servers that need none (the simulator).
    pub api_key: Option<Secret>,
}

impl ModelEndpoint {
    /// The URL actually dialled: for `api.openai.com`, `model=<name>` is appended when the query
    /// has no `model`; any other `ws://` / `wss://` URL is used as is.
    pub fn request_url(&self) -> Result<String, ModelError> {
        let bad = |reason: &str| ModelError::BadUrl {
            url: self.url.clone(),
            reason: reason.to_owned(),
        };
        let uri: Uri = self.url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("ws") | Some("wss") => {}
            _ => return Err(bad("scheme must be ws:// or wss://")),
        }
        if uri.host() != Some("api.openai.com") {
            return Ok(self.url.clone());
        }
        let has_model = uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some("model")));
        if has_model {
            return Ok(self.url.clone());
        }
        if self.model.is_empty() {
            return Err(bad("api.openai.com needs a model name"));
        }
        let sep = if uri.query().is_some() { '&' } else { '?' };
        Ok(format!(
            "{}{sep}model={}",
            self.url,
            percent_encode(&self.model)
        ))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why talking to the model failed. Variants say who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Configuration: the URL is unusable.
    #[error("bad model URL {url:?}: {reason}")]
    BadUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Network or server: no WebSocket within the handshake timeout.
    #[error("model handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// Server (or configuration, for 401/403): the upgrade was answered with an HTTP status.
    #[error("model server refused the upgrade with HTTP {status}: {body}")]
    Refused {
        /// HTTP status, e.g. 401 for a bad key.
        status: u16,
        /// Start of the response body (the API's error JSON), key scrubbed.
        body: String,
    },
    /// Network: TCP connect (or DNS) failed.
    #[error("cannot connect to the model server: {0}")]
    Connect(#[source] std::io::Error),
    /// Network or build: TLS failed (bad certificate, or no TLS crypto provider in this build).
    #[error("TLS with the model server failed: {0}")]
    Tls(String),
    /// Server: WebSocket protocol violation during the handshake.
    #[error("WebSocket protocol error: {0}")]
    Protocol(String),
    /// The session is over; nothing more can be sent.
    #[error("model session closed")]
    Closed,
    /// Us: the send queue is full (the model socket is not keeping up). Nothing was queued.
    #[error("model send queue full")]
    QueueFull,
}

impl ModelError {
    /// Whether the server refused our credentials (401/403): retrying will not help.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ModelError::Refused {
                status: 401 | 403,
                ..
            }
        )
    }

    /// A short, stable name for metrics (`voxgate_model_errors_total{kind=…}`).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelError::BadUrl { .. } => "bad_url",
            ModelError::HandshakeTimeout(_) => "handshake_timeout",
            ModelError::Refused { .. } => "refused",
            ModelError::Connect(_) => "connect",
            ModelError::Tls(_) => "tls",
            ModelError::Protocol(_) => "protocol",
            ModelError::Closed => "closed",
            ModelError::QueueFull => "queue_full",
        }
    }
}

/// What the reader task delivers to the call task.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelInput {
    /// A decoded server event.
    Event(ServerEvent),
    /// The session ended; no more input follows.
    Closed(CloseReason),
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The server sent a close frame (1000 after our own close; 1011 and others on failure).
    Peer {
        /// WebSocket close code (1005 when the frame carried none).
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// The connection broke without a close frame.
    Transport(String),
}

/// Cloneable, non-blocking sending half of a session.
#[derive(Debug, Clone)]
pub struct ModelSender {
    tx: mpsc::Sender<ClientEvent>,
}

impl ModelSender {
    /// Queues `event` without waiting: [`ModelError::QueueFull`] when the queue is full,
    /// [`ModelError::Closed`] when the session is over. Safe to call on the media path.
    pub fn send(&self, event: ClientEvent) -> Result<(), ModelError> {
        self.tx.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ModelError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => ModelError::Closed,
        })
    }
}

/// A live session: a sender and the stream of server events. Dropping it (and every
/// [`ModelSender`] clone) closes the WebSocket with code 1000.
#[derive(Debug)]
pub struct ModelSession {
    sender: ModelSender,
    /// Server events in arrival order, ending with one [`ModelInput::Closed`].
    pub events: mpsc::Receiver<ModelInput>,
}

impl ModelSession {
    /// Queues `event` without waiting (see [`ModelSender::send`]).
    pub fn send(&self, event: ClientEvent) -> Result<(), ModelError> {
        self.sender.send(event)
    }

    /// The next server input; `None` after `Closed` has been taken and the reader is gone.
    pub async fn recv(&mut self) -> Option<ModelInput> {
        self.events.recv().await
    }

    /// A cloneable sender, e.g. for a tool task answering a function call.
    pub fn sender(&self) -> ModelSender {
        self.sender.clone()
    }

    /// Splits into the sender and the event stream, for a `select!` loop.
    pub fn into_parts(self) -> (ModelSender, mpsc::Receiver<ModelInput>) {
        (self.sender, self.events)
    }
}

/// Opens a session: HTTP upgrade within `handshake_timeout`, then spawns the reader and writer.
/// The handshake time, or the failure's kind, goes to the metrics.
pub async fn connect(
    endpoint: &ModelEndpoint,
    handshake_timeout: Duration,
) -> Result<ModelSession, ModelError> {
    let started = std::time::Instant::now();
    let result = open(endpoint, handshake_timeout).await;
    match &result {
        Ok(_) => metrics::model_connected(started.elapsed()),
        Err(e) => metrics::model_error(e.kind()),
    }
    result
}

async fn open(
    endpoint: &ModelEndpoint,
    handshake_timeout: Duration,
) -> Result<ModelSession, ModelError> {
    let url = endpoint.request_url()?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ModelError::BadUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    if let Some(key) = &endpoint.api_key {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                ModelError::BadUrl {
                    url: url.clone(),
                    reason: "API key contains characters not allowed in a header".into(),
                }
            })?;
        value.set_sensitive(true);
        request.headers_mut().insert("Authorization", value);
    }
    debug!(%url, model = %endpoint.model, keyed = endpoint.api_key.is_some(), "connecting to model");

    // The handshake runs in its own task: with no rustls crypto provider compiled in,
    // rustls panics while building its config; that must not take the call task down.
    let mut handshake = tokio::spawn(tokio_tungstenite::connect_async(request));
    let result = match tokio::time::timeout(handshake_timeout, &mut handshake).await {
        Err(_) => {
            handshake.abort();
            return Err(ModelError::HandshakeTimeout(handshake_timeout));
        }
        Ok(Err(join)) if join.is_panic() => {
            return Err(ModelError::Tls(
                "TLS stack unavailable (no rustls crypto provider in this build)".into(),
            ))
        }
        Ok(Err(_)) => return Err(ModelError::Closed),
        Ok(Ok(result)) => result,
    };
    let (ws, response) = result.map_err(|e| map_handshake_error(e, endpoint.api_key.as_ref()))?;
    debug!(status = response.status().as_u16(), "model WebSocket open");

    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<ClientEvent>(SEND_QUEUE);
    let (events_tx, events) = mpsc::channel::<ModelInput>(RECV_QUEUE);
    let closed_once = Arc::new(AtomicBool::new(false));
    // Dropped when the reader ends, so the writer stops too and the stream ends after `Closed`.
    let (reader_gone_tx, mut reader_gone) = oneshot::channel::<()>();

    let reader = {
        let events_tx = events_tx.clone();
        let closed_once = closed_once.clone();
        tokio::spawn(async move {
            let _reader_gone_tx = reader_gone_tx;
            let reason = loop {
                let msg = match stream.next().await {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => break CloseReason::Transport(e.to_string()),
                    None => break CloseReason::Transport("connection ended without close".into()),
                };
                match msg {
                    Message::Text(text) => match protocol::decode(text.as_str()) {
                        Ok(event) => {
                            if events_tx.send(ModelInput::Event(event)).await.is_err() {
                                return; // the call task is gone
                            }
                        }
                        Err(e) => warn!(error = %e, "undecodable model event skipped"),
                    },
                    Message::Close(frame) => {
                        break match frame {
                            Some(f) => CloseReason::Peer {
                                code: f.code.into(),
                                reason: f.reason.to_string(),
                            },
                            None => CloseReason::Peer {
                                code: 1005,
                                reason: String::new(),
                            },
                        }
                    }
                    Message::Binary(b) => warn!(len = b.len(), "binary model frame ignored"),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            };
            report_closed(&events_tx, &closed_once, reason).await;
        })
    };

    let reader_abort = reader.abort_handle();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = &mut reader_gone => return, // connection over; drop the queue
            };
            let text = protocol::encode(&event);
            if let Err(e) = sink.send(Message::text(text)).await {
                warn!(error = %e, kind = event.kind(), "model send failed");
                report_closed(
                    &events_tx,
                    &closed_once,
                    CloseReason::Transport(e.to_string()),
                )
                .await;
                return;
            }
        }
        // Every sender dropped: close politely, give the server a moment to answer.
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
        if tokio::time::timeout(CLOSE_GRACE, reader).await.is_err() {
            reader_abort.abort();
        }
    });

    Ok(ModelSession {
        sender: ModelSender { tx },
        events,
    })
}

/// Sends `Closed` once, whichever task notices the end first.
async fn report_closed(
    events_tx: &mpsc::Sender<ModelInput>,
    closed_once: &AtomicBool,
    reason: CloseReason,
) {
    if !closed_once.swap(true, Ordering::SeqCst) {
        debug!(?reason, "model session closed");
        match &reason {
            CloseReason::Transport(_) => metrics::model_error("transport"),
            // 1000 normal (also the answer to our own close), 1001 going away, 1005 no code.
            CloseReason::Peer { code, .. } if !matches!(code, 1000 | 1001 | 1005) => {
                metrics::model_error("server_close")
            }
            CloseReason::Peer { .. } => {}
        }
        let _ = events_tx.send(ModelInput::Closed(reason)).await;
    }
}

fn map_handshake_error(e: tungstenite::Error, key: Option<&Secret>) -> ModelError {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let mut body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if let Some(key) = key.filter(|k| !k.expose().is_empty()) {
                body = body.replace(key.expose(), "***");
            }
            if body.len() > REFUSAL_BODY_MAX {
                let mut end = REFUSAL_BODY_MAX;
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                body.truncate(end);
            }
            ModelError::Refused { status, body }
        }
        tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            ModelError::Tls(io.to_string())
        }
        tungstenite::Error::Io(io) => ModelError::Connect(io),
        tungstenite::Error::Tls(tls) => ModelError::Tls(tls.to_string()),
        tungstenite::Error::Url(url) => ModelError::BadUrl {
            url: String::new(),
            reason: url.to_string(),
        },
        other => ModelError::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> ModelEndpoint {
        ModelEndpoint {
            url: url.into(),
            model: "gpt-realtime".into(),
            api_key: Some(Secret::new("sk-test-123")),
        }
    }

    #[test]
    fn openai_url_gets_model_param_once() {
        assert_eq!(
            endpoint("wss://api.openai.com/v1/realtime")
                .request_url()
                .unwrap(),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        assert_eq!(
            endpoint("wss://api.openai.com/v1/realtime?model=other")
                .request_url()
                .unwrap(),
            "wss://api.openai.com/v1/realtime?model=other"
        );
        assert_eq!(
            endpoint("wss://api.openai.com/v1/realtime?x=1")
                .request_url()
                .unwrap(),
            "wss://api.openai.com/v1/realtime?x=1&model=gpt-realtime"
        );
    }

    #[test]
    fn other_urls_are_used_as_is() {
        let azure = "wss://res.openai.azure.com/openai/realtime?api-version=2025-08-28&deployment=gpt-realtime";
        assert_eq!(endpoint(azure).request_url().unwrap(), azure);
        assert_eq!(
            endpoint("ws://127.0.0.1:9/x").request_url().unwrap(),
            "ws://127.0.0.1:9/x"
        );
        assert!(matches!(
            endpoint("https://api.openai.com/v1/realtime").request_url(),
            Err(ModelError::BadUrl { .. })
        ));
        assert!(endpoint("sim").request_url().is_err());
    }

    #[test]
    fn key_never_in_debug_output() {
        let text = format!("{:?}", endpoint("wss://api.openai.com/v1/realtime"));
        assert!(!text.contains("sk-test-123"), "{text}");
        assert!(text.contains("***"));
    }

    #[tokio::test]
    async fn handshake_timeout_is_reported() {
        // A listener that accepts TCP but never answers the upgrade.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let err = connect(
            &endpoint(&format!("ws://{addr}/")),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ModelError::HandshakeTimeout(_)), "{err}");
    }

    #[tokio::test]
    async fn wss_failure_is_an_error_not_a_panic() {
        // The peer drops the TCP connection at once. Whether this build has a rustls crypto
        // provider (TLS error before dialling) or not (EOF during the TLS handshake), the caller
        // gets an error value.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let err = connect(
            &endpoint(&format!("wss://localhost:{}/", addr.port())),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ModelError::Tls(_) | ModelError::Connect(_)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refused_connection_is_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = connect(&endpoint(&format!("ws://{addr}/")), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::Connect(_)), "{err}");
    }
}
