//! Daemon wiring: binds the SIP transports, then one router task parses each message once,
//! routes it with [`crate::sip::endpoint::route`] and hands it to the call task that owns its
//! Call-ID, answers it statelessly, or admits a new call. The router alone owns the
//! `Call-ID → sender` map; calls register by being spawned here and unregister by message.
//!
//! Graceful drain: the first SIGTERM (or SIGINT) makes the node unavailable: new INVITEs and
//! OPTIONS get 503 with Retry-After (a dispatcher's probe marks the node down), `/readyz` turns
//! 503, and in-dialog traffic of live calls is still served. When the last call ends, or at
//! `sip.drain_timeout`, every remaining call is hung up politely (BYE, end reason `shutdown`)
//! and given [`HANGUP_GRACE`] to send it and its call record. A second signal stops at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rsip::SipMessage;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{Config, MediaMode, TransportName};
use crate::media::ports::PortPool;
use crate::model::client::{ModelEndpoint, Secret};
use crate::model::sim;
use crate::ops::http::{Ops, Probe, StoreState};
use crate::ops::metrics::{self, StoreSnapshot};
use crate::sip::admission::{Admission, Verdict};
use crate::sip::dialog::{LocalAddr, UasSession};
use crate::sip::endpoint::{route, Route, RouteOptions};
use crate::sip::message::{self, add_header, base, response, stamp_via};
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{self, Inbound, Peer, TransportHandle};

use crate::dialplan::{spawn_reloader, CallFacts, DialplanSet, RouteDecision};
use crate::sip::message::BaseHeaders;
use crate::store::{spawn_retention, spool_usage, CallId, Record, Store, StoreConfig};
use rsip::prelude::*;

use super::plan::CallPlan;
use super::session::{self, CallContext, CallInput};

/// Capacity of each call's inbound SIP channel; a full one drops (UDP retransmits).
const CALL_QUEUE: usize = 64;
/// After the drain deadline hangs the remaining calls up, how long their BYEs and call records
/// may take before the daemon exits anyway.
const HANGUP_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Refuse to start on bad dialplans or a missing key before anything binds (one clear
    // line each, see main).
    let set = DialplanSet::load(std::slice::from_ref(&config.dialplans))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    info!(plans = set.len(), dir = %config.dialplans.display(), "dialplans loaded");
    // The operations endpoint comes up first, so liveness answers while the rest starts.
    let ops = Arc::new(Ops::default());
    crate::ops::http::start(config.http.listen, ops.clone())
        .await
        .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
    let (model, _sim) = model_endpoint(&config).await?;
    // The call log: migrated at start; if the database is down, records are spooled.
    let (store, store_task) = Store::open(&StoreConfig::new(
        config.database.url.clone(),
        config.database.spool_dir.clone(),
    ))
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "database {}: {e}",
            crate::store::redact(&config.database.url)
        )
    })?;
    let _retention = (config.database.retention_days > 0).then(|| {
        info!(
            days = config.database.retention_days,
            "call-event retention on"
        );
        spawn_retention(
            &store,
            config.database.retention_days,
            std::time::Duration::from_secs(3600),
        )
    });
    // Invalid edits are rejected and logged by the reloader; live calls keep their plan.
    let (plans, reloader) = spawn_reloader(config.dialplans.clone(), Arc::new(set));
    ops.set_probe(probe(
        store.clone(),
        config.database.spool_dir.clone(),
        plans.clone(),
        reloader.stats(),
    ));
    let udp = config.sip.transports.contains(&TransportName::Udp);
    let tcp = config.sip.transports.contains(&TransportName::Tcp);
    let (handle, inbound) = transport::start(config.sip.listen, udp, tcp)
        .await
        .with_context(|| format!("cannot listen on {}", config.sip.listen))?;
    ops.set_sip_bound();
    info!(
        listen = %handle.local_addr(),
        udp, tcp,
        mode = ?config.media.mode,
        "voxgate is answering calls"
    );
    let ctx = Arc::new(CallContext::new(
        &config,
        advertised(&config, handle.local_addr()),
        model,
        store,
    )?);
    let mut router = Router {
        plans,
        calls: HashMap::new(),
        transport: handle,
        ctx,
        admission: Admission::new(config.sip.admission()),
        limits: config.sip.limits(),
        config,
        seed: seed(),
        ops,
    };
    let result = router.serve(inbound).await;
    // Let the writer drain what the calls submitted (or spool it) before exiting.
    drop(router);
    drop(reloader);
    if tokio::time::timeout(std::time::Duration::from_secs(5), store_task)
        .await
        .is_err()
    {
        warn!("the call log did not drain within 5 s; the rest is in the spool");
    }
    result
}

