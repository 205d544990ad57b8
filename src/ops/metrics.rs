//! Prometheus metrics: one process-wide registry of typed handles, and small functions the other
//! layers call with plain numbers and strings (this module knows no SIP, media, model or store
//! types, so any layer may call it without depending on another).
//!
//! Naming follows the Prometheus conventions (`promtool check metrics` is clean): every name
//! starts with `voxgate_`, counters end in `_total`, durations are `_seconds` histograms, sizes
//! are `_bytes`. Label values come from small, bounded sets (SIP methods are folded to the RFC
//! ones or `other`, codes to 100–699, dialplan names and end reasons are chosen by us or by the
//! operator's own dialplan files), never from what a caller sends.
//!
//! Per-call RTP, playout and barge-in counters are added when the call ends ([`call_ended`]), from
//! the summary the call task already computes: a rate over a long call shows up at its end.
//! Store and dialplan-reload figures are pulled at scrape time ([`store_snapshot`],
//! [`dialplan_reloads`]), so those layers need not know about Prometheus.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Direction of a SIP message or RTP packet, from voxgate's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received.
    In,
    /// Sent.
    Out,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// What one call contributes when it ends (built from the call task's own summary).
#[derive(Debug, Clone, Default)]
pub struct CallEndMetrics<'a> {
    /// The call's SIP Call-ID (ends its entry in the active-calls gauge; not a label).
    pub sip_call_id: &'a str,
    /// Dialplan that took the call; empty when none did.
    pub dialplan: &'a str,
    /// The call log's end reason (`caller_hangup`, `shutdown`, `rejected_404`, …).
    pub end_reason: &'a str,
    /// From INVITE to the end.
    pub duration: Duration,
    /// RTP packets received from the caller.
    pub rtp_in: u64,
    /// RTP packets sent to the caller.
    pub rtp_out: u64,
    /// Packets the jitter buffer concealed.
    pub rtp_lost: u64,
    /// Packets that arrived after their playout time.
    pub rtp_late: u64,
    /// RFC 3550 interarrival jitter at the end of the call, when measured.
    pub jitter: Option<Duration>,
    /// 20 ms ticks with an empty playout queue while the agent was speaking.
    pub playout_underruns: u64,
    /// Barge-ins confirmed (the agent was cut off).
    pub barge_ins: u64,
    /// Barge-ins rejected (echo or noise; the agent went on).
    pub barge_ins_rejected: u64,
    /// Non-fatal `error` events from the model.
    pub model_errors: u64,
}

/// The store's figures at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreSnapshot {
    /// Records waiting in the writer's queue.
    pub queue_depth: u64,
    /// Spool files waiting for replay.
    pub spool_files: u64,
    /// Bytes in those spool files.
    pub spool_bytes: u64,
    /// Records written to the database from the queue (since start).
    pub written: u64,
    /// Records sent to the spool (since start).
    pub spooled: u64,
    /// Records replayed from the spool into the database (since start).
    pub replayed: u64,
    /// Records the database refused for good (since start).
    pub rejected: u64,
    /// Failed or timed-out batch writes and replays (since start).
    pub write_errors: u64,
}

/// Every metric voxgate exports; one instance per process ([`metrics`]).
pub struct Metrics {
    registry: Registry,
    calls_active: IntGaugeVec,
    calls: IntCounterVec,
    call_duration: Histogram,
    call_setup: Histogram,
    first_agent_audio: Histogram,
    sip_requests: IntCounterVec,
    sip_responses: IntCounterVec,
    sip_parse_errors: IntCounter,
    model_connect: Histogram,
    model_errors: IntCounterVec,
    model_reconnects: IntCounter,
    barge_ins: IntCounterVec,
    tool_calls: IntCounterVec,
    tool_call_duration: HistogramVec,
    rtp_packets: IntCounterVec,
    rtp_lost: IntCounter,
    rtp_late: IntCounter,
    rtp_jitter: Histogram,
    playout_underruns: IntCounter,
    store_queue_depth: IntGauge,
    store_spool_files: IntGauge,
    store_spool_bytes: IntGauge,
    store_records: IntCounterVec,
    store_write_errors: IntCounter,
    dialplan_reloads: IntCounterVec,
    dialplans_loaded: IntGauge,
    draining: IntGauge,
}

