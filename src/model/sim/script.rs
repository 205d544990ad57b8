//! The simulator's script: what the "model" says, turn by turn, and how it fails.
//!
//! YAML, strict (`deny_unknown_fields`, strict booleans, duplicate keys rejected), e.g.
//! ```yaml
//! vad: { threshold: 500, silence_ms: 500 }
//! greeting_reply: "Thanks for calling. How can I help?"   # the first response.create
//! turns:
//!   - reply: "Let me open a ticket for you."
//!     transcript: "my internet is down"          # input transcription of the caller's turn
//!     function_call: { name: create_ticket, arguments: { summary: "Internet down" } }
//!   - reply: "Your ticket is in the system. Goodbye."
//!   - fail: close                                # or: error, hang, garbage
//! default_reply: "I see. Anything else?"
//! ```
//! Every response after the greeting consumes the next turn, including a response later
//! cancelled by barge-in; when the turns run out, `default_reply` is spoken.

use serde::Deserialize;

/// A whole simulator script.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimScript {
    /// Energy VAD settings.
    #[serde(default)]
    pub vad: VadScript,
    /// Spoken by the first response when it is an explicit `response.create`.
    #[serde(default)]
    pub greeting_reply: Option<String>,
    /// Turns consumed in order, one per response.
    #[serde(default)]
    pub turns: Vec<Turn>,
    /// Spoken once the turns are used up.
    #[serde(default = "default_reply")]
    pub default_reply: String,
    /// When set, upgrades must carry `Authorization: Bearer <this>` (else HTTP 401).
    #[serde(default)]
    pub require_key: Option<String>,
    /// How reply audio is made.
    #[serde(default)]
    pub voice: VoiceMode,
    /// How fast reply audio is streamed.
    #[serde(default)]
    pub pace: Pace,
    /// Raw JSON events sent right after `session.created` (e.g. event types voxgate
    /// does not know, to exercise the catch-all).
    #[serde(default)]
    pub on_connect: Vec<serde_json::Value>,
}

fn default_reply() -> String {
    "I see. Anything else?".into()
}

impl Default for SimScript {
    fn default() -> Self {
        SimScript {
            vad: VadScript::default(),
            greeting_reply: None,
            turns: Vec::new(),
            default_reply: default_reply(),
            require_key: None,
            voice: VoiceMode::default(),
            pace: Pace::default(),
            on_connect: Vec::new(),
        }
    }
}

impl SimScript {
    /// Parses a YAML script; errors carry line and column.
    pub fn from_yaml(text: &str) -> Result<Self, ScriptError> {
        let options = serde_saphyr::options! { strict_booleans: true };
        serde_saphyr::from_str_with_options(text, options).map_err(|e| ScriptError(e.to_string()))
    }

    /// Reads and parses a YAML script file.
    pub async fn load(path: &std::path::Path) -> Result<Self, ScriptError> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| ScriptError(format!("{}: {e}", path.display())))?;
        Self::from_yaml(&text).map_err(|e| ScriptError(format!("{}: {}", path.display(), e.0)))
    }
}

/// A script that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[error("simulator script: {0}")]
pub struct ScriptError(pub String);

/// Energy VAD settings (audio time, not wall time).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VadScript {
    /// RMS of a 20 ms frame, in 16-bit linear units, above which the frame is speech.
    pub threshold: f32,
    /// Silence that ends a turn, ms, unless the session's `silence_duration_ms` says otherwise.
    pub silence_ms: u32,
}

impl Default for VadScript {
    fn default() -> Self {
        VadScript {
            threshold: 500.0,
            silence_ms: 500,
        }
    }
}

/// One scripted turn of the model.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// What the model says (audio + transcript).
    #[serde(default)]
    pub reply: Option<String>,
    /// Input transcription reported for the caller's speech that leads to this turn.
    #[serde(default)]
    pub transcript: Option<String>,
    /// A function call emitted after the reply.
    #[serde(default)]
    pub function_call: Option<FunctionCallScript>,
    /// Misbehave instead of answering.
    #[serde(default)]
    pub fail: Option<Failure>,
}

/// A scripted function call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCallScript {
    /// Tool name.
    pub name: String,
    /// Arguments object (sent JSON-encoded, as the server does).
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// Scripted failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// Close the WebSocket with 1011.
    Close,
    /// Send an `error` event (server_error) instead of a response.
    Error,
    /// Stop sending anything; keep the socket open.
    Hang,
    /// Send a text frame that is not JSON instead of a response, then go silent.
    Garbage,
}

/// Reply audio source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoiceMode {
    /// `espeak-ng` + `sox` when both are installed, else tones.
    #[default]
    Auto,
    /// Deterministic tones, ~60 ms per character.
    Tone,
}

/// Streaming pace of reply audio.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pace {
    /// Audio per `response.output_audio.delta`, ms (20..=100 like the real server).
    pub chunk_ms: u32,
    /// How many times faster than real time deltas are sent.
    pub speedup: f32,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            chunk_ms: 100,
            speedup: 4.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
vad: { threshold: 500, silence_ms: 500 }
greeting_reply: "Thanks for calling. How can I help?"
turns:
  - reply: "Let me open a ticket for you."
    transcript: "my internet is down"
    function_call: { name: create_ticket, arguments: { summary: "Internet down", priority: high } }
  - reply: "Your ticket number is in the system. Goodbye."
  - fail: close
default_reply: "I see. Anything else?"
"#;
        let s = SimScript::from_yaml(text).unwrap();
        assert_eq!(s.turns.len(), 3);
        let call = s.turns[0].function_call.as_ref().unwrap();
        assert_eq!(call.name, "create_ticket");
        assert_eq!(call.arguments["priority"], "high");
        assert_eq!(s.turns[2].fail, Some(Failure::Close));
        assert_eq!(s.voice, VoiceMode::Auto);
        assert_eq!(s.pace, Pace::default());
    }

    #[test]
    fn rejects_unknown_keys_with_a_location() {
        let err = SimScript::from_yaml("turns:\n  - reply: hi\n    replay: typo\n").unwrap_err();
        assert!(err.to_string().contains("replay"), "{err}");
        assert!(SimScript::from_yaml("turns:\n  - fail: explode\n").is_err());
        assert_eq!(SimScript::from_yaml("{}").unwrap(), SimScript::default());
    }
}
