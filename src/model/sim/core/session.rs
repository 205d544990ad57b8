//! `session.update`: GA shape checks, field-by-field merge, and `null` meaning "off".

use serde_json::Value;

use super::SimConn;
use crate::model::protocol::*;

const SESSION_KEYS: &[&str] = &[
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "tracing",
    "truncation",
    "prompt",
    "include",
];
const INPUT_KEYS: &[&str] = &[
    "format",
    "transcription",
    "noise_reduction",
    "turn_detection",
];
const OUTPUT_KEYS: &[&str] = &["format", "voice", "speed"];

impl SimConn {
    pub(super) fn session_update(
        &mut self,
        raw: Value,
        update: SessionConfig,
        event_id: Option<String>,
    ) {
        self.stats.set_session_update(raw.clone());
        if raw.get("type").is_none() {
            let msg = "Missing required parameter: 'session.type'.".into();
            return self.error(
                "invalid_request_error",
                "missing_required_parameter",
                msg,
                Some("session.type"),
                event_id,
            );
        }
        let checks = [
            ("", &raw, SESSION_KEYS),
            ("audio.input.", &raw["audio"]["input"], INPUT_KEYS),
            ("audio.output.", &raw["audio"]["output"], OUTPUT_KEYS),
        ];
        for (prefix, obj, allowed) in checks {
            if let Some(map) = obj.as_object() {
                if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                    let param = format!("session.{prefix}{key}");
                    let msg = format!("Unknown parameter: '{param}'.");
                    return self.error(
                        "invalid_request_error",
                        "unknown_parameter",
                        msg,
                        Some(&param),
                        event_id,
                    );
                }
            }
        }
        merge(&mut self.session, update);
        let input = self
            .session
            .audio
            .get_or_insert_with(Default::default)
            .input
            .get_or_insert_with(Default::default);
        // An explicit null switches the feature off; an absent key leaves it as it was.
        if raw.pointer("/audio/input/turn_detection") == Some(&Value::Null) {
            input.turn_detection = None;
        }
        if raw.pointer("/audio/input/transcription") == Some(&Value::Null) {
            input.transcription = None;
        }
        if raw.pointer("/audio/input/noise_reduction") == Some(&Value::Null) {
            input.noise_reduction = None;
        }
        self.turn_detection = input.turn_detection.clone();
        self.input_format = input.format.unwrap_or(AudioFormat::Pcm24k);
        self.output_format = self
            .session
            .audio
            .as_ref()
            .and_then(|a| a.output.as_ref())
            .and_then(|o| o.format)
            .unwrap_or(AudioFormat::Pcm24k);
        self.vad.set_rate(self.input_format.sample_rate());
        let session = self.session.clone();
        self.send(ServerEvent::SessionUpdated(Box::new(SessionEvent {
            session,
        })));
    }
}

/// Overlays the fields present in `update` onto `cur` (nested audio settings field by field).
fn merge(cur: &mut SessionConfig, update: SessionConfig) {
    cur.kind = update.kind;
    macro_rules! take {
        ($dst:expr, $src:expr, $($f:ident),*) => { $( if $src.$f.is_some() { $dst.$f = $src.$f; } )* };
    }
    take!(
        cur,
        update,
        model,
        instructions,
        output_modalities,
        tools,
        tool_choice,
        max_output_tokens
    );
    if let Some(audio) = update.audio {
        let cur_audio = cur.audio.get_or_insert_with(Default::default);
        if let Some(input) = audio.input {
            let ci = cur_audio.input.get_or_insert_with(Default::default);
            take!(
                ci,
                input,
                format,
                transcription,
                noise_reduction,
                turn_detection
            );
        }
        if let Some(output) = audio.output {
            let co = cur_audio.output.get_or_insert_with(Default::default);
            take!(co, output, format, voice, speed);
        }
    }
}
