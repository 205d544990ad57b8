//! The call's link to the model: the handshake result, starting the bridge once both the
//! session and the answer exist, moving the bridge's outputs to the model, the playout and the
//! log, and the fallback when the model fails.

use std::time::Instant;

use tracing::{debug, info, warn, Instrument};

use crate::model::client::{self as model_client, ModelSession};
use crate::model::protocol::ClientEvent;
use crate::store::kind;

use super::super::bridge::BridgeOutput;
use super::Call;

impl Call {
    /// The model handshake finished.
    pub(super) fn on_connected(
        &mut self,
        res: Option<Result<ModelSession, model_client::ModelError>>,
    ) {
        match res {
            Some(Ok(session)) => {
                info!("model session open");
                let (tx, rx) = session.into_parts();
                self.model_tx = Some(tx);
                self.model_rx = Some(rx);
            }
            Some(Err(e)) => {
                warn!("model connection failed: {e}");
                self.model_failure(&format!("model connection failed: {e}"));
            }
            None => self.model_failure("model connection task ended"),
        }
    }
    /// Sends `session.update` and the greeting once both the session and the answer exist.
    pub(super) fn start_bridge(&mut self) {
        if self.bridge_started || self.model_tx.is_none() || self.uas.ended().is_some() {
            return;
        }
        if let Some(b) = &mut self.bridge {
            let now = Instant::now();
            b.start(now);
            if self.reconnects > 0 {
                b.say(
                    now,
                    "The line dropped for a moment. Apologise in one short sentence and continue where the conversation left off.".into(),
                );
            }
            self.bridge_started = true;
        }
    }

    /// The model connection dropped: one reconnect per call, briefed with the conversation so
    /// far; a second drop (or a failed reconnect) is a model failure.
    pub(super) fn model_dropped(&mut self, reason: String) {
        let Some(endpoint) = self.ctx.model.clone() else {
            return;
        };
        let can_retry = self.reconnects == 0
            && self.answered.is_some()
            && self.end.is_none()
            && self.transfer.is_none()
            && self.uas.ended().is_none()
            && self.bridge.as_ref().is_some_and(|b| !b.is_failed());
        let Some(codec) = self.codec.filter(|_| can_retry) else {
            if let Some(b) = &mut self.bridge {
                b.on_closed(&reason);
            }
            return;
        };
        self.reconnects += 1;
        crate::ops::metrics::model_reconnect();
        warn!(reason, "model connection dropped: reconnecting once");
        self.event(
            kind::ERROR,
            serde_json::json!({ "model_dropped": reason, "reconnecting": true }),
        );
        let mut agent = self.agent.clone();
        agent.greeting = String::new();
        if !self.conversation.is_empty() {
            agent.instructions.push_str(
                "\n\nThe call was interrupted by a technical problem and is now resumed. The conversation so far:\n",
            );
            // The most recent turns, bounded so the instructions stay small.
            let mut lines: Vec<String> = self
                .conversation
                .iter()
                .rev()
                .take(40)
                .map(|(role, text)| format!("{role}: {text}"))
                .collect();
            lines.reverse();
            agent.instructions.push_str(&lines.join("\n"));
        }
        if let Some(m) = &mut self.media {
            m.barge_in();
        }
        self.model_tx = None;
        self.model_rx = None;
        self.bridge_started = false;
        self.bridge = match super::super::bridge::ModelBridge::new(agent, codec) {
            Ok(b) => Some(b),
            Err(e) => {
                self.model_failure(&format!("model bridge setup failed: {e}"));
                return;
            }
        };
        self.connect_model(endpoint);
    }

