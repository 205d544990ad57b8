//! The model bridge of one call, sans-IO: turns the caller's RTP frames into Realtime
//! `input_audio_buffer.append` events and the model's audio deltas into 20 ms frames for
//! playout, and runs barge-in. It takes `now` as an argument, returns [`BridgeOutput`]s through
//! `poll_output`, and wants a `handle_timeout` at `poll_timeout` (the "model went silent" timer).
//!
//! - G.711 calls pass straight through: the session uses `audio/pcmu` / `audio/pcma` both ways,
//!   so a caller frame is appended as is and model bytes are cut into 160-byte frames.
//! - Opus calls are decoded, resampled 48 → 24 kHz and sent as `audio/pcm`; the model's 24 kHz
//!   PCM is resampled to 48 kHz and encoded into 20 ms Opus frames.
//! - Barge-in: turn detection runs with `interrupt_response: false`, so the server never cuts
//!   the agent off on its own. When it reports `speech_started` while the agent's audio is
//!   playing, the [`BargeInGuard`] compares the caller's own energy with the agent's level over
//!   the next frames: echo of the agent or a cough is rejected and the agent goes on; real speech
//!   is confirmed, and the bridge asks the call for [`BridgeOutput::BargeIn`] (flush playout),
//!   then cancels the response and truncates it at what the caller actually heard.
//!
//! - Function calls: `response.function_call_arguments.done` becomes
//!   [`BridgeOutput::ToolCall`]; the call runs the tool and hands the result to
//!   [`ModelBridge::tool_output`]. Outputs and `response.create`s are held while a response is in
//!   flight (the server refuses a second active response) and sent when it is done.
//!
//! Left out: reconnects.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::media::codec::{CodecKind, Decoder, Encoder};
use crate::media::resample::Resampler;
use crate::media::vad::{frame_dbfs, BargeInConfig, BargeInGuard, BargeInVerdict};
use crate::model::protocol::{
    AudioConfig, AudioFormat, AudioInput, AudioOutput, ClientEvent, Modality, ResponseConfig,
    ServerEvent, SessionConfig, Transcription, TurnDetection, Voice,
};

/// A caller frame louder than this counts as the caller being there (silence limit).
const VOICE_DBFS: f32 = -40.0;

/// Caller frames remembered for judging a barge-in (200 ms).
const HISTORY_FRAMES: usize = 10;

/// What the agent is told and how it sounds, for one call.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Model name sent in `session.update`.
    pub model: String,
    /// System instructions.
    pub instructions: String,
    /// Spoken as soon as the call is answered (empty: wait for the caller).
    pub greeting: String,
    /// Voice name.
    pub voice: String,
    /// Input transcription model (empty: none).
    pub transcription_model: String,
    /// No response for this long after the caller's turn (or a request) → model failure.
    pub response_timeout: Duration,
    /// Barge-in confirmation settings.
    pub barge_in: BargeInConfig,
    /// Turn detection as the dialplan asks (always with `interrupt_response: false`).
    pub turn_detection: TurnDetection,
    /// Function tools offered to the model.
    pub tools: Vec<crate::model::protocol::Tool>,
}

/// Server VAD with the defaults, never letting the server interrupt the agent itself.
pub fn default_turn_detection() -> TurnDetection {
    TurnDetection::ServerVad {
        threshold: None,
        prefix_padding_ms: None,
        silence_duration_ms: None,
        create_response: Some(true),
        interrupt_response: Some(false),
        idle_timeout_ms: None,
    }
}

/// Outputs for the call layer.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgeOutput {
    /// Send this event to the model (boxed: events are large, frames small).
    Model(Box<ClientEvent>),
    /// Queue this encoded 20 ms frame for playout.
    Play(Vec<u8>),
    /// A response's audio starts: reset the playout's "heard" counter.
    ResponseStart,
    /// Confirmed barge-in: flush playout now and call [`ModelBridge::truncate`] with what was heard.
    BargeIn,
    /// The model calls a function: run it and answer with [`ModelBridge::tool_output`].
    ToolCall {
        /// Correlates the call with its output.
        call_id: String,
        /// Function name.
        name: String,
        /// JSON-encoded arguments, unchecked.
        arguments: String,
    },
    /// A finished transcript line.
    Transcript {
        /// `caller` or `agent`.
        role: &'static str,
        /// The text.
        text: String,
    },
    /// The model failed; the caller must hear the fallback.
    Failed(String),
}

