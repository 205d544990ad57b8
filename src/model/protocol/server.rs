//! Server events, decoded through `serde_json::Value` so that nothing the server may add breaks us.
//!
//! The `type` string picks the variant; an unknown `type` becomes [`ServerEvent::Unknown`]
//! instead of an error (the server adds event types without notice, e.g. `output_audio_buffer.*`,
//! MCP events), and unknown extra fields are ignored. A *known* type whose payload lacks a
//! required field is a [`ProtocolError::Shape`]: the peer broke the schema. `event_id` is not kept
//! (nothing in voxgate correlates on server event ids); the simulator supplies one when encoding.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::item::Item;
use super::session::SessionConfig;
use super::ProtocolError;

macro_rules! server_events {
    ($( $(#[$doc:meta])* $wire:literal => $variant:ident($payload:ty), )*) => {
        /// An event from the Realtime server.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ServerEvent {
            $( $(#[$doc])* $variant($payload), )*
            /// An event type voxgate does not model; `kind` is its `type` string.
            Unknown {
                /// The event's `type`.
                kind: String,
            },
        }

        impl ServerEvent {
            /// The wire `type` of this event.
            pub fn kind(&self) -> &str {
                match self {
                    $( ServerEvent::$variant(_) => $wire, )*
                    ServerEvent::Unknown { kind } => kind,
                }
            }

            /// Decodes an already-parsed JSON value (see the module doc for the rules).
            pub fn from_value(value: Value) -> Result<Self, ProtocolError> {
                let kind = match value.get("type").and_then(Value::as_str) {
                    Some(kind) => kind.to_owned(),
                    None => return Err(ProtocolError::MissingType),
                };
                let shape = |source| ProtocolError::Shape { kind: kind.clone(), source };
                match kind.as_str() {
                    $( $wire => serde_json::from_value(value).map(ServerEvent::$variant).map_err(shape), )*
                    _ => Ok(ServerEvent::Unknown { kind }),
                }
            }

            /// The event as a JSON object with `type` and the given `event_id`.
            pub fn to_value(&self, event_id: &str) -> Value {
                let mut value = match self {
                    $( ServerEvent::$variant(p) => serde_json::to_value(p).unwrap_or(Value::Null), )*
                    ServerEvent::Unknown { .. } => Value::Null,
                };
                if !value.is_object() {
                    value = Value::Object(Default::default());
                }
                if let Value::Object(map) = &mut value {
                    map.insert("type".into(), Value::String(self.kind().to_owned()));
                    map.insert("event_id".into(), Value::String(event_id.to_owned()));
                }
                value
            }
        }
    };
}

server_events! {
    /// Something went wrong; the session usually stays open.
    "error" => Error(ErrorEvent),
    /// First event on a new connection, with the server's defaults.
    "session.created" => SessionCreated(Box<SessionEvent>),
    /// The `session.update` took effect; carries the full resulting config.
    "session.updated" => SessionUpdated(Box<SessionEvent>),
    /// Server VAD heard the caller start speaking (barge-in trigger).
    "input_audio_buffer.speech_started" => SpeechStarted(SpeechStarted),
    /// Server VAD heard the caller stop.
    "input_audio_buffer.speech_stopped" => SpeechStopped(SpeechStopped),
    /// The input buffer became a user message item.
    "input_audio_buffer.committed" => BufferCommitted(BufferCommitted),
    /// The input buffer was emptied on request.
    "input_audio_buffer.cleared" => BufferCleared(Empty),
    /// An item joined the conversation (GA).
    "conversation.item.added" => ItemAdded(ItemEvent),
    /// An item is complete (GA).
    "conversation.item.done" => ItemDone(ItemEvent),
    /// An item was created (beta name, still seen from some deployments).
    "conversation.item.created" => ItemCreated(ItemEvent),
    /// Caller speech transcript, final.
    "conversation.item.input_audio_transcription.completed" => InputTranscriptionCompleted(InputTranscriptionCompleted),
    /// Caller speech transcript, partial.
    "conversation.item.input_audio_transcription.delta" => InputTranscriptionDelta(InputTranscriptionDelta),
    /// An assistant audio item was cut at what the caller heard.
    "conversation.item.truncated" => ItemTruncated(ItemTruncated),
    /// A response started.
    "response.created" => ResponseCreated(Box<ResponseEvent>),
    /// A response output item started.
    "response.output_item.added" => OutputItemAdded(OutputItemEvent),
    /// A response output item is complete.
    "response.output_item.done" => OutputItemDone(OutputItemEvent),
    /// A content part started.
    "response.content_part.added" => ContentPartAdded(ContentPartEvent),
    /// A content part is complete.
    "response.content_part.done" => ContentPartDone(ContentPartEvent),
    /// A chunk of agent audio in the session's output format.
    "response.output_audio.delta" => OutputAudioDelta(OutputAudioDelta),
    /// No more audio for this content part.
    "response.output_audio.done" => OutputAudioDone(PartRef),
    /// Transcript of agent audio, partial.
    "response.output_audio_transcript.delta" => OutputAudioTranscriptDelta(TextDelta),
    /// Transcript of agent audio, final.
    "response.output_audio_transcript.done" => OutputAudioTranscriptDone(TranscriptDone),
    /// Text output, partial (text modality).
    "response.output_text.delta" => OutputTextDelta(TextDelta),
    /// Text output, final.
    "response.output_text.done" => OutputTextDone(TextDone),
    /// Function call arguments, partial.
    "response.function_call_arguments.delta" => FunctionCallArgumentsDelta(FunctionCallArgumentsDelta),
    /// Function call arguments, final: run the tool now.
    "response.function_call_arguments.done" => FunctionCallArgumentsDone(FunctionCallArgumentsDone),
    /// A response ended: completed, cancelled, failed or incomplete.
    "response.done" => ResponseDone(Box<ResponseEvent>),
    /// Current rate limits.
    "rate_limits.updated" => RateLimitsUpdated(RateLimitsUpdated),
}

/// Payload of `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// E.g. `invalid_request_error`, `server_error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Machine-readable code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// The offending parameter, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The client `event_id` that caused it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// Payload of `session.created` / `session.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// The session as the server now has it.
    pub session: SessionConfig,
}

/// Payload of `input_audio_buffer.speech_started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechStarted {
    /// Input-audio time of speech start, ms since session start, including prefix padding.
    pub audio_start_ms: u64,
    /// The user item that will hold this speech.
    pub item_id: String,
}

/// Payload of `input_audio_buffer.speech_stopped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechStopped {
    /// Input-audio time of speech end, ms since session start.
    pub audio_end_ms: u64,
    /// The user item that holds this speech.
    pub item_id: String,
}

