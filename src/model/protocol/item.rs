//! Conversation items: messages, function calls and function call outputs.
//!
//! Items travel both ways (`conversation.item.create` from us, `conversation.item.added`,
//! `response.output_item.*` from the server). Item types voxgate does not use (MCP calls,
//! approval requests) read back as [`Item::Other`] instead of failing the whole event.

use serde::{Deserialize, Serialize};

/// One item in the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A user, assistant or system message.
    Message {
        /// Item id (`item_…`); optional when creating.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Who speaks.
        role: Role,
        /// Content parts, in order.
        #[serde(default)]
        content: Vec<ContentPart>,
        /// Server-side status; has no effect when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<ItemStatus>,
    },
    /// The model calls a function.
    FunctionCall {
        /// Item id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Correlates the call with its output.
        #[serde(default)]
        call_id: String,
        /// Function name.
        #[serde(default)]
        name: String,
        /// Arguments as a JSON-encoded string (possibly partial while streaming).
        #[serde(default)]
        arguments: String,
        /// Server-side status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<ItemStatus>,
    },
    /// Our answer to a function call.
    FunctionCallOutput {
        /// Item id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The `call_id` of the function call answered.
        call_id: String,
        /// Free text, usually JSON.
        output: String,
        /// Server-side status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<ItemStatus>,
    },
    /// An item type voxgate does not model (read only).
    #[serde(other)]
    Other,
}

impl Item {
    /// The item id, if it has one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Item::Message { id, .. }
            | Item::FunctionCall { id, .. }
            | Item::FunctionCallOutput { id, .. } => id.as_deref(),
            Item::Other => None,
        }
    }

    /// A user message with one `input_text` part (e.g. to inject context).
    pub fn user_text(text: impl Into<String>) -> Self {
        Item::Message {
            id: None,
            role: Role::User,
            content: vec![ContentPart::InputText { text: text.into() }],
            status: None,
        }
    }

    /// A system message with one `input_text` part.
    pub fn system_text(text: impl Into<String>) -> Self {
        Item::Message {
            id: None,
            role: Role::System,
            content: vec![ContentPart::InputText { text: text.into() }],
            status: None,
        }
    }

    /// The answer to function call `call_id`.
    pub fn function_output(call_id: impl Into<String>, output: impl Into<String>) -> Self {
        Item::FunctionCallOutput {
            id: None,
            call_id: call_id.into(),
            output: output.into(),
            status: None,
        }
    }
}

/// Message author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The caller.
    User,
    /// The agent.
    Assistant,
    /// Operator instructions injected mid-call.
    System,
}

/// Item status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Finished.
    Completed,
    /// Cut short (e.g. a cancelled response).
    Incomplete,
    /// Still streaming.
    InProgress,
}

/// One content part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text from the user or system.
    InputText {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// Caller audio (from a committed buffer or sent inline).
    InputAudio {
        /// Base64 audio in the session's input format, when sent inline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<String>,
        /// Transcript, once transcription completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcript: Option<String>,
    },
    /// Assistant text.
    OutputText {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// Assistant audio.
    OutputAudio {
        /// Base64 audio, rarely included by the server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<String>,
        /// What the agent said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcript: Option<String>,
    },
    /// A part type voxgate does not model (read only).
    #[serde(other)]
    Other,
}