/// Counters for the call summary and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// `input_audio_buffer.append` events sent.
    pub appends: u64,
    /// Caller audio sent, in milliseconds.
    pub audio_in_ms: u64,
    /// `speech_started` events received.
    pub speech_started: u64,
    /// Turns committed by the server.
    pub commits: u64,
    /// Responses started.
    pub responses: u64,
    /// Agent audio frames queued for playout.
    pub frames_out: u64,
    /// Barge-ins confirmed (agent cut off).
    pub barge_ins: u64,
    /// Barge-ins rejected (echo, cough: agent went on).
    pub barge_ins_rejected: u64,
    /// `conversation.item.truncate` sent.
    pub truncates: u64,
    /// Non-fatal `error` events.
    pub errors: u64,
    /// Tokens used, summed over `response.done`.
    pub input_tokens: u64,
    /// Output tokens used.
    pub output_tokens: u64,
}

/// The bridge; see the module doc for its contract.
pub struct ModelBridge {
    settings: AgentSettings,
    codec: CodecKind,
    format: AudioFormat,
    /// Opus only: caller decoding and 48 → 24 kHz.
    in_dec: Option<Decoder>,
    in_rs: Option<Resampler>,
    /// Opus only: 24 → 48 kHz and encoding of the agent's audio.
    out_rs: Option<Resampler>,
    out_enc: Option<Encoder>,
    /// G.711 bytes or 48 kHz samples of agent audio not yet a whole frame.
    out_bytes: Vec<u8>,
    out_pcm: Vec<i16>,
    scratch_pcm: Vec<i16>,
    scratch_bytes: Vec<u8>,
    /// The audio item being played and the response it belongs to.
    item_id: Option<String>,
    response_id: Option<String>,
    /// A response we cancelled: its late deltas are dropped.
    cancelled: Option<String>,
    /// Level of the agent audio most recently queued, for the barge-in guard.
    agent_dbfs: f32,
    guard: BargeInGuard,
    /// The last caller frames' levels with the agent level at the time: the audio that made
    /// the server detect speech has already arrived, so a barge-in is judged on it at once.
    history: VecDeque<(f32, f32)>,
    /// Since when we wait for the model to start a response.
    waiting_since: Option<Instant>,
    /// A `response.create` was sent and `response.created` has not arrived yet.
    requested: bool,
    /// Events held until the response in flight is done (tool outputs, notes).
    held: Vec<ClientEvent>,
    /// A `response.create` to send once no response is in flight (with these instructions).
    want_response: Option<Option<String>>,
    /// The current response queued audio.
    response_spoke: bool,
    /// Function names by call id, from `response.output_item.added`.
    call_names: Vec<(String, String)>,
    /// Caller audio is not sent to the model (during a transfer or a prompt).
    muted: bool,
    /// When the caller last made a sound louder than [`VOICE_DBFS`] (or the model heard speech).
    last_voice: Option<Instant>,
    failed: bool,
    out: VecDeque<BridgeOutput>,
    stats: BridgeStats,
}

