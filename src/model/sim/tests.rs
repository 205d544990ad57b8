//! Simulator tests: the sans-IO core driven with a test clock, and real WebSocket round trips
//! through `client::connect`. No sleeps: every wait is on an event, with a timeout as a guard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use super::core::{Input, Output, SimConn};
use super::*;
use crate::model::client::{
    connect, CloseReason, ModelEndpoint, ModelError, ModelInput, ModelSession, Secret,
};
use crate::model::protocol::*;

const GUARD: Duration = Duration::from_secs(10);

fn script(yaml: &str) -> Arc<SimScript> {
    Arc::new(SimScript::from_yaml(yaml).expect("test script parses"))
}

fn g711_session() -> SessionConfig {
    SessionConfig {
        model: Some("gpt-realtime".into()),
        instructions: Some("Be brief.".into()),
        output_modalities: Some(vec![Modality::Audio]),
        audio: Some(AudioConfig {
            input: Some(AudioInput {
                format: Some(AudioFormat::Pcmu),
                turn_detection: Some(TurnDetection::server_vad_default()),
                ..Default::default()
            }),
            output: Some(AudioOutput {
                format: Some(AudioFormat::Pcmu),
                voice: Some(Voice::Named("marin".into())),
                speed: None,
            }),
        }),
        ..Default::default()
    }
}

/// A loud 440 Hz µ-law tone: "speech" to the energy VAD.
fn loud_ulaw(ms: usize) -> Vec<u8> {
    (0..ms * 8)
        .map(|i| {
            let s = 8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin();
            audio_codec_algorithms::encode_ulaw(s as i16)
        })
        .collect()
}

/// µ-law digital silence.
fn silence_ulaw(ms: usize) -> Vec<u8> {
    vec![0xFF; ms * 8]
}

fn append_20ms(session: &ModelSession, audio: &[u8]) {
    for chunk in audio.chunks(160) {
        session
            .send(ClientEvent::append(chunk))
            .expect("send queue has room");
    }
}

async fn next(session: &mut ModelSession) -> ModelInput {
    tokio::time::timeout(GUARD, session.recv())
        .await
        .expect("event within the guard time")
        .expect("session open")
}

/// Reads events until `pred` matches; returns everything seen, the match last.
async fn until(
    session: &mut ModelSession,
    pred: impl Fn(&ServerEvent) -> bool,
) -> Vec<ServerEvent> {
    let mut seen = Vec::new();
    loop {
        match next(session).await {
            ModelInput::Event(e) => {
                let hit = pred(&e);
                seen.push(e);
                if hit {
                    return seen;
                }
            }
            ModelInput::Closed(reason) => {
                panic!("closed while waiting: {reason:?}; seen {:?}", kinds(&seen))
            }
        }
    }
}

fn kinds(events: &[ServerEvent]) -> Vec<&str> {
    events.iter().map(ServerEvent::kind).collect()
}

fn audio_bytes(events: &[ServerEvent]) -> usize {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::OutputAudioDelta(d) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(&d.delta)
                    .expect("sim sends base64")
                    .len(),
            ),
            _ => None,
        })
        .sum()
}

async fn start(script: Arc<SimScript>) -> (SimHandle, ModelSession) {
    let sim = spawn_local(script).await.expect("sim binds");
    let endpoint = ModelEndpoint {
        url: sim.url(),
        model: "gpt-realtime".into(),
        api_key: None,
    };
    let mut session = connect(&endpoint, GUARD).await.expect("connects to sim");
    until(&mut session, |e| {
        matches!(e, ServerEvent::SessionCreated(_))
    })
    .await;
    session
        .send(ClientEvent::session_update(g711_session()))
        .expect("queue");
    until(&mut session, |e| {
        matches!(e, ServerEvent::SessionUpdated(_))
    })
    .await;
    (sim, session)
}

fn is_done(e: &ServerEvent) -> bool {
    matches!(e, ServerEvent::ResponseDone(_))
}

