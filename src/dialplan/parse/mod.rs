//! One dialplan file: from the node tree to a [`Dialplan`], recording every problem on the way.
//!
//! The allowed keys at each level are the constants below; a test checks that they are exactly
//! the properties of the published JSON Schema ([`super::schema`]), so the editor and the checker
//! never disagree. Checks that need other files (duplicate names, numbers claimed twice) are made
//! by [`super::load`] from the [`Claim`]s returned here.

mod agent;
mod sections;

use std::collections::HashSet;

use super::ctx::Ctx;
use super::pattern::{normalize_number, Pattern};
use super::plan::*;
use super::values::check_name;
use super::yaml::{Kind, Node, Pos};
use agent::{agent, webhooks};
use sections::{action, business_hours, keys, limits, tickets, transfer};

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
    "privacy",
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
pub(crate) const TICKETS: &[&str] = &["category", "priority", "webhook"];
/// Keys of `tickets.webhook`.
pub(crate) const TICKET_WEBHOOK: &[&str] = &[
    "url",
    "headers",
    "secret_env",
    "timeout",
    "retries",
    "ref_field",
];
/// Keys of `transfer`.
pub(crate) const TRANSFER: &[&str] = &["to", "announcement", "headers", "timeout"];
/// Keys of `transfer.headers`.
pub(crate) const TRANSFER_HEADERS: &[&str] = &["ticket", "reason"];
/// Keys of one webhook.
pub(crate) const WEBHOOK: &[&str] = &[
    "description",
    "url",
    "method",
    "timeout",
    "headers",
    "parameters",
    "secret_env",
];
/// Keys of `limits`.
pub(crate) const LIMITS: &[&str] = &["max_call", "silence", "max_tool_calls"];
/// Keys of `privacy`.
pub(crate) const PRIVACY: &[&str] = &["store_transcripts"];
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
    let transfer = top
        .get("transfer")
        .map(|n| transfer(ctx, n, top.key_pos("transfer")).unwrap_or(Transfer::to(String::new())));
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
    let privacy = top
        .get("privacy")
        .and_then(|n| privacy(ctx, n, top.key_pos("privacy")))
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
            privacy,
        });
    }
    out
}

/// `privacy: { store_transcripts: false }`: what the call log may keep of this line's calls.
fn privacy(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<Privacy> {
    let f = ctx.map(node, at, "privacy", PRIVACY)?;
    let mut p = Privacy::default();
    if let Some(b) = f
        .get("store_transcripts")
        .and_then(|n| ctx.boolean(n, "privacy.store_transcripts"))
    {
        p.store_transcripts = b;
    }
    Some(p)
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
