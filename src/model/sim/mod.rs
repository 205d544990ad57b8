//! The built-in Realtime simulator: a WebSocket server that behaves, as far as voxgate can
//! observe, like the OpenAI Realtime GA endpoint, driven by a [`SimScript`].
//!
//! Used by tests and by the quick start (`model.url: sim`, `voxgate sim-model`), so voxgate runs
//! without an API key. [`serve`] accepts upgrades on any path; each connection is a thin driver
//! task around the sans-IO [`core::SimConn`]: it reads frames, feeds them in, drains the
//! outputs, runs speech synthesis off the loop, and sleeps until the machine's next timeout.
//! What the simulator models and leaves out is listed in [`core`].

mod audio;
pub mod core;
pub mod script;
mod stats;
mod vad;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use self::audio::Tts;
pub use self::audio::{tones, TONE_MS_PER_CHAR};
use self::core::{Input, Output, SimConn};
pub use self::script::{
    Failure, FunctionCallScript, Pace, ScriptError, SimScript, Turn, VadScript, VoiceMode,
};
pub use self::stats::{ConnStats, FunctionOutputRecord, SimStats, TruncateRecord};
use crate::model::protocol::encode_server;

/// A running in-process simulator.
#[derive(Debug)]
pub struct SimHandle {
    /// Where it listens (127.0.0.1, ephemeral port).
    pub addr: SocketAddr,
    /// What it observed, per connection.
    pub stats: Arc<SimStats>,
    task: JoinHandle<()>,
}

impl SimHandle {
    /// The `ws://` URL to give to [`crate::model::client::ModelEndpoint`].
    pub fn url(&self) -> String {
        format!("ws://{}/v1/realtime", self.addr)
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a simulator on 127.0.0.1 with an ephemeral port; it stops when the handle drops.
pub async fn spawn_local(script: Arc<SimScript>) -> io::Result<SimHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(SimStats::default());
    let task = tokio::spawn({
        let stats = stats.clone();
        async move {
            if let Err(e) = serve_with_stats(listener, script, stats).await {
                warn!(error = %e, "simulator stopped");
            }
        }
    });
    Ok(SimHandle { addr, stats, task })
}

/// Serves Realtime sessions on `listener` until accepting fails.
pub async fn serve(listener: TcpListener, script: Arc<SimScript>) -> io::Result<()> {
    serve_with_stats(listener, script, Arc::new(SimStats::default())).await
}

/// [`serve`], recording observations into `stats`.
pub async fn serve_with_stats(
    listener: TcpListener,
    script: Arc<SimScript>,
    stats: Arc<SimStats>,
) -> io::Result<()> {
    let tts = Arc::new(Tts::new(script.voice));
    info!(addr = %listener.local_addr()?, "Realtime simulator listening");
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            // Per-connection failures (reset before accept) do not stop the server.
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionAborted
                    || e.kind() == io::ErrorKind::ConnectionReset =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let (script, stats, tts) = (script.clone(), stats.clone(), tts.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(tcp, script, stats, tts).await {
                debug!(%peer, error = %e, "simulator connection ended with an error");
            }
        });
    }
}

/// One connection: upgrade (with the key check), then the driver loop.
async fn connection(
    tcp: TcpStream,
    script: Arc<SimScript>,
    stats: Arc<SimStats>,
    tts: Arc<Tts>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let required = script.require_key.clone();
    let mut beta = false;
    #[allow(clippy::result_large_err)] // the signature is tungstenite's `Callback`
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        beta = req.headers().contains_key("openai-beta");
        if let Some(key) = &required {
            let expected = format!("Bearer {key}");
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if given != Some(expected.as_str()) {
                let body = r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key","param":null}}"#;
                let mut refusal = ErrorResponse::new(Some(body.to_owned()));
                *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                return Err(refusal);
            }
        }
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback).await?;
    let conn_stats = stats.add();
    if beta {
        // What the GA server does with the beta header: an error, then close.
        ConnStats::bump(&conn_stats.beta_header, 1);
        let error = serde_json::json!({"type": "error", "event_id": "event_sim_beta", "error": {
            "type": "invalid_request_error", "code": "beta_api_shape_disabled",
            "message": "The beta Realtime API shape is disabled; remove the OpenAI-Beta header.", "param": null}});
        ws.send(Message::text(error.to_string())).await?;
        return ws.close(None).await;
    }

    let mut core = SimConn::new(script, conn_stats);
    let (synth_tx, mut synth_rx) = mpsc::channel::<(u64, Arc<Vec<i16>>)>(4);
    let mut event_seq: u64 = 0;
    loop {
        while let Some(out) = core.poll_output() {
            match out {
                Output::Send(event) => {
                    event_seq += 1;
                    let text = encode_server(&event, &format!("event_sim{event_seq:06}"));
                    ws.send(Message::text(text)).await?;
                }
                Output::Raw(value) => ws.send(Message::text(value.to_string())).await?,
                Output::Text(text) => ws.send(Message::text(text)).await?,
                Output::Synthesize { ticket, text, rate } => {
                    let (tts, tx) = (tts.clone(), synth_tx.clone());
                    tokio::spawn(async move {
                        let samples = tts.say(&text, rate).await;
                        let _ = tx.send((ticket, samples)).await;
                    });
                }
                Output::Close { code, reason } => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    return ws.close(Some(frame)).await;
                }
            }
        }
        let deadline = core.poll_timeout();
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => core.handle(Instant::now(), Input::Text(text.as_str())),
                Some(Ok(Message::Binary(_))) => core.handle(Instant::now(), Input::Binary),
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {} // ping/pong are answered by tungstenite
                Some(Err(e)) => return Err(e),
            },
            Some((ticket, samples)) = synth_rx.recv() => core.handle(Instant::now(), Input::Audio { ticket, samples }),
            _ = sleep_until(deadline), if deadline.is_some() => core.handle(Instant::now(), Input::Timeout),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(at) = deadline {
        tokio::time::sleep_until(at.into()).await;
    }
}
