//! A loaded, validated dialplan: the typed form the router and the call flow use.
//!
//! Everything here has been checked at load time: prompt files exist and are mono 16-bit PCM at
//! 8 kHz, transfer targets are SIP URIs, every enabled tool is defined, durations are within their
//! limits. Nothing in here touches a socket, the model protocol or the clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::hours::BusinessHours;
use super::pattern::Pattern;

/// Placeholders allowed in `agent.instructions` and `agent.greeting`.
pub const PLACEHOLDERS: [&str; 4] = ["caller", "callee", "date", "time"];

/// One line of business, loaded from one YAML file.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialplan {
    /// Unique name (letters, digits, `-`, `_`), used in logs and the call log.
    pub name: String,
    /// Free text for people reading the file.
    pub description: Option<String>,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// Which calls this plan answers.
    pub matching: MatchRules,
    /// Opening hours; `None` means always open.
    pub hours: Option<BusinessHours>,
    /// The voice agent.
    pub agent: Agent,
    /// Defaults for tickets (`create_ticket`, and the `ticket` action).
    pub tickets: TicketDefaults,
    /// The human hand-off target (`transfer_to_human`, and the `transfer` action).
    pub transfer: Option<Transfer>,
    /// Webhook tools defined by this plan, by tool name.
    pub webhooks: BTreeMap<String, Webhook>,
    /// DTMF key actions, by key (`0`–`9`, `*`, `#`, `A`–`D`).
    pub keys: BTreeMap<char, Action>,
    /// Call limits.
    pub limits: Limits,
    /// What happens when the model cannot be reached or fails mid-call (audible without it).
    pub fallback: Action,
    /// What the call log may keep.
    pub privacy: Privacy,
}

/// What the call log may keep of this line's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privacy {
    /// Store caller and agent transcripts (default true); false keeps only the call record.
    pub store_transcripts: bool,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            store_transcripts: true,
        }
    }
}

/// Which calls a plan answers. Numbers are stored normalised (see [`super::pattern`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatchRules {
    /// Exact called numbers (or SIP users such as `support`).
    pub numbers: Vec<String>,
    /// Called-number prefixes.
    pub prefixes: Vec<String>,
    /// Called-number patterns.
    pub patterns: Vec<Pattern>,
    /// If not empty, the caller must match one of these patterns.
    pub callers: Vec<Pattern>,
    /// If set, only calls from this source trunk (a name from the daemon config).
    pub trunk: Option<String>,
    /// Catch-all: answers calls no other plan matches.
    pub default: bool,
}

/// The voice agent's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// System instructions, with `{caller}`, `{callee}`, `{date}`, `{time}` placeholders.
    pub instructions: String,
    /// The first thing the agent says; same placeholders. `None`: the caller speaks first.
    pub greeting: Option<String>,
    /// Model voice (e.g. `marin`); `None` for the model's default.
    pub voice: Option<String>,
    /// Language tag (`en`, `de-DE`) for transcription and the agent's replies.
    pub language: Option<String>,
    /// How the model decides that the caller has finished speaking.
    pub turn_detection: TurnDetection,
    /// Model name overriding the daemon's configured model.
    pub model: Option<String>,
    /// Tools the agent may call, in the order written.
    pub tools: Vec<Tool>,
}

/// Turn detection, as the Realtime API names it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TurnDetection {
    /// Voice activity detection by silence; `None` fields use the model's defaults.
    ServerVad {
        /// Speech threshold 0.0–1.0 (higher: needs louder speech).
        threshold: Option<f32>,
        /// Silence that ends a turn.
        silence: Option<Duration>,
        /// Audio kept before detected speech.
        prefix_padding: Option<Duration>,
    },
    /// A model judges whether the caller has finished.
    SemanticVad {
        /// How quickly the agent answers.
        eagerness: Eagerness,
    },
}

impl Default for TurnDetection {
    fn default() -> Self {
        TurnDetection::ServerVad {
            threshold: None,
            silence: None,
            prefix_padding: None,
        }
    }
}

