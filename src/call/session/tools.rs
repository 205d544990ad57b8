//! The call's actions: function calls from the model, DTMF key actions, and what follows a
//! prompt (closed hours, the model fallback). Tools that only compute (tickets, webhooks) run
//! in their own tasks and report back on the call's tool channel; call control (transfer, end
//! call) is carried out here because this task owns the dialog and the playout.
//!
//! Transfer: the agent speaks the hand-off line, playout drains, then REFER. A 2xx NOTIFY (or
//! the caller's BYE after 202) ends the call as `transferred`. A refused or failed transfer is
//! explained to the caller by the agent when the model is alive; without it, a call-back
//! ticket is filed (the caller is not lost), the fallback prompt plays and the call ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::{info, warn, Instrument};

use crate::dialplan::{Action, Dialplan, Then};
use crate::store::{kind, Record};
use crate::tools::{self, ticket, Invocation};

use super::super::plan::CallPlan;
use super::Call;

/// How long the agent may take to finish speaking before a deferred action runs anyway.
const SPEECH_LIMIT: Duration = Duration::from_secs(20);

/// The default hand-off line when the dialplan has none.
const HANDOFF: &str = "I'm transferring you to a colleague now. Please hold.";

/// A result from a tool task.
#[derive(Debug)]
pub struct ToolDone {
    /// The function call answered.
    pub call_id: String,
    /// Tool name.
    pub name: String,
    /// Output for the model (JSON text).
    pub output: String,
    /// Success or failure, for the call log.
    pub ok: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// Something to do once the agent stops talking, or a prompt ends.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Deferred {
    /// BYE.
    Hangup,
    /// REFER to `target`.
    Refer {
        /// SIP URI.
        target: String,
        /// One line for the human.
        reason: String,
    },
    /// File a call-back ticket, then BYE.
    Ticket {
        /// Why the caller needs a call-back.
        summary: String,
    },
}

/// A deferred action waiting for the agent's speech to end.
#[derive(Debug)]
pub(super) struct AfterSpeech {
    pub action: Deferred,
    pub deadline: Instant,
}

/// A REFER in progress.
#[derive(Debug)]
pub(super) struct TransferState {
    pub target: String,
    pub deadline: Instant,
    /// The PBX answered 202.
    pub accepted: bool,
}

impl Call {
    fn open_plan(&self) -> Option<Arc<Dialplan>> {
        match &self.plan {
            CallPlan::Open(p) | CallPlan::Closed { plan: p, .. } => Some(p.clone()),
            CallPlan::Reject(_) => None,
        }
    }