/// Registers `m` in `r`; names are unique by construction, so failure is a bug here.
fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    r.register(Box::new(m.clone()))
        .expect("invariant: every voxgate metric name is registered once");
    m
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    reg(
        r,
        IntCounter::new(name, help).expect("invariant: valid metric name"),
    )
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("invariant: valid metric name"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(
        r,
        IntGauge::new(name, help).expect("invariant: valid metric name"),
    )
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("invariant: valid metric name and buckets"),
    )
}

/// Seconds, from 5 ms to 10 s: signalling and connection set-up.
const SETUP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Seconds, from 100 ms to 20 s: what a caller waits for the agent.
const AUDIO_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0];
/// Seconds, from 10 ms to 1 min: tools may call webhooks.
const TOOL_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Seconds, from 1 ms to 500 ms: RTP interarrival jitter.
const JITTER_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.5];
/// Seconds, from 1 s to 4 h: call durations.
const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0,
];

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            calls_active: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("voxgate_calls_active", "Calls in progress, by dialplan."),
                    &["dialplan"],
                )
                .expect("invariant: valid metric name"),
            ),
            calls: counter_vec(
                &r,
                "voxgate_calls_total",
                "Calls ended (answered or not), by dialplan and end reason.",
                &["dialplan", "end_reason"],
            ),
            call_duration: histogram(
                &r,
                "voxgate_call_duration_seconds",
                "Call duration from INVITE to the end.",
                DURATION_BUCKETS,
            ),
            call_setup: histogram(
                &r,
                "voxgate_call_setup_seconds",
                "Time from INVITE received to 200 OK sent.",
                SETUP_BUCKETS,
            ),
            first_agent_audio: histogram(
                &r,
                "voxgate_first_agent_audio_seconds",
                "Time from 200 OK to the first RTP packet of agent audio.",
                AUDIO_BUCKETS,
            ),
            sip_requests: counter_vec(
                &r,
                "voxgate_sip_requests_total",
                "SIP requests received (in) and sent (out), by method.",
                &["direction", "method"],
            ),
            sip_responses: counter_vec(
                &r,
                "voxgate_sip_responses_total",
                "SIP responses received (in) and sent (out), by status code.",
                &["direction", "code"],
            ),
            sip_parse_errors: counter(
                &r,
                "voxgate_sip_parse_errors_total",
                "Received SIP messages that could not be parsed.",
            ),
            model_connect: histogram(
                &r,
                "voxgate_model_connect_seconds",
                "Model WebSocket handshake time (successful connects).",
                SETUP_BUCKETS,
            ),
            model_errors: counter_vec(
                &r,
                "voxgate_model_errors_total",
                "Model failures: failed connects, broken sessions and error events, by kind.",
                &["kind"],
            ),
            model_reconnects: counter(
                &r,
                "voxgate_model_reconnects_total",
                "Model sessions re-opened during a call.",
            ),
            barge_ins: counter_vec(
                &r,
                "voxgate_barge_ins_total",
                "Caller speech while the agent spoke: confirmed (agent cut off) or rejected.",
                &["result"],
            ),
            tool_calls: counter_vec(
                &r,
                "voxgate_tool_calls_total",
                "Function calls run for the model, by tool and outcome.",
                &["tool", "outcome"],
            ),
            tool_call_duration: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "voxgate_tool_call_duration_seconds",
                        "Function call run time, by tool.",
                    )
                    .buckets(TOOL_BUCKETS.to_vec()),
                    &["tool"],
                )
                .expect("invariant: valid metric name and buckets"),
            ),
            rtp_packets: counter_vec(
                &r,
                "voxgate_rtp_packets_total",
                "RTP packets received (in) and sent (out), added when each call ends.",
                &["direction"],
            ),
            rtp_lost: counter(
                &r,
                "voxgate_rtp_packets_lost_total",
                "RTP packets lost (concealed by the jitter buffer).",
            ),
            rtp_late: counter(
                &r,
                "voxgate_rtp_packets_late_total",
                "RTP packets that arrived after their playout time.",
            ),
            rtp_jitter: histogram(
                &r,
                "voxgate_rtp_jitter_seconds",
                "RFC 3550 interarrival jitter of each call at its end.",
                JITTER_BUCKETS,
            ),
            playout_underruns: counter(
                &r,
                "voxgate_playout_underruns_total",
                "20 ms playout ticks with no agent audio ready while the agent was speaking.",
            ),
            store_queue_depth: gauge(
                &r,
                "voxgate_store_queue_depth",
                "Call-log records waiting in the writer's queue.",
            ),
            store_spool_files: gauge(
                &r,
                "voxgate_store_spool_files",
                "Spool files waiting to be replayed into the database.",
            ),
            store_spool_bytes: gauge(
                &r,
                "voxgate_store_spool_bytes",
                "Size of the spool files waiting to be replayed.",
            ),
            store_records: counter_vec(
                &r,
                "voxgate_store_records_total",
                "Call-log records by outcome: written, spooled, replayed, rejected.",
                &["outcome"],
            ),
            store_write_errors: counter(
                &r,
                "voxgate_store_write_errors_total",
                "Failed or timed-out database batch writes and replays.",
            ),
            dialplan_reloads: counter_vec(
                &r,
                "voxgate_dialplan_reloads_total",
                "Dialplan reloads, by result (ok, rejected).",
                &["result"],
            ),
            dialplans_loaded: gauge(
                &r,
                "voxgate_dialplans_loaded",
                "Dialplans in the current set.",
            ),
            draining: gauge(
                &r,
                "voxgate_draining",
                "1 while the node drains (refuses new calls) before shutting down.",
            ),
            registry: r,
        };
        let info = reg(
            &m.registry,
            IntGaugeVec::new(
                Opts::new("voxgate_build_info", "Always 1; labels carry the version."),
                &["version"],
            )
            .expect("invariant: valid metric name"),
        );
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Series that exist from the start, so dashboards and alerts see zeros, not gaps.
        for d in [Direction::In, Direction::Out] {
            m.rtp_packets.with_label_values(&[d.label()]);
        }
        for result in ["confirmed", "rejected"] {
            m.barge_ins.with_label_values(&[result]);
        }
        for result in ["ok", "rejected"] {
            m.dialplan_reloads.with_label_values(&[result]);
        }
        for outcome in ["written", "spooled", "replayed", "rejected"] {
            m.store_records.with_label_values(&[outcome]);
        }
        m
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&metrics().registry.gather(), &mut buf) {
        tracing::warn!("metrics encoding failed: {e}");
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// An empty dialplan name becomes `none`, so a series never carries an empty label.
fn plan_label(dialplan: &str) -> &str {
    if dialplan.is_empty() {
        "none"
    } else {
        dialplan
    }
}

/// Calls in progress (SIP Call-ID → dialplan): admitted by the router, not yet ended. A call
/// leaves when it ends ([`call_ended`]), not when its task does: the task lingers for its last
/// transaction's timers (up to 32 s over UDP) after the call is over. A std Mutex: held for
/// one map operation, never across an await.
static LIVE: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Mutex::default);

