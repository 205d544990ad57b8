//! Session configuration in the GA shape (`session.update` / `session.created` / `session.updated`).
//!
//! Every optional field is `Option` with `skip_serializing_if`, so voxgate never sends `null`:
//! in the GA API a `null` `turn_detection` switches server VAD off and `null` noise reduction
//! or transcription turns those off. The same types deserialize the server's echo, which carries
//! extra fields (`id`, `object`, `expires_at`, `tracing`, …) that are ignored, and `null`s that
//! read back as `None`. `temperature` is deliberately absent: the GA API removed it.

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The session object of `session.update` and of the server's session events.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Always `"realtime"` for speech-to-speech sessions (GA requires it in `session.update`).
    #[serde(rename = "type", default)]
    pub kind: SessionKind,
    /// Server-assigned session id; only present in server events, never sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Model name; configuration, never hard-coded in logic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// System instructions for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// `["audio"]` or `["text"]`; the API does not allow both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// Input and output audio settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    /// Function tools offered to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `"auto"`, `"none"`, `"required"`, or a forced tool object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Cap on output tokens per response (1..=4096) or `"inf"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxOutputTokens>,
}

/// The session `type`; voxgate only uses realtime (speech-to-speech) sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SessionKind {
    /// A speech-to-speech session.
    #[default]
    #[serde(rename = "realtime")]
    Realtime,
    /// A transcription-only session (recognised in server echoes, never sent by voxgate).
    #[serde(rename = "transcription")]
    Transcription,
}

/// An output modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Spoken output (always with a transcript).
    Audio,
    /// Text-only output.
    Text,
}

/// `audio.input` and `audio.output`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AudioConfig {
    /// Caller audio as appended to the input buffer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<AudioInput>,
    /// Agent audio as streamed in `response.output_audio.delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AudioOutput>,
}

/// `audio.input`: format, transcription, noise reduction and turn detection.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AudioInput {
    /// Wire format of `input_audio_buffer.append` audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// Asynchronous transcription of caller audio (off unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcription: Option<Transcription>,
    /// Input noise reduction (off unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_reduction: Option<NoiseReduction>,
    /// Server or semantic VAD. Omitted means "keep the server's" (server VAD by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_detection: Option<TurnDetection>,
}

/// `audio.output`: format, voice and speed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AudioOutput {
    /// Wire format of `response.output_audio.delta` audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// Voice name (e.g. `marin`) or a custom voice object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
    /// Playback speed multiple, 0.25..=1.5; changeable only between turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
}

/// A voice: a built-in name, or `{"id": "voice_…"}` for a custom voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Voice {
    /// A built-in voice such as `marin` or `cedar`.
    Named(String),
    /// A custom voice reference.
    Custom {
        /// The custom voice id.
        id: String,
    },
}

/// Audio wire format. G.711 is 8 kHz with no `rate` field; `audio/pcm` is 24 kHz PCM16 LE only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// `{"type":"audio/pcmu"}`: G.711 µ-law, 8 kHz, one byte per sample.
    Pcmu,
    /// `{"type":"audio/pcma"}`: G.711 A-law, 8 kHz, one byte per sample.
    Pcma,
    /// `{"type":"audio/pcm","rate":24000}`: 16-bit little-endian PCM, 24 kHz mono.
    Pcm24k,
}

impl AudioFormat {
    /// Samples per second on the wire.
    pub fn sample_rate(self) -> u32 {
        match self {
            AudioFormat::Pcmu | AudioFormat::Pcma => 8_000,
            AudioFormat::Pcm24k => 24_000,
        }
    }

    /// Bytes of encoded audio per millisecond (8 for G.711, 48 for PCM16 at 24 kHz).
    pub fn bytes_per_ms(self) -> u64 {
        match self {
            AudioFormat::Pcmu | AudioFormat::Pcma => 8,
            AudioFormat::Pcm24k => 48,
        }
    }

    /// Milliseconds of audio in `bytes` encoded bytes (rounded down).
    pub fn bytes_to_ms(self, bytes: u64) -> u64 {
        bytes / self.bytes_per_ms()
    }
}

impl Serialize for AudioFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (kind, rate) = match self {
            AudioFormat::Pcmu => ("audio/pcmu", None),
            AudioFormat::Pcma => ("audio/pcma", None),
            AudioFormat::Pcm24k => ("audio/pcm", Some(24_000u32)),
        };
        let mut map = s.serialize_map(Some(if rate.is_some() { 2 } else { 1 }))?;
        map.serialize_entry("type", kind)?;
        if let Some(rate) = rate {
            map.serialize_entry("rate", &rate)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for AudioFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            rate: Option<u32>,
        }
        let wire = Wire::deserialize(d)?;
        match (wire.kind.as_str(), wire.rate) {
            ("audio/pcmu", _) => Ok(AudioFormat::Pcmu),
            ("audio/pcma", _) => Ok(AudioFormat::Pcma),
            ("audio/pcm", None | Some(24_000)) => Ok(AudioFormat::Pcm24k),
            ("audio/pcm", Some(rate)) => Err(de::Error::custom(format!(
                "audio/pcm is 24000 Hz only, got rate {rate}"
            ))),
            (other, _) => Err(de::Error::unknown_variant(
                other,
                &["audio/pcmu", "audio/pcma", "audio/pcm"],
            )),
        }
    }
}