    /// The model called a function.
    pub(super) fn on_tool_call(&mut self, call_id: String, name: String, arguments: String) {
        let now = Instant::now();
        let args_json = serde_json::from_str::<serde_json::Value>(&arguments)
            .unwrap_or_else(|_| json!(arguments));
        info!(tool = %name, call_id = %call_id, "tool call");
        self.event(
            kind::TOOL_CALL,
            json!({ "call_id": call_id, "name": name, "arguments": args_json }),
        );
        let Some(plan) = self.open_plan() else {
            return self.tool_failed(now, &call_id, &name, "no tools on this line");
        };
        if self.tool_calls >= plan.limits.max_tool_calls {
            return self.tool_failed(
                now,
                &call_id,
                &name,
                "the tool call limit for this call is reached; help the caller without tools or transfer them",
            );
        }
        self.tool_calls += 1;
        let invocation = match tools::parse_call(&plan, &name, &arguments) {
            Ok(i) => i,
            Err(e) => return self.tool_failed(now, &call_id, &name, &e),
        };
        match invocation {
            Invocation::CreateTicket(args) => {
                let key = format!("{}/{call_id}", self.id.0);
                let caller = self.uas.incoming().caller.clone();
                let t = ticket::new_ticket(&plan.tickets, args, self.id, &caller, key);
                let reference = self.file_ticket(&plan, t);
                let output = json!({
                    "ok": true,
                    "ticket_reference": reference,
                    "note": "Read the reference to the caller, one character at a time."
                })
                .to_string();
                self.tool_answered(now, &call_id, &name, output, true, Duration::ZERO, false);
            }
            Invocation::Webhook { name, args } => {
                let key = format!("{}/{call_id}", self.id.0);
                match tools::webhook_request(&plan, &name, args, key) {
                    Ok(req) => {
                        let client = self.ctx.http.clone();
                        let tx = self.tools_tx.clone();
                        let started = Instant::now();
                        tokio::spawn(
                            async move {
                                let (output, ok) = match tools::http::send(&client, &req).await {
                                    Ok(reply) => {
                                        (tools::webhook_output(&reply), reply.is_success())
                                    }
                                    Err(e) => (tools::error_output(&e.to_string()), false),
                                };
                                let _ = tx
                                    .send(ToolDone {
                                        call_id,
                                        name,
                                        output,
                                        ok,
                                        elapsed: started.elapsed(),
                                    })
                                    .await;
                            }
                            .in_current_span(),
                        );
                    }
                    Err(e) => self.tool_failed(now, &call_id, &name, &e),
                }
            }
            Invocation::EndCall { reason } => {
                info!(reason = ?reason, "the agent ends the call");
                let spoke = self.bridge.as_ref().is_some_and(|b| b.response_spoke());
                let respond =
                    (!spoke).then(|| Some("Say a brief, friendly goodbye to the caller.".into()));
                self.tool_answered(
                    now,
                    &call_id,
                    &name,
                    json!({ "ok": true }).to_string(),
                    false,
                    Duration::ZERO,
                    false,
                );
                if let (Some(r), Some(b)) = (respond, &mut self.bridge) {
                    b.say(now, r.unwrap_or_default());
                }
                self.after_speech = Some(AfterSpeech {
                    action: Deferred::Hangup,
                    deadline: now + SPEECH_LIMIT,
                });
            }
            Invocation::Transfer { reason } => {
                let Some(t) = plan.transfer.clone() else {
                    return self.tool_failed(
                        now,
                        &call_id,
                        &name,
                        "this line has no transfer target; offer to file a ticket instead",
                    );
                };
                let line = t.announcement.clone().unwrap_or_else(|| HANDOFF.into());
                self.tool_answered(
                    now,
                    &call_id,
                    &name,
                    json!({ "ok": true, "status": "transferring" }).to_string(),
                    false,
                    Duration::ZERO,
                    false,
                );
                if let Some(b) = &mut self.bridge {
                    b.say(
                        now,
                        format!("Say exactly this to the caller, and nothing else: \"{line}\""),
                    );
                    b.mute(true);
                }
                self.after_speech = Some(AfterSpeech {
                    action: Deferred::Refer {
                        target: t.to,
                        reason: reason.unwrap_or_else(|| "the caller asked for a person".into()),
                    },
                    deadline: now + SPEECH_LIMIT,
                });
            }
        }
    }

    /// Stores a ticket now and forwards it in the background; returns its reference.
    fn file_ticket(&mut self, plan: &Dialplan, t: crate::store::NewTicket) -> String {
        let (id, record) = t.into_record();
        info!(ticket = %id.reference, "ticket filed");
        self.ticket_ref = Some(id.reference.clone());
        self.submit(record.clone());
        if let (Some(hook), Record::Ticket(rec)) = (plan.tickets.webhook.clone(), record) {
            let client = self.ctx.http.clone();
            let store = self.ctx.store.clone();
            tokio::spawn(
                async move {
                    match ticket::forward(&client, &hook, &rec).await {
                        Ok(external) => {
                            info!(ticket = %rec.reference, external = ?external, "ticket forwarded");
                            if external.is_some() {
                                let mut rec = rec;
                                rec.external_ref = external;
                                if let Err(e) = store.submit(Record::Ticket(rec)) {
                                    warn!("call log: {e}");
                                }
                            }
                        }
                        Err(e) => warn!(ticket = %rec.reference, "ticket forwarding failed: {e}"),
                    }
                }
                .in_current_span(),
            );
        }
        id.reference
    }

