//! One simulated Realtime session as a sans-IO state machine.
//!
//! Contract (as in STYLE.md §2): call [`SimConn::handle`] with one input, then drain
//! [`SimConn::poll_output`] to `None`, then sleep until [`SimConn::poll_timeout`] and feed
//! [`Input::Timeout`]. The machine reads no clock (the driver passes `now`, used only to pace
//! reply audio) and runs no processes: speech synthesis is requested as
//! [`Output::Synthesize`] and answered with [`Input::Audio`].
//!
//! What it models, as far as voxgate can observe: session create/update (GA shape checks:
//! `session.type` required, unknown keys refused, `null` turn detection disables VAD), input
//! audio with energy VAD in audio time, commits, transcripts, responses with paced audio and
//! transcript deltas, function calls, server-side cancellation on barge-in, `response.cancel`,
//! truncation (refused beyond the audio actually sent), and the usual `error`s for misuse.
//! Left out: text-only output, out-of-band responses, item retrieve/delete, idle timeouts,
//! semantic VAD semantics (treated as server VAD), and the 60-minute session limit.

mod response;
mod session;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use serde_json::Value;

use self::response::{Active, Trigger};
use super::audio;
use super::script::SimScript;
use super::stats::{ConnStats, FunctionOutputRecord, TruncateRecord};
use super::vad::{Vad, VadEvent, VadParams};
use crate::model::protocol::*;

/// Audio a manual commit needs at least, ms (the real server's limit).
const MIN_COMMIT_MS: u64 = 100;
/// Prefix padding when the session does not say, ms (API default).
const DEFAULT_PREFIX_MS: u64 = 300;

/// An input to the machine.
#[derive(Debug)]
pub enum Input<'a> {
    /// A text frame from the client.
    Text(&'a str),
    /// A binary frame (not part of the protocol).
    Binary,
    /// Synthesized speech for the response that asked with `ticket`, at the requested rate.
    Audio {
        /// The ticket from [`Output::Synthesize`].
        ticket: u64,
        /// Linear samples.
        samples: Arc<Vec<i16>>,
    },
    /// The time from [`SimConn::poll_timeout`] has come.
    Timeout,
}

/// An action for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this event (the driver adds an `event_id`).
    Send(ServerEvent),
    /// Send this raw JSON as is.
    Raw(Value),
    /// Send this text frame as is (not necessarily JSON: scripted garbage).
    Text(String),
    /// Synthesize `text` at `rate` Hz and answer with [`Input::Audio`].
    Synthesize {
        /// Echo in the answer.
        ticket: u64,
        /// What to say.
        text: String,
        /// Sample rate wanted.
        rate: u32,
    },
    /// Close the WebSocket with this code and reason, then stop.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
}

/// One simulated session.
#[derive(Debug)]
pub struct SimConn {
    script: Arc<SimScript>,
    stats: Arc<ConnStats>,
    out: VecDeque<Output>,
    ids: u64,
    session: SessionConfig,
    input_format: AudioFormat,
    output_format: AudioFormat,
    turn_detection: Option<TurnDetection>,
    vad: Vad,
    /// Input bytes since the last commit or clear.
    buffer_bytes: u64,
    /// The user item announced by `speech_started`, until committed.
    speech_item: Option<String>,
    last_item: Option<String>,
    turn_index: usize,
    responses: u64,
    response: Option<Active>,
    /// Assistant audio items: audio sent (or kept after truncation), ms.
    audio_items: HashMap<String, u64>,
    hung: bool,
    closed: bool,
}

