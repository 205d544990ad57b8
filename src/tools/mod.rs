//! Function-call handlers: what the agent can do besides talking.
//!
//! - [`definitions`] turns a dialplan's `agent.tools` into the name, description and JSON
//!   Schema the model sees.
//! - [`parse_call`] checks a call from the model (tool enabled, JSON arguments valid against
//!   the schema) and says what the call task must do ([`Invocation`]). A bad call is an `Err`
//!   with a message for the model, so it can retry; never a panic.
//! - [`ticket`] builds tickets and forwards them to a ticketing system; [`http`] sends
//!   webhook requests (signed, retried, size-limited).
//!
//! Call control (transfer, end call) is carried out by the call task: it owns the SIP dialog
//! and the playout. This module knows nothing of SIP, RTP or the model's wire protocol.

use serde_json::{json, Value};

use crate::dialplan::{Dialplan, Tool};

pub mod http;
pub mod schema;
pub mod ticket;

pub use ticket::TicketArgs;

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    /// Function name.
    pub name: String,
    /// When to use it and how, for the model.
    pub description: String,
    /// JSON Schema (object) of its arguments.
    pub parameters: Value,
}

/// What the call task must do for a validated function call.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// File a ticket.
    CreateTicket(TicketArgs),
    /// Hand the caller to a human.
    Transfer {
        /// One line for the human, from the agent.
        reason: Option<String>,
    },
    /// Say goodbye and hang up.
    EndCall {
        /// Why, from the agent (for the call log).
        reason: Option<String>,
    },
    /// Call a webhook tool with these arguments.
    Webhook {
        /// The tool name.
        name: String,
        /// Validated arguments.
        args: Value,
    },
}

/// The tool definitions for `plan`'s agent, in the order the dialplan lists them.
pub fn definitions(plan: &Dialplan) -> Vec<ToolDef> {
    plan.agent
        .tools
        .iter()
        .filter_map(|t| definition(plan, t))
        .collect()
}

fn definition(plan: &Dialplan, tool: &Tool) -> Option<ToolDef> {
    let (description, parameters) = match tool {
        Tool::CreateTicket => (
            "File a support ticket so a person follows up. Use it when you cannot solve the \
             caller's problem yourself. It returns the ticket reference: read it to the caller, \
             character by character."
                .to_string(),
            create_ticket_schema(),
        ),
        Tool::TransferToHuman => (
            "Transfer the caller to a human colleague. Use it when the caller asks for a person \
             or you cannot help. Do not say anything before calling it: the hand-off line is \
             spoken for you."
                .to_string(),
            reason_schema("One line for the colleague: why the caller needs a person."),
        ),
        Tool::EndCall => (
            "End the call. Say a short goodbye first, then call this.".to_string(),
            reason_schema("Why the call ends, e.g. 'caller's question answered'."),
        ),
        Tool::Webhook(name) => {
            let w = plan.webhooks.get(name)?;
            (w.description.clone(), w.parameters.clone())
        }
    };
    Some(ToolDef {
        name: tool.name().to_string(),
        description,
        parameters,
    })
}

/// The arguments of `create_ticket`.
pub fn create_ticket_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "summary": { "type": "string", "minLength": 3, "maxLength": 200,
                         "description": "One line: what the caller needs." },
            "details": { "type": "string", "maxLength": 4000,
                         "description": "Everything a colleague needs to follow up." },
            "category": { "type": "string", "maxLength": 64,
                          "description": "Category, e.g. billing or delivery; omit for the line's default." },
            "priority": { "type": "string", "enum": ["low", "normal", "high", "urgent"],
                          "description": "Omit for the line's default." }
        },
        "required": ["summary"],
        "additionalProperties": false
    })
}

fn reason_schema(what: &str) -> Value {
    json!({
        "type": "object",
        "properties": { "reason": { "type": "string", "maxLength": 200, "description": what } },
        "additionalProperties": false
    })
}

/// Checks a function call from the model against `plan`: the tool must be enabled and the
/// arguments valid JSON matching its schema. The error is written for the model.
pub fn parse_call(plan: &Dialplan, name: &str, arguments: &str) -> Result<Invocation, String> {
    let Some(tool) = plan.agent.tools.iter().find(|t| t.name() == name) else {
        let names: Vec<&str> = plan.agent.tools.iter().map(Tool::name).collect();
        return Err(format!(
            "there is no tool '{name}' on this line; available: {}",
            names.join(", ")
        ));
    };
    let args: Value = if arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(arguments)
            .map_err(|e| format!("the arguments are not valid JSON ({e}); send a JSON object"))?
    };
    let def = definition(plan, tool).ok_or_else(|| format!("tool '{name}' is not configured"))?;
    schema::validate(&args, &def.parameters)?;
    let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(match tool {
        Tool::CreateTicket => Invocation::CreateTicket(TicketArgs {
            summary: text("summary").unwrap_or_default(),
            details: text("details"),
            category: text("category"),
            priority: text("priority"),
        }),
        Tool::TransferToHuman => Invocation::Transfer {
            reason: text("reason"),
        },
        Tool::EndCall => Invocation::EndCall {
            reason: text("reason"),
        },
        Tool::Webhook(n) => Invocation::Webhook {
            name: n.clone(),
            args,
        },
    })
}

/// The secret named by `env`, read when needed; `Err` names the variable, never a value.
pub fn secret_from_env(env: &str) -> Result<Vec<u8>, String> {
    match std::env::var(env) {
        Ok(v) if !v.is_empty() => Ok(v.into_bytes()),
        _ => Err(format!("the signing secret variable {env} is not set")),
    }
}

/// The output for a failed tool call, as the model receives it.
pub fn error_output(message: &str) -> String {
    json!({ "ok": false, "error": message }).to_string()
}

/// A webhook tool's request for these validated arguments.
pub fn webhook_request(
    plan: &Dialplan,
    name: &str,
    args: Value,
    idempotency_key: String,
) -> Result<http::Request, String> {
    use crate::dialplan::Method as M;
    let w = plan
        .webhooks
        .get(name)
        .ok_or_else(|| format!("tool '{name}' is not configured"))?;
    let secret = match &w.secret_env {
        Some(env) => Some(secret_from_env(env)?),
        None => None,
    };
    Ok(http::Request {
        url: w.url.clone(),
        method: match w.method {
            M::Get => http::Method::Get,
            M::Post => http::Method::Post,
            M::Put => http::Method::Put,
            M::Patch => http::Method::Patch,
        },
        headers: w.headers.clone(),
        json: args,
        secret,
        idempotency_key: Some(idempotency_key),
        timeout: w.timeout,
        // A look-up is retried only within its own time limit's budget: once.
        retries: 0,
        backoff: std::time::Duration::from_millis(250),
    })
}

/// The model's view of a webhook answer: status and (size-limited) body.
pub fn webhook_output(reply: &http::Reply) -> String {
    let mut out = json!({
        "ok": reply.is_success(),
        "status": reply.status,
        "body": reply.body_value(),
    });
    if reply.truncated {
        out["note"] = json!(format!("the answer was cut at {} bytes", http::MAX_BODY));
    }
    out.to_string()
}

#[cfg(test)]
mod tests;
