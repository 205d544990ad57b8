//! Tickets: built from the agent's arguments (or a `ticket` action) with the line's defaults,
//! stored at once so the reference can be read to the caller, and optionally forwarded to an
//! external ticketing system.
//!
//! Forwarding is a signed JSON POST with `Idempotency-Key` = the ticket id, retried with
//! doubling pauses on network errors, 429 and 5xx: a retry never makes two tickets at a
//! receiver that honours the key. The external reference from the answer is stored by
//! re-submitting the same ticket (the store upserts `external_ref`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::dialplan::{TicketDefaults, TicketWebhook};
use crate::store::record::{NewTicket, TicketRecord};
use crate::store::CallId;

use super::http;

/// What the agent supplies for `create_ticket`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TicketArgs {
    /// One-line summary.
    pub summary: String,
    /// Longer details.
    pub details: Option<String>,
    /// Category; `None` for the line's default.
    pub category: Option<String>,
    /// Priority; `None` for the line's default.
    pub priority: Option<String>,
}

/// A ticket for this call, with the line's defaults filled in. `key` makes it idempotent
/// (a retried tool call gets the same ticket).
pub fn new_ticket(
    defaults: &TicketDefaults,
    args: TicketArgs,
    call_id: CallId,
    caller: &str,
    key: String,
) -> NewTicket {
    NewTicket {
        call_id: Some(call_id),
        created_at: chrono::Utc::now(),
        caller: (!caller.is_empty()).then(|| caller.to_string()),
        category: args
            .category
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| defaults.category.clone()),
        priority: args
            .priority
            .unwrap_or_else(|| defaults.priority.as_str().to_string()),
        summary: args.summary,
        details: args.details,
        external_ref: None,
        idempotency_key: Some(key),
    }
}

/// The JSON body sent to the ticketing system.
pub fn forward_body(t: &TicketRecord) -> Value {
    json!({
        "id": t.id,
        "reference": t.reference,
        "call_id": t.call_id.map(|c| c.0),
        "created_at": t.created_at,
        "caller": t.caller,
        "category": t.category,
        "priority": t.priority,
        "summary": t.summary,
        "details": t.details,
        "status": t.status,
    })
}

/// The forwarding request for ticket `t`.
pub fn forward_request(hook: &TicketWebhook, t: &TicketRecord) -> Result<http::Request, String> {
    let secret = match &hook.secret_env {
        Some(env) => Some(super::secret_from_env(env)?),
        None => None,
    };
    Ok(http::Request {
        url: hook.url.clone(),
        method: http::Method::Post,
        headers: hook.headers.clone(),
        json: forward_body(t),
        secret,
        idempotency_key: Some(t.id.to_string()),
        timeout: hook.timeout,
        retries: hook.retries,
        backoff: Duration::from_millis(250),
    })
}

/// Posts ticket `t`; returns the external reference (`ref_field` of a 2xx JSON answer).
pub async fn forward(
    client: &reqwest::Client,
    hook: &TicketWebhook,
    t: &TicketRecord,
) -> Result<Option<String>, String> {
    let req = forward_request(hook, t)?;
    let reply = http::send(client, &req).await.map_err(|e| e.to_string())?;
    if !reply.is_success() {
        return Err(format!(
            "the ticketing system answered HTTP {} after {} attempts",
            reply.status, reply.attempts
        ));
    }
    Ok(match reply.body_value().get(&hook.ref_field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}
