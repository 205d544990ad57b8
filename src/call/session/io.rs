//! Small I/O helpers of the call task: socket binding, prompt loading off the async threads,
//! and the futures its `select!` waits on (each pending forever when its source is absent).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::media::ports::PortLease;
use crate::model::client::{self as model_client, ModelInput, ModelSession};
use crate::sip::sdp::Codec;

use super::CallContext;

/// Binds an RTP socket on a leased port; a port may be taken by another process, so a few
/// leases are tried before giving up.
pub(super) async fn bind_rtp(ctx: &CallContext) -> Option<(PortLease, UdpSocket)> {
    for _ in 0..16 {
        let lease = ctx.ports.allocate()?;
        match UdpSocket::bind(SocketAddr::new(ctx.rtp_bind, lease.port())).await {
            Ok(s) => return Some((lease, s)),
            Err(e) => debug!(port = lease.port(), "RTP bind failed: {e}"),
        }
    }
    None
}

/// A percentile in µs for the summary line; -1 when there was no sample.
pub(super) fn pct(s: &crate::call::latency::Samples, p: f64) -> i64 {
    s.percentile(p).map_or(-1, |v| v as i64)
}

/// Loads an 8 kHz prompt off the async threads; a bad file is logged and skipped (dialplans
/// validate their prompts at load, so this only fails if a file changed since).
pub(super) async fn load_prompt(path: std::path::PathBuf) -> Option<Arc<Vec<i16>>> {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || crate::call::media::load_wav_8k(&path)).await {
        Ok(Ok(pcm)) => Some(Arc::new(pcm)),
        Ok(Err(e)) => {
            warn!("prompt {shown}: {e:#}");
            None
        }
        Err(e) => {
            warn!("prompt {shown}: loader failed: {e}");
            None
        }
    }
}

pub(super) fn codec_kind(c: Codec) -> crate::media::codec::CodecKind {
    use crate::media::codec::CodecKind;
    match c {
        Codec::Pcmu => CodecKind::Pcmu,
        Codec::Pcma => CodecKind::Pcma,
        Codec::Opus => CodecKind::Opus,
    }
}

pub(super) async fn recv_connect(
    rx: &mut Option<oneshot::Receiver<Result<ModelSession, model_client::ModelError>>>,
) -> Option<Result<ModelSession, model_client::ModelError>> {
    match rx {
        Some(r) => r.await.ok(),
        None => std::future::pending().await,
    }
}

pub(super) async fn recv_tool(
    rx: &mut Option<mpsc::Receiver<super::ToolDone>>,
) -> Option<super::ToolDone> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn recv_model(rx: &mut Option<mpsc::Receiver<ModelInput>>) -> Option<ModelInput> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

pub(super) fn rand_seed(lease: &PortLease) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(lease.port()) << 48)
}

pub(super) async fn recv_rtp(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
