//! One call, owned by one tokio task: it drives the [`UasSession`] (SIP) and the
//! [`MediaLeg`] (RTP) sans-IO cores, and is the only code that touches this call's RTP socket.
//! Each wake-up makes one change (a SIP message, an RTP packet, a timer) and then drains both
//! cores' outputs without awaiting.
//!
//! In `model` mode (the default) the model session opens while the phone rings, and the
//! [`ModelBridge`] core carries audio both ways; `echo` and `prompt` modes prove two-way audio
//! without a model. When the model fails, the caller hears the fallback prompt, then BYE.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsip::SipMessage;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, info_span, Instrument};

use crate::config::{CodecName, Config, MediaConfig};
use crate::media::ports::{PortLease, PortPool};
use crate::sip::dialog::{EndCause, Output, UasSession};
use crate::sip::sdp::Codec;
use crate::sip::transport::TransportHandle;

use crate::model::client::{
    self as model_client, ModelEndpoint, ModelInput, ModelSender, ModelSession,
};

use crate::model::protocol::ServerEvent;

use super::bridge::{AgentSettings, ModelBridge};
use super::latency::CallLatency;
use super::media::{MediaEvent, MediaLeg};
use super::plan::{agent_for, CallPlan};

mod io;
mod model;
mod record;
mod sip;
mod tools;

pub use tools::ToolDone;

use crate::store::{kind, CallId, Record, StoreHandle};
use io::{load_prompt, min_opt, pct, recv_connect, recv_model, recv_rtp, recv_tool, sleep_until};

/// Input delivered to a call task by the router.
#[derive(Debug)]
pub enum CallInput {
    /// A SIP message with this call's Call-ID.
    Sip(SipMessage),
    /// End the call now (BYE once answered, else a final response such as 503), recording
    /// `reason` as the end reason; used by graceful drain at shutdown.
    Hangup {
        /// `end_reason` for the call log, e.g. `shutdown`.
        reason: String,
        /// Final response code if the call is not answered yet.
        code: u16,
    },
}

/// What every call shares: built once at start-up.
pub struct CallContext {
    /// Address advertised in Contact and SDP.
    pub advertised: SocketAddr,
    /// IP the RTP sockets bind to.
    pub rtp_bind: std::net::IpAddr,
    /// The RTP port pool.
    pub ports: PortPool,
    /// Codec preference for SDP answers.
    pub codecs: Vec<Codec>,
    /// Media mode settings.
    pub media: MediaConfig,
    /// Hang up after this long without RTP from the caller.
    pub rtp_timeout: Duration,
    /// Jitter buffer target delay.
    pub jitter: Duration,
    /// The prompt, as 8 kHz mono PCM16, for `prompt` mode.
    pub prompt: Option<Arc<Vec<i16>>>,
    /// Where the model is (model mode only).
    pub model: Option<ModelEndpoint>,
    /// WebSocket handshake limit.
    pub connect_timeout: Duration,
    /// The agent every call gets.
    pub agent: AgentSettings,
    /// What the caller hears when the model fails (8 kHz PCM).
    pub fallback: Arc<Vec<i16>>,
    /// The configured model name, for the call record.
    pub model_name: String,
    /// The call log (submits never block).
    pub store: StoreHandle,
    /// HTTP client for webhook tools and ticket forwarding (connection pools are shared).
    pub http: reqwest::Client,
}

