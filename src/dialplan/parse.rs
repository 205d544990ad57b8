//! One dialplan file: from the node tree to a [`Dialplan`], recording every problem on the way.
//!
//! The allowed keys at each level are the constants below; a test checks that they are exactly
//! the properties of the published JSON Schema ([`super::schema`]), so the editor and the checker
//! never disagree. Checks that need other files (duplicate names, numbers claimed twice) are made
//! by [`super::load`] from the [`Claim`]s returned here.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono_tz::Tz;

use super::ctx::{join, Ctx, Fields};
use super::hours::{self, BusinessHours, Range, Slot};
use super::pattern::{normalize_number, Pattern};
use super::plan::*;
use super::problem::did_you_mean;
use super::prompt::check_prompt;
use super::values::{check_language, check_name, check_sip_uri, check_url, VOICES};
use super::webhook::json_parameters;
use super::yaml::{Kind, Node, Pos};

/// Top-level keys.
pub(crate) const TOP: &[&str] = &[
    "name",
    "description",
    "match",
    "hours",
    "agent",
    "tickets",
    "transfer",
    "webhooks",
    "keys",
    "limits",
    "fallback",
];
/// Keys of `match`.
pub(crate) const MATCH: &[&str] = &[
    "numbers", "prefixes", "patterns", "callers", "trunk", "default",
];
/// Keys of `hours`.
pub(crate) const HOURS: &[&str] = &["timezone", "open", "holidays", "when_closed"];
/// Keys of `agent`.
pub(crate) const AGENT: &[&str] = &[
    "instructions",
    "greeting",
    "voice",
    "language",
    "turn_detection",
    "model",
    "tools",
];
/// Keys of `agent.turn_detection`.
pub(crate) const TURN: &[&str] = &[
    "type",
    "eagerness",
    "threshold",
    "silence",
    "prefix_padding",
];
/// Keys of `tickets`.
pub(crate) const TICKETS: &[&str] = &["category", "priority"];
/// Keys of `transfer`.
pub(crate) const TRANSFER: &[&str] = &["to", "announcement"];
/// Keys of one webhook.
pub(crate) const WEBHOOK: &[&str] = &[
    "description",
    "url",
    "method",
    "timeout",
    "headers",
    "parameters",
];
/// Keys of `limits`.
pub(crate) const LIMITS: &[&str] = &["max_call", "silence", "max_tool_calls"];
/// Keys of an action (`when_closed`, `fallback`, a DTMF key).
pub(crate) const ACTION: &[&str] = &["play", "then", "to"];

/// Something a plan claims for routing; two equal keys in different plans is a load error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClaimKey {
    /// `n:<number>`, `p:<prefix>`, `r:<canonical pattern>` or `default`.
    callee: String,
    /// The trunk qualifier.
    trunk: Option<String>,
    /// The caller qualifier (canonical pattern).
    caller: Option<String>,
}

impl ClaimKey {
    /// True for a `default: true` claim.
    pub fn is_default(&self) -> bool {
        self.callee == "default"
    }
}

/// One routing claim with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    /// What is claimed.
    pub key: ClaimKey,
    /// For messages: `number '100'`, `the default (default: true)`, with qualifiers.
    pub what: String,
    /// Where it was written.
    pub pos: Pos,
}

/// What one file yields.
pub(crate) struct Parsed {
    /// The plan, when the file has no problems.
    pub plan: Option<Dialplan>,
    /// The plan's name and where it was written, for the duplicate-name check.
    pub name: Option<(String, Pos)>,
    /// Routing claims, for the duplicate-claim check.
    pub claims: Vec<Claim>,
}

