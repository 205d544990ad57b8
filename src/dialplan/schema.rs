//! The JSON Schema of a dialplan file, for editors (`voxgate schema`).
//!
//! The types below describe the file as written (strings for durations and times) and exist only
//! to derive the schema; the loader reads files by hand ([`super::parse`]) so it can report every
//! problem with its position. A test keeps the two in step: the properties at every level of the
//! schema must equal the loader's allowed keys. The schema is draft-07, which the VS Code YAML
//! extension (yaml-language-server) understands fully. Descriptions come from the `///` comments.

// The types are never built: they only describe the file format to schemars.
#![allow(dead_code)]

use std::collections::BTreeMap;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

/// Durations like 500ms, 30s, 15m, 1h or 1m30s.
const DURATION: &str = r"^\s*(\d+\s*(ms|s|sec|m|min|h)\s*)+$";

/// A voxgate dialplan: which calls one line of business answers, and how the voice agent behaves.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "voxgate dialplan")]
struct DialplanDoc {
    /// Unique name of this plan (letters, digits, '-' and '_'), shown in logs and the call log.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    name: String,
    /// Free text for people reading the file.
    description: Option<String>,
    /// Which calls this plan answers.
    #[serde(rename = "match")]
    matching: MatchDoc,
    /// Opening hours. Without them the line is always open.
    hours: Option<HoursDoc>,
    /// The voice agent.
    agent: AgentDoc,
    /// Defaults for tickets filed by the agent (create_ticket) or by a 'ticket' action.
    tickets: Option<TicketsDoc>,
    /// Where humans answer: used by transfer_to_human and by 'transfer' actions.
    transfer: Option<TransferDoc>,
    /// Tools backed by your web services, by tool name; enable them in agent.tools.
    webhooks: Option<BTreeMap<String, WebhookDoc>>,
    /// What phone keys do during the call, e.g. "0": transfer.
    #[schemars(extend("propertyNames" = { "pattern": "^[0-9*#A-Da-d]$" }))]
    keys: Option<BTreeMap<String, ActionDoc>>,
    /// Call limits.
    limits: Option<LimitsDoc>,
    /// What callers get when the voice agent is unavailable (default: hang up).
    fallback: Option<ActionDoc>,
    /// What the call log may keep of this line's calls.
    privacy: Option<PrivacyDoc>,
}

/// What the call log may keep.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct PrivacyDoc {
    /// Store caller and agent transcripts (default true).
    store_transcripts: Option<bool>,
}

/// Which calls this plan answers. Spaces, '-', '+' and sip:/tel: prefixes are ignored.
/// Precedence: exact number > longest prefix > most specific pattern > default.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct MatchDoc {
    /// Called numbers this plan answers exactly, e.g. ["+15550100", "100"]. Quote them.
    numbers: Option<Vec<String>>,
    /// Called-number prefixes, e.g. ["+4930555"]; the longest matching prefix wins.
    prefixes: Option<Vec<String>>,
    /// Asterisk-style patterns: X any digit, Z 1-9, N 2-9, [1-5] a set, '.' one or more and '!'
    /// zero or more further characters (at the end), e.g. "_1XX".
    patterns: Option<Vec<String>>,
    /// Only callers matching one of these patterns (same syntax as patterns), e.g. ["+4930."].
    callers: Option<Vec<String>>,
    /// Only calls from this source trunk (a trunk name from the daemon config).
    trunk: Option<String>,
    /// true: this plan takes calls that no other plan matches. One default plan only.
    default: Option<bool>,
}

