//! The sans-IO core driven with a test clock: no sockets, no processes, no sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use super::{Input, Output, SimConn};
use crate::model::protocol::*;
use crate::model::sim::stats::ConnStats;
use crate::model::sim::testkit::{is_done, kinds, loud_ulaw, script, silence_ulaw};
use crate::model::sim::tones;

struct Harness {
    conn: SimConn,
    now: Instant,
    stats: Arc<ConnStats>,
}

impl Harness {
    fn new(yaml: &str) -> Self {
        let stats = Arc::new(ConnStats::default());
        let mut h = Harness {
            conn: SimConn::new(script(yaml), stats.clone()),
            now: Instant::now(),
            stats,
        };
        h.drain();
        h
    }

    /// Drains outputs, answering synthesis with tones and stepping the clock through pacing.
    fn drain(&mut self) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        loop {
            while let Some(out) = self.conn.poll_output() {
                match out {
                    Output::Send(e) => events.push(e),
                    Output::Synthesize { ticket, text, rate } => self.conn.handle(
                        self.now,
                        Input::Audio {
                            ticket,
                            samples: Arc::new(tones(&text, rate)),
                        },
                    ),
                    Output::Raw(_) | Output::Text(_) | Output::Close { .. } => {}
                }
            }
            match self.conn.poll_timeout() {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.conn.handle(self.now, Input::Timeout);
                }
                None => return events,
            }
        }
    }

    fn text(&mut self, value: serde_json::Value) -> Vec<ServerEvent> {
        self.conn.handle(self.now, Input::Text(&value.to_string()));
        self.drain()
    }

    fn append(&mut self, audio: &[u8]) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        for chunk in audio.chunks(160) {
            events.extend(self.text(json!({"type": "input_audio_buffer.append", "audio": base64::engine::general_purpose::STANDARD.encode(chunk)})));
        }
        events
    }
}

fn error_code(events: &[ServerEvent]) -> Option<String> {
    events.iter().find_map(|e| match e {
        ServerEvent::Error(e) => e.error.code.clone(),
        _ => None,
    })
}

#[test]
fn null_turn_detection_disables_vad() {
    let mut h = Harness::new("{}");
    h.text(json!({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": null}}}}));
    let events = h.append(&[loud_ulaw(500), silence_ulaw(800)].concat());
    assert!(events.is_empty(), "{:?}", kinds(&events));
    // A manual commit still works, and so does an explicit response.
    let events = h.text(json!({"type": "input_audio_buffer.commit"}));
    assert_eq!(kinds(&events)[0], "input_audio_buffer.committed");
    let events = h.text(json!({"type": "response.create"}));
    assert!(
        matches!(events.iter().rev().find(|e| is_done(e)), Some(ServerEvent::ResponseDone(d)) if d.response.status == ResponseStatus::Completed)
    );
}

#[test]
fn session_update_must_be_ga_shaped() {
    let mut h = Harness::new("{}");
    let events = h.text(json!({"type": "session.update", "session": {"instructions": "x"}}));
    assert_eq!(
        error_code(&events).as_deref(),
        Some("missing_required_parameter")
    );
    let events = h.text(
        json!({"type": "session.update", "session": {"type": "realtime", "temperature": 0.8}}),
    );
    assert_eq!(error_code(&events).as_deref(), Some("unknown_parameter"));
    let events = h.text(json!({"type": "session.update", "session": {"type": "realtime", "input_audio_format": "g711_ulaw"}}));
    assert_eq!(error_code(&events).as_deref(), Some("unknown_parameter"));
    let events = h.text(json!({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}));
    assert!(matches!(&events[..], [ServerEvent::SessionUpdated(_)]));
}

#[test]
fn misuse_gets_the_servers_errors() {
    let mut h = Harness::new("{}");
    assert_eq!(
        error_code(&h.text(json!({"type": "response.cancel"}))).as_deref(),
        Some("response_cancel_not_active")
    );
    assert_eq!(
        error_code(&h.text(json!({"type": "input_audio_buffer.commit"}))).as_deref(),
        Some("input_audio_buffer_commit_empty")
    );
    assert_eq!(
        error_code(&h.text(json!({"type": "input_audio_buffer.append", "audio": "%%%"})))
            .as_deref(),
        Some("invalid_value")
    );
    assert_eq!(error_code(&h.text(json!({"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 1}))).as_deref(), Some("item_truncate_invalid_item_id"));
    assert_eq!(
        error_code(&h.text(json!({"type": "no.such.event"}))).as_deref(),
        Some("invalid_event")
    );
    h.conn.handle(h.now, Input::Text("{oops"));
    assert_eq!(error_code(&h.drain()).as_deref(), Some("invalid_json"));
    assert_eq!(ConnStats::get(&h.stats.errors_sent), 6);
}

#[test]
fn audio_is_paced_faster_than_real_time_in_chunks() {
    let mut h = Harness::new(
        "voice: tone\npace: { chunk_ms: 40, speedup: 4.0 }\ngreeting_reply: \"abcdefghij\"\n",
    );
    h.text(json!({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcma"}}}}}));
    let t0 = h.now;
    let events = h.text(json!({"type": "response.create"}));
    let deltas: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::OutputAudioDelta(d) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(&d.delta)
                    .unwrap()
                    .len(),
            ),
            _ => None,
        })
        .collect();
    // 10 characters × 60 ms = 600 ms = 15 chunks of 40 ms (320 A-law bytes).
    assert_eq!(deltas, vec![320; 15]);
    // 14 steps of 10 ms after the first chunk.
    assert_eq!(h.now - t0, Duration::from_millis(140));
}

#[test]
fn fail_error_and_hang() {
    let mut h = Harness::new("turns:\n  - fail: error\n  - fail: hang\n");
    let events = h.text(json!({"type": "response.create"}));
    assert_eq!(error_code(&events).as_deref(), Some("server_error"));
    assert!(h.text(json!({"type": "response.create"})).is_empty());
    assert!(h.conn.is_hung());
    assert!(
        h.text(json!({"type": "response.cancel"})).is_empty(),
        "a hung session says nothing"
    );
}