/// Validate one file's root node.
pub(crate) fn parse_plan(ctx: &mut Ctx<'_>, root: &Node) -> Parsed {
    let mut out = Parsed {
        plan: None,
        name: None,
        claims: Vec::new(),
    };
    let Some(top) = ctx.map(root, Pos::START, "", TOP) else {
        return out;
    };
    let name = match top.get("name") {
        Some(n) => ctx
            .string(n, "name")
            .and_then(|s| match check_name(&s, "plan name") {
                Ok(()) => Some((s, n.pos)),
                Err(e) => {
                    ctx.err(n.pos, e);
                    None
                }
            }),
        None => {
            ctx.missing(&top, "", "name", "a short name like acme-support");
            None
        }
    };
    out.name.clone_from(&name);
    let description = top
        .get("description")
        .and_then(|n| ctx.string(n, "description"));
    let matching = match top.get("match") {
        Some(n) => matching(ctx, n, top.key_pos("match"), &mut out.claims),
        None => {
            ctx.missing(
                &top,
                "",
                "match",
                "which numbers this plan answers, e.g. match: { numbers: [\"100\"] }",
            );
            None
        }
    };
    // A written but invalid transfer section is reported once, here; the stand-in keeps the
    // sections that depend on it from reporting "no transfer target" too (the plan is not built).
    let transfer = top.get("transfer").map(|n| {
        transfer(ctx, n, top.key_pos("transfer")).unwrap_or(Transfer {
            to: String::new(),
            announcement: None,
        })
    });
    let tickets = top
        .get("tickets")
        .and_then(|n| tickets(ctx, n, top.key_pos("tickets")))
        .unwrap_or_default();
    let webhooks = top
        .get("webhooks")
        .map(|n| webhooks(ctx, n))
        .unwrap_or_default();
    let agent = match top.get("agent") {
        Some(n) => agent(ctx, n, top.key_pos("agent"), &webhooks, transfer.as_ref()),
        None => {
            ctx.missing(&top, "", "agent", "at least agent: { instructions: ... }");
            None
        }
    };
    let hours = top
        .get("hours")
        .and_then(|n| business_hours(ctx, n, top.key_pos("hours"), transfer.as_ref()));
    let keys = top
        .get("keys")
        .map(|n| keys(ctx, n, transfer.as_ref()))
        .unwrap_or_default();
    let limits = top
        .get("limits")
        .and_then(|n| limits(ctx, n, top.key_pos("limits")))
        .unwrap_or_default();
    let fallback = match top.get("fallback") {
        Some(n) => action(ctx, n, "fallback", transfer.as_ref()),
        None => Some(Action {
            play: None,
            then: Then::Hangup,
            to: None,
        }),
    };
    if let (true, Some((name, _)), Some(matching), Some(agent), Some(fallback)) =
        (ctx.problems.is_empty(), name, matching, agent, fallback)
    {
        out.plan = Some(Dialplan {
            name,
            description,
            file: ctx.file.to_path_buf(),
            matching,
            hours,
            agent,
            tickets,
            transfer,
            webhooks,
            keys,
            limits,
            fallback,
        });
    }
    out
}