/// Woken (one stored permit) whenever a call leaves [`LIVE`], so the drain can notice the last
/// one without polling.
static LEFT: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

fn live() -> std::sync::MutexGuard<'static, HashMap<String, String>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A call was admitted (the active-calls gauge goes up).
pub fn call_started(sip_call_id: &str, dialplan: &str) {
    let label = plan_label(dialplan).to_string();
    if live()
        .insert(sip_call_id.to_string(), label.clone())
        .is_none()
    {
        metrics().calls_active.with_label_values(&[&label]).inc();
    }
}

/// A call is over (the active-calls gauge goes down). Called by [`call_ended`], and by the
/// router when the call's task is gone, in case it never reported its end; the second call is
/// a no-op.
pub fn call_gone(sip_call_id: &str) {
    let removed = live().remove(sip_call_id);
    if let Some(label) = removed {
        metrics().calls_active.with_label_values(&[&label]).dec();
        LEFT.notify_one();
    }
}

/// Completes after a call in progress has ended (at once if one ended since the last wait).
/// Meant for one waiter: the router's drain.
pub async fn call_left() {
    LEFT.notified().await;
}

/// Number of calls in progress (admitted and not ended).
pub fn calls_in_progress() -> usize {
    live().len()
}

/// Whether this Call-ID is a call in progress.
pub fn call_in_progress(sip_call_id: &str) -> bool {
    live().contains_key(sip_call_id)
}