/// Payload of `input_audio_buffer.committed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferCommitted {
    /// The new user item.
    pub item_id: String,
    /// The item it follows, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
}

/// A payload with no fields voxgate reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// Payload of `conversation.item.added` / `.done` / `.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemEvent {
    /// The item.
    pub item: Item,
    /// The item it follows, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
}

/// Payload of `conversation.item.input_audio_transcription.completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTranscriptionCompleted {
    /// The user item transcribed.
    pub item_id: String,
    /// Its audio content part.
    pub content_index: u32,
    /// What the caller said (guidance, not exactly what the model heard).
    pub transcript: String,
}

/// Payload of `conversation.item.input_audio_transcription.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTranscriptionDelta {
    /// The user item being transcribed.
    pub item_id: String,
    /// Its audio content part.
    #[serde(default)]
    pub content_index: u32,
    /// Next piece of transcript.
    #[serde(default)]
    pub delta: String,
}

/// Payload of `conversation.item.truncated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemTruncated {
    /// The assistant item cut.
    pub item_id: String,
    /// Its audio content part.
    pub content_index: u32,
    /// Audio kept, ms.
    pub audio_end_ms: u64,
}

/// Payload of `response.created` / `response.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEvent {
    /// The response.
    pub response: Response,
}

/// A response object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Response {
    /// `resp_…`.
    #[serde(default)]
    pub id: String,
    /// Lifecycle status; final in `response.done`.
    #[serde(default)]
    pub status: ResponseStatus,
    /// Why it was cancelled, failed or is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// Output items produced.
    #[serde(default)]
    pub output: Vec<Item>,
    /// Token usage (billing), in `response.done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The conversation it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