fn matching(
    ctx: &mut Ctx<'_>,
    node: &Node,
    at: Pos,
    claims: &mut Vec<Claim>,
) -> Option<MatchRules> {
    let f = ctx.map(node, at, "match", MATCH)?;
    let mut rules = MatchRules::default();
    // Callee claims before qualifiers: (key, what, pos).
    let mut callee: Vec<(String, String, Pos)> = Vec::new();
    let mut seen = HashSet::new();
    let mut once = |ctx: &mut Ctx<'_>, key: &str, what: &str, pos: Pos| {
        let fresh = seen.insert(key.to_string());
        if !fresh {
            ctx.err(pos, format!("{what} is listed twice in this plan"));
        }
        fresh
    };
    if let Some(n) = f.get("numbers") {
        for (s, item) in ctx.strings(n, "match.numbers", "[\"+15550100\", \"100\"]") {
            let num = normalize_number(&s);
            if num.is_empty()
                || !num
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '#')
            {
                ctx.err(item.pos, format!("'{s}' is not a phone number or SIP user; write digits like \"+15550100\" (spaces, - and + are ignored)"));
            } else if once(ctx, &format!("n:{num}"), &format!("number '{s}'"), item.pos) {
                callee.push((format!("n:{num}"), format!("number '{s}'"), item.pos));
                rules.numbers.push(num);
            }
        }
    }
    if let Some(n) = f.get("prefixes") {
        for (s, item) in ctx.strings(n, "match.prefixes", "[\"+4930555\"]") {
            let num = normalize_number(&s);
            if num.is_empty()
                || !num
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            {
                ctx.err(item.pos, format!("prefix '{s}' must be digits like \"+4930555\" (spaces, - and + are ignored)"));
            } else if once(ctx, &format!("p:{num}"), &format!("prefix '{s}'"), item.pos) {
                callee.push((format!("p:{num}"), format!("prefix '{s}'"), item.pos));
                rules.prefixes.push(num);
            }
        }
    }
    if let Some(n) = f.get("patterns") {
        for (s, item) in ctx.strings(n, "match.patterns", "[\"_1XX\", \"4930NXXXXX\"]") {
            let Some(p) = pattern(ctx, &s, item, "pattern") else {
                continue;
            };
            let key = format!("r:{}", p.canonical());
            if once(ctx, &key, &format!("pattern '{s}'"), item.pos) {
                callee.push((key, format!("pattern '{s}'"), item.pos));
                rules.patterns.push(p);
            }
        }
    }
    if let Some(n) = f.get("default") {
        if ctx.boolean(n, "match.default") == Some(true) {
            rules.default = true;
            callee.push((
                "default".into(),
                "the default (default: true)".into(),
                n.pos,
            ));
        }
    }
    if let Some(n) = f.get("callers") {
        for (s, item) in ctx.strings(n, "match.callers", "[\"+4930.\", \"0800XXXXXX\"]") {
            if let Some(p) = pattern(ctx, &s, item, "caller pattern") {
                if once(
                    ctx,
                    &format!("c:{}", p.canonical()),
                    &format!("caller pattern '{s}'"),
                    item.pos,
                ) {
                    rules.callers.push(p);
                }
            }
        }
    }
    if let Some(n) = f.get("trunk") {
        if let Some(s) = ctx.string(n, "match.trunk") {
            match check_name(&s, "trunk") {
                Ok(()) => rules.trunk = Some(s),
                Err(e) => ctx.err(n.pos, e),
            }
        }
    }
    let written = ["numbers", "prefixes", "patterns"].iter().any(|k| {
        f.get(k)
            .is_some_and(|n| matches!(&n.kind, Kind::Seq(v) if !v.is_empty()))
    });
    if callee.is_empty() && !written {
        ctx.err(
            at,
            "'match' needs at least one of numbers, prefixes, patterns, or default: true",
        );
    }
    let callers: Vec<Option<&Pattern>> = if rules.callers.is_empty() {
        vec![None]
    } else {
        rules.callers.iter().map(Some).collect()
    };
    for (key, what, pos) in callee {
        for caller in &callers {
            let mut what = what.clone();
            if let Some(t) = &rules.trunk {
                what.push_str(&format!(" for trunk '{t}'"));
            }
            if let Some(c) = caller {
                what.push_str(&format!(" for callers '{}'", c.as_str()));
            }
            claims.push(Claim {
                key: ClaimKey {
                    callee: key.clone(),
                    trunk: rules.trunk.clone(),
                    caller: caller.map(|c| c.canonical()),
                },
                what,
                pos,
            });
        }
    }
    Some(rules)
}

fn pattern(ctx: &mut Ctx<'_>, s: &str, item: &Node, what: &str) -> Option<Pattern> {
    match Pattern::parse(s) {
        Ok(p) => Some(p),
        Err(e) => {
            let pos = ctx.pos_in(item, &e.near);
            ctx.err(pos, format!("{what} '{s}': {}", e.message));
            None
        }
    }
}