/// A new INVITE refused before any call task existed (`overloaded`, `draining`): counted in
/// `voxgate_calls_total` with end reason `rejected_503_<reason>` and dialplan `none`.
pub fn call_refused(reason: &str) {
    metrics()
        .calls
        .with_label_values(&["none", &format!("rejected_503_{reason}")])
        .inc();
}

/// The 200 OK went out `setup` after the INVITE arrived.
pub fn call_answered(setup: Duration) {
    metrics().call_setup.observe(setup.as_secs_f64());
}

/// The first RTP packet of agent audio went out `after` the 200 OK.
pub fn first_agent_audio(after: Duration) {
    metrics().first_agent_audio.observe(after.as_secs_f64());
}

/// A call ended: counts it and adds its RTP, playout, barge-in and model counters.
pub fn call_ended(c: &CallEndMetrics<'_>) {
    call_gone(c.sip_call_id);
    let m = metrics();
    m.calls
        .with_label_values(&[plan_label(c.dialplan), c.end_reason])
        .inc();
    m.call_duration.observe(c.duration.as_secs_f64());
    m.rtp_packets
        .with_label_values(&[Direction::In.label()])
        .inc_by(c.rtp_in);
    m.rtp_packets
        .with_label_values(&[Direction::Out.label()])
        .inc_by(c.rtp_out);
    m.rtp_lost.inc_by(c.rtp_lost);
    m.rtp_late.inc_by(c.rtp_late);
    if let Some(j) = c.jitter {
        m.rtp_jitter.observe(j.as_secs_f64());
    }
    m.playout_underruns.inc_by(c.playout_underruns);
    m.barge_ins
        .with_label_values(&["confirmed"])
        .inc_by(c.barge_ins);
    m.barge_ins
        .with_label_values(&["rejected"])
        .inc_by(c.barge_ins_rejected);
    if c.model_errors > 0 {
        m.model_errors
            .with_label_values(&["error_event"])
            .inc_by(c.model_errors);
    }
}

/// The model WebSocket opened after `took`.
pub fn model_connected(took: Duration) {
    metrics().model_connect.observe(took.as_secs_f64());
}

/// A model failure of `kind` (e.g. `handshake_timeout`, `refused`, `transport`).
pub fn model_error(kind: &str) {
    metrics().model_errors.with_label_values(&[kind]).inc();
}

/// A model session was re-opened during a call.
pub fn model_reconnect() {
    metrics().model_reconnects.inc();
}

/// A function call of `tool` finished with `outcome` (`ok`, `error`, `timeout`, `invalid`) after
/// `took`.
pub fn tool_call(tool: &str, outcome: &str, took: Duration) {
    let m = metrics();
    m.tool_calls.with_label_values(&[tool, outcome]).inc();
    m.tool_call_duration
        .with_label_values(&[tool])
        .observe(took.as_secs_f64());
}

/// SIP methods used as label values; anything else is `other`.
const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "REFER",
    "NOTIFY",
    "PRACK",
    "SUBSCRIBE",
    "PUBLISH",
    "MESSAGE",
];

/// Counts one raw SIP message by its start line: a request by method, a response by code.
/// Keep-alives and lines that are neither are not counted (the parser counts those).
pub fn sip_message(direction: Direction, raw: &[u8]) {
    let end = raw
        .iter()
        .take(256)
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(raw.len().min(256));
    let Ok(line) = std::str::from_utf8(&raw[..end]) else {
        return;
    };
    let mut parts = line.split(' ');
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return;
    };
    let m = metrics();
    if first == "SIP/2.0" {
        let code = match second.parse::<u16>() {
            Ok(c @ 100..=699) => c.to_string(),
            _ => "other".to_string(),
        };
        m.sip_responses
            .with_label_values(&[direction.label(), &code])
            .inc();
    } else if parts.next().is_some_and(|v| v.starts_with("SIP/")) {
        let method = METHODS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(first))
            .copied()
            .unwrap_or("other");
        m.sip_requests
            .with_label_values(&[direction.label(), method])
            .inc();
    }
}

