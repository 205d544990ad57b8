//! The `agent` section (instructions, voice, turn detection, tools) and the `webhooks` it may
//! call.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::ctx::{join, Ctx, Fields};
use super::super::plan::*;
use super::super::problem::did_you_mean;
use super::super::values::{check_language, check_name, check_url, VOICES};
use super::super::webhook::json_parameters;
use super::super::yaml::{Node, Pos};
use super::{AGENT, TURN, WEBHOOK};

pub(super) fn webhooks(ctx: &mut Ctx<'_>, node: &Node) -> BTreeMap<String, Webhook> {
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
        let secret_env = f
            .get("secret_env")
            .map(|n| super::sections::env_name(ctx, n, &join(&path, "secret_env")));
        if let Some(None) = secret_env {
            continue;
        }
        let secret_env = secret_env.flatten();
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
                    secret_env,
                },
            );
        }
    }
    out
}

pub(super) fn agent(
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
    for name in placeholders(text) {
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