fn transfer(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<Transfer> {
    let f = ctx.map(node, at, "transfer", TRANSFER)?;
    let announcement = f
        .get("announcement")
        .and_then(|n| ctx.string(n, "transfer.announcement"));
    let Some(to_node) = f.get("to") else {
        ctx.missing(
            &f,
            "transfer",
            "to",
            "a SIP URI like sip:support-queue@pbx.example.com",
        );
        return None;
    };
    let to = sip_uri(ctx, to_node, "transfer.to")?;
    Some(Transfer { to, announcement })
}

fn sip_uri(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<String> {
    let s = ctx.string(node, path)?;
    match check_sip_uri(s.trim()) {
        Ok(()) => Some(s.trim().to_string()),
        Err(e) => {
            ctx.err(node.pos, e);
            None
        }
    }
}

fn tickets(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<TicketDefaults> {
    let f = ctx.map(node, at, "tickets", TICKETS)?;
    let mut t = TicketDefaults::default();
    if let Some(s) = f
        .get("category")
        .and_then(|n| ctx.string(n, "tickets.category"))
    {
        t.category = s;
    }
    if let Some(n) = f.get("priority") {
        t.priority = match ctx.word(n, "tickets.priority", &["low", "normal", "high", "urgent"])? {
            "low" => Priority::Low,
            "high" => Priority::High,
            "urgent" => Priority::Urgent,
            _ => Priority::Normal,
        };
    }
    Some(t)
}

fn webhooks(ctx: &mut Ctx<'_>, node: &Node) -> BTreeMap<String, Webhook> {
    let mut out = BTreeMap::new();
    for (name, key, value) in ctx.entries(
        node,
        "webhooks",
        "{ lookup_order: { url: ..., description: ... } }",
    ) {
        let path = join("webhooks", &name);
        if let Err(e) = check_name(&name, "webhook name") {
            ctx.err(key.pos, e);
            continue;
        }
        if Tool::BUILT_IN.contains(&name.as_str()) {
            ctx.err(
                key.pos,
                format!("webhook '{name}' has the name of a built-in tool; choose another name"),
            );
            continue;
        }
        let Some(f) = ctx.map(value, key.pos, &path, WEBHOOK) else {
            continue;
        };
        let description = match f.get("description") {
            Some(n) => ctx.string(n, &join(&path, "description")),
            None => {
                ctx.missing(
                    &f,
                    &path,
                    "description",
                    "what the tool does, so the agent knows when to use it",
                );
                None
            }
        };
        let url = match f.get("url") {
            Some(n) => ctx
                .string(n, &join(&path, "url"))
                .and_then(|u| match check_url(&u) {
                    Ok(()) => Some(u),
                    Err(e) => {
                        ctx.err(n.pos, e);
                        None
                    }
                }),
            None => {
                ctx.missing(
                    &f,
                    &path,
                    "url",
                    "the address to call, like https://orders.example.com/api/lookup",
                );
                None
            }
        };
        let method = match f.get("method") {
            Some(n) => {
                match ctx.word(n, &join(&path, "method"), &["GET", "POST", "PUT", "PATCH"]) {
                    Some("GET") => Method::Get,
                    Some("PUT") => Method::Put,
                    Some("PATCH") => Method::Patch,
                    _ => Method::Post,
                }
            }
            None => Method::Post,
        };
        let timeout = f
            .get("timeout")
            .and_then(|n| {
                ctx.duration(
                    n,
                    &join(&path, "timeout"),
                    Duration::from_millis(100),
                    Duration::from_secs(30),
                )
            })
            .unwrap_or(Duration::from_secs(5));
        let mut headers = BTreeMap::new();
        if let Some(n) = f.get("headers") {
            for (k, _, v) in ctx.entries(
                n,
                &join(&path, "headers"),
                "{ Authorization: \"Bearer ...\" }",
            ) {
                if let Some(v) = ctx.string(v, &join(&path, "headers")) {
                    headers.insert(k, v);
                }
            }
        }
        let parameters = json_parameters(ctx, f.get("parameters"), &f, &path);
        if let (Some(description), Some(url), Some(parameters)) = (description, url, parameters) {
            out.insert(
                name,
                Webhook {
                    description,
                    url,
                    method,
                    timeout,
                    headers,
                    parameters,
                },
            );
        }
    }
    out
}

fn agent(
    ctx: &mut Ctx<'_>,
    node: &Node,
    at: Pos,
    webhooks: &BTreeMap<String, Webhook>,
    transfer: Option<&Transfer>,
) -> Option<Agent> {
    let f = ctx.map(node, at, "agent", AGENT)?;
    let instructions = match f.get("instructions") {
        Some(n) => ctx
            .string(n, "agent.instructions")
            .inspect(|s| check_placeholders(ctx, n, s, "agent.instructions")),
        None => {
            ctx.missing(
                &f,
                "agent",
                "instructions",
                "what the agent should do, in plain words",
            );
            None
        }
    };
    let greeting = f.get("greeting").and_then(|n| {
        ctx.string(n, "agent.greeting")
            .inspect(|s| check_placeholders(ctx, n, s, "agent.greeting"))
    });
    let voice = f
        .get("voice")
        .and_then(|n| ctx.word(n, "agent.voice", &VOICES))
        .map(str::to_string);
    let language = f.get("language").and_then(|n| {
        let s = ctx.string(n, "agent.language")?;
        check_language(&s)
            .map_err(|e| ctx.err(n.pos, e))
            .ok()
            .map(|()| s)
    });
    let model = f.get("model").and_then(|n| ctx.string(n, "agent.model"));
    let turn_detection = f
        .get("turn_detection")
        .and_then(|n| turn_detection(ctx, n, f.key_pos("turn_detection")))
        .unwrap_or_default();
    let mut tools = Vec::new();
    if let Some(n) = f.get("tools") {
        let mut known: Vec<&str> = Tool::BUILT_IN.to_vec();
        known.extend(webhooks.keys().map(String::as_str));
        for (name, item) in ctx.strings(
            n,
            "agent.tools",
            "[create_ticket, transfer_to_human, end_call]",
        ) {
            let tool = match name.as_str() {
                "create_ticket" => Tool::CreateTicket,
                "transfer_to_human" => Tool::TransferToHuman,
                "end_call" => Tool::EndCall,
                w if webhooks.contains_key(w) => Tool::Webhook(w.to_string()),
                _ => {
                    let hint = did_you_mean(&name, known.iter().copied());
                    let defined = if webhooks.is_empty() {
                        "none".to_string()
                    } else {
                        webhooks.keys().cloned().collect::<Vec<_>>().join(", ")
                    };
                    ctx.err(item.pos, format!("tool '{name}' is not defined{hint} (built-in tools: create_ticket, transfer_to_human, end_call; webhooks in this plan: {defined})"));
                    continue;
                }
            };
            if tools.contains(&tool) {
                ctx.err(item.pos, format!("tool '{name}' is listed twice"));
                continue;
            }
            if tool == Tool::TransferToHuman && transfer.is_none() {
                ctx.err(item.pos, "tool 'transfer_to_human' needs a 'transfer' section with the target, e.g. transfer: { to: \"sip:support-queue@pbx.example.com\" }");
            }
            tools.push(tool);
        }
    }
    Some(Agent {
        instructions: instructions?,
        greeting,
        voice,
        language,
        turn_detection,
        model,
        tools,
    })
}

fn check_placeholders(ctx: &mut Ctx<'_>, node: &Node, text: &str, path: &str) {
    for name in super::plan::placeholders(text) {
        if !PLACEHOLDERS.contains(&name) {
            let hint = did_you_mean(name, PLACEHOLDERS);
            let pos = ctx.pos_in(node, &format!("{{{name}}}"));
            ctx.err(pos, format!("unknown placeholder '{{{name}}}' in {path}{hint} (allowed: {{caller}}, {{callee}}, {{date}}, {{time}}; write {{{{ for a literal brace)"));
        }
    }
}

fn turn_detection(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<TurnDetection> {
    const TYPES: [&str; 2] = ["server_vad", "semantic_vad"];
    let path = "agent.turn_detection";
    if node.scalar().is_some() {
        return match ctx.word(node, path, &TYPES)? {
            "semantic_vad" => Some(TurnDetection::SemanticVad {
                eagerness: Eagerness::Auto,
            }),
            _ => Some(TurnDetection::default()),
        };
    }
    let f = ctx.map(node, at, path, TURN)?;
    let Some(kind_node) = f.get("type") else {
        ctx.missing(&f, path, "type", "server_vad or semantic_vad");
        return None;
    };
    let kind = ctx.word(kind_node, &join(path, "type"), &TYPES)?;
    let only = |ctx: &mut Ctx<'_>, f: &Fields<'_>, keys: &[&str], other: &str| {
        for k in keys {
            if f.get(k).is_some() {
                ctx.err(f.key_pos(k), format!("'{k}' only applies to type: {other}"));
            }
        }
    };
    if kind == "semantic_vad" {
        only(
            ctx,
            &f,
            &["threshold", "silence", "prefix_padding"],
            "server_vad",
        );
        let eagerness = match f.get("eagerness") {
            Some(n) => match ctx.word(
                n,
                &join(path, "eagerness"),
                &["low", "medium", "high", "auto"],
            )? {
                "low" => Eagerness::Low,
                "medium" => Eagerness::Medium,
                "high" => Eagerness::High,
                _ => Eagerness::Auto,
            },
            None => Eagerness::Auto,
        };
        return Some(TurnDetection::SemanticVad { eagerness });
    }
    only(ctx, &f, &["eagerness"], "semantic_vad");
    let threshold = f.get("threshold").and_then(|n| {
        let s = ctx.string(n, &join(path, "threshold"))?;
        match s.trim().parse::<f32>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Some(v),
            _ => {
                ctx.err(
                    n.pos,
                    format!("'{path}.threshold' must be a number from 0.0 to 1.0 (got '{s}')"),
                );
                None
            }
        }
    });
    let ms = Duration::from_millis;
    let silence = f
        .get("silence")
        .and_then(|n| ctx.duration(n, &join(path, "silence"), ms(100), ms(5000)));
    let prefix_padding = f
        .get("prefix_padding")
        .and_then(|n| ctx.duration(n, &join(path, "prefix_padding"), ms(0), ms(2000)));
    Some(TurnDetection::ServerVad {
        threshold,
        silence,
        prefix_padding,
    })
}

/// An action: `transfer` as shorthand, or `{ play: ..., then: ..., to: ... }`.
pub(crate) fn action(
    ctx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
    transfer: Option<&Transfer>,
) -> Option<Action> {
    const THEN: [&str; 3] = ["hangup", "ticket", "transfer"];
    let (then_node, play, to) = if node.scalar().is_some() {
        (node, None, None)
    } else {
        let f = ctx.map(node, node.pos, path, ACTION)?;
        let play = f.get("play").and_then(|n| {
            let written = ctx.string(n, &join(path, "play"))?;
            check_prompt(ctx.dir, &written)
                .map_err(|e| ctx.err(n.pos, e))
                .ok()
        });
        let to = f.get("to").map(|n| (n, sip_uri(ctx, n, &join(path, "to"))));
        match f.get("then") {
            Some(n) => (n, play, to),
            None => {
                ctx.missing(&f, path, "then", "hangup, ticket or transfer");
                return None;
            }
        }
    };
    let then_path = if node.scalar().is_some() {
        path.to_string()
    } else {
        join(path, "then")
    };
    let then = match ctx.word(then_node, &then_path, &THEN)? {
        "hangup" => Then::Hangup,
        "ticket" => Then::Ticket,
        _ => Then::Transfer,
    };
    let to = match (then, to) {
        (Then::Transfer, Some((_, Some(uri)))) => Some(uri),
        (Then::Transfer, Some((_, None))) => return None,
        (Then::Transfer, None) => match transfer {
            Some(t) => Some(t.to.clone()),
            None => {
                ctx.err(then_node.pos, format!("'{then_path}: transfer' needs a target: add 'to: sip:...' here or a 'transfer' section to the plan"));
                return None;
            }
        },
        (_, Some((n, _))) => {
            ctx.err(
                n.pos,
                format!("'{path}.to' only applies with then: transfer"),
            );
            return None;
        }
        (_, None) => None,
    };
    Some(Action { play, then, to })
}

fn business_hours(
    ctx: &mut Ctx<'_>,
    node: &Node,
    at: Pos,
    transfer: Option<&Transfer>,
) -> Option<BusinessHours> {
    let f = ctx.map(node, at, "hours", HOURS)?;
    let timezone = match f.get("timezone") {
        Some(n) => ctx.string(n, "hours.timezone").and_then(|s| match s.trim().parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                let hint = did_you_mean(&s, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()));
                ctx.err(n.pos, format!("unknown timezone '{s}'{hint} (use an IANA name like Europe/Berlin or America/New_York)"));
                None
            }
        }),
        None => {
            ctx.missing(&f, "hours", "timezone", "an IANA name like Europe/Berlin");
            None
        }
    };
    let mut week: [Vec<Range>; 7] = Default::default();
    match f.get("open") {
        Some(n) => {
            let mut slots: Vec<(Slot, Pos)> = Vec::new();
            for (key, key_node, value) in
                ctx.entries(n, "hours.open", "{ mon-fri: \"08:00-18:00\" }")
            {
                let days = hours::parse_days(&key).map_err(|(near, msg)| {
                    let pos = ctx.pos_in(key_node, &near);
                    ctx.err(pos, msg);
                });
                let Some(text) = ctx.string(value, &join("hours.open", &key)) else {
                    continue;
                };
                let ranges = hours::parse_ranges(&text).map_err(|(near, msg)| {
                    let pos = ctx.pos_in(value, &near);
                    ctx.err(pos, msg);
                });
                let (Ok(days), Ok(ranges)) = (days, ranges) else {
                    continue;
                };
                for (range, text) in ranges {
                    let pos = ctx.pos_in(value, &text);
                    for &day in &days {
                        slots.push((
                            Slot {
                                day,
                                range,
                                key: key.clone(),
                                text: text.clone(),
                            },
                            pos,
                        ));
                    }
                }
            }
            let plain: Vec<Slot> = slots.iter().map(|(s, _)| s.clone()).collect();
            let mut reported = HashSet::new();
            for (i, msg) in hours::overlaps(&plain) {
                // One report per written range, even when it overlaps on several days.
                if reported.insert((slots[i].1, msg.clone())) {
                    ctx.err(slots[i].1, msg);
                }
            }
            for (s, _) in slots {
                week[s.day].push(s.range);
            }
        }
        None => ctx.missing(
            &f,
            "hours",
            "open",
            "opening times like open: { mon-fri: \"08:00-18:00\" }",
        ),
    }
    let mut holidays = Vec::new();
    if let Some(n) = f.get("holidays") {
        for (s, item) in ctx.strings(n, "hours.holidays", "[\"2026-12-25\", \"01-01\"]") {
            match hours::parse_holiday(s.trim()) {
                Some(h) => holidays.push(h),
                None => ctx.err(item.pos, format!("holiday '{s}' is not a date; write YYYY-MM-DD like 2026-12-25, or MM-DD like 12-25 for every year")),
            }
        }
    }
    let when_closed = match f.get("when_closed") {
        Some(n) => action(ctx, n, "hours.when_closed", transfer),
        None => {
            ctx.missing(&f, "hours", "when_closed", "what callers get when closed, e.g. when_closed: { play: prompts/closed.wav, then: hangup }");
            None
        }
    };
    Some(BusinessHours {
        timezone: timezone?,
        week,
        holidays,
        when_closed: when_closed?,
    })
}

