//! Round trips against JSON shaped like the official GA reference examples.

use serde_json::{json, Value};

use super::*;

fn g711_session() -> SessionConfig {
    SessionConfig {
        model: Some("gpt-realtime".into()),
        instructions: Some("Be brief.".into()),
        output_modalities: Some(vec![Modality::Audio]),
        audio: Some(AudioConfig {
            input: Some(AudioInput {
                format: Some(AudioFormat::Pcmu),
                transcription: Some(Transcription {
                    model: Some("gpt-4o-mini-transcribe".into()),
                    ..Default::default()
                }),
                noise_reduction: Some(NoiseReduction {
                    kind: NoiseReductionKind::NearField,
                }),
                turn_detection: Some(TurnDetection::server_vad_default()),
            }),
            output: Some(AudioOutput {
                format: Some(AudioFormat::Pcmu),
                voice: Some(Voice::Named("marin".into())),
                speed: None,
            }),
        }),
        tools: Some(vec![Tool::function(
            "end_call",
            "Hang up politely.",
            json!({"type": "object", "properties": {}}),
        )]),
        tool_choice: Some(ToolChoice::auto()),
        ..Default::default()
    }
}

fn contains_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().any(contains_null),
        Value::Object(o) => o.values().any(contains_null),
        _ => false,
    }
}

#[test]
fn g711_session_update_has_exact_formats_and_no_nulls() {
    let text = encode(&ClientEvent::session_update(g711_session()));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(!contains_null(&v), "{text}");
    assert_eq!(v["type"], "session.update");
    assert_eq!(v["session"]["type"], "realtime");
    assert_eq!(
        v["session"]["audio"]["input"]["format"],
        json!({"type": "audio/pcmu"})
    );
    assert_eq!(
        v["session"]["audio"]["output"]["format"],
        json!({"type": "audio/pcmu"})
    );
    assert_eq!(v["session"]["audio"]["output"]["voice"], "marin");
    assert_eq!(
        v["session"]["audio"]["input"]["noise_reduction"],
        json!({"type": "near_field"})
    );
    assert_eq!(
        v["session"]["audio"]["input"]["turn_detection"],
        json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
               "silence_duration_ms": 500, "create_response": true, "interrupt_response": true})
    );
    assert!(v["session"].get("temperature").is_none());
    assert!(v.get("event_id").is_none());
    assert_eq!(v["session"]["tools"][0]["type"], "function");
}

#[test]
fn audio_formats_have_exact_shapes() {
    for (f, j) in [
        (AudioFormat::Pcmu, json!({"type": "audio/pcmu"})),
        (AudioFormat::Pcma, json!({"type": "audio/pcma"})),
        (
            AudioFormat::Pcm24k,
            json!({"type": "audio/pcm", "rate": 24000}),
        ),
    ] {
        assert_eq!(serde_json::to_value(f).unwrap(), j);
        assert_eq!(serde_json::from_value::<AudioFormat>(j).unwrap(), f);
    }
    // The rate may be omitted for audio/pcm; any other rate is refused.
    assert_eq!(
        serde_json::from_value::<AudioFormat>(json!({"type": "audio/pcm"})).unwrap(),
        AudioFormat::Pcm24k
    );
    assert!(
        serde_json::from_value::<AudioFormat>(json!({"type": "audio/pcm", "rate": 16000})).is_err()
    );
    assert!(serde_json::from_value::<AudioFormat>(json!({"type": "g711_ulaw"})).is_err());
}

#[test]
fn semantic_vad_serializes_eagerness() {
    let td = TurnDetection::SemanticVad {
        eagerness: Some(Eagerness::Auto),
        create_response: Some(true),
        interrupt_response: Some(false),
    };
    assert_eq!(
        serde_json::to_value(&td).unwrap(),
        json!({"type": "semantic_vad", "eagerness": "auto", "create_response": true, "interrupt_response": false})
    );
    assert!(td.create_response() && !td.interrupt_response());
}

