//! What the simulator observed, per connection, for tests and the quick start's checks.
//!
//! Counters are atomics; lists sit behind std `Mutex`es that are never held across an `.await`
//! (the connection task pushes and releases at once; tests read snapshots).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// All connections a simulator has accepted, in order.
#[derive(Debug, Default)]
pub struct SimStats {
    connections: Mutex<Vec<Arc<ConnStats>>>,
}

impl SimStats {
    /// Registers a new connection.
    pub fn add(&self) -> Arc<ConnStats> {
        let conn = Arc::new(ConnStats::default());
        lock(&self.connections).push(conn.clone());
        conn
    }

    /// Every connection so far.
    pub fn connections(&self) -> Vec<Arc<ConnStats>> {
        lock(&self.connections).clone()
    }

    /// The most recent connection, if any.
    pub fn last(&self) -> Option<Arc<ConnStats>> {
        lock(&self.connections).last().cloned()
    }
}

/// One connection's observations.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Encoded input audio bytes appended.
    pub audio_bytes: AtomicU64,
    /// Input audio appended, ms (bytes / bytes-per-ms of the format in force).
    pub audio_ms: AtomicU64,
    /// `input_audio_buffer.append` events.
    pub appends: AtomicU64,
    /// `speech_started` events sent.
    pub speech_started: AtomicU64,
    /// `speech_stopped` events sent.
    pub speech_stopped: AtomicU64,
    /// Input buffer commits (VAD or explicit).
    pub commits: AtomicU64,
    /// Responses started.
    pub responses_created: AtomicU64,
    /// Responses finished with `completed`.
    pub responses_completed: AtomicU64,
    /// Responses finished with `cancelled` (barge-in or `response.cancel`).
    pub responses_cancelled: AtomicU64,
    /// `error` events sent.
    pub errors_sent: AtomicU64,
    /// The upgrade carried an `OpenAI-Beta` header (voxgate must never send one).
    pub beta_header: AtomicU64,
    truncates: Mutex<Vec<TruncateRecord>>,
    function_outputs: Mutex<Vec<FunctionOutputRecord>>,
    last_session_update: Mutex<Option<serde_json::Value>>,
}

/// One `conversation.item.truncate` as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateRecord {
    /// The item named.
    pub item_id: String,
    /// The offset asked for, ms.
    pub audio_end_ms: u64,
    /// Audio of that item actually sent, ms (0 for an unknown item).
    pub sent_ms: u64,
    /// Whether it was accepted (`conversation.item.truncated`) rather than an `error`.
    pub accepted: bool,
}

/// One `function_call_output` item received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionOutputRecord {
    /// The call answered.
    pub call_id: String,
    /// The output text.
    pub output: String,
}

impl ConnStats {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    /// Every truncate received so far.
    pub fn truncates(&self) -> Vec<TruncateRecord> {
        lock(&self.truncates).clone()
    }

    /// Every function call output received so far.
    pub fn function_outputs(&self) -> Vec<FunctionOutputRecord> {
        lock(&self.function_outputs).clone()
    }

    /// The raw `session` object of the last `session.update`.
    pub fn last_session_update(&self) -> Option<serde_json::Value> {
        lock(&self.last_session_update).clone()
    }

    pub(super) fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::SeqCst);
    }

    pub(super) fn push_truncate(&self, record: TruncateRecord) {
        lock(&self.truncates).push(record);
    }

    pub(super) fn push_function_output(&self, record: FunctionOutputRecord) {
        lock(&self.function_outputs).push(record);
    }

    pub(super) fn set_session_update(&self, session: serde_json::Value) {
        *lock(&self.last_session_update) = Some(session);
    }
}

/// Locks, ignoring poisoning (a panicking test must not hide the observations).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
