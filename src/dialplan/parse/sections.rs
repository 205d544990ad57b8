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
use super::super::values::{check_sip_uri, check_url};
use super::super::yaml::{Node, Pos};
use super::{ACTION, HOURS, LIMITS, TICKETS, TICKET_WEBHOOK, TRANSFER, TRANSFER_HEADERS};

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
    let mut t = Transfer::to(sip_uri(ctx, to_node, "transfer.to")?);
    t.announcement = announcement;
    if let Some(n) = f.get("timeout") {
        t.timeout = ctx.duration(
            n,
            "transfer.timeout",
            Duration::from_secs(5),
            Duration::from_secs(300),
        )?;
    }
    if let Some(n) = f.get("headers") {
        let h = ctx.map(
            n,
            f.key_pos("headers"),
            "transfer.headers",
            TRANSFER_HEADERS,
        )?;
        for (key, slot) in [
            ("ticket", &mut t.ticket_header),
            ("reason", &mut t.reason_header),
        ] {
            let path = join("transfer.headers", key);
            if let Some(name) = h.get(key).and_then(|n| {
                let s = ctx.string(n, &path)?;
                match check_header_name(s.trim()) {
                    Ok(()) => Some(s.trim().to_string()),
                    Err(e) => {
                        ctx.err(n.pos, format!("'{path}': {e}"));
                        None
                    }
                }
            }) {
                *slot = name;
            }
        }
    }
    Some(t)
}

/// A SIP header name an operator may choose: a token, and not one the SIP stack owns.
fn check_header_name(s: &str) -> Result<(), String> {
    const OWNED: [&str; 12] = [
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "max-forwards",
        "content-length",
        "content-type",
        "refer-to",
        "referred-by",
        "route",
    ];
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b))
    {
        return Err(format!(
            "'{s}' is not a SIP header name; use letters, digits and '-', like X-Ticket-Id"
        ));
    }
    if OWNED.contains(&s.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "'{s}' is set by voxgate itself; choose your own name, like X-Ticket-Id"
        ));
    }
    Ok(())
}

/// An environment variable name (the secret itself never goes in a dialplan).
pub(super) fn env_name(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<String> {
    let s = ctx.string(node, path)?;
    let ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Some(s)
    } else {
        ctx.err(
            node.pos,
            format!("'{path}' names an environment variable holding the secret, like ACME_TICKETS_SECRET (capitals, digits, '_'); never write the secret itself here"),
        );
        None
    }
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
    if let Some(n) = f.get("webhook") {
        t.webhook = Some(ticket_webhook(ctx, n, f.key_pos("webhook"))?);
    }
    Some(t)
}

fn ticket_webhook(ctx: &mut Ctx<'_>, node: &Node, at: Pos) -> Option<TicketWebhook> {
    const PATH: &str = "tickets.webhook";
    let f = ctx.map(node, at, PATH, TICKET_WEBHOOK)?;
    let Some(url_node) = f.get("url") else {
        ctx.missing(
            &f,
            PATH,
            "url",
            "the ticketing system's address, like https://tickets.example.com/api/tickets",
        );
        return None;
    };
    let url = ctx.string(url_node, &join(PATH, "url"))?;
    if let Err(e) = check_url(url.trim()) {
        ctx.err(url_node.pos, e);
        return None;
    }
    let mut headers = BTreeMap::new();
    if let Some(n) = f.get("headers") {
        for (k, _, v) in ctx.entries(n, &join(PATH, "headers"), "{ X-Api-Key: \"...\" }") {
            if let Some(v) = ctx.string(v, &join(PATH, "headers")) {
                headers.insert(k, v);
            }
        }
    }
    let secret_env = match f.get("secret_env") {
        Some(n) => Some(env_name(ctx, n, &join(PATH, "secret_env"))?),
        None => None,
    };
    let timeout = match f.get("timeout") {
        Some(n) => ctx.duration(
            n,
            &join(PATH, "timeout"),
            Duration::from_millis(100),
            Duration::from_secs(30),
        )?,
        None => Duration::from_secs(5),
    };
    let retries = match f.get("retries") {
        Some(n) => ctx.number(n, &join(PATH, "retries"), 0..=10)?,
        None => 3,
    };
    let ref_field = match f.get("ref_field") {
        Some(n) => ctx.string(n, &join(PATH, "ref_field"))?,
        None => "id".to_string(),
    };
    Some(TicketWebhook {
        url: url.trim().to_string(),
        headers,
        secret_env,
        timeout,
        retries,
        ref_field,
    })
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