impl CallContext {
    /// Builds the shared context; loads the prompt WAVs when configured.
    pub fn new(
        config: &Config,
        advertised: SocketAddr,
        model: Option<ModelEndpoint>,
        store: StoreHandle,
    ) -> anyhow::Result<CallContext> {
        let prompt = match &config.media.prompt {
            Some(path) => Some(Arc::new(super::media::load_wav_8k(path)?)),
            None => None,
        };
        let fallback = match &config.agent.fallback_prompt {
            Some(path) => super::media::load_wav_8k(path)?,
            None => super::media::fallback_tones(),
        };
        let a = &config.agent;
        let agent = AgentSettings {
            model: config.model.name.clone(),
            instructions: a.instructions.clone(),
            greeting: a.greeting.clone(),
            voice: a.voice.clone(),
            transcription_model: a.transcription_model.clone(),
            response_timeout: a.response_timeout.0,
            barge_in: crate::media::vad::BargeInConfig::default(),
            turn_detection: super::bridge::default_turn_detection(),
            tools: Vec::new(),
        };
        Ok(CallContext {
            advertised,
            rtp_bind: config.sip.listen.ip(),
            ports: super::server::port_pool(config),
            codecs: config
                .sip
                .codecs
                .iter()
                .map(|c| match c {
                    CodecName::Pcmu => Codec::Pcmu,
                    CodecName::Pcma => Codec::Pcma,
                    CodecName::Opus => Codec::Opus,
                })
                .collect(),
            media: config.media.clone(),
            rtp_timeout: config.rtp.timeout.0,
            jitter: config.rtp.jitter.0,
            prompt,
            model,
            connect_timeout: config.model.connect_timeout.0,
            agent,
            fallback: Arc::new(fallback),
            model_name: config.model.name.clone(),
            store,
            http: reqwest::Client::builder()
                .user_agent(concat!("voxgate/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(5))
                .build()?,
        })
    }
}

/// Starts the task for a new call; it reports its Call-ID on `done` when fully terminated.
pub fn spawn(
    uas: UasSession,
    rx: mpsc::Receiver<CallInput>,
    transport: TransportHandle,
    ctx: Arc<CallContext>,
    done: mpsc::Sender<String>,
    plan: CallPlan,
) {
    let sip_call_id = uas.incoming().sip_call_id.clone();
    let id = CallId::new();
    let span = info_span!("call", sip_call_id = %sip_call_id, call_id = %id.0);
    tokio::spawn(
        async move {
            let agent = ctx.agent.clone();
            let fallback = ctx.fallback.clone();
            let max_call = ctx.media.max_call.0;
            let (tools_tx, tools_rx) = mpsc::channel(16);
            let mut call = Call {
                tools_tx,
                tools_rx: Some(tools_rx),
                tool_calls: 0,
                after_speech: None,
                transfer: None,
                after_prompt: None,
                ticket_ref: None,
                transfer_target: None,
                reconnects: 0,
                first_audio_reported: false,
                silence: Duration::ZERO,
                activity_at: Instant::now(),
                conversation: Vec::new(),
                codec: None,
                id,
                started_utc: chrono::Utc::now(),
                seq: 0,
                recorded_start: false,
                plan_name: String::new(),
                plan,
                agent,
                fallback,
                max_call,
                closed_prompt: None,
                uas,
                transport,
                ctx,
                media: None,
                socket: None,
                lease: None,
                started: Instant::now(),
                answered: None,
                session_version: 1,
                end: None,
                digits: String::new(),
                answer_at: None,
                connecting: None,
                model_tx: None,
                model_rx: None,
                bridge: None,
                bridge_started: false,
                latency: CallLatency::default(),
                delta_at: None,
                model_rx_at: None,
                speech_at: None,
            };
            call.run(rx).await;
            let _ = done.send(sip_call_id).await;
        }
        .instrument(span),
    );
}

struct Call {
    /// Our id for the call record (not the SIP Call-ID).
    id: CallId,
    /// When the INVITE arrived, wall clock, for the record.
    started_utc: chrono::DateTime<chrono::Utc>,
    /// Next call-event sequence number (the idempotency key with `id`).
    seq: u32,
    /// `CallStarted` was submitted.
    recorded_start: bool,
    /// The dialplan that took the call.
    plan_name: String,
    /// What the dialplan decided for this call.
    plan: CallPlan,
    /// The agent for this call (the plan's, rendered, over the config defaults).
    agent: AgentSettings,
    /// What the caller hears if the model fails.
    fallback: Arc<Vec<i16>>,
    /// Hang up after this long (0 = never).
    max_call: Duration,
    /// Closed hours: the prompt to play instead of the agent.
    closed_prompt: Option<Arc<Vec<i16>>>,
    uas: UasSession,
    transport: TransportHandle,
    ctx: Arc<CallContext>,
    media: Option<MediaLeg>,
    socket: Option<Arc<UdpSocket>>,
    /// Held for the life of the media; dropping it returns the port to the pool.
    lease: Option<PortLease>,
    started: Instant,
    answered: Option<Instant>,
    /// SDP o= version; bumped for every new answer (RFC 3264 §8).
    session_version: u64,
    end: Option<String>,
    digits: String,
    /// When to answer (after ringing); `None` once answered or given up.
    answer_at: Option<Instant>,
    /// The model handshake in flight (it runs while the phone rings).
    connecting: Option<oneshot::Receiver<Result<ModelSession, model_client::ModelError>>>,
    /// The open model session's sender and events.
    model_tx: Option<ModelSender>,
    model_rx: Option<mpsc::Receiver<ModelInput>>,
    bridge: Option<ModelBridge>,
    /// `session.update` (and the greeting) were sent.
    bridge_started: bool,
    /// Latency samples for the benchmark figures.
    latency: CallLatency,
    /// When the first audio delta of a response arrived while nothing played.
    delta_at: Option<Instant>,
    /// When the last audio delta arrived from the model.
    model_rx_at: Option<Instant>,
    /// When `speech_started` arrived while the agent played.
    speech_at: Option<Instant>,
    /// Tool tasks report here.
    tools_tx: mpsc::Sender<ToolDone>,
    tools_rx: Option<mpsc::Receiver<ToolDone>>,
    /// Function calls so far (limited by the plan).
    tool_calls: u32,
    /// What to do once the agent has finished speaking (hang up, transfer).
    after_speech: Option<tools::AfterSpeech>,
    /// A transfer in progress.
    transfer: Option<tools::TransferState>,
    /// What to do when the current once-only prompt ends.
    after_prompt: Option<tools::Deferred>,
    /// The latest ticket filed in this call (sent along with a transfer).
    ticket_ref: Option<String>,
    /// Where the call was transferred to.
    transfer_target: Option<String>,
    /// Caller silence that ends the call (the plan's `limits.silence`; zero: none).
    silence: Duration,
    /// Last sign of life in the conversation: caller voice, agent speech, a tool or transfer.
    activity_at: Instant,
    /// `first_agent_audio` was recorded.
    first_audio_reported: bool,
    /// Model reconnects so far (at most one per call).
    reconnects: u32,
    /// The conversation so far (role, text), to brief a reconnected model.
    conversation: Vec<(&'static str, String)>,
    /// The negotiated codec, for a new bridge after a reconnect.
    codec: Option<crate::media::codec::CodecKind>,
}

impl Call {
    async fn run(&mut self, mut rx: mpsc::Receiver<CallInput>) {
        let now = Instant::now();
        let inc = self.uas.incoming().clone();
        info!(caller = %inc.caller, callee = %inc.callee, from = %inc.peer.addr, "incoming call");
        let mut use_model = self.ctx.model.is_some();
        match self.plan.clone() {
            CallPlan::Reject(code) => {
                info!(code, "no dialplan for this call: rejecting");
                self.uas.reject(now, code, None);
                use_model = false;
            }
            CallPlan::Closed { plan, action } => {
                info!(plan = %plan.name, "closed hours");
                self.plan_name = plan.name.clone();
                use_model = false;
                self.end = Some("closed".into());
                self.uas.ring(now);
                self.flush_sip();
                self.after_prompt =
                    Some(Self::deferred_for(&action, "called outside business hours"));
                match action.play.clone() {
                    Some(path) => self.closed_prompt = load_prompt(path).await,
                    None => self.uas.reject(Instant::now(), 480, None),
                }
                if self.closed_prompt.is_none() && self.uas.ended().is_none() {
                    self.uas.reject(Instant::now(), 480, None);
                }
            }
            CallPlan::Open(plan) => {
                info!(plan = %plan.name, "dialplan");
                self.plan_name = plan.name.clone();
                self.agent = agent_for(
                    &self.ctx.agent,
                    &plan,
                    &inc.caller,
                    &inc.callee,
                    chrono::Utc::now(),
                );
                self.silence = plan.limits.silence;
                let plan_max = plan.limits.max_call;
                if self.max_call.is_zero() || (!plan_max.is_zero() && plan_max < self.max_call) {
                    self.max_call = plan_max;
                }
                self.uas.ring(now);
                self.flush_sip();
                if let Some(path) = plan.fallback.play.clone() {
                    if let Some(pcm) = load_prompt(path).await {
                        self.fallback = pcm;
                    }
                }
            }
        }
        self.flush_sip();
        if let (true, Some(endpoint)) = (use_model, self.ctx.model.clone()) {
            // Open the model session in parallel with ringing: the caller must not wait for it.
            self.connect_model(endpoint);
        }
        // Answer at once, or after the configured ringing time (CANCEL may arrive meanwhile).
        if self.uas.ended().is_none() {
            self.answer_at = Some(now + self.ctx.media.answer_delay.0);
        }

        let mut buf = vec![0u8; 2048];
        loop {
            if self.uas.is_terminated() {
                break;
            }
            let mut rtp_rx_at: Option<Instant> = None;
            let deadline = self.next_deadline();
            let socket = self.socket.clone();
            tokio::select! {
                input = rx.recv() => match input {
                    Some(CallInput::Sip(msg)) => self.uas.handle_message(Instant::now(), msg),
                    Some(CallInput::Hangup { reason, code }) => {
                        info!(reason, "hanging up on request");
                        self.end.get_or_insert(reason);
                        self.answer_at = None;
                        if self.answered.is_some() {
                            self.uas.hangup(Instant::now());
                        } else {
                            self.uas.reject(Instant::now(), code, Some(5));
                        }
                    }
                    None => break,
                },
                Some(done) = recv_tool(&mut self.tools_rx) => self.on_tool_done(done),
                res = recv_connect(&mut self.connecting) => {
                    self.connecting = None;
                    self.on_connected(res);
                }
                ev = recv_model(&mut self.model_rx) => {
                    let now = Instant::now();
                    let playing = self.media.as_ref().is_some_and(|m| m.is_playing());
                    match &ev {
                        Some(ModelInput::Event(ServerEvent::OutputAudioDelta(_))) => {
                            self.model_rx_at = Some(now)
                        }
                        Some(ModelInput::Event(ServerEvent::SpeechStarted(_))) if playing => {
                            self.speech_at = Some(now)
                        }
                        _ => {}
                    }
                    match ev {
                        Some(ModelInput::Event(e)) => {
                            if let Some(b) = &mut self.bridge {
                                b.on_model_event(now, e, playing);
                            }
                        }
                        Some(ModelInput::Closed(reason)) => {
                            self.model_rx = None;
                            self.model_dropped(format!("model connection closed: {reason:?}"));
                        }
                        None => {
                            self.model_rx = None;
                            self.model_dropped("model connection closed".into());
                        }
                    }
                }
                res = recv_rtp(socket.as_deref(), &mut buf) => {
                    if let Ok((n, src)) = res {
                        if let Some(m) = &mut self.media {
                            let now = Instant::now();
                            m.on_rtp(now, src, &buf[..n]);
                            rtp_rx_at = Some(now);
                        }
                    }
                }
                _ = sleep_until(deadline) => self.on_timeout(Instant::now()),
            }
            if let Some(at) = self.answer_at {
                let now = Instant::now();
                if self.uas.ended().is_some() {
                    self.answer_at = None;
                } else if now >= at {
                    self.answer_at = None;
                    self.flush_sip();
                    self.setup_media(now).await;
                }
            }
            self.start_bridge();
            self.flush_media();
            let appended = self.flush_bridge();
            self.poll_after_speech(Instant::now());
            self.note_activity(Instant::now());
            if let (true, Some(t)) = (appended > 0, rtp_rx_at) {
                self.latency.rtp_to_model.record(t.elapsed());
            }
            // A talk-spurt that may start now goes out now, not after a timer round trip
            // (tokio's timer has 1 ms granularity).
            if let Some(m) = &mut self.media {
                let now = Instant::now();
                if m.poll_timeout().is_some_and(|t| t <= now) {
                    m.handle_timeout(now);
                }
            }
            self.flush_media();
            self.flush_sip();
        }
        debug!("call task done");
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t = min_opt(self.uas.poll_timeout(), self.answer_at);
        if let Some(b) = &self.bridge {
            t = min_opt(t, b.poll_timeout());
        }
        t = min_opt(t, self.actions_deadline());
        t = min_opt(t, self.silence_deadline());
        if let Some(m) = &self.media {
            t = min_opt(t, m.poll_timeout());
            if self.answered.is_some() && self.uas.ended().is_none() {
                t = min_opt(t, Some(m.last_rx() + self.ctx.rtp_timeout));
                if !self.max_call.is_zero() {
                    t = min_opt(t, Some(self.started + self.max_call));
                }
            }
        }
        t
    }

    fn on_timeout(&mut self, now: Instant) {
        self.uas.handle_timeout(now);
        self.actions_timeout(now);
        self.silence_timeout(now);
        if let Some(b) = &mut self.bridge {
            b.handle_timeout(now);
        }
        if let Some(m) = &mut self.media {
            m.handle_timeout(now);
            if self.uas.ended().is_none() && self.answered.is_some() {
                if now >= m.last_rx() + self.ctx.rtp_timeout && !m.on_hold() {
                    info!("no RTP for {:?}: hanging up", self.ctx.rtp_timeout);
                    self.end.get_or_insert_with(|| "rtp_timeout".into());
                    self.uas.hangup(now);
                } else if !self.max_call.is_zero() && now >= self.started + self.max_call {
                    info!("maximum call duration reached: hanging up");
                    self.end.get_or_insert_with(|| "max_duration".into());
                    self.uas.hangup(now);
                }
            }
        }
    }

    fn flush_sip(&mut self) {
        while let Some(out) = self.uas.poll_output() {
            match out {
                Output::Send(msg, peer) => {
                    self.transport
                        .send(&peer, Bytes::from(msg.to_string().into_bytes()));
                }
                Output::Event(ev) => self.on_session_event(ev),
            }
        }
    }

    fn flush_media(&mut self) {
        let Some(m) = &mut self.media else {
            return;
        };
        let mut events = Vec::new();
        while let Some(ev) = m.poll_event() {
            events.push(ev);
        }
        if let Some(sock) = &self.socket {
            while let Some((pkt, to)) = m.poll_transmit() {
                // Never await on the media path: a full socket buffer drops the packet.
                if sock.try_send_to(&pkt, to).is_err() {
                    m.count_send_drop();
                }
                if let Some(t) = self.delta_at.take() {
                    self.latency.delta_to_rtp.record(t.elapsed());
                    if !self.first_audio_reported {
                        self.first_audio_reported = true;
                        if let Some(answered) = self.answered {
                            crate::ops::metrics::first_agent_audio(answered.elapsed());
                        }
                    }
                }
            }
        }
        for ev in events {
            self.on_media_event(ev);
        }
    }

    fn on_media_event(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::Digit(d) => {
                info!(digit = %d, "DTMF");
                self.digits.push(d);
                self.event(kind::DTMF, serde_json::json!({ "digit": d.to_string() }));
                self.on_key(d);
            }
            MediaEvent::CallerAudio(frame) => {
                if let Some(b) = &mut self.bridge {
                    b.on_caller_frame(Instant::now(), &frame);
                }
            }
            MediaEvent::PromptDone => self.on_prompt_done(),
        }
    }

    /// Logs the call summary and releases the media (port back to the pool).
    fn finish(&mut self, cause: EndCause) {
        if let Some(t) = self.transfer.take() {
            // After a 202 the PBX ends our leg itself once the caller is connected.
            if t.accepted && cause == EndCause::RemoteBye {
                self.end = Some("transferred".into());
                self.transfer_target = Some(t.target);
            }
        }
        let reason = self.end.clone().unwrap_or_else(|| match cause {
            EndCause::RemoteBye => "caller_hangup".into(),
            EndCause::LocalBye => "agent_hangup".into(),
            EndCause::Cancelled => "cancelled".into(),
            EndCause::Rejected(code) => format!("rejected_{code}"),
            EndCause::NoAck => "no_ack".into(),
        });
        let stats = self.media.as_ref().map(|m| m.stats()).unwrap_or_default();
        let b = self.bridge.as_ref().map(|b| b.stats()).unwrap_or_default();
        info!(
            event = "call_end",
            end_reason = %reason,
            duration_ms = self.started.elapsed().as_millis() as u64,
            codec = %stats.codec,
            rtp_in = stats.rtp_in,
            rtp_out = stats.rtp_out,
            rtp_lost = stats.lost,
            rtp_late = stats.late,
            rtp_ignored = stats.ignored,
            rtp_echoed = stats.echoed,
            playout_resyncs = stats.resyncs,
            playout_dropped = stats.playout_dropped,
            digits = %self.digits,
            model_appends = b.appends,
            model_audio_in_ms = b.audio_in_ms,
            model_speech_started = b.speech_started,
            model_commits = b.commits,
            model_responses = b.responses,
            agent_frames = b.frames_out,
            barge_ins = b.barge_ins,
            barge_ins_rejected = b.barge_ins_rejected,
            truncates = b.truncates,
            input_tokens = b.input_tokens,
            output_tokens = b.output_tokens,
            lat_rtp_to_model_p50_us = pct(&self.latency.rtp_to_model, 50.0),
            lat_rtp_to_model_p99_us = pct(&self.latency.rtp_to_model, 99.0),
            lat_delta_to_rtp_p50_us = pct(&self.latency.delta_to_rtp, 50.0),
            lat_delta_to_rtp_p99_us = pct(&self.latency.delta_to_rtp, 99.0),
            lat_barge_in_p50_us = pct(&self.latency.barge_in, 50.0),
            lat_barge_in_p99_us = pct(&self.latency.barge_in, 99.0),
            "call ended"
        );
        crate::ops::metrics::call_ended(&crate::ops::metrics::CallEndMetrics {
            sip_call_id: &self.uas.incoming().sip_call_id,
            dialplan: &self.plan_name,
            end_reason: &reason,
            duration: self.started.elapsed(),
            rtp_in: stats.rtp_in,
            rtp_out: stats.rtp_out,
            rtp_lost: stats.lost,
            rtp_late: stats.late,
            jitter: (stats.rtp_in > 1).then(|| Duration::from_micros(stats.jitter_us)),
            playout_underruns: stats.underruns,
            barge_ins: b.barge_ins,
            barge_ins_rejected: b.barge_ins_rejected,
            model_errors: b.errors,
        });
        self.record_start("");
        let hangup_by = match cause {
            EndCause::RemoteBye | EndCause::Cancelled => Some("caller"),
            EndCause::LocalBye | EndCause::NoAck | EndCause::Rejected(_) => Some("voxgate"),
        };
        self.submit(Record::CallEnded {
            id: self.id,
            ended_at: chrono::Utc::now(),
            end_reason: reason.clone(),
            hangup_by: hangup_by.map(str::to_string),
            transfer_target: self.transfer_target.clone(),
            usage: serde_json::json!({
                "input_tokens": b.input_tokens,
                "output_tokens": b.output_tokens,
            }),
        });
        self.bridge = None;
        self.model_tx = None;
        self.model_rx = None;
        self.connecting = None;
        self.media = None;
        self.socket = None;
        self.lease = None;
    }
}