fn keys(ctx: &mut Ctx<'_>, node: &Node, transfer: Option<&Transfer>) -> BTreeMap<char, Action> {
    let mut out = BTreeMap::new();
    for (key, key_node, value) in ctx.entries(node, "keys", "{ \"0\": transfer }") {
        let mut chars = key.trim().chars();
        let k = match (chars.next().map(|c| c.to_ascii_uppercase()), chars.next()) {
            (Some(c @ ('0'..='9' | '*' | '#' | 'A'..='D')), None) => c,
            _ => {
                ctx.err(
                    key_node.pos,
                    format!(
                        "'{key}' is not a phone key; use one of 0-9, * or # (quote them: \"*\")"
                    ),
                );
                continue;
            }
        };
        if let Some(a) = action(ctx, value, &join("keys", &key), transfer) {
            out.insert(k, a);
        }
    }
    out
}

fn limits(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<Limits> {
    let f = ctx.map(node, at, "limits", LIMITS)?;
    let mut l = Limits::default();
    let secs = Duration::from_secs;
    if let Some(d) = f
        .get("max_call")
        .and_then(|n| ctx.duration(n, "limits.max_call", secs(10), secs(3600)))
    {
        l.max_call = d;
    }
    if let Some(d) = f
        .get("silence")
        .and_then(|n| ctx.duration(n, "limits.silence", secs(5), secs(3600)))
    {
        l.silence = d;
    }
    if let Some(n) = f
        .get("max_tool_calls")
        .and_then(|n| ctx.number(n, "limits.max_tool_calls", 0..=1000))
    {
        l.max_tool_calls = n;
    }
    Some(l)
}
