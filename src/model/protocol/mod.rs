//! OpenAI Realtime (GA) wire events as serde types. No I/O.
//!
//! - [`ClientEvent`]: what voxgate sends (`session.update`, `input_audio_buffer.*`,
//!   `conversation.item.*`, `response.create` / `.cancel`).
//! - [`ServerEvent`]: what the server sends, with a catch-all for unknown event types.
//! - [`decode`] / [`encode`] for the client side, [`decode_client`] / [`encode_server`] for the
//!   simulator side.
//!
//! Deliberately left out: the beta shapes (`input_audio_format`, `modalities`, `temperature`),
//! WebRTC-only events (`output_audio_buffer.*`), MCP tools, and `conversation.item.retrieve` /
//! `.delete`, which voxgate does not use. Unknown server events still decode (as `Unknown`).

mod item;
mod server;
mod session;

#[cfg(test)]
mod tests;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub use item::{ContentPart, Item, ItemStatus, Role};
pub use server::{
    BufferCommitted, ContentPartEvent, Empty, ErrorDetail, ErrorEvent, FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone, InputTranscriptionCompleted, InputTranscriptionDelta, ItemEvent,
    ItemTruncated, OutputAudioDelta, OutputItemEvent, Part, PartRef, RateLimit, RateLimitsUpdated,
    Response, ResponseEvent, ResponseStatus, ServerEvent, SessionEvent, SpeechStarted,
    SpeechStopped, StatusDetails, TextDelta, TextDone, TokenDetails, TranscriptDone, Usage,
};
pub use session::{
    AudioConfig, AudioFormat, AudioInput, AudioOutput, Eagerness, MaxOutputTokens, Modality,
    NoiseReduction, NoiseReductionKind, SessionConfig, SessionKind, Tool, ToolChoice,
    Transcription, TurnDetection, Voice,
};

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is not JSON at all (the peer is broken).
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The frame is JSON but has no string `type`.
    #[error("event without a string `type`")]
    MissingType,
    /// A known event type whose payload does not match the schema.
    #[error("`{kind}` does not match its schema: {source}")]
    Shape {
        /// The event `type`.
        kind: String,
        /// What serde found wrong.
        source: serde_json::Error,
    },
}

/// An event voxgate sends to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    /// Set or change session configuration (instructions, audio formats, VAD, tools).
    #[serde(rename = "session.update")]
    SessionUpdate {
        /// Optional client id echoed in a resulting `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// The configuration; omitted fields keep their current values.
        session: SessionConfig,
    },
    /// Add caller audio to the input buffer.
    #[serde(rename = "input_audio_buffer.append")]
    InputAudioBufferAppend {
        /// Optional client id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Base64 audio in the session's input format.
        audio: String,
    },
    /// Turn the input buffer into a user item (only needed without VAD).
    #[serde(rename = "input_audio_buffer.commit")]
    InputAudioBufferCommit {
        /// Optional client id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    /// Drop the input buffer.
    #[serde(rename = "input_audio_buffer.clear")]
    InputAudioBufferClear {
        /// Optional client id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    /// Add an item (text, or a function call output).
    #[serde(rename = "conversation.item.create")]
    ConversationItemCreate {
        /// Optional client id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Insert after this item; appended at the end when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_item_id: Option<String>,
        /// The item.
        item: Item,
    },
    /// Cut an assistant audio item at what the caller actually heard.
    #[serde(rename = "conversation.item.truncate")]
    ConversationItemTruncate {
        /// Optional client id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// The assistant item (from `response.output_audio.delta`).
        item_id: String,
        /// Its audio part; 0.
        content_index: u32,
        /// Audio heard, ms (= G.711 bytes played / 8). Longer than the item's audio is an error.
        audio_end_ms: u64,
    },
    /// Ask for a response (greeting, or after a function call output).
    #[serde(rename = "response.create")]
    ResponseCreate {
        /// Optional client id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Per-response overrides.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<ResponseConfig>,
    },
    /// Cancel the in-flight response.
    #[serde(rename = "response.cancel")]
    ResponseCancel {
        /// Optional client id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// The response; the current one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_id: Option<String>,
    },
}

impl ClientEvent {
    /// `session.update` with `session`.
    pub fn session_update(session: SessionConfig) -> Self {
        ClientEvent::SessionUpdate {
            event_id: None,
            session,
        }
    }

    /// `input_audio_buffer.append` of raw encoded audio bytes (base64-encoded here).
    pub fn append(audio: &[u8]) -> Self {
        ClientEvent::InputAudioBufferAppend {
            event_id: None,
            audio: base64::engine::general_purpose::STANDARD.encode(audio),
        }
    }

    /// `conversation.item.create` appending `item`.
    pub fn item_create(item: Item) -> Self {
        ClientEvent::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item,
        }
    }

    /// `conversation.item.truncate` of an assistant audio item (content part 0).
    pub fn truncate(item_id: impl Into<String>, audio_end_ms: u64) -> Self {
        ClientEvent::ConversationItemTruncate {
            event_id: None,
            item_id: item_id.into(),
            content_index: 0,
            audio_end_ms,
        }
    }

    /// `response.create` with session defaults.
    pub fn response_create() -> Self {
        ClientEvent::ResponseCreate {
            event_id: None,
            response: None,
        }
    }

    /// `response.cancel` of the current response.
    pub fn response_cancel() -> Self {
        ClientEvent::ResponseCancel {
            event_id: None,
            response_id: None,
        }
    }

    /// The wire `type` of this event (for logs and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientEvent::SessionUpdate { .. } => "session.update",
            ClientEvent::InputAudioBufferAppend { .. } => "input_audio_buffer.append",
            ClientEvent::InputAudioBufferCommit { .. } => "input_audio_buffer.commit",
            ClientEvent::InputAudioBufferClear { .. } => "input_audio_buffer.clear",
            ClientEvent::ConversationItemCreate { .. } => "conversation.item.create",
            ClientEvent::ConversationItemTruncate { .. } => "conversation.item.truncate",
            ClientEvent::ResponseCreate { .. } => "response.create",
            ClientEvent::ResponseCancel { .. } => "response.cancel",
        }
    }
}

/// `response` of `response.create`: per-response overrides of the session.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResponseConfig {
    /// Instructions for this response only (e.g. "Greet the caller: …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// `["audio"]` or `["text"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// `"auto"` (default conversation) or `"none"` (out-of-band).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// Tool choice for this response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Output token cap for this response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxOutputTokens>,
    /// Up to 16 string key/values returned in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// Decodes one server text frame. Malformed JSON is an error; an unknown `type` is
/// `Ok(ServerEvent::Unknown)`.
pub fn decode(text: &str) -> Result<ServerEvent, ProtocolError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    ServerEvent::from_value(value)
}

/// Encodes one client event as a text frame.
pub fn encode(event: &ClientEvent) -> String {
    // Invariant: every field is a string-keyed struct, string, number or bool.
    serde_json::to_string(event).expect("ClientEvent serializes to JSON: string keys only")
}

/// Decodes one client text frame (simulator side). Unknown client types are errors,
/// as on the real server.
pub fn decode_client(text: &str) -> Result<ClientEvent, ProtocolError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let kind = match value.get("type").and_then(serde_json::Value::as_str) {
        Some(kind) => kind.to_owned(),
        None => return Err(ProtocolError::MissingType),
    };
    serde_json::from_value(value).map_err(|source| ProtocolError::Shape { kind, source })
}

/// Encodes one server event with `event_id` (simulator side).
pub fn encode_server(event: &ServerEvent, event_id: &str) -> String {
    event.to_value(event_id).to_string()
}