/// The readiness probe and scrape-time refresh: the store's figures and the dialplan reloads go
/// to the metrics; the plan count and the store's condition go to `/readyz`. Runs on the
/// blocking pool (it lists the spool folder).
fn probe(
    store: crate::store::StoreHandle,
    spool_dir: std::path::PathBuf,
    plans: tokio::sync::watch::Receiver<Arc<DialplanSet>>,
    reloads: tokio::sync::watch::Receiver<crate::dialplan::ReloadStats>,
) -> Box<crate::ops::http::ProbeFn> {
    Box::new(move || {
        let st = store.stats();
        let (files, bytes) = spool_usage(&spool_dir);
        metrics::store_snapshot(&StoreSnapshot {
            queue_depth: store.queue_depth() as u64,
            spool_files: files as u64,
            spool_bytes: bytes,
            written: st.written,
            spooled: st.spooled + st.overflowed,
            replayed: st.replayed,
            rejected: st.rejected,
            write_errors: st.db_failures,
        });
        let dialplans = plans.borrow().len();
        let r = *reloads.borrow();
        metrics::dialplan_reloads(r.ok, r.rejected, dialplans);
        let store = if store.is_closed() {
            StoreState::Down
        } else if st.degraded || files > 0 {
            StoreState::Spooling
        } else {
            StoreState::Ok
        };
        Probe { dialplans, store }
    })
}

/// The model endpoint for model mode: `sim` starts the built-in simulator in-process (its
/// handle must live as long as the daemon); any other URL needs the API key from the
/// configured environment variable.
async fn model_endpoint(
    config: &Config,
) -> anyhow::Result<(Option<ModelEndpoint>, Option<sim::SimHandle>)> {
    if config.media.mode != MediaMode::Model {
        return Ok((None, None));
    }
    if config.model.url == "sim" {
        let script = match &config.model.sim_script {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("{}: cannot read the simulator script", path.display())
                })?;
                sim::SimScript::from_yaml(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => sim::SimScript::default(),
        };
        let handle = sim::spawn_local(Arc::new(script))
            .await
            .context("cannot start the built-in model simulator")?;
        info!(url = %handle.url(), "model: built-in simulator");
        let endpoint = ModelEndpoint {
            url: handle.url(),
            model: config.model.name.clone(),
            api_key: None,
        };
        return Ok((Some(endpoint), Some(handle)));
    }
    let key = std::env::var(&config.model.api_key_env)
        .ok()
        .filter(|k| !k.trim().is_empty());
    let Some(key) = key else {
        anyhow::bail!(
            "model.url is {} but {} is not set: export the API key, or run with --model sim",
            config.model.url,
            config.model.api_key_env
        );
    };
    Ok((
        Some(ModelEndpoint {
            url: config.model.url.clone(),
            model: config.model.name.clone(),
            api_key: Some(Secret::new(key)),
        }),
        None,
    ))
}

/// The address we put in Via, Contact and SDP.
fn advertised(config: &Config, bound: SocketAddr) -> SocketAddr {
    let ip = match config.sip.public_addr {
        Some(ip) => ip,
        None if bound.ip().is_unspecified() => local_ip().unwrap_or(bound.ip()),
        None => bound.ip(),
    };
    SocketAddr::new(ip, bound.port())
}