#[tokio::test]
async fn session_update_is_echoed_and_recorded() {
    let sim = spawn_local(script("{}")).await.unwrap();
    let endpoint = ModelEndpoint {
        url: sim.url(),
        model: "gpt-realtime".into(),
        api_key: None,
    };
    let mut session = connect(&endpoint, GUARD).await.unwrap();
    let first = until(&mut session, |_| true).await;
    assert!(matches!(first[0], ServerEvent::SessionCreated(_)));
    session
        .send(ClientEvent::session_update(g711_session()))
        .unwrap();
    let seen = until(&mut session, |e| {
        matches!(e, ServerEvent::SessionUpdated(_))
    })
    .await;
    let ServerEvent::SessionUpdated(ev) = seen.last().unwrap() else {
        unreachable!()
    };
    let audio = ev.session.audio.clone().unwrap();
    assert_eq!(audio.input.unwrap().format, Some(AudioFormat::Pcmu));
    assert_eq!(audio.output.unwrap().format, Some(AudioFormat::Pcmu));
    assert_eq!(ev.session.instructions.as_deref(), Some("Be brief."));
    let conn = sim.stats.last().unwrap();
    let raw = conn.last_session_update().unwrap();
    assert_eq!(raw["type"], "realtime");
    assert_eq!(
        raw["audio"]["input"]["format"],
        json!({"type": "audio/pcmu"})
    );
    assert_eq!(
        ConnStats::get(&conn.beta_header),
        0,
        "voxgate must never send OpenAI-Beta"
    );
}