/// `audio.input.transcription`: which model transcribes caller audio.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Transcription {
    /// Transcription model, e.g. `gpt-4o-mini-transcribe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// ISO-639-1 language hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Free-text or keyword prompt for the transcriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// `audio.input.noise_reduction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseReduction {
    /// Near-field (handset, headset) or far-field (speakerphone) filtering.
    #[serde(rename = "type")]
    pub kind: NoiseReductionKind,
}

/// Noise reduction type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseReductionKind {
    /// Close-talking microphones: handsets, headsets.
    NearField,
    /// Room microphones: speakerphones, conference rooms.
    FarField,
}

/// `audio.input.turn_detection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnDetection {
    /// Energy-based VAD on the server.
    ServerVad {
        /// Activation threshold 0.0..=1.0 (server default 0.5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<f32>,
        /// Audio kept before detected speech, ms (server default 300).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix_padding_ms: Option<u32>,
        /// Silence that ends a turn, ms (server default 500).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        silence_duration_ms: Option<u32>,
        /// Start a response automatically when speech stops.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create_response: Option<bool>,
        /// Cancel the in-flight response when speech starts (barge-in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interrupt_response: Option<bool>,
        /// Prompt the model after this much caller silence following its last reply, ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idle_timeout_ms: Option<u32>,
    },
    /// Model-based end-of-turn estimation.
    SemanticVad {
        /// How quickly to take the turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eagerness: Option<Eagerness>,
        /// Start a response automatically when speech stops.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create_response: Option<bool>,
        /// Cancel the in-flight response when speech starts (barge-in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interrupt_response: Option<bool>,
    },
}

impl TurnDetection {
    /// Server VAD with the API's documented defaults made explicit, responding and interrupting.
    pub fn server_vad_default() -> Self {
        TurnDetection::ServerVad {
            threshold: Some(0.5),
            prefix_padding_ms: Some(300),
            silence_duration_ms: Some(500),
            create_response: Some(true),
            interrupt_response: Some(true),
            idle_timeout_ms: None,
        }
    }

    /// Whether a response starts by itself when speech stops (API default: true).
    pub fn create_response(&self) -> bool {
        match self {
            TurnDetection::ServerVad {
                create_response, ..
            }
            | TurnDetection::SemanticVad {
                create_response, ..
            } => create_response.unwrap_or(true),
        }
    }

    /// Whether speech cancels the in-flight response (API default: true).
    pub fn interrupt_response(&self) -> bool {
        match self {
            TurnDetection::ServerVad {
                interrupt_response, ..
            }
            | TurnDetection::SemanticVad {
                interrupt_response, ..
            } => interrupt_response.unwrap_or(true),
        }
    }
}

/// Semantic VAD eagerness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eagerness {
    /// Waits longest (up to 8 s).
    Low,
    /// Up to 4 s.
    Medium,
    /// Takes the turn soonest (up to 2 s).
    High,
    /// Server's choice (= medium).
    Auto,
}

/// A tool offered to the model. voxgate only defines `function` tools; other kinds echoed
/// by the server (e.g. `mcp`) read back with their `kind` and an empty name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Tool type; `"function"` for everything voxgate sends.
    #[serde(rename = "type")]
    pub kind: String,
    /// Function name the model calls.
    #[serde(default)]
    pub name: String,
    /// When and how to call it, and what to say meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

impl Tool {
    /// A function tool with a JSON Schema for its arguments.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        Tool {
            kind: "function".into(),
            name: name.into(),
            description: Some(description.into()),
            parameters: Some(parameters),
        }
    }
}

/// `tool_choice`: a mode string, or a forced tool object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `"auto"`, `"none"` or `"required"`.
    Mode(String),
    /// A forced tool, e.g. `{"type":"function","name":"end_call"}`, kept as JSON.
    Forced(serde_json::Value),
}

impl ToolChoice {
    /// `"auto"`: the model decides.
    pub fn auto() -> Self {
        ToolChoice::Mode("auto".into())
    }
}

/// `max_output_tokens`: a count or `"inf"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaxOutputTokens {
    /// At most this many tokens (1..=4096).
    Count(u32),
    /// The literal `"inf"`, or any other string the server echoes.
    Named(String),
}