/// Opening hours, in local time of the timezone.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct HoursDoc {
    /// IANA timezone, e.g. Europe/Berlin or America/New_York.
    #[schemars(schema_with = "timezone_schema")]
    timezone: String,
    /// Opening times per day: keys like mon-fri, sat, "sat,sun" or daily; values like
    /// "08:00-18:00" or "08:00-12:00,13:00-17:00". "22:00-02:00" runs past midnight.
    /// Days not listed are closed.
    #[schemars(extend("propertyNames" = {
        "pattern": "^(daily|(mon|tue|wed|thu|fri|sat|sun)[a-z]*(\\s*-\\s*(mon|tue|wed|thu|fri|sat|sun)[a-z]*)?(\\s*,\\s*(mon|tue|wed|thu|fri|sat|sun)[a-z]*(\\s*-\\s*(mon|tue|wed|thu|fri|sat|sun)[a-z]*)?)*)$"
    }))]
    open: BTreeMap<String, TimeRanges>,
    /// Days closed all day: "2026-12-25" for one date, "12-25" for every year.
    holidays: Option<Vec<Holiday>>,
    /// What callers get outside opening hours.
    when_closed: ActionDoc,
}

/// "08:00-18:00", several separated by commas.
#[derive(JsonSchema)]
struct TimeRanges(
    #[schemars(regex(
        pattern = r"^\s*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}\s*(,\s*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}\s*)*$"
    ))]
    String,
);

/// "2026-12-25", or "12-25" for every year.
#[derive(JsonSchema)]
struct Holiday(#[schemars(regex(pattern = r"^(\d{4}-)?\d{2}-\d{2}$"))] String);

/// The voice agent.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct AgentDoc {
    /// What the agent does, in plain words. Placeholders: {caller}, {callee}, {date}, {time}.
    instructions: String,
    /// The first thing the agent says (same placeholders). Without it the caller speaks first.
    greeting: Option<String>,
    /// The agent's voice.
    voice: Option<Voice>,
    /// Language of the conversation, e.g. en, de or de-DE.
    #[schemars(regex(pattern = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"))]
    language: Option<String>,
    /// How the agent decides the caller has finished speaking.
    turn_detection: Option<TurnDetectionDoc>,
    /// Model name, overriding the daemon's configured model.
    model: Option<String>,
    /// Tools the agent may use: create_ticket, transfer_to_human, end_call, or a webhook name.
    tools: Option<Vec<String>>,
}

/// Voices of the realtime models.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Voice {
    Alloy,
    Ash,
    Ballad,
    Cedar,
    Coral,
    Echo,
    Marin,
    Sage,
    Shimmer,
    Verse,
}

/// server_vad or semantic_vad, or a mapping with settings.
#[derive(JsonSchema)]
#[serde(untagged)]
enum TurnDetectionDoc {
    /// Just the type.
    Type(TurnType),
    /// The type with settings.
    Full(TurnDetectionFull),
}

/// Turn detection type.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
enum TurnType {
    /// Ends the turn after a silence.
    ServerVad,
    /// A model judges whether the caller has finished.
    SemanticVad,
}

/// Turn detection with settings.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct TurnDetectionFull {
    /// server_vad or semantic_vad.
    #[serde(rename = "type")]
    kind: TurnType,
    /// semantic_vad only: how quickly the agent answers.
    eagerness: Option<Eagerness>,
    /// server_vad only: speech threshold from 0.0 to 1.0.
    #[schemars(range(min = 0.0, max = 1.0))]
    threshold: Option<f32>,
    /// server_vad only: silence that ends the caller's turn, e.g. 500ms.
    #[schemars(regex(pattern = DURATION))]
    silence: Option<String>,
    /// server_vad only: audio kept before detected speech, e.g. 300ms.
    #[schemars(regex(pattern = DURATION))]
    prefix_padding: Option<String>,
}

/// Semantic VAD eagerness.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Eagerness {
    Low,
    Medium,
    High,
    Auto,
}

/// Ticket defaults.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct TicketsDoc {
    /// Category when none is given (default: general).
    category: Option<String>,
    /// Priority when none is given (default: normal).
    priority: Option<Priority>,
    /// Also POST each new ticket to this ticketing system (signed, retried, idempotent).
    webhook: Option<TicketWebhookDoc>,
}