/// A received message could not be parsed.
pub fn sip_parse_error() {
    metrics().sip_parse_errors.inc();
}

/// Raises `c` to `total` (a cumulative figure read from elsewhere); never lowers it.
fn catch_up(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

/// Publishes the store's figures (called at scrape time).
pub fn store_snapshot(s: &StoreSnapshot) {
    let m = metrics();
    let gauge = |g: &IntGauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
    gauge(&m.store_queue_depth, s.queue_depth);
    gauge(&m.store_spool_files, s.spool_files);
    gauge(&m.store_spool_bytes, s.spool_bytes);
    for (outcome, total) in [
        ("written", s.written),
        ("spooled", s.spooled),
        ("replayed", s.replayed),
        ("rejected", s.rejected),
    ] {
        catch_up(&m.store_records.with_label_values(&[outcome]), total);
    }
    catch_up(&m.store_write_errors, s.write_errors);
}

/// Publishes the dialplan reloader's cumulative counters and the current plan count.
pub fn dialplan_reloads(ok: u64, rejected: u64, loaded: usize) {
    let m = metrics();
    catch_up(&m.dialplan_reloads.with_label_values(&["ok"]), ok);
    catch_up(
        &m.dialplan_reloads.with_label_values(&["rejected"]),
        rejected,
    );
    m.dialplans_loaded
        .set(i64::try_from(loaded).unwrap_or(i64::MAX));
}

/// The node started (true) or stopped draining.
pub fn set_draining(on: bool) {
    metrics().draining.set(i64::from(on));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn sip_start_lines_are_classified() {
        let before = render();
        let get = |t: &str, s: &str| sample(t, s).unwrap_or(0.0);
        sip_message(Direction::In, b"INVITE sip:1@x SIP/2.0\r\nVia: x\r\n\r\n");
        sip_message(Direction::Out, b"SIP/2.0 503 Service Unavailable\r\n");
        sip_message(Direction::In, b"FOO sip:1@x SIP/2.0\r\n");
        sip_message(Direction::In, b"\r\n\r\n");
        sip_message(Direction::In, b"garbage");
        sip_message(Direction::Out, b"SIP/2.0 9999 Nope\r\n");
        let after = render();
        for (series, delta) in [
            (
                r#"voxgate_sip_requests_total{direction="in",method="INVITE"}"#,
                1.0,
            ),
            (
                r#"voxgate_sip_requests_total{direction="in",method="other"}"#,
                1.0,
            ),
            (
                r#"voxgate_sip_responses_total{code="503",direction="out"}"#,
                1.0,
            ),
            (
                r#"voxgate_sip_responses_total{code="other",direction="out"}"#,
                1.0,
            ),
        ] {
            // Other tests in this process may count messages too: at least ours.
            assert!(
                get(&after, series) - get(&before, series) >= delta,
                "{series}\n{after}"
            );
        }
    }

    #[test]
    fn counters_catch_up_and_never_go_back() {
        store_snapshot(&StoreSnapshot {
            written: 5,
            queue_depth: 3,
            ..StoreSnapshot::default()
        });
        store_snapshot(&StoreSnapshot {
            written: 4,
            ..StoreSnapshot::default()
        });
        let text = render();
        assert!(
            sample(&text, r#"voxgate_store_records_total{outcome="written"}"#) >= Some(5.0),
            "{text}"
        );
        assert_eq!(sample(&text, "voxgate_store_queue_depth"), Some(0.0));
    }

    #[test]
    fn call_end_counts_by_plan_and_reason() {
        call_started("unit-1", "");
        assert!(call_in_progress("unit-1"));
        call_ended(&CallEndMetrics {
            sip_call_id: "unit-1",
            dialplan: "",
            end_reason: "unit_test",
            rtp_in: 10,
            barge_ins: 2,
            ..CallEndMetrics::default()
        });
        let text = render();
        assert_eq!(
            sample(
                &text,
                r#"voxgate_calls_total{dialplan="none",end_reason="unit_test"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert!(text.contains("# TYPE voxgate_call_setup_seconds histogram"));
        assert!(!call_in_progress("unit-1"));
        // The router's own report after the call's end changes nothing.
        call_gone("unit-1");
        assert!(!call_in_progress("unit-1"));
    }
}
