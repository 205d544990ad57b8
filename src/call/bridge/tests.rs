//! Unit tests of the model bridge core: simulated time, JSON events in, outputs checked.
use super::*;
use crate::model::protocol::decode;

fn settings() -> AgentSettings {
    AgentSettings {
        model: "test-model".into(),
        instructions: "Be brief.".into(),
        greeting: "Hello.".into(),
        voice: "marin".into(),
        transcription_model: String::new(),
        response_timeout: Duration::from_secs(5),
        barge_in: BargeInConfig::default(),
        turn_detection: default_turn_detection(),
        tools: Vec::new(),
    }
}

fn ev(json: &str) -> ServerEvent {
    decode(json).expect("valid server event")
}

fn drain(b: &mut ModelBridge) -> Vec<BridgeOutput> {
    std::iter::from_fn(|| b.poll_output()).collect()
}

fn kinds(out: &[BridgeOutput]) -> Vec<String> {
    out.iter()
        .map(|o| match o {
            BridgeOutput::Model(e) => e.kind().to_string(),
            BridgeOutput::Play(_) => "play".into(),
            BridgeOutput::ResponseStart => "response_start".into(),
            BridgeOutput::BargeIn => "barge_in".into(),
            BridgeOutput::Transcript { role, .. } => format!("transcript:{role}"),
            BridgeOutput::Failed(_) => "failed".into(),
            BridgeOutput::ToolCall { name, .. } => format!("tool:{name}"),
        })
        .collect()
}

fn loud_ulaw() -> Vec<u8> {
    (0..160)
        .map(|i| {
            let s = ((i as f32 * 0.35).sin() * 12_000.0) as i16;
            audio_codec_algorithms::encode_ulaw(s)
        })
        .collect()
}

fn delta(resp: &str, item: &str, bytes: &[u8]) -> ServerEvent {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    ev(&format!(
        r#"{{"type":"response.output_audio.delta","event_id":"e","response_id":"{resp}","item_id":"{item}","output_index":0,"content_index":0,"delta":"{b64}"}}"#
    ))
}

fn created(resp: &str) -> ServerEvent {
    ev(&format!(
        r#"{{"type":"response.created","event_id":"e","response":{{"id":"{resp}","object":"realtime.response","status":"in_progress","output":[]}}}}"#
    ))
}

fn speech_started() -> ServerEvent {
    ev(
        r#"{"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":100,"item_id":"u1"}"#,
    )
}