/// Semantic VAD eagerness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eagerness {
    /// Waits longer before answering.
    Low,
    /// In between.
    Medium,
    /// Answers quickly.
    High,
    /// The model's choice (the default).
    #[default]
    Auto,
}

/// A tool the agent may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// Files a ticket (settings: [`Dialplan::tickets`]).
    CreateTicket,
    /// Hands the call to a human (settings: [`Dialplan::transfer`]).
    TransferToHuman,
    /// Ends the call after the agent's goodbye.
    EndCall,
    /// A webhook defined in [`Dialplan::webhooks`], by name.
    Webhook(String),
}

impl Tool {
    /// Names of the built-in tools, as written in dialplans.
    pub const BUILT_IN: [&'static str; 3] = ["create_ticket", "transfer_to_human", "end_call"];

    /// The tool's name as the model sees it.
    pub fn name(&self) -> &str {
        match self {
            Tool::CreateTicket => "create_ticket",
            Tool::TransferToHuman => "transfer_to_human",
            Tool::EndCall => "end_call",
            Tool::Webhook(name) => name,
        }
    }
}

/// Ticket priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Low.
    Low,
    /// Normal (the default).
    #[default]
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

impl Priority {
    /// The spelling used in dialplans and the `tickets` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

/// Defaults for tickets created by this plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketDefaults {
    /// Category when the agent gives none (default `general`).
    pub category: String,
    /// Priority when the agent gives none.
    pub priority: Priority,
    /// An external ticketing system each new ticket is also POSTed to.
    pub webhook: Option<TicketWebhook>,
}

impl Default for TicketDefaults {
    fn default() -> Self {
        TicketDefaults {
            category: "general".into(),
            priority: Priority::Normal,
            webhook: None,
        }
    }
}

/// Where tickets are forwarded: a JSON POST, signed, retried with backoff, idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketWebhook {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra request headers, sent as written.
    pub headers: BTreeMap<String, String>,
    /// Environment variable holding the HMAC-SHA256 signing secret (never the secret itself).
    pub secret_env: Option<String>,
    /// Limit per attempt (default 5 s).
    pub timeout: Duration,
    /// Further attempts after a failed one (default 3), with doubling backoff.
    pub retries: u32,
    /// Field of the JSON answer holding the external ticket reference (default `id`).
    pub ref_field: String,
}

/// Where humans answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// SIP URI for REFER (`sip:` or `sips:`).
    pub to: String,
    /// What the agent says before handing over; `None` for a default line chosen by the call flow.
    pub announcement: Option<String>,
    /// SIP header carrying the call's ticket reference in the REFER (default `X-Voxgate-Ticket`).
    pub ticket_header: String,
    /// SIP header carrying the one-line reason in the REFER (default `X-Voxgate-Reason`).
    pub reason_header: String,
    /// How long to wait for the transfer to complete (REFER answer and final NOTIFY).
    pub timeout: Duration,
}

impl Transfer {
    /// A transfer to `to` with the default headers and timeout.
    pub fn to(to: impl Into<String>) -> Transfer {
        Transfer {
            to: to.into(),
            announcement: None,
            ticket_header: "X-Voxgate-Ticket".into(),
            reason_header: "X-Voxgate-Reason".into(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// HTTP method of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// GET: arguments go in the query string.
    Get,
    /// POST: arguments are the JSON body (the default).
    #[default]
    Post,
    /// PUT with a JSON body.
    Put,
    /// PATCH with a JSON body.
    Patch,
}

/// A tool backed by an HTTP endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// What the tool does, for the model.
    pub description: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// HTTP method.
    pub method: Method,
    /// Request timeout (default 5 s, at most 30 s).
    pub timeout: Duration,
    /// Extra request headers, sent as written.
    pub headers: BTreeMap<String, String>,
    /// JSON Schema (an object schema) of the arguments the model must supply.
    pub parameters: serde_json::Value,
    /// Environment variable holding an HMAC-SHA256 signing secret, if requests are signed.
    pub secret_env: Option<String>,
}

/// What to do next after a prompt, without the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// End the call.
    Hangup,
    /// File a callback ticket with the caller's number (category/priority from
    /// [`Dialplan::tickets`]), then end the call: a voicemail without the recording.
    Ticket,
    /// Transfer to [`Action::to`] or else the plan's transfer target.
    Transfer,
}

/// An action that needs no model: play an optional prompt, then hang up, ticket or transfer.
/// Used for closed hours, the model fallback, and DTMF keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// A checked WAV prompt (absolute or relative to the working directory).
    pub play: Option<PathBuf>,
    /// What happens after the prompt.
    pub then: Then,
    /// Transfer target for `then: transfer` (already resolved from the plan's `transfer.to`).
    pub to: Option<String>,
}