/// The primary local address (the one a default route would use); no packet is sent.
fn local_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// A per-process seed for tags and branches (not security-relevant, but unpredictable).
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Where the router is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Taking calls.
    Running,
    /// Refusing new calls; live calls may go on until this deadline.
    Draining(Instant),
    /// Live calls were told to hang up; exit when they are gone or at this deadline.
    Ending(Instant),
}

impl Phase {
    fn deadline(self) -> Option<Instant> {
        match self {
            Phase::Running => None,
            Phase::Draining(t) | Phase::Ending(t) => Some(t),
        }
    }
}

struct Router {
    /// The current dialplans (replaced atomically by the reloader).
    plans: tokio::sync::watch::Receiver<Arc<DialplanSet>>,
    /// Call tasks by SIP Call-ID; entries leave when the task reports it is done, which may be
    /// some seconds after the call ended (its last transaction absorbs retransmissions). Calls
    /// in progress are tracked by [`metrics::calls_in_progress`].
    calls: HashMap<String, mpsc::Sender<CallInput>>,
    transport: TransportHandle,
    ctx: Arc<CallContext>,
    config: Config,
    seed: u64,
    /// Readiness state shared with the HTTP endpoint (draining is set here).
    ops: Arc<Ops>,
    /// Source ACL, scanner filter and per-source INVITE rate (requests no call owns).
    admission: Admission,
    /// Message size limits applied when parsing.
    limits: message::Limits,
}

