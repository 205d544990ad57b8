//! What a call does, decided once by the dialplan router when the INVITE arrives: rejected
//! (no plan), closed (play the plan's closed-hours prompt, then hang up), or open (the agent the
//! plan describes). The call keeps the `Arc` of its plan, so a reload never changes a live call.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::dialplan::{self, Action, Dialplan};
use crate::model::protocol::{Eagerness, TurnDetection};

use super::bridge::{default_turn_detection, AgentSettings};

/// The router's decision for one call.
#[derive(Debug, Clone)]
pub enum CallPlan {
    /// Answer with this status (404: no plan claims the number).
    Reject(u16),
    /// Outside business hours: do what the plan says when closed.
    Closed {
        /// The matched plan.
        plan: Arc<Dialplan>,
        /// Its `when_closed` action.
        action: Action,
    },
    /// Put the plan's agent on the line.
    Open(Arc<Dialplan>),
}

/// The agent settings for `plan`, with placeholders rendered for this call; `base` supplies
/// what the plan leaves out (model name, transcription, timeouts, the default greeting).
pub fn agent_for(
    base: &AgentSettings,
    plan: &Dialplan,
    caller: &str,
    callee: &str,
    now: DateTime<Utc>,
) -> AgentSettings {
    let turn_detection = match &plan.agent.turn_detection {
        dialplan::TurnDetection::ServerVad {
            threshold,
            silence,
            prefix_padding,
        } => match default_turn_detection() {
            TurnDetection::ServerVad {
                create_response,
                interrupt_response,
                idle_timeout_ms,
                ..
            } => TurnDetection::ServerVad {
                threshold: *threshold,
                prefix_padding_ms: prefix_padding.map(|d| d.as_millis() as u32),
                silence_duration_ms: silence.map(|d| d.as_millis() as u32),
                create_response,
                interrupt_response,
                idle_timeout_ms,
            },
            other => other,
        },
        dialplan::TurnDetection::SemanticVad { eagerness } => TurnDetection::SemanticVad {
            eagerness: Some(match eagerness {
                dialplan::Eagerness::Low => Eagerness::Low,
                dialplan::Eagerness::Medium => Eagerness::Medium,
                dialplan::Eagerness::High => Eagerness::High,
                dialplan::Eagerness::Auto => Eagerness::Auto,
            }),
            create_response: Some(true),
            interrupt_response: Some(false),
        },
    };
    AgentSettings {
        model: plan
            .agent
            .model
            .clone()
            .unwrap_or_else(|| base.model.clone()),
        instructions: plan.render_instructions(caller, callee, now),
        greeting: plan
            .render_greeting(caller, callee, now)
            .unwrap_or_else(|| base.greeting.clone()),
        voice: plan
            .agent
            .voice
            .clone()
            .unwrap_or_else(|| base.voice.clone()),
        transcription_model: base.transcription_model.clone(),
        response_timeout: base.response_timeout,
        barge_in: base.barge_in,
        turn_detection,
        tools: crate::tools::definitions(plan)
            .into_iter()
            .map(|d| crate::model::protocol::Tool::function(d.name, d.description, d.parameters))
            .collect(),
    }
}