/// Call limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest call (default 30 min; at most 60 min, the model's session limit).
    pub max_call: Duration,
    /// Caller silence that ends the call (default 30 s).
    pub silence: Duration,
    /// Most tool calls in one call (default 20).
    pub max_tool_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_call: Duration::from_secs(30 * 60),
            silence: Duration::from_secs(30),
            max_tool_calls: 20,
        }
    }
}

impl Dialplan {
    /// The timezone for `{date}`/`{time}`: the hours' timezone, or UTC without hours.
    pub fn timezone(&self) -> Tz {
        self.hours.as_ref().map_or(Tz::UTC, |h| h.timezone)
    }

    /// True if the plan is open at `now` (always, without hours).
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.hours.as_ref().is_none_or(|h| h.is_open(now))
    }

    /// The instructions with placeholders filled in.
    pub fn render_instructions(&self, caller: &str, callee: &str, now: DateTime<Utc>) -> String {
        render(
            &self.agent.instructions,
            caller,
            callee,
            now.with_timezone(&self.timezone()),
        )
    }

    /// The greeting with placeholders filled in, if there is one.
    pub fn render_greeting(
        &self,
        caller: &str,
        callee: &str,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let local = now.with_timezone(&self.timezone());
        self.agent
            .greeting
            .as_ref()
            .map(|g| render(g, caller, callee, local))
    }
}

/// Fill `{caller}`, `{callee}`, `{date}` (`Monday 2026-03-30`), `{time}` (`14:05 CEST`).
/// `{{` and `}}` give literal braces; anything else is left as written.
pub fn render(template: &str, caller: &str, callee: &str, now: DateTime<Tz>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with("{{") || rest.starts_with("}}") {
            out.push_str(&rest[..1]);
            rest = &rest[2..];
            continue;
        }
        let name = rest[1..].find('}').map(|end| (&rest[1..=end], end));
        let value = match name {
            Some(("caller", _)) => Some(caller.to_string()),
            Some(("callee", _)) => Some(callee.to_string()),
            Some(("date", _)) => Some(now.format("%A %Y-%m-%d").to_string()),
            Some(("time", _)) => Some(now.format("%H:%M %Z").to_string()),
            _ => None,
        };
        match (value, name) {
            (Some(v), Some((_, end))) => {
                out.push_str(&v);
                rest = &rest[end + 2..];
            }
            _ => {
                out.push_str(&rest[..1]);
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Placeholder names used in a template (`{name}` with a lowercase identifier), in order, with
/// their text (`{calller}`), for validation. `{{`/`}}` escapes are skipped.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'{' => {
                let len = template[i + 1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
                    .count();
                if len > 0 && bytes.get(i + 1 + len) == Some(&b'}') {
                    found.push(&template[i + 1..i + 1 + len]);
                }
                i += 1 + len;
            }
            _ => i += 1,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn renders_placeholders() {
        let now = chrono_tz::Europe::Berlin
            .with_ymd_and_hms(2026, 3, 30, 14, 5, 0)
            .single()
            .expect("valid time");
        let got = render(
            "From {caller} to {callee} on {date} at {time}; {{literal}} {unknown}",
            "+4930",
            "100",
            now,
        );
        assert_eq!(
            got,
            "From +4930 to 100 on Monday 2026-03-30 at 14:05 CEST; {literal} {unknown}"
        );
    }

    #[test]
    fn finds_placeholders() {
        assert_eq!(
            placeholders("{caller} {{date}} {Caller} {x_y} {oops"),
            vec!["caller", "x_y"]
        );
    }
}