impl SimConn {
    /// A new session; `session.created` (and the script's `on_connect` events) are queued.
    pub fn new(script: Arc<SimScript>, stats: Arc<ConnStats>) -> Self {
        let turn_detection = Some(TurnDetection::server_vad_default());
        let mut conn = SimConn {
            script,
            stats,
            out: VecDeque::new(),
            ids: 0,
            session: SessionConfig::default(),
            input_format: AudioFormat::Pcm24k,
            output_format: AudioFormat::Pcm24k,
            turn_detection: turn_detection.clone(),
            vad: Vad::new(AudioFormat::Pcm24k.sample_rate()),
            buffer_bytes: 0,
            speech_item: None,
            last_item: None,
            turn_index: 0,
            responses: 0,
            response: None,
            audio_items: HashMap::new(),
            hung: false,
            closed: false,
        };
        conn.session = SessionConfig {
            kind: SessionKind::Realtime,
            id: Some(conn.new_id("sess")),
            model: Some("gpt-realtime".into()),
            instructions: Some(String::new()),
            output_modalities: Some(vec![Modality::Audio]),
            audio: Some(AudioConfig {
                input: Some(AudioInput {
                    format: Some(AudioFormat::Pcm24k),
                    transcription: None,
                    noise_reduction: None,
                    turn_detection,
                }),
                output: Some(AudioOutput {
                    format: Some(AudioFormat::Pcm24k),
                    voice: Some(Voice::Named("marin".into())),
                    speed: Some(1.0),
                }),
            }),
            tools: Some(Vec::new()),
            tool_choice: Some(ToolChoice::auto()),
            max_output_tokens: Some(MaxOutputTokens::Named("inf".into())),
        };
        conn.send(ServerEvent::SessionCreated(Box::new(SessionEvent {
            session: conn.session.clone(),
        })));
        for raw in conn.script.on_connect.clone() {
            conn.out.push_back(Output::Raw(raw));
        }
        conn
    }