impl ModelBridge {
    /// A bridge for a call using `codec`.
    pub fn new(settings: AgentSettings, codec: CodecKind) -> Result<ModelBridge, String> {
        let format = match codec {
            CodecKind::Pcmu => AudioFormat::Pcmu,
            CodecKind::Pcma => AudioFormat::Pcma,
            CodecKind::Opus => AudioFormat::Pcm24k,
        };
        let opus = codec == CodecKind::Opus;
        let err = |e: &dyn std::fmt::Display| e.to_string();
        Ok(ModelBridge {
            guard: BargeInGuard::new(settings.barge_in),
            history: VecDeque::with_capacity(HISTORY_FRAMES),
            settings,
            codec,
            format,
            in_dec: opus
                .then(|| Decoder::new(codec))
                .transpose()
                .map_err(|e| err(&e))?,
            in_rs: opus
                .then(|| Resampler::new(48_000, 24_000))
                .transpose()
                .map_err(|e| err(&e))?,
            out_rs: opus
                .then(|| Resampler::new(24_000, 48_000))
                .transpose()
                .map_err(|e| err(&e))?,
            out_enc: opus
                .then(|| Encoder::new(codec))
                .transpose()
                .map_err(|e| err(&e))?,
            out_bytes: Vec::with_capacity(4096),
            out_pcm: Vec::with_capacity(4096),
            scratch_pcm: Vec::with_capacity(2048),
            scratch_bytes: Vec::with_capacity(2048),
            item_id: None,
            response_id: None,
            cancelled: None,
            agent_dbfs: crate::media::vad::SILENCE_DBFS,
            waiting_since: None,
            requested: false,
            held: Vec::new(),
            want_response: None,
            response_spoke: false,
            call_names: Vec::new(),
            muted: false,
            last_voice: None,
            failed: false,
            out: VecDeque::new(),
            stats: BridgeStats::default(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> BridgeStats {
        self.stats
    }

    /// Next output.
    pub fn poll_output(&mut self) -> Option<BridgeOutput> {
        self.out.pop_front()
    }

    /// When `handle_timeout` is due (the model has been silent too long).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        self.waiting_since
            .map(|t| t + self.settings.response_timeout)
    }

    /// Checks the silence timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            self.fail("the model did not answer in time");
        }
    }

    /// The session is open: configure it (formats, voice, turn detection, instructions).
    pub fn start(&mut self, now: Instant) {
        let s = &self.settings;
        let transcription = (!s.transcription_model.is_empty()).then(|| Transcription {
            model: Some(s.transcription_model.clone()),
            ..Transcription::default()
        });
        let session = SessionConfig {
            model: Some(s.model.clone()),
            instructions: Some(s.instructions.clone()),
            output_modalities: Some(vec![Modality::Audio]),
            audio: Some(AudioConfig {
                input: Some(AudioInput {
                    format: Some(self.format),
                    transcription,
                    noise_reduction: None,
                    turn_detection: Some(s.turn_detection.clone()),
                }),
                output: Some(AudioOutput {
                    format: Some(self.format),
                    voice: Some(Voice::Named(s.voice.clone())),
                    speed: None,
                }),
            }),
            tools: (!s.tools.is_empty()).then(|| s.tools.clone()),
            tool_choice: (!s.tools.is_empty()).then(crate::model::protocol::ToolChoice::auto),
            ..SessionConfig::default()
        };
        self.out
            .push_back(BridgeOutput::Model(Box::new(ClientEvent::session_update(
                session,
            ))));
        if !self.settings.greeting.is_empty() {
            let greeting = self.settings.greeting.clone();
            self.out
                .push_back(BridgeOutput::Model(Box::new(ClientEvent::ResponseCreate {
                    event_id: None,
                    response: Some(ResponseConfig {
                        instructions: Some(format!(
                            "Greet the caller with exactly these words: \"{greeting}\""
                        )),
                        ..ResponseConfig::default()
                    }),
                })));
            self.waiting_since = Some(now);
            self.requested = true;
        }
    }

    /// True while a response is requested or in flight, or one is waiting to be requested.
    pub fn is_busy(&self) -> bool {
        self.requested || self.response_id.is_some() || self.want_response.is_some()
    }

    /// True if the current (or last) response queued any audio.
    pub fn response_spoke(&self) -> bool {
        self.response_spoke
    }

    /// Stops (or resumes) sending the caller's audio to the model.
    pub fn mute(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// When the caller was last heard (loud frame or the model's speech detection).
    pub fn last_voice(&self) -> Option<Instant> {
        self.last_voice
    }

    /// True once the model has failed (nothing more is sent).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Answers function call `call_id` with `output`; with `respond`, asks the model to go on
    /// (with `instructions` for that response, if any). Held while a response is in flight.
    pub fn tool_output(
        &mut self,
        now: Instant,
        call_id: &str,
        output: String,
        respond: Option<Option<String>>,
    ) {
        if self.failed {
            return;
        }
        self.held.push(ClientEvent::item_create(
            crate::model::protocol::Item::function_output(call_id, output),
        ));
        if let Some(instructions) = respond {
            self.want_response = Some(instructions);
        }
        self.release(now);
    }

    /// Tells the model something happened (a system note) and asks it to respond, e.g. a
    /// transfer that failed after the tool call was answered.
    pub fn note(&mut self, now: Instant, text: &str, instructions: Option<String>) {
        if self.failed {
            return;
        }
        self.held.push(ClientEvent::item_create(
            crate::model::protocol::Item::system_text(text),
        ));
        self.want_response = Some(instructions);
        self.release(now);
    }

    /// Asks for a response with these instructions (e.g. "say exactly: ...").
    pub fn say(&mut self, now: Instant, instructions: String) {
        if self.failed {
            return;
        }
        self.want_response = Some(Some(instructions));
        self.release(now);
    }

    /// Sends held events and the wanted response once no response is in flight.
    fn release(&mut self, now: Instant) {
        if self.requested || self.response_id.is_some() {
            return;
        }
        for ev in self.held.drain(..) {
            self.out.push_back(BridgeOutput::Model(Box::new(ev)));
        }
        if let Some(instructions) = self.want_response.take() {
            self.out
                .push_back(BridgeOutput::Model(Box::new(ClientEvent::ResponseCreate {
                    event_id: None,
                    response: instructions.map(|i| ResponseConfig {
                        instructions: Some(i),
                        ..ResponseConfig::default()
                    }),
                })));
            self.requested = true;
            self.waiting_since = Some(now);
        }
    }

    /// One 20 ms frame of the caller's audio (an RTP payload in the call's codec).
    pub fn on_caller_frame(&mut self, now: Instant, payload: &[u8]) {
        if self.failed || self.muted {
            return;
        }
        let voice_at = now;
        // Level of the caller's own audio, for the barge-in guard.
        self.scratch_pcm.clear();
        let level = match self.codec {
            CodecKind::Pcmu => {
                self.scratch_pcm.extend(
                    payload
                        .iter()
                        .map(|b| audio_codec_algorithms::decode_ulaw(*b)),
                );
                frame_dbfs(&self.scratch_pcm)
            }
            CodecKind::Pcma => {
                self.scratch_pcm.extend(
                    payload
                        .iter()
                        .map(|b| audio_codec_algorithms::decode_alaw(*b)),
                );
                frame_dbfs(&self.scratch_pcm)
            }
            CodecKind::Opus => {
                let Some(dec) = &mut self.in_dec else { return };
                if dec.decode(payload, &mut self.scratch_pcm).is_err() {
                    return;
                }
                frame_dbfs(&self.scratch_pcm)
            }
        };
        if level > VOICE_DBFS {
            self.last_voice = Some(voice_at);
        }
        if self.history.len() == HISTORY_FRAMES {
            self.history.pop_front();
        }
        self.history.push_back((level, self.agent_dbfs));
        if self.guard.is_active() {
            let verdict = self.guard.push(level, self.agent_dbfs);
            self.on_verdict(verdict);
        }
        let event = match self.codec {
            CodecKind::Pcmu | CodecKind::Pcma => ClientEvent::append(payload),
            CodecKind::Opus => {
                let Some(rs) = &mut self.in_rs else { return };
                let mut pcm24 = Vec::with_capacity(480);
                rs.process(&self.scratch_pcm, &mut pcm24);
                if pcm24.is_empty() {
                    return;
                }
                self.scratch_bytes.clear();
                for s in &pcm24 {
                    self.scratch_bytes.extend_from_slice(&s.to_le_bytes());
                }
                ClientEvent::append(&self.scratch_bytes)
            }
        };
        self.stats.appends += 1;
        self.stats.audio_in_ms += 20;
        self.out.push_back(BridgeOutput::Model(Box::new(event)));
    }

    fn on_verdict(&mut self, verdict: Option<BargeInVerdict>) {
        match verdict {
            Some(BargeInVerdict::Confirmed) => {
                self.stats.barge_ins += 1;
                self.out.push_back(BridgeOutput::BargeIn);
            }
            Some(BargeInVerdict::Rejected) => self.stats.barge_ins_rejected += 1,
            None => {}
        }
    }

    /// After a confirmed barge-in the call flushed playout; `heard_ms` of the response had
    /// been played. Cancels the response and truncates the item there.
    pub fn truncate(&mut self, heard_ms: u64) {
        self.out.push_back(BridgeOutput::Model(
            Box::new(ClientEvent::response_cancel()),
        ));
        if let Some(item) = self.item_id.clone() {
            self.stats.truncates += 1;
            self.out
                .push_back(BridgeOutput::Model(Box::new(ClientEvent::truncate(
                    item, heard_ms,
                ))));
        }
        self.cancelled = self.response_id.take();
        self.item_id = None;
        self.out_bytes.clear();
        self.out_pcm.clear();
    }

    /// Handles one server event. `playing` tells whether agent audio is still queued.
    pub fn on_model_event(&mut self, now: Instant, ev: ServerEvent, playing: bool) {
        if self.failed {
            return;
        }
        match ev {
            ServerEvent::SpeechStarted(_) => {
                self.stats.speech_started += 1;
                self.last_voice = Some(now);
                // The agent is talking if its audio is queued or a response is in flight.
                if playing || self.response_id.is_some() {
                    self.guard.start();
                    let recent: Vec<(f32, f32)> = self.history.iter().copied().collect();
                    for (caller, agent) in recent {
                        if !self.guard.is_active() {
                            break;
                        }
                        let verdict = self.guard.push(caller, agent);
                        self.on_verdict(verdict);
                    }
                }
            }
            ServerEvent::BufferCommitted(_) => {
                self.stats.commits += 1;
                self.waiting_since = Some(now);
            }
            ServerEvent::ResponseCreated(r) => {
                self.stats.responses += 1;
                self.requested = false;
                self.response_spoke = false;
                self.response_id = Some(r.response.id.clone());
                self.waiting_since = None;
                self.out.push_back(BridgeOutput::ResponseStart);
            }
            ServerEvent::OutputAudioDelta(d) => {
                if self.cancelled.as_deref() == Some(d.response_id.as_str()) {
                    return;
                }
                self.item_id = Some(d.item_id.clone());
                self.response_spoke = true;
                match base64::engine::general_purpose::STANDARD.decode(d.delta.as_bytes()) {
                    Ok(bytes) => self.queue_agent_audio(&bytes),
                    Err(_) => self.stats.errors += 1,
                }
            }
            ServerEvent::ResponseDone(r) => {
                if let Some(u) = &r.response.usage {
                    self.stats.input_tokens += u.input_tokens;
                    self.stats.output_tokens += u.output_tokens;
                }
                if self.cancelled.as_deref() != Some(r.response.id.as_str()) {
                    self.flush_agent_audio();
                }
                if self.response_id.as_deref() == Some(r.response.id.as_str()) {
                    self.response_id = None;
                }
                self.requested = false;
                self.waiting_since = None;
                self.release(now);
            }
            ServerEvent::OutputItemAdded(o) => {
                if let crate::model::protocol::Item::FunctionCall { call_id, name, .. } = o.item {
                    if self.call_names.len() >= 64 {
                        self.call_names.remove(0);
                    }
                    self.call_names.push((call_id, name));
                }
            }
            ServerEvent::FunctionCallArgumentsDone(d) => {
                let name = d.name.clone().or_else(|| {
                    self.call_names
                        .iter()
                        .find(|(id, _)| *id == d.call_id)
                        .map(|(_, n)| n.clone())
                });
                self.out.push_back(BridgeOutput::ToolCall {
                    call_id: d.call_id,
                    name: name.unwrap_or_default(),
                    arguments: d.arguments,
                });
            }
            ServerEvent::InputTranscriptionCompleted(t) => {
                self.out.push_back(BridgeOutput::Transcript {
                    role: "caller",
                    text: t.transcript,
                });
            }
            ServerEvent::OutputAudioTranscriptDone(t) => {
                self.out.push_back(BridgeOutput::Transcript {
                    role: "agent",
                    text: t.transcript,
                });
            }
            ServerEvent::Error(e) => {
                // Request-level mistakes (e.g. cancelling a finished response) are harmless;
                // anything else means the session cannot be trusted any more.
                if e.error.kind == "invalid_request_error" {
                    self.stats.errors += 1;
                    tracing::debug!(code = ?e.error.code, "model: {}", e.error.message);
                } else {
                    self.fail(&format!(
                        "model error {}: {}",
                        e.error.kind, e.error.message
                    ));
                }
            }
            _ => {}
        }
    }

    /// The model connection failed or closed.
    pub fn on_closed(&mut self, reason: &str) {
        self.fail(reason);
    }

    fn fail(&mut self, reason: &str) {
        if !self.failed {
            self.failed = true;
            self.waiting_since = None;
            self.out.push_back(BridgeOutput::Failed(reason.to_string()));
        }
    }

    fn queue_agent_audio(&mut self, bytes: &[u8]) {
        match self.codec {
            CodecKind::Pcmu | CodecKind::Pcma => {
                self.out_bytes.extend_from_slice(bytes);
                let n = self.out_bytes.len() / 160;
                for i in 0..n {
                    let frame = self.out_bytes[i * 160..(i + 1) * 160].to_vec();
                    self.play(frame);
                }
                self.out_bytes.drain(..n * 160);
            }
            CodecKind::Opus => {
                self.scratch_pcm.clear();
                self.scratch_pcm.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]])),
                );
                if let Some(rs) = &mut self.out_rs {
                    rs.process(&self.scratch_pcm, &mut self.out_pcm);
                }
                self.encode_opus_frames();
            }
        }
    }

    fn flush_agent_audio(&mut self) {
        match self.codec {
            CodecKind::Pcmu | CodecKind::Pcma => {
                if !self.out_bytes.is_empty() {
                    let silence = if self.codec == CodecKind::Pcmu {
                        0xff
                    } else {
                        0xd5
                    };
                    let mut frame = std::mem::take(&mut self.out_bytes);
                    frame.resize(160, silence);
                    self.play(frame);
                }
            }
            CodecKind::Opus => {
                if let Some(rs) = &mut self.out_rs {
                    rs.flush(&mut self.out_pcm);
                }
                if !self.out_pcm.is_empty() {
                    let pad = 960 - self.out_pcm.len() % 960;
                    if pad < 960 {
                        self.out_pcm.extend(std::iter::repeat_n(0, pad));
                    }
                }
                self.encode_opus_frames();
            }
        }
    }

    fn encode_opus_frames(&mut self) {
        while self.out_pcm.len() >= 960 {
            let pcm: Vec<i16> = self.out_pcm.drain(..960).collect();
            let mut payload = Vec::with_capacity(200);
            if let Some(enc) = &mut self.out_enc {
                if enc.encode(&pcm, &mut payload).is_ok() {
                    self.agent_dbfs = frame_dbfs(&pcm);
                    self.stats.frames_out += 1;
                    self.out.push_back(BridgeOutput::Play(payload));
                }
            }
        }
    }

    fn play(&mut self, frame: Vec<u8>) {
        self.scratch_pcm.clear();
        let decode = if self.codec == CodecKind::Pcmu {
            audio_codec_algorithms::decode_ulaw
        } else {
            audio_codec_algorithms::decode_alaw
        };
        self.scratch_pcm.extend(frame.iter().map(|b| decode(*b)));
        self.agent_dbfs = frame_dbfs(&self.scratch_pcm);
        self.stats.frames_out += 1;
        self.out.push_back(BridgeOutput::Play(frame));
    }
}

#[cfg(test)]
mod tests;
