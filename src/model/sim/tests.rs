//! Simulator tests: the sans-IO core driven with a test clock, and real WebSocket round trips
//! through `client::connect`. No sleeps: every wait is on an event, with a timeout as a guard.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

use super::testkit::{is_done, kinds, loud_ulaw, script, silence_ulaw};
use super::*;
use crate::model::client::{
    connect, CloseReason, ModelEndpoint, ModelError, ModelInput, ModelSession, Secret,
};
use crate::model::protocol::*;

const GUARD: Duration = Duration::from_secs(10);

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
