//! Dialplans: one YAML file per line of business, written by business staff.
//!
//! This layer loads and checks dialplan files, routes calls to plans, evaluates business hours and
//! reloads the files when they change. It knows nothing of SIP, media or the model: the call flow
//! gives it numbers and a time, and gets back a [`Dialplan`] to act on.
//!
//! - [`check_paths`] checks files and folders and reports *every* problem at once, each as
//!   `file:line:col: message` ([`Problem`]); [`DialplanSet::load`] loads or fails with all of them.
//! - [`Router::route`] (sans-IO) picks the plan for a call: exact number > prefix > pattern >
//!   default, then business hours → [`RouteDecision`].
//! - [`spawn_reloader`] watches the folder (and SIGHUP) and publishes new sets on a watch channel,
//!   keeping the last good set when a change is invalid.
//! - [`json_schema`] is the JSON Schema of a dialplan file for editors.
//!
//! # A dialplan
//! ```yaml
//! # yaml-language-server: $schema=../dialplan.schema.json
//! name: acme-support                      # unique; letters, digits, - and _
//! description: ACME customer support line # optional
//! match:                                  # at least one of numbers/prefixes/patterns/default
//!   numbers: ["+15550100", "100"]         # exact called numbers (quote them)
//!   prefixes: ["+1555020"]                # longest prefix wins
//!   patterns: ["_1XX"]                    # Asterisk style: X 0-9, Z 1-9, N 2-9, [1-5], . and !
//!   callers: ["+1555."]                   # optional: only these callers
//!   trunk: carrier-a                      # optional: only calls from this trunk
//!   default: false                        # true: take calls no other plan matches
//! hours:                                  # optional; without it always open
//!   timezone: Europe/Berlin
//!   open: { mon-fri: "08:00-12:00,13:00-18:00", sat: "09:00-12:00" }
//!   holidays: ["2026-12-25", "01-01"]     # a date, or MM-DD every year
//!   when_closed: { play: prompts/closed.wav, then: ticket }   # hangup | ticket | transfer
//! agent:
//!   instructions: |                       # placeholders: {caller} {callee} {date} {time}
//!     You help ACME customers with orders and billing. Be brief. Today is {date}.
//!   greeting: "Thanks for calling ACME support. How can I help?"
//!   voice: marin
//!   language: en
//!   turn_detection: { type: semantic_vad, eagerness: auto }  # or server_vad with
//!                                         # threshold, silence: 500ms, prefix_padding: 300ms
//!   model: gpt-realtime                   # optional override of the daemon's model
//!   tools: [create_ticket, transfer_to_human, end_call, lookup_order]
//! tickets:
//!   category: support
//!   priority: normal                      # low | normal | high | urgent
//!   webhook:                              # optional: forward each ticket (signed, retried)
//!     url: https://helpdesk.example.com/api/tickets
//!     secret_env: ACME_HELPDESK_SECRET    # env var holding the HMAC secret
//!     timeout: 5s
//!     retries: 3
//!     ref_field: id                       # field of the answer holding the external id
//! transfer:
//!   to: "sip:support-queue@pbx.example.com"
//!   announcement: "I'm putting you through to a colleague now."
//!   headers: { ticket: X-Acme-Ticket, reason: X-Acme-Reason }   # context for the PBX
//!   timeout: 30s                          # give up (agent takes over) if not completed
//! webhooks:
//!   lookup_order:
//!     description: Look up an order's status by its order number.
//!     url: https://orders.example.com/api/lookup
//!     method: POST                        # GET | POST | PUT | PATCH
//!     timeout: 5s
//!     secret_env: ORDERS_SECRET           # optional: sign requests
//!     parameters:                         # JSON Schema of the arguments
//!       type: object
//!       properties: { order_number: { type: string, description: "e.g. A-12345" } }
//!       required: [order_number]
//! keys: { "0": transfer, "9": { play: prompts/goodbye.wav, then: hangup } }
//! limits: { max_call: 15m, silence: 30s, max_tool_calls: 20 }
//! fallback: { play: prompts/unavailable.wav, then: transfer }   # when the model is unavailable
//! ```
//! The rules behind each part are documented where they are implemented: numbers and patterns in
//! [`pattern`], precedence in [`router`], opening hours (overnight ranges, holidays, DST) in
//! [`hours`], prompts in [`prompt`].
//!
//! # Editor support
//! `voxgate schema > dialplan.schema.json` writes the schema. With the VS Code YAML extension
//! (Red Hat, yaml-language-server), either put this first line in each dialplan file:
//! ```yaml
//! # yaml-language-server: $schema=../dialplan.schema.json
//! ```
//! (the path is relative to the dialplan file), or map the schema to the folder once in
//! `.vscode/settings.json`:
//! ```json
//! { "yaml.schemas": { "./dialplan.schema.json": "dialplans/*.yaml" } }
//! ```
//! The editor then completes keys, shows the descriptions on hover and flags unknown keys.
//! `voxgate check` remains the authority: it also checks prompt files, timezones, overlapping
//! hours and numbers claimed by two plans.
//!
//! # Hot reload and calls in progress
//! A reload builds a whole new [`DialplanSet`] and swaps it in. A call routed earlier holds the
//! `Arc<Dialplan>` it got from [`RouteDecision`]; it keeps that plan until it ends, even if the
//! file changed or was deleted meanwhile. Only new calls see the new set.

mod ctx;
pub mod hours;
mod load;
mod parse;
pub mod pattern;
pub mod plan;
mod problem;
pub mod prompt;
mod reload;
pub mod router;
mod schema;
mod values;
mod webhook;
mod yaml;

pub use hours::{BusinessHours, Holiday, Range};
pub use load::{check_paths, DialplanSet};
pub use pattern::{normalize_number, Pattern};
pub use plan::{
    Action, Agent, Dialplan, Eagerness, Limits, MatchRules, Method, Priority, Then, TicketDefaults,
    TicketWebhook, Tool, Transfer, TurnDetection, Webhook,
};
pub use problem::{CheckReport, LoadError, Problem};
pub use reload::{spawn_reloader, ReloadHandle, ReloadStats};
pub use router::{CallFacts, RouteDecision, Router};
pub use schema::json_schema;
pub use values::parse_duration;
pub use yaml::Pos;