    /// A tool task finished.
    pub(super) fn on_tool_done(&mut self, done: ToolDone) {
        let now = Instant::now();
        self.tool_answered(
            now,
            &done.call_id,
            &done.name,
            done.output,
            true,
            done.elapsed,
            false,
        );
        if !done.ok {
            info!(tool = %done.name, "tool failed");
        }
    }

    fn tool_failed(&mut self, now: Instant, call_id: &str, name: &str, error: &str) {
        warn!(tool = %name, error, "tool call refused");
        self.tool_answered(
            now,
            call_id,
            name,
            tools::error_output(error),
            true,
            Duration::ZERO,
            true,
        );
    }

    /// Records the result and hands it to the model (asking it to go on when `respond`).
    #[allow(clippy::too_many_arguments)]
    fn tool_answered(
        &mut self,
        now: Instant,
        call_id: &str,
        name: &str,
        output: String,
        respond: bool,
        elapsed: Duration,
        invalid: bool,
    ) {
        let value = serde_json::from_str::<serde_json::Value>(&output).unwrap_or(json!(output));
        let ok = value
            .get("ok")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let outcome = match (ok, invalid) {
            (true, _) => "ok",
            (false, true) => "invalid",
            (false, false) if output.contains("no answer within") => "timeout",
            (false, false) => "error",
        };
        crate::ops::metrics::tool_call(name, outcome, elapsed);
        self.event(
            kind::TOOL_RESULT,
            json!({ "call_id": call_id, "name": name, "ok": ok, "output": value,
                    "ms": elapsed.as_millis() as u64 }),
        );
        if let Some(b) = &mut self.bridge {
            b.tool_output(now, call_id, output, respond.then_some(None));
        }
    }

    /// Runs a deferred action whose time has come (agent done talking, or its deadline).
    pub(super) fn poll_after_speech(&mut self, now: Instant) {
        let Some(a) = &self.after_speech else {
            return;
        };
        let busy = self
            .bridge
            .as_ref()
            .is_some_and(|b| b.is_busy() && !b.is_failed());
        let playing = self.media.as_ref().is_some_and(|m| m.is_playing());
        if (busy || playing) && now < a.deadline {
            return;
        }
        if let Some(a) = self.after_speech.take() {
            self.run_deferred(now, a.action);
        }
    }

    /// Moves the silence clock: the caller spoke, or the agent, a tool or a transfer is busy.
    pub(super) fn note_activity(&mut self, now: Instant) {
        let busy = self.bridge.as_ref().is_some_and(|b| b.is_busy())
            || self.media.as_ref().is_some_and(|m| m.is_playing())
            || self.transfer.is_some()
            || self.after_speech.is_some();
        if busy {
            self.activity_at = now;
        }
        if let Some(v) = self.bridge.as_ref().and_then(|b| b.last_voice()) {
            self.activity_at = self.activity_at.max(v);
        }
    }

    /// When the caller has been silent too long (model calls with a silence limit only).
    pub(super) fn silence_deadline(&self) -> Option<Instant> {
        let live = self.answered.is_some()
            && self.end.is_none()
            && self.uas.ended().is_none()
            && self.bridge.is_some();
        (live && !self.silence.is_zero()).then(|| self.activity_at + self.silence)
    }

    /// Ends a call whose caller has gone quiet: the agent says goodbye, then BYE.
    pub(super) fn silence_timeout(&mut self, now: Instant) {
        if self.silence_deadline().is_none_or(|t| now < t) {
            return;
        }
        info!(silence = ?self.silence, "the caller has been silent: ending the call");
        self.end = Some("silence".into());
        match &mut self.bridge {
            Some(b) if !b.is_failed() => {
                b.mute(true);
                b.say(
                    now,
                    "The caller has been silent for a long time. Say you will end the call now, and a brief goodbye.".into(),
                );
                self.after_speech = Some(AfterSpeech {
                    action: Deferred::Hangup,
                    deadline: now + SPEECH_LIMIT,
                });
            }
            _ => self.uas.hangup(now),
        }
    }

