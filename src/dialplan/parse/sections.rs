//! The sections made of actions and settings: `transfer`, `tickets`, actions (`when_closed`,
//! `fallback`, DTMF `keys`), `hours` and `limits`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono_tz::Tz;

use super::super::ctx::{join, Ctx};
use super::super::hours::{self, BusinessHours, Range, Slot};
use super::super::plan::*;
use super::super::problem::did_you_mean;
use super::super::prompt::check_prompt;
use super::super::values::check_sip_uri;
use super::super::yaml::{Node, Pos};
use super::{ACTION, HOURS, LIMITS, TICKETS, TRANSFER};

pub(super) fn transfer(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<Transfer> {
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

pub(super) fn tickets(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<TicketDefaults> {
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

/// An action: `transfer` as shorthand, or `{ play: ..., then: ..., to: ... }`.
pub(super) fn action(
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

pub(super) fn business_hours(
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

pub(super) fn keys(
    ctx: &mut Ctx<'_>,
    node: &Node,
    transfer: Option<&Transfer>,
) -> BTreeMap<char, Action> {
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

pub(super) fn limits(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<Limits> {
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