    /// Starts the model handshake in its own task; the result arrives on `self.connecting`.
    pub(super) fn connect_model(&mut self, endpoint: model_client::ModelEndpoint) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let limit = self.ctx.connect_timeout;
        tokio::spawn(
            async move {
                let _ = tx.send(model_client::connect(&endpoint, limit).await);
            }
            .in_current_span(),
        );
        self.connecting = Some(rx);
    }
    /// Moves the bridge's outputs to the model, the playout and the log; returns how many
    /// caller-audio appends were handed to the model connection.
    pub(super) fn flush_bridge(&mut self) -> usize {
        let Some(bridge) = &mut self.bridge else {
            return 0;
        };
        let mut appended = 0;
        let mut failed = None;
        let mut transcripts = Vec::new();
        let mut calls = Vec::new();
        while let Some(out) = bridge.poll_output() {
            match out {
                BridgeOutput::Model(ev) => {
                    if matches!(*ev, ClientEvent::InputAudioBufferAppend { .. }) {
                        appended += 1;
                    }
                    if let Some(tx) = &self.model_tx {
                        if let Err(e) = tx.send(*ev) {
                            debug!("model send failed: {e}");
                        }
                    }
                }
                BridgeOutput::Play(frame) => {
                    if let Some(m) = &mut self.media {
                        // The first frame of a response after silence: time it to the wire.
                        if !m.is_playing() && self.delta_at.is_none() {
                            self.delta_at = self.model_rx_at.take();
                        }
                        m.push_agent_frame(Instant::now(), frame);
                    }
                }
                BridgeOutput::ResponseStart => {
                    if let Some(m) = &mut self.media {
                        m.response_start();
                    }
                }
                BridgeOutput::BargeIn => {
                    let heard = self.media.as_mut().map(|m| m.barge_in()).unwrap_or(0);
                    if let Some(t) = self.speech_at.take() {
                        self.latency.barge_in.record(t.elapsed());
                    }
                    info!(heard_ms = heard, "barge-in: agent stopped");
                    bridge.truncate(heard);
                }
                BridgeOutput::Transcript { role, text } => transcripts.push((role, text)),
                BridgeOutput::ToolCall {
                    call_id,
                    name,
                    arguments,
                } => calls.push((call_id, name, arguments)),
                BridgeOutput::Failed(reason) => failed = Some(reason),
            }
        }
        let keep = self.store_transcripts();
        for (role, text) in transcripts {
            if self.conversation.len() < 400 {
                self.conversation.push((role, text.clone()));
            }
            if !keep {
                // The line's privacy switch: neither the call log nor the logs keep the words.
                info!(event = "transcript", role, "transcript (not stored)");
                continue;
            }
            info!(event = "transcript", role, text = %text, "transcript");
            self.event(
                kind::TRANSCRIPT,
                serde_json::json!({ "role": role, "text": text }),
            );
        }
        for (call_id, name, arguments) in calls {
            self.on_tool_call(call_id, name, arguments);
        }
        if let Some(reason) = failed {
            self.model_failure(&reason);
        }
        // Tool answers may have queued events (outputs, response.create): send them now.
        if let Some(bridge) = &mut self.bridge {
            while let Some(out) = bridge.poll_output() {
                if let BridgeOutput::Model(ev) = out {
                    if let Some(tx) = &self.model_tx {
                        if let Err(e) = tx.send(*ev) {
                            debug!("model send failed: {e}");
                        }
                    }
                }
            }
        }
        appended
    }
    /// The model is gone: the caller hears the fallback, then we hang up.
    pub(super) fn model_failure(&mut self, reason: &str) {
        if self.end.is_some() {
            return;
        }
        warn!(reason, "model failure: playing the fallback");
        self.end = Some("model_failure".into());
        self.event(kind::ERROR, serde_json::json!({ "model_failure": reason }));
        self.model_tx = None;
        self.model_rx = None;
        self.connecting = None;
        self.after_speech = None;
        // After the fallback prompt, the plan's fallback action (hang up, ticket, transfer).
        if let super::super::plan::CallPlan::Open(plan) = &self.plan {
            self.after_prompt = Some(Self::deferred_for(
                &plan.fallback,
                "the voice agent was unavailable",
            ));
        }
        if self.transfer.is_some() {
            // The transfer goes on without the model; its failure is handled without it.
            return;
        }
        // Not answered yet: the answer plays the fallback (see setup_media).
        if let Some(m) = &mut self.media {
            m.play_once(self.fallback.clone());
        }
    }
}