    /// The deadline of a deferred action or a transfer, for the call's timer.
    pub(super) fn actions_deadline(&self) -> Option<Instant> {
        let a = self.after_speech.as_ref().map(|a| a.deadline);
        let t = self.transfer.as_ref().map(|t| t.deadline);
        super::io::min_opt(a, t)
    }

    /// Checks the transfer's deadline.
    pub(super) fn actions_timeout(&mut self, now: Instant) {
        if self.transfer.as_ref().is_some_and(|t| now >= t.deadline) {
            self.transfer_failed(now, "the PBX did not complete the transfer in time");
        }
    }

    pub(super) fn run_deferred(&mut self, now: Instant, action: Deferred) {
        if self.uas.ended().is_some() {
            return;
        }
        match action {
            Deferred::Hangup => {
                info!("hanging up");
                self.end.get_or_insert_with(|| "agent_hangup".into());
                self.uas.hangup(now);
            }
            Deferred::Ticket { summary } => {
                if let Some(plan) = self.open_plan() {
                    self.callback_ticket(&plan, &summary);
                }
                self.end.get_or_insert_with(|| "callback_ticket".into());
                self.uas.hangup(now);
            }
            Deferred::Refer { target, reason } => self.start_transfer(now, target, reason),
        }
    }

    /// A call-back ticket for this caller (no model needed).
    fn callback_ticket(&mut self, plan: &Dialplan, summary: &str) {
        let inc = self.uas.incoming().clone();
        let args = tools::TicketArgs {
            summary: summary.to_string(),
            details: Some(format!(
                "Please call back {}. They called {} at {}.",
                inc.caller,
                inc.callee,
                self.started_utc.to_rfc3339()
            )),
            category: None,
            priority: None,
        };
        let key = format!("{}/callback", self.id.0);
        let t = ticket::new_ticket(&plan.tickets, args, self.id, &inc.caller, key);
        self.file_ticket(plan, t);
    }

    fn start_transfer(&mut self, now: Instant, target: String, reason: String) {
        let plan = self.open_plan();
        let t = plan.as_ref().and_then(|p| p.transfer.clone());
        let (ticket_h, reason_h, timeout) = match &t {
            Some(t) => (t.ticket_header.clone(), t.reason_header.clone(), t.timeout),
            None => {
                let d = crate::dialplan::Transfer::to("");
                (d.ticket_header, d.reason_header, d.timeout)
            }
        };
        let mut headers = vec![(reason_h, reason.clone())];
        if let Some(r) = &self.ticket_ref {
            headers.push((ticket_h, r.clone()));
        }
        info!(target = %target, "transferring: REFER");
        self.event(
            kind::TRANSFER,
            json!({ "status": "refer_sent", "target": target, "reason": reason,
                    "ticket": self.ticket_ref }),
        );
        if let Some(b) = &mut self.bridge {
            b.mute(true);
        }
        if self.uas.refer(now, &target, &headers) {
            self.transfer = Some(TransferState {
                target,
                deadline: now + timeout,
                accepted: false,
            });
        } else {
            self.transfer = Some(TransferState {
                target,
                deadline: now,
                accepted: false,
            });
            self.transfer_failed(now, "the call cannot be transferred in its current state");
        }
    }

    /// The answer to our REFER.
    pub(super) fn on_refer_answered(&mut self, code: u16) {
        let now = Instant::now();
        if (200..300).contains(&code) {
            info!(code, "REFER accepted");
            if let Some(t) = &mut self.transfer {
                t.accepted = true;
            }
            self.event(
                kind::TRANSFER,
                json!({ "status": "accepted", "code": code }),
            );
        } else {
            self.transfer_failed(now, &format!("the PBX refused the transfer ({code})"));
        }
    }

    /// A NOTIFY about the transfer.
    pub(super) fn on_transfer_progress(&mut self, code: u16) {
        let now = Instant::now();
        if self.transfer.is_none() {
            return;
        }
        match code {
            100..=199 => self.event(kind::TRANSFER, json!({ "status": "trying", "code": code })),
            200..=299 => {
                let target = self.transfer.take().map(|t| t.target);
                info!(code, "transfer completed: hanging up our leg");
                self.event(
                    kind::TRANSFER,
                    json!({ "status": "completed", "code": code }),
                );
                self.end = Some("transferred".into());
                self.transfer_target = target;
                self.uas.hangup(now);
            }
            _ => self.transfer_failed(now, &format!("the transfer target answered {code}")),
        }
    }