#[test]
fn client_events_match_reference_literals() {
    let cases: Vec<(ClientEvent, Value)> = vec![
        (
            ClientEvent::append(&[0xff, 0x7f]),
            json!({"type": "input_audio_buffer.append", "audio": "/38="}),
        ),
        (
            ClientEvent::InputAudioBufferCommit {
                event_id: Some("event_789".into()),
            },
            json!({"type": "input_audio_buffer.commit", "event_id": "event_789"}),
        ),
        (
            ClientEvent::InputAudioBufferClear { event_id: None },
            json!({"type": "input_audio_buffer.clear"}),
        ),
        (
            ClientEvent::ConversationItemTruncate {
                event_id: Some("event_678".into()),
                item_id: "item_002".into(),
                content_index: 0,
                audio_end_ms: 1500,
            },
            json!({"event_id": "event_678", "type": "conversation.item.truncate",
                   "item_id": "item_002", "content_index": 0, "audio_end_ms": 1500}),
        ),
        (
            ClientEvent::item_create(Item::function_output("call_1", r#"{"ticket":"T-1"}"#)),
            json!({"type": "conversation.item.create",
                   "item": {"type": "function_call_output", "call_id": "call_1", "output": "{\"ticket\":\"T-1\"}"}}),
        ),
        (
            ClientEvent::item_create(Item::user_text("hello")),
            json!({"type": "conversation.item.create",
                   "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}}),
        ),
        (
            ClientEvent::response_create(),
            json!({"type": "response.create"}),
        ),
        (
            ClientEvent::ResponseCreate {
                event_id: None,
                response: Some(ResponseConfig {
                    instructions: Some("Greet the caller.".into()),
                    output_modalities: Some(vec![Modality::Audio]),
                    ..Default::default()
                }),
            },
            json!({"type": "response.create",
                   "response": {"instructions": "Greet the caller.", "output_modalities": ["audio"]}}),
        ),
        (
            ClientEvent::response_cancel(),
            json!({"type": "response.cancel"}),
        ),
    ];
    for (event, expected) in cases {
        let text = encode(&event);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            expected,
            "{}",
            event.kind()
        );
        assert_eq!(decode_client(&text).unwrap(), event, "{}", event.kind());
    }
}

#[test]
fn decodes_ga_session_created() {
    let text = r#"{"type":"session.created","event_id":"event_C9G5RJeJ2gF77mV7f2B1j","session":{"type":"realtime","object":"realtime.session","id":"sess_C9G5QPteg4UIbotdKLoYQ","model":"gpt-realtime-2025-08-28","output_modalities":["audio"],"instructions":"Your knowledge cutoff is 2023-10.","tools":[],"tool_choice":"auto","max_output_tokens":"inf","tracing":null,"prompt":null,"expires_at":1756324625,"audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"transcription":null,"noise_reduction":null,"turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":200,"idle_timeout_ms":null,"create_response":true,"interrupt_response":true}},"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin","speed":1}},"include":null}}"#;
    let ServerEvent::SessionCreated(ev) = decode(text).unwrap() else {
        panic!("not session.created");
    };
    let s = ev.session;
    assert_eq!(s.id.as_deref(), Some("sess_C9G5QPteg4UIbotdKLoYQ"));
    assert_eq!(
        s.max_output_tokens,
        Some(MaxOutputTokens::Named("inf".into()))
    );
    let input = s.audio.as_ref().and_then(|a| a.input.clone()).unwrap();
    assert_eq!(input.format, Some(AudioFormat::Pcm24k));
    assert_eq!(input.transcription, None);
    assert!(matches!(
        input.turn_detection,
        Some(TurnDetection::ServerVad {
            silence_duration_ms: Some(200),
            idle_timeout_ms: None,
            ..
        })
    ));
}

#[test]
fn decodes_ga_response_done_with_usage() {
    let text = r#"{"type":"response.done","event_id":"event_CCXHxcMy86rrKhBLDdqCh","response":{"object":"realtime.response","id":"resp_CCXHw0UJld10EzIUXQCNh","status":"completed","status_details":null,"output":[{"id":"item_CCXHwGjjDUfOXbiySlK7i","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"Loud and clear! How can I help you today?"}]}],"conversation_id":"conv_CCXHsurMKcaVxIZvaCI5m","output_modalities":["audio"],"max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"alloy"}},"usage":{"total_tokens":253,"input_tokens":132,"output_tokens":121,"input_token_details":{"text_tokens":119,"audio_tokens":13,"image_tokens":0,"cached_tokens":64,"cached_tokens_details":{"text_tokens":64,"audio_tokens":0,"image_tokens":0}},"output_token_details":{"text_tokens":30,"audio_tokens":91}},"metadata":null}}"#;
    let ServerEvent::ResponseDone(ev) = decode(text).unwrap() else {
        panic!("not response.done");
    };
    let r = ev.response;
    assert_eq!(r.id, "resp_CCXHw0UJld10EzIUXQCNh");
    assert_eq!(r.status, ResponseStatus::Completed);
    let usage = r.usage.unwrap();
    assert_eq!(
        (usage.total_tokens, usage.input_tokens, usage.output_tokens),
        (253, 132, 121)
    );
    assert_eq!(usage.output_token_details.unwrap().audio_tokens, Some(91));
    assert!(matches!(
        &r.output[0],
        Item::Message { role: Role::Assistant, content, .. }
            if matches!(&content[0], ContentPart::OutputAudio { transcript: Some(t), .. } if t.starts_with("Loud"))
    ));
}

#[test]
fn decodes_cancelled_response_and_failed_status() {
    let text = r#"{"type":"response.done","event_id":"e","response":{"id":"resp_1","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[]}}"#;
    let ServerEvent::ResponseDone(ev) = decode(text).unwrap() else {
        panic!()
    };
    assert_eq!(ev.response.status, ResponseStatus::Cancelled);
    assert_eq!(
        ev.response.status_details.unwrap().reason.as_deref(),
        Some("turn_detected")
    );
    let text = r#"{"type":"response.done","response":{"id":"r","status":"paused_for_reasons"}}"#;
    let ServerEvent::ResponseDone(ev) = decode(text).unwrap() else {
        panic!()
    };
    assert_eq!(ev.response.status, ResponseStatus::Unknown);
}

#[test]
fn decodes_reference_server_events() {
    let cases = [
        r#"{"event_id":"event_1516","type":"input_audio_buffer.speech_started","audio_start_ms":1000,"item_id":"msg_003"}"#,
        r#"{"event_id":"event_1718","type":"input_audio_buffer.speech_stopped","audio_end_ms":2000,"item_id":"msg_003"}"#,
        r#"{"event_id":"event_1121","type":"input_audio_buffer.committed","previous_item_id":"msg_001","item_id":"msg_002"}"#,
        r#"{"event_id":"event_1314","type":"input_audio_buffer.cleared"}"#,
        r#"{"event_id":"event_2122","type":"conversation.item.input_audio_transcription.completed","item_id":"msg_003","content_index":0,"transcript":"Hello, how are you?","usage":{"type":"duration","seconds":1}}"#,
        r#"{"event_id":"event_2526","type":"conversation.item.truncated","item_id":"msg_004","content_index":0,"audio_end_ms":1500}"#,
        r#"{"event_id":"event_4950","type":"response.output_audio.delta","response_id":"resp_001","item_id":"msg_008","output_index":0,"content_index":0,"delta":"Base64EncodedAudioDelta"}"#,
        r#"{"event_id":"event_5152","type":"response.output_audio.done","response_id":"resp_001","item_id":"msg_008","output_index":0,"content_index":0}"#,
        r#"{"event_id":"event_4546","type":"response.output_audio_transcript.delta","response_id":"resp_001","item_id":"msg_008","output_index":0,"content_index":0,"delta":"Hello, how can I a"}"#,
        r#"{"event_id":"event_4748","type":"response.output_audio_transcript.done","response_id":"resp_001","item_id":"msg_008","output_index":0,"content_index":0,"transcript":"Hello, how can I assist you today?"}"#,
        r#"{"event_id":"event_3334","type":"response.output_item.added","response_id":"resp_001","output_index":0,"item":{"id":"msg_007","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}"#,
        r#"{"event_id":"event_3738","type":"response.content_part.added","response_id":"resp_001","item_id":"msg_007","output_index":0,"content_index":0,"part":{"type":"audio","transcript":""}}"#,
        r#"{"event_id":"event_5354","type":"response.function_call_arguments.delta","response_id":"resp_002","item_id":"fc_001","output_index":0,"call_id":"call_001","delta":"{\"location\": \"San\""}"#,
        r#"{"event_id":"event_5556","type":"response.function_call_arguments.done","response_id":"resp_002","item_id":"fc_001","output_index":0,"call_id":"call_001","name":"get_weather","arguments":"{\"location\": \"San Francisco\"}"}"#,
        r#"{"event_id":"event_5758","type":"rate_limits.updated","rate_limits":[{"name":"requests","limit":1000,"remaining":999,"reset_seconds":60},{"name":"tokens","limit":50000,"remaining":49950,"reset_seconds":60}]}"#,
        r#"{"event_id":"event_890","type":"error","error":{"type":"invalid_request_error","code":"invalid_event","message":"The 'type' field is missing.","param":null,"event_id":"event_567"}}"#,
        r#"{"event_id":"event_1920","type":"conversation.item.added","previous_item_id":null,"item":{"id":"msg_003","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":null}]}}"#,
        r#"{"event_id":"e","type":"response.created","response":{"object":"realtime.response","id":"resp_C9G8UqLiq2tlZT1Zz7mdR","status":"in_progress","status_details":null,"output":[],"conversation_id":"conv_1","output_modalities":["audio"],"max_output_tokens":"inf","usage":null,"metadata":null}}"#,
    ];
    for text in cases {
        let event = decode(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(!matches!(event, ServerEvent::Unknown { .. }), "{text}");
        // Re-encoding keeps the type and every field we model.
        let again = decode(&encode_server(&event, "event_x")).unwrap();
        assert_eq!(again, event, "{text}");
    }
    let ServerEvent::FunctionCallArgumentsDone(done) = decode(cases[13]).unwrap() else {
        panic!()
    };
    assert_eq!(done.name.as_deref(), Some("get_weather"));
    let ServerEvent::Error(err) = decode(cases[15]).unwrap() else {
        panic!()
    };
    assert_eq!(err.error.code.as_deref(), Some("invalid_event"));
    assert_eq!(err.error.event_id.as_deref(), Some("event_567"));
}

#[test]
fn unknown_types_and_extra_fields_do_not_fail() {
    let ev = decode(r#"{"type":"output_audio_buffer.started","event_id":"e","response_id":"r"}"#)
        .unwrap();
    assert_eq!(
        ev,
        ServerEvent::Unknown {
            kind: "output_audio_buffer.started".into()
        }
    );
    assert_eq!(ev.kind(), "output_audio_buffer.started");
    let ev =
        decode(r#"{"type":"input_audio_buffer.cleared","brand_new_field":{"x":[1,2]}}"#).unwrap();
    assert_eq!(ev, ServerEvent::BufferCleared(Empty {}));
    // Unknown item and content types inside known events.
    let ev =
        decode(r#"{"type":"conversation.item.done","item":{"type":"mcp_call","id":"x"}}"#).unwrap();
    assert!(matches!(
        ev,
        ServerEvent::ItemDone(ItemEvent {
            item: Item::Other,
            ..
        })
    ));
}

#[test]
fn malformed_frames_are_errors() {
    assert!(matches!(decode("{not json"), Err(ProtocolError::Json(_))));
    assert!(matches!(
        decode(r#"{"no_type":1}"#),
        Err(ProtocolError::MissingType)
    ));
    assert!(matches!(
        decode(r#"{"type":7}"#),
        Err(ProtocolError::MissingType)
    ));
    assert!(matches!(
        decode(r#"{"type":"response.output_audio.delta","delta":"AAAA"}"#),
        Err(ProtocolError::Shape { kind, .. }) if kind == "response.output_audio.delta"
    ));
    assert!(matches!(
        decode_client(r#"{"type":"session.frobnicate"}"#),
        Err(ProtocolError::Shape { .. })
    ));
}