#[test]
fn start_configures_g711_passthrough_and_greets() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Pcmu).expect("bridge");
    b.start(t0);
    let out = drain(&mut b);
    assert_eq!(kinds(&out), ["session.update", "response.create"]);
    let BridgeOutput::Model(update) = &out[0] else {
        panic!()
    };
    let json = crate::model::protocol::encode(update);
    assert!(json.contains(r#""format":{"type":"audio/pcmu"}"#), "{json}");
    assert!(json.contains(r#""interrupt_response":false"#), "{json}");
    assert!(!json.contains("null"), "never send null: {json}");
    // No response within the timeout → failure.
    assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    b.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(kinds(&drain(&mut b)), ["failed"]);
}

#[test]
fn caller_frames_are_appended_untouched_and_deltas_become_frames() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Pcma).expect("bridge");
    let frame = vec![0xd5u8; 160];
    b.on_caller_frame(t0, &frame);
    let out = drain(&mut b);
    let BridgeOutput::Model(append) = &out[0] else {
        panic!()
    };
    assert_eq!(
        **append,
        ClientEvent::append(&frame),
        "A-law bytes go out as they came"
    );
    b.on_model_event(t0, created("r1"), false);
    b.on_model_event(t0, delta("r1", "i1", &[0x55; 400]), false);
    let out = drain(&mut b);
    assert_eq!(
        kinds(&out),
        ["response_start", "play", "play"],
        "two whole frames"
    );
    b.on_model_event(
        t0,
        ev(r#"{"type":"response.done","event_id":"e","response":{"id":"r1","object":"realtime.response","status":"completed","output":[],"usage":{"total_tokens":9,"input_tokens":5,"output_tokens":4}}}"#),
        true,
    );
    let out = drain(&mut b);
    assert_eq!(
        kinds(&out),
        ["play"],
        "the 80-byte tail is padded into a last frame"
    );
    let BridgeOutput::Play(last) = &out[0] else {
        panic!()
    };
    assert_eq!(last.len(), 160);
    assert_eq!(b.stats().output_tokens, 4);
}

#[test]
fn confirmed_barge_in_cancels_and_truncates_at_what_was_heard() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Pcmu).expect("bridge");
    b.on_model_event(t0, created("r1"), false);
    b.on_model_event(t0, delta("r1", "i1", &loud_ulaw().repeat(20)), false);
    drain(&mut b);
    // The loud frames that made the server detect speech arrived before its event...
    for _ in 0..4 {
        b.on_caller_frame(t0, &loud_ulaw());
    }
    drain(&mut b);
    // ...so the barge-in is confirmed the moment speech_started arrives.
    b.on_model_event(t0, speech_started(), true);
    let verdict = kinds(&drain(&mut b));
    assert_eq!(verdict, ["barge_in"]);
    b.truncate(340);
    let out = drain(&mut b);
    assert_eq!(
        kinds(&out),
        ["response.cancel", "conversation.item.truncate"]
    );
    let BridgeOutput::Model(t) = &out[1] else {
        panic!()
    };
    assert_eq!(**t, ClientEvent::truncate("i1", 340));
    // Deltas of the cancelled response still in flight are dropped.
    b.on_model_event(t0, delta("r1", "i1", &[0xff; 160]), false);
    assert!(drain(&mut b).is_empty());
    assert_eq!((b.stats().barge_ins, b.stats().truncates), (1, 1));
}

#[test]
fn echo_of_the_agent_does_not_cut_it_off() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Pcmu).expect("bridge");
    b.on_model_event(t0, created("r1"), false);
    b.on_model_event(t0, delta("r1", "i1", &loud_ulaw().repeat(30)), false);
    drain(&mut b);
    b.on_model_event(t0, speech_started(), true);
    // The caller's line carries the agent's voice 20 dB down: echo, not speech.
    let echo: Vec<u8> = (0..160)
        .map(|i| audio_codec_algorithms::encode_ulaw(((i as f32 * 0.35).sin() * 1_200.0) as i16))
        .collect();
    let mut seen = Vec::new();
    for _ in 0..30 {
        b.on_caller_frame(t0, &echo);
        seen.extend(kinds(&drain(&mut b)));
    }
    assert!(!seen.contains(&"barge_in".to_string()), "{seen:?}");
    assert_eq!(b.stats().barge_ins_rejected, 1);
}

#[test]
fn speech_while_the_agent_is_quiet_is_just_a_turn() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Pcmu).expect("bridge");
    b.on_model_event(t0, speech_started(), false);
    for _ in 0..5 {
        b.on_caller_frame(t0, &loud_ulaw());
    }
    assert!(!kinds(&drain(&mut b)).contains(&"barge_in".to_string()));
}

#[test]
fn errors_and_closes() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Pcmu).expect("bridge");
    b.on_model_event(
        t0,
        ev(r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"no"}}"#),
        false,
    );
    assert!(
        drain(&mut b).is_empty(),
        "a request-level error is not fatal"
    );
    b.on_model_event(
        t0,
        ev(r#"{"type":"error","event_id":"e","error":{"type":"server_error","message":"boom"}}"#),
        false,
    );
    assert_eq!(kinds(&drain(&mut b)), ["failed"]);
    b.on_closed("gone");
    assert!(drain(&mut b).is_empty(), "failure is reported once");
}