    /// The transfer did not happen: the agent tells the caller, or without a model a call-back
    /// ticket is filed and the fallback prompt plays before hanging up.
    pub(super) fn transfer_failed(&mut self, now: Instant, reason: &str) {
        if self.transfer.take().is_none() {
            return;
        }
        warn!(reason, "transfer failed");
        self.event(
            kind::TRANSFER,
            json!({ "status": "failed", "reason": reason }),
        );
        let model_alive = self.bridge.as_ref().is_some_and(|b| !b.is_failed())
            && self.model_tx.is_some()
            && self.end.as_deref() != Some("model_failure");
        if model_alive {
            if let Some(m) = &mut self.media {
                m.resume_model();
            }
            if let Some(b) = &mut self.bridge {
                b.mute(false);
                b.note(
                    now,
                    &format!("The transfer to a human failed: {reason}."),
                    Some("Tell the caller briefly that no colleague could be reached right now, and offer to file a ticket so someone calls them back.".into()),
                );
            }
            return;
        }
        let summary = "Call-back: transfer to a colleague failed".to_string();
        self.after_prompt = Some(Deferred::Ticket { summary });
        let fallback = self.fallback.clone();
        match &mut self.media {
            Some(m) => m.play_once(fallback),
            None => {
                if let Some(d) = self.after_prompt.take() {
                    self.run_deferred(now, d);
                }
            }
        }
    }

    /// The prompt of a closed-hours, fallback or key action finished.
    pub(super) fn on_prompt_done(&mut self) {
        let now = Instant::now();
        match self.after_prompt.take() {
            Some(d) => self.run_deferred(now, d),
            None => {
                if matches!(self.end.as_deref(), Some("model_failure" | "closed")) {
                    info!("prompt played: hanging up");
                    self.uas.hangup(now);
                }
            }
        }
    }

    /// What follows an action's prompt.
    pub(super) fn deferred_for(action: &Action, why: &str) -> Deferred {
        match action.then {
            Then::Hangup => Deferred::Hangup,
            Then::Ticket => Deferred::Ticket {
                summary: format!("Call-back requested: {why}"),
            },
            Then::Transfer => Deferred::Refer {
                target: action.to.clone().unwrap_or_default(),
                reason: why.to_string(),
            },
        }
    }

    /// A DTMF digit: runs the plan's key action, if the key has one.
    pub(super) fn on_key(&mut self, digit: char) {
        let Some(plan) = self.open_plan() else {
            return;
        };
        if !matches!(self.plan, CallPlan::Open(_)) || self.transfer.is_some() {
            return;
        }
        let Some(action) = plan.keys.get(&digit.to_ascii_uppercase()).cloned() else {
            return;
        };
        let now = Instant::now();
        info!(digit = %digit, then = ?action.then, "key action");
        // The agent stops talking and stops listening.
        if let Some(m) = &mut self.media {
            if m.is_playing() {
                let heard = m.barge_in();
                if let Some(b) = &mut self.bridge {
                    b.truncate(heard);
                }
            }
        }
        if let Some(b) = &mut self.bridge {
            b.mute(true);
        }
        self.after_speech = None;
        let deferred = Self::deferred_for(&action, &format!("the caller pressed {digit}"));
        let prompt =
            action
                .play
                .as_deref()
                .and_then(|p| match super::super::media::load_wav_8k(p) {
                    Ok(pcm) => Some(Arc::new(pcm)),
                    Err(e) => {
                        warn!("key prompt {}: {e:#}", p.display());
                        None
                    }
                });
        match (prompt, &mut self.media) {
            (Some(pcm), Some(m)) => {
                self.after_prompt = Some(deferred);
                m.play_once(pcm);
            }
            _ => self.run_deferred(now, deferred),
        }
    }
}