/// Response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// Still streaming (`response.created`).
    #[default]
    InProgress,
    /// Finished normally.
    Completed,
    /// Cancelled by barge-in (`turn_detected`) or by us (`client_cancelled`).
    Cancelled,
    /// Failed; see `status_details.error`.
    Failed,
    /// Cut short by `max_output_tokens` or the content filter.
    Incomplete,
    /// A status this version does not know.
    #[serde(other)]
    Unknown,
}

/// `status_details` of a response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StatusDetails {
    /// Mirrors the status (`cancelled`, `failed`, …).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `turn_detected`, `client_cancelled`, `max_output_tokens` or `content_filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// Token usage of one response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Input + output tokens.
    #[serde(default)]
    pub total_tokens: u64,
    /// Input tokens (text + audio, cached included).
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens (text + audio).
    #[serde(default)]
    pub output_tokens: u64,
    /// Breakdown of input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_token_details: Option<TokenDetails>,
    /// Breakdown of output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_token_details: Option<TokenDetails>,
}

/// Per-modality token counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenDetails {
    /// Text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Cached input tokens (input only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Image tokens (input only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
}

/// Payload of `response.output_item.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputItemEvent {
    /// The response.
    pub response_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// The item (empty content while streaming).
    pub item: Item,
}

/// Payload of `response.content_part.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPartEvent {
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// Position of the part in the item content.
    pub content_index: u32,
    /// The part, loosely typed (its `type` differs between SDK schema and wire).
    pub part: Part,
}

/// A content part as carried by `response.content_part.*`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Part {
    /// `audio`, `text`, `output_audio`, … as the server sends it.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Text, for text parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Transcript, for audio parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

/// Payload of `response.output_audio.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputAudioDelta {
    /// The response.
    pub response_id: String,
    /// The assistant item; truncate this one on barge-in.
    pub item_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// Position of the part in the item content.
    pub content_index: u32,
    /// Base64 audio in the session's output format.
    pub delta: String,
}

/// Identifies a content part (payload of `response.output_audio.done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// Position of the part in the item content.
    pub content_index: u32,
}

/// Payload of transcript and text `.delta` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDelta {
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// Position of the part in the item content.
    pub content_index: u32,
    /// Next piece of text.
    pub delta: String,
}

/// Payload of `response.output_audio_transcript.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptDone {
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// Position of the part in the item content.
    pub content_index: u32,
    /// Everything the agent said in this part.
    pub transcript: String,
}

/// Payload of `response.output_text.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDone {
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// Position of the part in the item content.
    pub content_index: u32,
    /// The full text.
    pub text: String,
}

/// Payload of `response.function_call_arguments.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallArgumentsDelta {
    /// The response.
    pub response_id: String,
    /// The function call item.
    pub item_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// The call.
    pub call_id: String,
    /// Next piece of the JSON arguments.
    pub delta: String,
}

/// Payload of `response.function_call_arguments.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallArgumentsDone {
    /// The response.
    pub response_id: String,
    /// The function call item.
    pub item_id: String,
    /// Position of the item in the response output.
    pub output_index: u32,
    /// The call; answer with a `function_call_output` carrying it.
    pub call_id: String,
    /// Function name. The SDK schema omits it; the server sends it. Fall back to the
    /// `response.output_item.added` item's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The arguments, a JSON-encoded object (validate before use).
    pub arguments: String,
}

/// Payload of `rate_limits.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitsUpdated {
    /// One entry per limit.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
}

/// One rate limit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RateLimit {
    /// `requests` or `tokens`.
    #[serde(default)]
    pub name: String,
    /// Maximum allowed.
    #[serde(default)]
    pub limit: u64,
    /// Left before the limit.
    #[serde(default)]
    pub remaining: u64,
    /// Seconds until reset.
    #[serde(default)]
    pub reset_seconds: f64,
}