impl Router {
    async fn serve(&mut self, mut inbound: mpsc::Receiver<Inbound>) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let (done_tx, mut done_rx) = mpsc::channel::<String>(1024);
        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut int =
            signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let mut phase = Phase::Running;
        loop {
            let deadline = phase.deadline();
            let signalled = tokio::select! {
                Some(msg) = inbound.recv() => { self.on_message(msg, &done_tx); None }
                Some(id) = done_rx.recv() => { self.call_done(&id); None }
                Some(()) = term.recv() => Some("SIGTERM"),
                Some(()) = int.recv() => Some("SIGINT"),
                () = metrics::call_left(), if phase != Phase::Running => None,
                () = sleep_until(deadline) => {
                    match phase {
                        Phase::Draining(_) => phase = self.hang_up_all(),
                        Phase::Ending(_) => {
                            warn!(active = metrics::calls_in_progress(),
                                  "calls did not end within {HANGUP_GRACE:?} of the hang-up; exiting");
                            break;
                        }
                        Phase::Running => {}
                    }
                    None
                }
            };
            if let Some(sig) = signalled {
                if phase != Phase::Running {
                    warn!(
                        active = metrics::calls_in_progress(),
                        "{sig} again: stopping now"
                    );
                    break;
                }
                let timeout = self.config.sip.drain_timeout.0;
                info!(event = "drain_start", signal = sig, active = metrics::calls_in_progress(),
                      timeout = %self.config.sip.drain_timeout,
                      "draining: new calls get 503, live calls may finish (signal again to stop now)");
                self.ops.set_draining();
                phase = Phase::Draining(Instant::now() + timeout);
            }
            // Calls that ended but whose tasks still wait out transaction timers do not hold
            // the exit up: their final responses and BYEs have been sent.
            if phase != Phase::Running && metrics::calls_in_progress() == 0 {
                info!(event = "drain_done", "no live calls left");
                break;
            }
        }
        info!(active = metrics::calls_in_progress(), "shutting down");
        Ok(())
    }

    /// The drain deadline passed: asks every live call to hang up (BYE once answered, 503
    /// before) and gives them [`HANGUP_GRACE`].
    fn hang_up_all(&mut self) -> Phase {
        info!(
            event = "drain_deadline",
            active = metrics::calls_in_progress(),
            "drain timeout reached: hanging up the remaining calls"
        );
        for (id, tx) in &self.calls {
            if !metrics::call_in_progress(id) {
                continue; // over already; its task waits out transaction timers
            }
            let input = CallInput::Hangup {
                reason: "shutdown".into(),
                code: 503,
            };
            if tx.try_send(input).is_err() {
                warn!(call_id = %id, "call queue full or closed: cannot ask it to hang up");
            }
        }
        Phase::Ending(Instant::now() + HANGUP_GRACE)
    }

    /// A call task finished.
    fn call_done(&mut self, id: &str) {
        self.calls.remove(id);
        metrics::call_gone(id);
    }

    fn send(&self, peer: &Peer, bytes: Vec<u8>) {
        self.transport.send(peer, Bytes::from(bytes));
    }

    fn on_message(&mut self, inbound: Inbound, done: &mpsc::Sender<String>) {
        let peer = inbound.peer;
        let msg = match message::parse_with(&inbound.bytes, &self.limits) {
            Ok(m) => m,
            Err(e) => {
                metrics::sip_parse_error();
                debug!(from = %peer.addr, "rejected message: {}", e.reason);
                // Sources outside sip.allow_from learn nothing, not even that we parse SIP.
                if let (Some(resp), true) = (e.response, self.admission.allowed(peer.addr.ip())) {
                    self.send(&peer, resp);
                }
                return;
            }
        };
        let msg = match msg {
            SipMessage::Request(mut req) => {
                stamp_via(&mut req, peer.addr);
                SipMessage::Request(req)
            }
            resp => resp,
        };
        let Ok(b) = base(&msg) else {
            return;
        };
        if let SipMessage::Request(req) = &msg {
            if !self.calls.contains_key(&b.call_id) && !self.admit(req, &peer) {
                return;
            }
        }
        let draining = self.ops.draining();
        let opts = RouteOptions {
            unavailable: draining,
        };
        match route(&msg, &b, |id| self.calls.contains_key(id), opts) {
            Route::Call(id) => {
                if let Some(tx) = self.calls.get(&id) {
                    if tx.try_send(CallInput::Sip(msg)).is_err() {
                        debug!(call_id = %id, "call queue full; message dropped");
                    }
                }
            }
            Route::Reply(resp) => {
                let new_invite = matches!(&msg, SipMessage::Request(r) if r.method == rsip::Method::Invite)
                    && b.to_tag.is_none();
                if draining && new_invite && resp.status_code.code() == 503 {
                    // Not a call of this node: the dispatcher sends it to another one, whose
                    // call log records it (a row here would duplicate its Call-ID).
                    info!(call_id = %b.call_id, from = %peer.addr, "draining: new call refused with 503");
                    metrics::call_refused("draining");
                }
                self.send(&peer, resp.to_string().into_bytes())
            }
            Route::Drop(why) => debug!(from = %peer.addr, "dropped: {why}"),
            Route::NewInvite => {
                let SipMessage::Request(req) = msg else {
                    return;
                };
                // Calls that have ended but still absorb retransmissions (up to 32 s) do not
                // count: only calls in progress do.
                let active = metrics::calls_in_progress();
                if active >= self.config.sip.max_calls {
                    if let Some(n) = self.admission.note_overload(Instant::now()) {
                        warn!(active, suppressed = n, "sip.max_calls reached: 503");
                    }
                    let mut resp = response(&req, 503, None);
                    add_header(&mut resp.headers, "Retry-After", "5");
                    self.send(&peer, resp.to_string().into_bytes());
                    self.record_rejected(&req, &b, 503, "overloaded");
                    metrics::call_refused("overloaded");
                    return;
                }
                self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let local = LocalAddr {
                    addr: self.ctx.advertised,
                };
                let uas = match UasSession::new(
                    Instant::now(),
                    req,
                    peer,
                    local,
                    TimerConfig::default(),
                    self.seed,
                ) {
                    Ok(u) => u,
                    Err(e) => {
                        debug!(from = %peer.addr, "INVITE unusable: {e}");
                        return;
                    }
                };
                let plan = self.plan_for(&uas);
                let dialplan = match &plan {
                    CallPlan::Open(p) | CallPlan::Closed { plan: p, .. } => p.name.clone(),
                    CallPlan::Reject(_) => String::new(),
                };
                let (tx, rx) = mpsc::channel(CALL_QUEUE);
                metrics::call_started(&b.call_id, &dialplan);
                self.calls.insert(b.call_id.clone(), tx);
                session::spawn(
                    uas,
                    rx,
                    self.transport.clone(),
                    self.ctx.clone(),
                    done.clone(),
                    plan,
                );
            }
        }
    }

    /// Records a call refused before any call task existed (503 when full). The id is derived
    /// from the Call-ID and From tag, so a retransmitted INVITE updates the same row.
    fn record_rejected(&self, req: &rsip::Request, b: &BaseHeaders, code: u16, reason: &str) {
        let mut h = [0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4u64];
        for (i, part) in [b.call_id.as_bytes(), b.from_tag.as_bytes()]
            .iter()
            .enumerate()
        {
            for byte in part.iter() {
                h[i] ^= u64::from(*byte);
                h[i] = h[i].wrapping_mul(0x0100_0000_01b3);
            }
        }
        let id = CallId(uuid::Uuid::from_u64_pair(h[0], h[1]));
        let user = |uri: &str| {
            uri.trim_start_matches("sips:")
                .trim_start_matches("sip:")
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let caller = req
            .from_header()
            .ok()
            .map(|f| f.value().to_string())
            .map(|v| {
                let uri = v
                    .split('<')
                    .nth(1)
                    .and_then(|r| r.split('>').next())
                    .unwrap_or(&v)
                    .to_string();
                user(&uri)
            })
            .unwrap_or_default();
        let now = chrono::Utc::now();
        for record in [
            Record::CallStarted {
                id,
                sip_call_id: b.call_id.clone(),
                caller,
                callee: user(&req.uri.to_string()),
                dialplan: String::new(),
                started_at: now,
                codec: String::new(),
                model: String::new(),
                store_transcripts: true,
            },
            Record::CallEnded {
                id,
                ended_at: now,
                end_reason: format!("rejected_{code}_{reason}"),
                hangup_by: Some("voxgate".into()),
                transfer_target: None,
                usage: serde_json::json!({}),
            },
        ] {
            if let Err(e) = self.ctx.store.submit(record) {
                warn!("call log: {e}");
            }
        }
    }

    /// Routes the call through the current dialplans (404 when nothing claims it).
    fn plan_for(&self, uas: &UasSession) -> CallPlan {
        let inc = uas.incoming();
        let set = self.plans.borrow().clone();
        let facts = CallFacts {
            callee: &inc.callee,
            to_user: None,
            caller: &inc.caller,
            trunk: None,
            now: chrono::Utc::now(),
        };
        match set.route(&facts) {
            RouteDecision::Open(plan) => CallPlan::Open(plan),
            RouteDecision::Closed { plan, action } => CallPlan::Closed { plan, action },
            RouteDecision::NoMatch => CallPlan::Reject(404),
        }
    }

    /// Admission control for a request no call owns (see [`crate::sip::admission`]): false
    /// when it was refused here (answered 403/503, or dropped silently). Refusals are logged at
    /// most once per source per minute.
    fn admit(&mut self, req: &rsip::Request, peer: &Peer) -> bool {
        let ua = req.headers.iter().find_map(|h| match h {
            rsip::Header::UserAgent(ua) => Some(ua.value()),
            _ => None,
        });
        let d = self
            .admission
            .check(Instant::now(), peer.addr.ip(), &req.method, ua);
        if let (Some(why), Some(suppressed)) = (d.refusal, d.log) {
            warn!(from = %peer.addr, method = %req.method, ?why, verdict = ?d.verdict,
                suppressed, "request refused by admission control (logged once a minute per source)");
        }
        match d.verdict {
            Verdict::Accept => true,
            Verdict::Drop => false,
            Verdict::Reject(code, retry_after) => {
                let mut resp = response(req, code, None);
                if let Some(secs) = retry_after {
                    add_header(&mut resp.headers, "Retry-After", &secs.to_string());
                }
                self.send(peer, resp.to_string().into_bytes());
                false
            }
        }
    }
}

/// Sleeps until `at`; never wakes without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Builds the RTP port pool from the config.
pub fn port_pool(config: &Config) -> PortPool {
    PortPool::new(config.rtp.port_min, config.rtp.port_max)
}
