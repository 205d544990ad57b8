use std::sync::Arc;

use super::*;
use crate::dialplan::{Dialplan, DialplanSet};

fn plan() -> Arc<Dialplan> {
    let dir = std::env::temp_dir().join(format!("voxgate-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("line.yaml");
    std::fs::write(
        &file,
        r#"
name: line
match: { numbers: ["100"] }
agent:
  instructions: help
  tools: [create_ticket, transfer_to_human, end_call, lookup_order]
tickets:
  category: support
  priority: high
  webhook: { url: "http://127.0.0.1:9/t", secret_env: VOXGATE_TEST_UNSET_SECRET, retries: 2 }
transfer:
  to: "sip:queue@pbx.example.com"
  headers: { ticket: X-Ticket-Id }
webhooks:
  lookup_order:
    description: Look up an order.
    url: http://127.0.0.1:9/lookup
    parameters:
      type: object
      properties:
        order_number: { type: string }
      required: [order_number]
"#,
    )
    .expect("write plan");
    let set = DialplanSet::load(&[file]).expect("valid plan");
    set.get("line").expect("plan").clone()
}

#[test]
fn definitions_follow_the_dialplan_order() {
    let p = plan();
    let names: Vec<String> = definitions(&p).into_iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "create_ticket",
            "transfer_to_human",
            "end_call",
            "lookup_order"
        ]
    );
    let t = p.transfer.as_ref().expect("transfer");
    assert_eq!(
        (t.ticket_header.as_str(), t.reason_header.as_str()),
        ("X-Ticket-Id", "X-Voxgate-Reason")
    );
    let hook = p.tickets.webhook.as_ref().expect("ticket webhook");
    assert_eq!((hook.retries, hook.ref_field.as_str()), (2, "id"));
}

#[test]
fn calls_are_checked_and_explained() {
    let p = plan();
    let table: [(&str, &str, Result<Invocation, &str>); 7] = [
        (
            "create_ticket",
            r#"{"summary":"Router broken"}"#,
            Ok(Invocation::CreateTicket(TicketArgs {
                summary: "Router broken".into(),
                ..TicketArgs::default()
            })),
        ),
        (
            "create_ticket",
            r#"{"summary":"Router broken","priority":"whenever"}"#,
            Err("'priority' must be one of \"low\", \"normal\", \"high\", \"urgent\""),
        ),
        (
            "create_ticket",
            "{not json",
            Err("the arguments are not valid JSON"),
        ),
        (
            "transfer_to_human",
            r#"{"reason":"wants a person"}"#,
            Ok(Invocation::Transfer {
                reason: Some("wants a person".into()),
            }),
        ),
        ("end_call", "", Ok(Invocation::EndCall { reason: None })),
        (
            "lookup_order",
            r#"{"order":"A-1"}"#,
            Err("missing required argument 'order_number'"),
        ),
        (
            "delete_everything",
            "{}",
            Err("there is no tool 'delete_everything' on this line; available: create_ticket, transfer_to_human, end_call, lookup_order"),
        ),
    ];
    for (name, args, want) in table {
        match (parse_call(&p, name, args), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{name} {args}"),
            (Err(got), Err(want)) => assert!(got.starts_with(want), "{name} {args}: {got}"),
            (got, want) => panic!("{name} {args}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn tickets_take_the_line_defaults_and_are_idempotent() {
    let p = plan();
    let call = crate::store::CallId::new();
    let args = TicketArgs {
        summary: "No dial tone".into(),
        ..TicketArgs::default()
    };
    let a = ticket::new_ticket(&p.tickets, args.clone(), call, "+4930", "k1".into());
    assert_eq!(
        (a.category.as_str(), a.priority.as_str()),
        ("support", "high")
    );
    let (id1, _) = a.into_record();
    let (id2, _) = ticket::new_ticket(&p.tickets, args, call, "+4930", "k1".into()).into_record();
    assert_eq!(id1, id2, "same key, same ticket");
}

#[test]
fn a_missing_secret_is_an_error_naming_the_variable_only() {
    let p = plan();
    let hook = p.tickets.webhook.as_ref().expect("hook");
    let (_, rec) = ticket::new_ticket(
        &p.tickets,
        TicketArgs {
            summary: "x".repeat(5),
            ..TicketArgs::default()
        },
        crate::store::CallId::new(),
        "",
        "k".into(),
    )
    .into_record();
    let crate::store::Record::Ticket(t) = rec else {
        panic!("ticket record")
    };
    let err = ticket::forward_request(hook, &t).expect_err("secret unset");
    assert_eq!(
        err,
        "the signing secret variable VOXGATE_TEST_UNSET_SECRET is not set"
    );
}

#[test]
fn webhook_answers_are_size_limited() {
    let reply = http::Reply {
        status: 200,
        body: br#"{"status":"shipped"}"#.to_vec(),
        truncated: true,
        attempts: 1,
    };
    let out: serde_json::Value = serde_json::from_str(&webhook_output(&reply)).expect("json");
    assert_eq!(out["body"]["status"], "shipped");
    assert_eq!(out["ok"], true);
    assert!(out["note"].as_str().is_some_and(|n| n.contains("16384")));
}