/// A ticketing system that receives each new ticket as JSON.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct TicketWebhookDoc {
    /// http:// or https:// address to POST tickets to.
    #[schemars(regex(pattern = r"^https?://\S+$"))]
    url: String,
    /// Extra request headers, sent as written.
    headers: Option<BTreeMap<String, String>>,
    /// Name of the environment variable holding the HMAC-SHA256 signing secret (never the secret).
    #[schemars(regex(pattern = r"^[A-Z_][A-Z0-9_]*$"))]
    secret_env: Option<String>,
    /// Limit per attempt (default 5s, at most 30s).
    #[schemars(regex(pattern = DURATION))]
    timeout: Option<String>,
    /// Further attempts after a failure (default 3), with doubling pauses.
    #[schemars(range(max = 10))]
    retries: Option<u32>,
    /// Field of the JSON answer holding the external ticket reference (default: id).
    ref_field: Option<String>,
}

/// Ticket priority.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

/// The human hand-off.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct TransferDoc {
    /// SIP URI of the queue or person, e.g. sip:support-queue@pbx.example.com.
    #[schemars(regex(pattern = r"^[sS][iI][pP][sS]?:\S+$"))]
    to: String,
    /// What the agent says before handing over.
    announcement: Option<String>,
    /// Names of the SIP headers that carry the call's context to the PBX.
    headers: Option<TransferHeadersDoc>,
    /// How long to wait for the PBX to complete the transfer (default 30s).
    #[schemars(regex(pattern = DURATION))]
    timeout: Option<String>,
}

/// SIP header names for the transfer context, shown to the human by the PBX.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct TransferHeadersDoc {
    /// Header carrying the ticket reference (default X-Voxgate-Ticket).
    ticket: Option<String>,
    /// Header carrying the one-line reason (default X-Voxgate-Reason).
    reason: Option<String>,
}

/// A tool backed by an HTTP endpoint.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct WebhookDoc {
    /// What the tool does, so the agent knows when to use it.
    description: String,
    /// http:// or https:// address to call.
    #[schemars(regex(pattern = r"^https?://\S+$"))]
    url: String,
    /// HTTP method (default POST; GET sends arguments as query parameters).
    method: Option<Method>,
    /// How long to wait for an answer (default 5s, at most 30s).
    #[schemars(regex(pattern = DURATION))]
    timeout: Option<String>,
    /// Extra request headers, sent as written.
    headers: Option<BTreeMap<String, String>>,
    /// JSON Schema of the arguments (type: object, properties, required).
    parameters: Option<serde_json::Map<String, Value>>,
    /// Name of the environment variable holding an HMAC-SHA256 signing secret.
    #[schemars(regex(pattern = r"^[A-Z_][A-Z0-9_]*$"))]
    secret_env: Option<String>,
}

/// HTTP method.
#[derive(JsonSchema)]
enum Method {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
}

/// hangup, ticket or transfer; or a mapping with a prompt to play first.
#[derive(JsonSchema)]
#[serde(untagged)]
enum ActionDoc {
    /// What to do.
    Then(Then),
    /// A prompt, then what to do.
    Full(ActionFull),
}

/// What happens next.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Then {
    /// End the call.
    Hangup,
    /// File a callback ticket with the caller's number, then end the call.
    Ticket,
    /// Transfer to 'to' or the plan's transfer target.
    Transfer,
}

/// Play a prompt, then hang up, file a ticket or transfer.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct ActionFull {
    /// WAV prompt (mono 16-bit PCM, 8000 Hz), relative to this file's folder.
    play: Option<String>,
    /// What happens after the prompt.
    then: Then,
    /// With then: transfer, a SIP URI overriding the plan's transfer target.
    #[schemars(regex(pattern = r"^[sS][iI][pP][sS]?:\S+$"))]
    to: Option<String>,
}

/// Call limits.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct LimitsDoc {
    /// Longest call, e.g. 15m (default 30m, at most 1h).
    #[schemars(regex(pattern = DURATION))]
    max_call: Option<String>,
    /// Caller silence that ends the call, e.g. 30s (default 30s).
    #[schemars(regex(pattern = DURATION))]
    silence: Option<String>,
    /// Most tool calls in one call (default 20).
    #[schemars(range(min = 0, max = 1000))]
    max_tool_calls: Option<u32>,
}