#[tokio::test]
async fn vad_turn_commits_and_answers_with_audio() {
    let (sim, mut session) = start(script(
        "voice: tone\nturns:\n  - reply: \"Let me check that.\"\n    transcript: \"my internet is down\"\n",
    ))
    .await;
    append_20ms(&session, &loud_ulaw(1000));
    append_20ms(&session, &silence_ulaw(1000));
    let seen = until(&mut session, is_done).await;
    let k = kinds(&seen);
    let pos = |name: &str| {
        k.iter()
            .position(|x| *x == name)
            .unwrap_or_else(|| panic!("{name} missing in {k:?}"))
    };
    assert!(pos("input_audio_buffer.speech_started") < pos("input_audio_buffer.speech_stopped"));
    assert!(pos("input_audio_buffer.speech_stopped") < pos("input_audio_buffer.committed"));
    assert!(pos("input_audio_buffer.committed") < pos("response.created"));
    assert!(pos("response.created") < pos("response.output_audio.delta"));
    assert!(pos("response.output_audio.done") < pos("response.done"));

    let started = seen
        .iter()
        .find_map(|e| match e {
            ServerEvent::SpeechStarted(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let stopped = seen
        .iter()
        .find_map(|e| match e {
            ServerEvent::SpeechStopped(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(started.audio_start_ms, 0);
    assert_eq!(
        stopped.audio_end_ms, 1000,
        "speech ended with the tone, in audio time"
    );
    assert_eq!(started.item_id, stopped.item_id);
    assert!(seen.iter().any(|e| matches!(e, ServerEvent::InputTranscriptionCompleted(t) if t.transcript == "my internet is down" && t.item_id == stopped.item_id)));

    // µ-law: one byte per sample, exactly the tone rendering of the reply.
    assert_eq!(audio_bytes(&seen), tones("Let me check that.", 8000).len());
    let transcript = seen.iter().find_map(|e| match e {
        ServerEvent::OutputAudioTranscriptDone(t) => Some(t.transcript.clone()),
        _ => None,
    });
    assert_eq!(transcript.as_deref(), Some("Let me check that."));
    let ServerEvent::ResponseDone(done) = seen.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(done.response.status, ResponseStatus::Completed);
    assert!(done
        .response
        .usage
        .as_ref()
        .is_some_and(|u| u.total_tokens > 0));

    let conn = sim.stats.last().unwrap();
    assert_eq!(ConnStats::get(&conn.appends), 100);
    assert_eq!(ConnStats::get(&conn.audio_ms), 2000);
    assert_eq!(ConnStats::get(&conn.speech_started), 1);
    assert_eq!(ConnStats::get(&conn.commits), 1);
    assert_eq!(ConnStats::get(&conn.responses_completed), 1);
}

#[tokio::test]
async fn barge_in_cancels_the_response_in_flight() {
    let long = "This reply is long enough to still be streaming when the caller talks over it.";
    let (sim, mut session) = start(script(&format!(
        "voice: tone\npace: {{ chunk_ms: 100, speedup: 1.0 }}\ngreeting_reply: \"{long}\"\n"
    )))
    .await;
    session.send(ClientEvent::response_create()).unwrap();
    let seen = until(&mut session, |e| {
        matches!(e, ServerEvent::OutputAudioDelta(_))
    })
    .await;
    let ServerEvent::OutputAudioDelta(first) = seen.last().unwrap() else {
        unreachable!()
    };
    let item_id = first.item_id.clone();
    append_20ms(&session, &loud_ulaw(100));
    let seen = until(&mut session, is_done).await;
    let started = seen
        .iter()
        .position(|e| matches!(e, ServerEvent::SpeechStarted(_)))
        .expect("speech_started");
    assert!(
        !seen[started..]
            .iter()
            .any(|e| matches!(e, ServerEvent::OutputAudioDelta(_))),
        "no audio after barge-in: {:?}",
        kinds(&seen[started..])
    );
    let ServerEvent::ResponseDone(done) = seen.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(done.response.status, ResponseStatus::Cancelled);
    assert_eq!(
        done.response
            .status_details
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        Some("turn_detected")
    );
    assert!(audio_bytes(&seen) < tones(long, 8000).len());
    let conn = sim.stats.last().unwrap();
    assert_eq!(ConnStats::get(&conn.responses_cancelled), 1);

    // The client truncates at what was played: fine up to what was sent.
    session
        .send(ClientEvent::truncate(item_id.clone(), 40))
        .unwrap();
    until(
        &mut session,
        |e| matches!(e, ServerEvent::ItemTruncated(t) if t.audio_end_ms == 40),
    )
    .await;
    assert_eq!(conn.truncates().last().map(|t| t.accepted), Some(true));
}

#[tokio::test]
async fn truncate_beyond_sent_audio_is_an_error() {
    let (sim, mut session) = start(script("voice: tone\ngreeting_reply: \"Hi there\"\n")).await;
    session.send(ClientEvent::response_create()).unwrap();
    let seen = until(&mut session, is_done).await;
    let item_id = seen
        .iter()
        .find_map(|e| match e {
            ServerEvent::OutputAudioDelta(d) => Some(d.item_id.clone()),
            _ => None,
        })
        .unwrap();
    let sent_ms = (audio_bytes(&seen) / 8) as u64;
    session
        .send(ClientEvent::truncate(item_id.clone(), sent_ms + 500))
        .unwrap();
    let seen = until(&mut session, |e| {
        matches!(e, ServerEvent::Error(_) | ServerEvent::ItemTruncated(_))
    })
    .await;
    let ServerEvent::Error(err) = seen.last().unwrap() else {
        panic!("expected error, got {:?}", kinds(&seen))
    };
    assert_eq!(err.error.kind, "invalid_request_error");
    assert_eq!(err.error.param.as_deref(), Some("audio_end_ms"));
    let truncates = sim.stats.last().unwrap().truncates();
    assert_eq!(
        truncates,
        vec![TruncateRecord {
            item_id,
            audio_end_ms: sent_ms + 500,
            sent_ms,
            accepted: false
        }]
    );
}

#[tokio::test]
async fn unknown_server_events_reach_the_client_as_unknown() {
    let sim = spawn_local(script(
        r#"on_connect: [{ type: "output_audio_buffer.started", response_id: "resp_x" }]"#,
    ))
    .await
    .unwrap();
    let endpoint = ModelEndpoint {
        url: sim.url(),
        model: "m".into(),
        api_key: None,
    };
    let mut session = connect(&endpoint, GUARD).await.unwrap();
    let seen = until(&mut session, |e| matches!(e, ServerEvent::Unknown { .. })).await;
    assert_eq!(
        kinds(&seen),
        ["session.created", "output_audio_buffer.started"]
    );
}

#[tokio::test]
async fn scripted_close_reaches_the_client_as_closed() {
    let (_sim, mut session) = start(script("turns:\n  - fail: close\n")).await;
    session.send(ClientEvent::response_create()).unwrap();
    loop {
        match next(&mut session).await {
            ModelInput::Event(_) => continue,
            ModelInput::Closed(reason) => {
                assert_eq!(
                    reason,
                    CloseReason::Peer {
                        code: 1011,
                        reason: "simulated failure".into()
                    }
                );
                break;
            }
        }
    }
    // Nothing follows Closed: the stream ends and sending fails.
    let end = tokio::time::timeout(GUARD, session.recv())
        .await
        .expect("stream ends");
    assert_eq!(end, None);
    assert!(matches!(
        session.send(ClientEvent::response_create()),
        Err(ModelError::Closed)
    ));
}

#[tokio::test]
async fn function_call_turn_then_output_gets_the_next_turn() {
    let yaml = r#"
voice: tone
greeting_reply: "Hello."
turns:
  - reply: "Let me open a ticket."
    function_call: { name: create_ticket, arguments: { summary: "Internet down", priority: high } }
  - reply: "Ticket created."
"#;
    let (sim, mut session) = start(script(yaml)).await;
    session.send(ClientEvent::response_create()).unwrap();
    let greeting = until(&mut session, is_done).await;
    assert!(greeting.iter().any(
        |e| matches!(e, ServerEvent::OutputAudioTranscriptDone(t) if t.transcript == "Hello.")
    ));

    append_20ms(&session, &loud_ulaw(400));
    append_20ms(&session, &silence_ulaw(600));
    let seen = until(&mut session, is_done).await;
    let call = seen
        .iter()
        .find_map(|e| match e {
            ServerEvent::FunctionCallArgumentsDone(d) => Some(d.clone()),
            _ => None,
        })
        .expect("function call");
    assert_eq!(call.name.as_deref(), Some("create_ticket"));
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(
        args,
        json!({"summary": "Internet down", "priority": "high"})
    );
    assert!(seen.iter().any(|e| matches!(e, ServerEvent::OutputItemAdded(o) if matches!(&o.item, Item::FunctionCall { name, .. } if name == "create_ticket"))));

    session
        .send(ClientEvent::item_create(Item::function_output(
            call.call_id.clone(),
            r#"{"ticket":"T-42"}"#,
        )))
        .unwrap();
    session.send(ClientEvent::response_create()).unwrap();
    let seen = until(&mut session, is_done).await;
    assert!(seen.iter().any(|e| matches!(e, ServerEvent::ItemAdded(i) if matches!(&i.item, Item::FunctionCallOutput { .. }))));
    assert!(seen.iter().any(|e| matches!(e, ServerEvent::OutputAudioTranscriptDone(t) if t.transcript == "Ticket created.")));
    let outputs = sim.stats.last().unwrap().function_outputs();
    assert_eq!(
        outputs,
        vec![FunctionOutputRecord {
            call_id: call.call_id,
            output: r#"{"ticket":"T-42"}"#.into()
        }]
    );
}

#[tokio::test]
async fn required_key_refuses_with_401() {
    let sim = spawn_local(script("require_key: sk-sim\n")).await.unwrap();
    let mut endpoint = ModelEndpoint {
        url: sim.url(),
        model: "m".into(),
        api_key: Some(Secret::new("wrong")),
    };
    let err = connect(&endpoint, GUARD).await.unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert!(
        matches!(err, ModelError::Refused { status: 401, ref body } if body.contains("invalid_api_key"))
    );
    endpoint.api_key = Some(Secret::new("sk-sim"));
    let mut session = connect(&endpoint, GUARD).await.unwrap();
    until(&mut session, |e| {
        matches!(e, ServerEvent::SessionCreated(_))
    })
    .await;
}

#[tokio::test]
async fn explicit_response_while_one_is_active_is_an_error() {
    let (_sim, mut session) = start(script("voice: tone\npace: { speedup: 1.0 }\n")).await;
    session.send(ClientEvent::response_create()).unwrap();
    session.send(ClientEvent::response_create()).unwrap();
    let seen = until(&mut session, |e| matches!(e, ServerEvent::Error(_))).await;
    let ServerEvent::Error(err) = seen.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(
        err.error.code.as_deref(),
        Some("conversation_already_has_active_response")
    );
    session.send(ClientEvent::response_cancel()).unwrap();
    let seen = until(&mut session, is_done).await;
    let ServerEvent::ResponseDone(done) = seen.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(done.response.status, ResponseStatus::Cancelled);
    assert_eq!(
        done.response
            .status_details
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        Some("client_cancelled")
    );
}

#[tokio::test]
async fn espeak_voice_in_pcm24k_when_installed() {
    let (sim, mut session) = start(script("greeting_reply: \"Hello caller\"\n")).await;
    let mut update = g711_session();
    let audio = update.audio.as_mut().unwrap();
    audio.input.as_mut().unwrap().format = Some(AudioFormat::Pcm24k);
    audio.output.as_mut().unwrap().format = Some(AudioFormat::Pcm24k);
    session.send(ClientEvent::session_update(update)).unwrap();
    until(&mut session, |e| {
        matches!(e, ServerEvent::SessionUpdated(_))
    })
    .await;
    session.send(ClientEvent::response_create()).unwrap();
    let seen = until(&mut session, is_done).await;
    let bytes = audio_bytes(&seen);
    assert!(
        bytes > 0 && bytes.is_multiple_of(2),
        "PCM16 audio: {bytes} bytes"
    );
    let ServerEvent::ResponseDone(done) = seen.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(done.response.status, ResponseStatus::Completed);
    drop(sim);
}

// ---- the sans-IO core, with a test clock ----

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
                    Output::Raw(_) | Output::Close { .. } => {}
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