#[test]
fn opus_calls_go_through_24_khz_pcm() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Opus).expect("bridge");
    let mut enc = Encoder::new(CodecKind::Opus).expect("enc");
    let mut appended = 0;
    for _ in 0..10 {
        let pcm: Vec<i16> = (0..960)
            .map(|i| ((i as f32 * 0.06).sin() * 8000.0) as i16)
            .collect();
        let mut payload = Vec::new();
        enc.encode(&pcm, &mut payload).expect("encode");
        b.on_caller_frame(t0, &payload);
        for o in drain(&mut b) {
            if let BridgeOutput::Model(e) = o {
                if let ClientEvent::InputAudioBufferAppend { audio, .. } = *e {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(audio)
                        .expect("base64");
                    assert_eq!(bytes.len(), 960, "20 ms of 24 kHz PCM16");
                    appended += 1;
                }
            }
        }
    }
    assert_eq!(appended, 10);
    b.on_model_event(t0, created("r1"), false);
    b.on_model_event(
        t0,
        delta("r1", "i1", &vec![0u8; 24_000 / 50 * 2 * 10]),
        false,
    );
    let plays = kinds(&drain(&mut b))
        .iter()
        .filter(|k| *k == "play")
        .count();
    assert!((8..=10).contains(&plays), "about 10 Opus frames, {plays}");
}

#[test]
fn tool_outputs_wait_for_the_response_in_flight() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Pcmu).expect("bridge");
    b.start(t0);
    drain(&mut b);
    b.on_model_event(t0, created("r1"), false);
    b.on_model_event(t0, delta("r1", "i1", &[0xff; 320]), false);
    b.on_model_event(
        t0,
        ev(r#"{"type":"response.function_call_arguments.done","event_id":"e","response_id":"r1","item_id":"fc1","output_index":1,"call_id":"c1","name":"create_ticket","arguments":"{\"summary\":\"x\"}"}"#),
        true,
    );
    let out = drain(&mut b);
    assert!(
        kinds(&out).contains(&"tool:create_ticket".to_string()),
        "{:?}",
        kinds(&out)
    );
    assert!(b.response_spoke());
    // The result arrives while r1 is still in flight: held, nothing sent yet.
    b.tool_output(t0, "c1", "{\"ok\":true}".into(), Some(None));
    assert!(kinds(&drain(&mut b)).is_empty());
    assert!(b.is_busy());
    b.on_model_event(
        t0,
        ev(r#"{"type":"response.done","event_id":"e","response":{"id":"r1","object":"realtime.response","status":"completed","output":[]}}"#),
        false,
    );
    let out = drain(&mut b);
    assert_eq!(
        kinds(&out),
        ["conversation.item.create", "response.create"],
        "output first, then one response"
    );
    assert!(b.is_busy(), "a response was requested");
    // A second result while that response is requested (not yet created) waits again.
    b.tool_output(t0, "c2", "{}".into(), None);
    assert!(kinds(&drain(&mut b)).is_empty());
    b.on_model_event(t0, created("r2"), false);
    b.on_model_event(
        t0,
        ev(r#"{"type":"response.done","event_id":"e","response":{"id":"r2","object":"realtime.response","status":"completed","output":[]}}"#),
        false,
    );
    assert_eq!(
        kinds(&drain(&mut b)),
        ["response_start", "conversation.item.create"]
    );
    assert!(!b.is_busy());
}

#[test]
fn a_muted_bridge_sends_no_caller_audio() {
    let t0 = Instant::now();
    let mut b = ModelBridge::new(settings(), CodecKind::Pcmu).expect("bridge");
    b.start(t0);
    drain(&mut b);
    b.mute(true);
    b.on_caller_frame(t0, &loud_ulaw());
    assert!(drain(&mut b).is_empty());
    b.mute(false);
    b.on_caller_frame(t0, &loud_ulaw());
    assert_eq!(kinds(&drain(&mut b)), ["input_audio_buffer.append"]);
}
