//! The operations HTTP endpoint on `http.listen` (axum): `/metrics` (Prometheus text format),
//! `/healthz` (the process is alive) and `/readyz` (ready to take calls), both with JSON bodies.
//!
//! `/readyz` answers 200 only when the SIP socket is bound, at least one dialplan is loaded, the
//! call log is reachable or spooling, and the node is not draining; otherwise 503, so a load
//! balancer or Kubernetes stops sending new calls. The readiness facts and the store's figures
//! come from a probe the daemon installs ([`Ops::set_probe`]); it runs on the blocking pool
//! (it may look at the spool folder) at each `/readyz` and `/metrics` request.
//!
//! Left out: TLS and authentication. Bind it to loopback or a private interface.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::metrics;

/// The call log's condition as readiness sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreState {
    /// Not opened yet (start-up).
    Starting,
    /// Records go to the database.
    Ok,
    /// The database is unreachable; records go to the spool and are replayed later.
    Spooling,
    /// The writer has stopped: records would be lost.
    Down,
}

/// What the daemon's probe reports.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// Dialplans in the current set.
    pub dialplans: usize,
    /// The call log.
    pub store: StoreState,
}

/// A probe: reads readiness facts and refreshes scrape-time metrics. Runs on the blocking pool.
pub type ProbeFn = dyn Fn() -> Probe + Send + Sync;

/// Shared operational state: what `/readyz` reports, set by the daemon as it starts and drains.
pub struct Ops {
    started: Instant,
    sip_bound: AtomicBool,
    draining: AtomicBool,
    probe: OnceLock<Box<ProbeFn>>,
}

impl Default for Ops {
    fn default() -> Self {
        Ops {
            started: Instant::now(),
            sip_bound: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            probe: OnceLock::new(),
        }
    }
}

impl Ops {
    /// The SIP listeners are bound.
    pub fn set_sip_bound(&self) {
        self.sip_bound.store(true, Ordering::SeqCst);
    }

    /// The node drains: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        metrics::set_draining(true);
    }

    /// True once draining started.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Installs the probe (once; later calls are ignored).
    pub fn set_probe(&self, probe: Box<ProbeFn>) {
        let _ = self.probe.set(probe);
    }

    fn probe(&self) -> Probe {
        match self.probe.get() {
            Some(p) => p(),
            None => Probe {
                dialplans: 0,
                store: StoreState::Starting,
            },
        }
    }
}

/// The `/readyz` body.
#[derive(Debug, Serialize)]
struct Readiness {
    status: &'static str,
    sip: bool,
    dialplans: usize,
    store: StoreState,
    draining: bool,
}

/// Binds `listen` and serves the endpoints in a background task. Fails only if it cannot bind.
pub async fn start(listen: SocketAddr, ops: Arc<Ops>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ops);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!("operations HTTP server stopped: {e}");
        }
    });
    info!(listen = %local, "operations endpoint: /metrics /healthz /readyz");
    Ok(local)
}

/// Runs the probe off the async workers.
async fn run_probe(ops: &Arc<Ops>) -> Probe {
    let o = ops.clone();
    tokio::task::spawn_blocking(move || o.probe())
        .await
        .unwrap_or(Probe {
            dialplans: 0,
            store: StoreState::Down,
        })
}

async fn metrics_handler(State(ops): State<Arc<Ops>>) -> Response {
    run_probe(&ops).await;
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(),
    )
        .into_response()
}

async fn healthz(State(ops): State<Arc<Ops>>) -> Response {
    Json(serde_json::json!({
        "status": "alive",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": ops.started.elapsed().as_secs(),
    }))
    .into_response()
}

async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    let p = run_probe(&ops).await;
    let sip = ops.sip_bound.load(Ordering::SeqCst);
    let draining = ops.draining();
    let store_ok = matches!(p.store, StoreState::Ok | StoreState::Spooling);
    let status = if draining {
        "draining"
    } else if sip && p.dialplans > 0 && store_ok {
        "ready"
    } else {
        "not_ready"
    };
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status,
        sip,
        dialplans: p.dialplans,
        store: p.store,
        draining,
    };
    (code, Json(body)).into_response()
}