    /// Next action for the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to feed [`Input::Timeout`] next (reply audio pacing).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let r = self.response.as_ref()?;
        if r.audio.is_some() && !r.audio_done {
            r.next_at
        } else {
            None
        }
    }

    /// Whether the script made this session hang (the driver keeps the socket open, silent).
    pub fn is_hung(&self) -> bool {
        self.hung
    }

    /// Applies one input.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        if self.hung || self.closed {
            return;
        }
        match input {
            Input::Text(text) => self.on_text(now, text),
            Input::Binary => self.error(
                "invalid_request_error",
                "invalid_event",
                "Binary frames are not supported.".into(),
                None,
                None,
            ),
            Input::Audio { ticket, samples } => {
                if let Some(r) = self.response.as_mut() {
                    if r.ticket == ticket && r.audio.is_none() {
                        r.audio = Some(audio::encode(r.format, &samples));
                        r.next_at = Some(now);
                        self.advance(now);
                    }
                }
            }
            Input::Timeout => self.advance(now),
        }
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}_sim{:05}", self.ids)
    }

    fn send(&mut self, event: ServerEvent) {
        self.out.push_back(Output::Send(event));
    }

    fn error(
        &mut self,
        kind: &str,
        code: &str,
        message: String,
        param: Option<&str>,
        event_id: Option<String>,
    ) {
        ConnStats::bump(&self.stats.errors_sent, 1);
        self.send(ServerEvent::Error(ErrorEvent {
            error: ErrorDetail {
                kind: kind.into(),
                code: Some(code.into()),
                message,
                param: param.map(Into::into),
                event_id,
            },
        }));
    }

    fn on_text(&mut self, now: Instant, text: &str) {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return self.error(
                    "invalid_request_error",
                    "invalid_json",
                    format!("Invalid JSON: {e}"),
                    None,
                    None,
                )
            }
        };
        let event_id = value
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let raw_session = value.get("session").cloned();
        let event: ClientEvent = match serde_json::from_value(value) {
            Ok(e) => e,
            Err(e) => {
                return self.error(
                    "invalid_request_error",
                    "invalid_event",
                    e.to_string(),
                    None,
                    event_id,
                )
            }
        };
        match event {
            ClientEvent::SessionUpdate { session, .. } => {
                self.session_update(raw_session.unwrap_or(Value::Null), session, event_id)
            }
            ClientEvent::InputAudioBufferAppend { audio, .. } => self.append(now, &audio, event_id),
            ClientEvent::InputAudioBufferCommit { .. } => {
                let ms = self.input_format.bytes_to_ms(self.buffer_bytes);
                if ms < MIN_COMMIT_MS {
                    let msg = format!("Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms of audio, but buffer only has {ms}ms of audio.");
                    return self.error(
                        "invalid_request_error",
                        "input_audio_buffer_commit_empty",
                        msg,
                        None,
                        event_id,
                    );
                }
                let item = match self.speech_item.take() {
                    Some(item) => item,
                    None => self.new_id("item"),
                };
                self.vad.reset();
                self.commit(item);
            }
            ClientEvent::InputAudioBufferClear { .. } => {
                self.buffer_bytes = 0;
                self.speech_item = None;
                self.vad.reset();
                self.send(ServerEvent::BufferCleared(Empty {}));
            }
            ClientEvent::ConversationItemCreate {
                previous_item_id,
                item,
                ..
            } => self.item_create(previous_item_id, item, event_id),
            ClientEvent::ConversationItemTruncate {
                item_id,
                content_index,
                audio_end_ms,
                ..
            } => self.truncate(item_id, content_index, audio_end_ms, event_id),
            ClientEvent::ResponseCreate { .. } => match &self.response {
                Some(r) => {
                    let msg = format!("Conversation already has an active response in progress: {}. Wait until the response is finished before creating a new one.", r.id);
                    self.error(
                        "invalid_request_error",
                        "conversation_already_has_active_response",
                        msg,
                        None,
                        event_id,
                    )
                }
                None => self.start_response(now, Trigger::Explicit),
            },
            ClientEvent::ResponseCancel { .. } => {
                if self.response.is_some() {
                    self.cancel("client_cancelled");
                } else {
                    let msg = "Cancellation failed: no active response found".into();
                    self.error(
                        "invalid_request_error",
                        "response_cancel_not_active",
                        msg,
                        None,
                        event_id,
                    )
                }
            }
        }
    }

    fn vad_params(&self) -> Option<VadParams> {
        let td = self.turn_detection.as_ref()?;
        let (silence, prefix) = match td {
            TurnDetection::ServerVad {
                silence_duration_ms,
                prefix_padding_ms,
                ..
            } => (*silence_duration_ms, *prefix_padding_ms),
            TurnDetection::SemanticVad { .. } => (None, None),
        };
        Some(VadParams {
            threshold: self.script.vad.threshold,
            silence_ms: silence.unwrap_or(self.script.vad.silence_ms) as u64,
            prefix_ms: prefix.map_or(DEFAULT_PREFIX_MS, u64::from),
        })
    }

    fn append(&mut self, now: Instant, b64: &str, event_id: Option<String>) {
        let bytes = match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(b) => b,
            Err(_) => {
                let msg = "Invalid 'audio'. Expected base64-encoded audio bytes.".into();
                return self.error(
                    "invalid_request_error",
                    "invalid_value",
                    msg,
                    Some("audio"),
                    event_id,
                );
            }
        };
        let len = bytes.len() as u64;
        ConnStats::bump(&self.stats.appends, 1);
        ConnStats::bump(&self.stats.audio_bytes, len);
        ConnStats::bump(&self.stats.audio_ms, self.input_format.bytes_to_ms(len));
        self.buffer_bytes += len;
        let samples = audio::decode(self.input_format, &bytes);
        let mut events = Vec::new();
        let params = self.vad_params();
        self.vad.push(&samples, params, &mut events);
        for event in events {
            match event {
                VadEvent::Started { audio_start_ms } => self.speech_started(audio_start_ms),
                VadEvent::Stopped { audio_end_ms } => self.speech_stopped(now, audio_end_ms),
            }
        }
    }

    fn speech_started(&mut self, audio_start_ms: u64) {
        let item_id = self.new_id("item");
        self.speech_item = Some(item_id.clone());
        ConnStats::bump(&self.stats.speech_started, 1);
        self.send(ServerEvent::SpeechStarted(SpeechStarted {
            audio_start_ms,
            item_id,
        }));
        let interrupt = self
            .turn_detection
            .as_ref()
            .is_some_and(TurnDetection::interrupt_response);
        if interrupt && self.response.is_some() {
            self.cancel("turn_detected");
        }
    }

    fn speech_stopped(&mut self, now: Instant, audio_end_ms: u64) {
        let item_id = match self.speech_item.take() {
            Some(item) => item,
            None => self.new_id("item"),
        };
        ConnStats::bump(&self.stats.speech_stopped, 1);
        self.send(ServerEvent::SpeechStopped(SpeechStopped {
            audio_end_ms,
            item_id: item_id.clone(),
        }));
        self.commit(item_id);
        let create = self
            .turn_detection
            .as_ref()
            .is_some_and(TurnDetection::create_response);
        if create && self.response.is_none() {
            self.start_response(now, Trigger::Vad);
        }
    }

    fn commit(&mut self, item_id: String) {
        ConnStats::bump(&self.stats.commits, 1);
        self.buffer_bytes = 0;
        let previous_item_id = self.last_item.replace(item_id.clone());
        self.send(ServerEvent::BufferCommitted(BufferCommitted {
            item_id: item_id.clone(),
            previous_item_id: previous_item_id.clone(),
        }));
        let item = Item::Message {
            id: Some(item_id.clone()),
            role: Role::User,
            content: vec![ContentPart::InputAudio {
                audio: None,
                transcript: None,
            }],
            status: Some(ItemStatus::Completed),
        };
        self.send(ServerEvent::ItemAdded(ItemEvent {
            item: item.clone(),
            previous_item_id: previous_item_id.clone(),
        }));
        self.send(ServerEvent::ItemDone(ItemEvent {
            item,
            previous_item_id,
        }));
        let transcript = self
            .script
            .turns
            .get(self.turn_index)
            .and_then(|t| t.transcript.clone());
        if let Some(transcript) = transcript {
            self.send(ServerEvent::InputTranscriptionCompleted(
                InputTranscriptionCompleted {
                    item_id,
                    content_index: 0,
                    transcript,
                },
            ));
        }
    }

    fn item_create(&mut self, previous: Option<String>, mut item: Item, event_id: Option<String>) {
        let fresh = self.new_id("item");
        let id = match &mut item {
            Item::Message { id, .. }
            | Item::FunctionCall { id, .. }
            | Item::FunctionCallOutput { id, .. } => id.get_or_insert(fresh).clone(),
            Item::Other => {
                let msg = "Invalid value for 'item.type'.".into();
                return self.error(
                    "invalid_request_error",
                    "invalid_value",
                    msg,
                    Some("item.type"),
                    event_id,
                );
            }
        };
        if let Item::FunctionCallOutput {
            call_id, output, ..
        } = &item
        {
            self.stats.push_function_output(FunctionOutputRecord {
                call_id: call_id.clone(),
                output: output.clone(),
            });
        }
        let previous_item_id = previous.or_else(|| self.last_item.clone());
        self.last_item = Some(id);
        self.send(ServerEvent::ItemAdded(ItemEvent {
            item: item.clone(),
            previous_item_id: previous_item_id.clone(),
        }));
        self.send(ServerEvent::ItemDone(ItemEvent {
            item,
            previous_item_id,
        }));
    }

    fn truncate(
        &mut self,
        item_id: String,
        content_index: u32,
        audio_end_ms: u64,
        event_id: Option<String>,
    ) {
        let sent = self.audio_items.get(&item_id).copied();
        let accepted = sent.is_some_and(|sent| audio_end_ms <= sent);
        self.stats.push_truncate(TruncateRecord {
            item_id: item_id.clone(),
            audio_end_ms,
            sent_ms: sent.unwrap_or(0),
            accepted,
        });
        match sent {
            None => {
                let msg = format!(
                    "Item with item_id '{item_id}' not found or not an assistant audio item."
                );
                self.error(
                    "invalid_request_error",
                    "item_truncate_invalid_item_id",
                    msg,
                    Some("item_id"),
                    event_id,
                )
            }
            Some(sent) if !accepted => {
                let msg =
                    format!("Audio content of {sent}ms is already shorter than {audio_end_ms}ms");
                self.error(
                    "invalid_request_error",
                    "invalid_value",
                    msg,
                    Some("audio_end_ms"),
                    event_id,
                )
            }
            Some(_) => {
                self.audio_items.insert(item_id.clone(), audio_end_ms);
                self.send(ServerEvent::ItemTruncated(ItemTruncated {
                    item_id,
                    content_index,
                    audio_end_ms,
                }));
            }
        }
    }
}