fn timezone_schema(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()).collect();
    json_schema!({ "type": "string", "enum": names })
}

/// The JSON Schema (draft-07) of a dialplan file, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<DialplanDoc>();
    let mut value = schema.to_value();
    strip_null(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Optional keys may be left out but not set to null (the loader refuses empty values), so drop
/// the `null` alternatives schemars adds for `Option`.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(alts)) = map.get_mut(key) {
                    alts.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
                    if alts.len() == 1 {
                        let only = alts.remove(0);
                        map.remove(key);
                        if let Value::Object(o) = only {
                            for (k, val) in o {
                                map.entry(k).or_insert(val);
                            }
                        }
                    }
                }
            }
            if let Some(Value::Array(e)) = map.get_mut("enum") {
                e.retain(|x| !x.is_null());
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn schema() -> Value {
        serde_json::from_str(&json_schema()).expect("schema is JSON")
    }

    /// Follow `$ref`s and one-element `allOf`s, and pick the object branch of `anyOf`s.
    fn object<'a>(root: &'a Value, mut v: &'a Value) -> &'a Value {
        loop {
            if let Some([only]) = v.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                v = only;
            } else if let Some(r) = v.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or_default();
                v = &root["definitions"][name];
            } else if let Some(alts) = v.get("anyOf").and_then(Value::as_array) {
                let found = alts.iter().find(|a| {
                    let a = object(root, a);
                    a.get("properties").is_some() || a.get("additionalProperties").is_some()
                });
                v = found.expect("an object alternative");
            } else {
                return v;
            }
        }
    }

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    }

    fn sorted(k: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn schema_keys_match_the_loader() {
        let root = schema();
        let prop = |v: &Value, k: &str| object(&root, &object(&root, v)["properties"][k]).clone();
        assert_eq!(keys(&root), sorted(parse::TOP));
        let table = [
            (prop(&root, "match"), parse::MATCH),
            (prop(&root, "hours"), parse::HOURS),
            (prop(&root, "agent"), parse::AGENT),
            (prop(&prop(&root, "agent"), "turn_detection"), parse::TURN),
            (prop(&root, "tickets"), parse::TICKETS),
            (prop(&root, "transfer"), parse::TRANSFER),
            (
                prop(&prop(&root, "tickets"), "webhook"),
                parse::TICKET_WEBHOOK,
            ),
            (
                prop(&prop(&root, "transfer"), "headers"),
                parse::TRANSFER_HEADERS,
            ),
            (
                object(&root, &prop(&root, "webhooks")["additionalProperties"]).clone(),
                parse::WEBHOOK,
            ),
            (prop(&root, "limits"), parse::LIMITS),
            (prop(&root, "privacy"), parse::PRIVACY),
            (prop(&root, "fallback"), parse::ACTION),
            (prop(&prop(&root, "hours"), "when_closed"), parse::ACTION),
        ];
        for (schema, loader) in table {
            assert_eq!(keys(&schema), sorted(loader));
        }
    }

    #[test]
    fn schema_has_no_null_and_requires_the_essentials() {
        let text = json_schema();
        assert!(!text.contains("\"null\""), "null alternatives remain");
        // JSON Schema patterns are ECMA-262 regexes: no inline flags like (?i).
        assert!(!text.contains("(?"), "non-ECMA regex syntax");
        let root = schema();
        assert_eq!(
            root["required"],
            serde_json::json!(["name", "match", "agent"])
        );
        assert!(root["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("draft-07")));
        let tz = object(
            &root,
            &object(&root, &root["properties"]["hours"])["properties"]["timezone"],
        );
        assert!(tz["enum"]
            .as_array()
            .is_some_and(|e| e.contains(&Value::from("Europe/Berlin"))));
    }
}
