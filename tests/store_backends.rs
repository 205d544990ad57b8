//! The store's behaviour, the same suite on SQLite and on PostgreSQL (`scripts/pg`).

#[path = "store_support/mod.rs"]
mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use support::{count, wait_clean, Kind, TestDb};
use voxgate::store::{
    self, apply_retention, find_call, kind, CallId, NewTicket, Record, Store, StoreError,
};

/// One test body per backend: `mod sqlite { fn x() }` and `mod postgres { fn x() }`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Kind::Postgres).await } )*
        }
    };
}

on_both_backends!(
    migrate_applies_once_and_reports_versions,
    newer_schema_is_refused_with_a_clear_message,
    a_call_round_trips_with_transcript_tools_and_ticket,
    replaying_everything_twice_in_any_order_changes_nothing,
    call_ended_alone_still_makes_a_row,
    late_call_started_completes_the_stub,
    opted_out_calls_keep_no_transcripts,
    retention_deletes_only_old_events,
    a_full_queue_spills_to_the_spool_and_loses_nothing,
    ticket_retries_with_the_same_key_make_one_ticket,
    list_calls_shows_newest_first_within_the_limit,
    a_record_the_database_refuses_is_set_aside_not_retried_forever,
);

const WAIT: Duration = Duration::from_secs(30);

/// A fixed epoch so expected values are exact (µs precision, as Postgres keeps).
fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000 + secs, 0).unwrap_or_default()
}

fn started(id: CallId, sip: &str, caller: &str, at: i64, store_transcripts: bool) -> Record {
    Record::CallStarted {
        id,
        sip_call_id: sip.into(),
        caller: caller.into(),
        callee: "100".into(),
        dialplan: "acme-support".into(),
        started_at: t(at),
        codec: "PCMU".into(),
        model: "gpt-realtime".into(),
        store_transcripts,
    }
}

fn event(call_id: CallId, seq: u32, kind: &str, data: serde_json::Value) -> Record {
    Record::CallEvent {
        call_id,
        seq,
        at: t(10 + i64::from(seq)),
        kind: kind.into(),
        data,
    }
}

fn ended(id: CallId, at: i64) -> Record {
    Record::CallEnded {
        id,
        ended_at: t(at),
        end_reason: "bye".into(),
        hangup_by: Some("caller".into()),
        transfer_target: None,
        usage: json!({"input_tokens": 120, "output_tokens": 80}),
    }
}

fn a_call(id: CallId) -> Vec<Record> {
    vec![
        started(id, "abc@pbx", "+15550123", 0, true),
        Record::CallAnswered { id, at: t(2) },
        event(
            id,
            0,
            kind::TRANSCRIPT,
            json!({"role": "agent", "text": "Thanks for calling ACME."}),
        ),
        event(
            id,
            1,
            kind::TRANSCRIPT,
            json!({"role": "caller", "text": "My invoice is wrong."}),
        ),
        event(
            id,
            2,
            kind::TOOL_CALL,
            json!({"name": "create_ticket", "arguments": {"category": "billing"}}),
        ),
        event(
            id,
            3,
            kind::TOOL_RESULT,
            json!({"name": "create_ticket", "output": {"reference": "T-XXXXX"}}),
        ),
        event(id, 4, kind::DTMF, json!({"digit": "0"})),
        ended(id, 194),
    ]
}

async fn open(db: &TestDb) -> (store::StoreHandle, tokio::task::JoinHandle<()>) {
    Store::open(&db.config())
        .await
        .unwrap_or_else(|e| panic!("open: {e}"))
}

async fn close(handle: store::StoreHandle, join: tokio::task::JoinHandle<()>) {
    drop(handle);
    tokio::time::timeout(WAIT, join)
        .await
        .unwrap_or_else(|_| panic!("writer did not stop"))
        .unwrap_or_else(|e| panic!("writer panicked: {e}"));
}

async fn migrate_applies_once_and_reports_versions(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let first = store::migrate(&tdb.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((first.before, first.after), (0, 1));
    let again = store::migrate(&tdb.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.before, again.after), (1, 1));
    let db = tdb.db().await;
    assert_eq!(count(&db, "SELECT count(*) FROM calls").await, 0);
}

async fn newer_schema_is_refused_with_a_clear_message(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    store::migrate(&tdb.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db = tdb.db().await;
    let sql =
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
               VALUES (7, 'from the future', true, $1, 0)";
    match &db {
        store::Db::Postgres(p) => sqlx::query(sql)
            .bind(vec![0u8; 4])
            .execute(p)
            .await
            .map(|_| ()),
        store::Db::Sqlite(p) => sqlx::query(sql)
            .bind(vec![0u8; 4])
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let err = store::migrate(&tdb.url).await.err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "database schema version 7 is newer than this voxgate (knows up to 1): upgrade voxgate"
        )
    );
    let opened = Store::open(&tdb.config()).await;
    assert!(
        matches!(opened, Err(StoreError::SchemaTooNew { db: 7, known: 1 })),
        "{opened:?}"
    );
}

async fn a_call_round_trips_with_transcript_tools_and_ticket(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    let id = CallId::new();
    for r in a_call(id) {
        h.submit(r).unwrap_or_else(|e| panic!("{e}"));
    }
    let ticket = h
        .create_ticket(NewTicket {
            call_id: Some(id),
            created_at: t(30),
            caller: Some("+15550123".into()),
            category: "billing".into(),
            priority: "high".into(),
            summary: "Invoice 4711 is wrong".into(),
            details: Some("Charged twice in October".into()),
            ..NewTicket::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    wait_clean(&h, WAIT).await;

    let d = find_call(h.db(), &id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.call.sip_call_id.as_deref(), Some("abc@pbx"));
    assert_eq!(d.call.caller.as_deref(), Some("+15550123"));
    assert_eq!(d.call.dialplan.as_deref(), Some("acme-support"));
    assert_eq!(d.call.started_at, t(0));
    assert_eq!(d.call.answered_at, Some(t(2)));
    assert_eq!(d.call.ended_at, Some(t(194)));
    assert_eq!(d.call.end_reason.as_deref(), Some("bye"));
    assert_eq!(d.call.hangup_by.as_deref(), Some("caller"));
    assert_eq!(
        d.call.usage,
        Some(json!({"input_tokens": 120, "output_tokens": 80}))
    );
    assert_eq!(d.events.len(), 5);
    assert_eq!(
        d.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(d.events[2].data["arguments"]["category"], "billing");
    assert_eq!(d.tickets.len(), 1);
    assert_eq!(d.tickets[0].id, ticket.id);
    assert_eq!(d.tickets[0].reference, ticket.reference);
    assert_eq!(d.tickets[0].status, "open");

    // Also found by SIP Call-ID and by ticket reference.
    for key in ["abc@pbx", ticket.reference.as_str()] {
        let by = find_call(h.db(), key)
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(by.call.id, id, "{key}");
    }
    assert!(matches!(
        find_call(h.db(), "nope").await,
        Err(StoreError::NotFound(_))
    ));
    close(h, join).await;

    let mut out = Vec::new();
    store::show_call(&tdb.url, "abc@pbx", false, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out);
    for want in [
        "agent: Thanks for calling ACME.",
        "caller: My invoice is wrong.",
        "tool create_ticket({\"category\":\"billing\"})",
        "dtmf 0",
        "bye (caller)",
        ticket.reference.as_str(),
        "Invoice 4711 is wrong",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let mut out = Vec::new();
    store::show_call(&tdb.url, &id.to_string(), true, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["events"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["tickets"][0]["reference"], ticket.reference.as_str());
}

async fn replaying_everything_twice_in_any_order_changes_nothing(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    let id = CallId::new();
    let records = a_call(id);
    for r in records.iter().cloned().chain(records.iter().rev().cloned()) {
        h.submit(r).unwrap_or_else(|e| panic!("{e}"));
        // Split into several batches so the replays really are separate transactions.
        h.sync().await.unwrap_or_else(|e| panic!("{e}"));
    }
    wait_clean(&h, WAIT).await;
    let db = h.db().clone();
    assert_eq!(count(&db, "SELECT count(*) FROM calls").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM call_events").await, 5);
    let d = find_call(&db, &id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.call.started_at,
        t(0),
        "CallStarted wins over stubs whatever the order"
    );
    assert_eq!(d.call.ended_at, Some(t(194)));
    close(h, join).await;
}

async fn call_ended_alone_still_makes_a_row(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    let id = CallId::new();
    h.submit(ended(id, 50)).unwrap_or_else(|e| panic!("{e}"));
    wait_clean(&h, WAIT).await;
    let d = find_call(h.db(), &id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.call.ended_at, Some(t(50)));
    assert_eq!(d.call.end_reason.as_deref(), Some("bye"));
    assert_eq!(d.call.caller, None);
    close(h, join).await;
}

async fn late_call_started_completes_the_stub(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    let id = CallId::new();
    let mut records = a_call(id);
    let start = records.remove(0);
    for r in records {
        h.submit(r).unwrap_or_else(|e| panic!("{e}"));
    }
    wait_clean(&h, WAIT).await;
    h.submit(start).unwrap_or_else(|e| panic!("{e}"));
    wait_clean(&h, WAIT).await;
    let d = find_call(h.db(), &id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.call.caller.as_deref(), Some("+15550123"));
    assert_eq!(d.call.started_at, t(0));
    assert_eq!(d.call.answered_at, Some(t(2)));
    assert_eq!(d.call.ended_at, Some(t(194)));
    assert_eq!(d.events.len(), 5);
    close(h, join).await;
}

async fn opted_out_calls_keep_no_transcripts(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    let quiet = CallId::new();
    let mut records = a_call(quiet);
    records[0] = started(quiet, "quiet@pbx", "+15550999", 0, false);
    for r in records {
        h.submit(r).unwrap_or_else(|e| panic!("{e}"));
    }
    wait_clean(&h, WAIT).await;
    let d = find_call(h.db(), "quiet@pbx")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!d.call.store_transcripts);
    assert_eq!(
        d.events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["tool_call", "tool_result", "dtmf"]
    );
    assert_eq!(h.stats().suppressed, 2);

    // A transcript arriving by another route (e.g. an old spool, another process) is still
    // refused by the database guard.
    let (other, other_join) = open(&tdb).await;
    other
        .submit(event(
            quiet,
            9,
            kind::TRANSCRIPT,
            json!({"role": "caller", "text": "secret"}),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    wait_clean(&other, WAIT).await;
    let db = h.db().clone();
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM call_events WHERE kind = 'transcript'"
        )
        .await,
        0
    );
    close(other, other_join).await;
    close(h, join).await;
}

async fn retention_deletes_only_old_events(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    let id = CallId::new();
    let now = Utc::now();
    for (seq, age_days) in [(0u32, 40i64), (1, 31), (2, 29), (3, 0)] {
        h.submit(Record::CallEvent {
            call_id: id,
            seq,
            at: now - chrono::Duration::days(age_days),
            kind: kind::DTMF.into(),
            data: json!({"digit": "1"}),
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    wait_clean(&h, WAIT).await;
    let db = h.db().clone();
    assert_eq!(
        apply_retention(&db, 30)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        2
    );
    assert_eq!(count(&db, "SELECT count(*) FROM call_events").await, 2);
    assert_eq!(
        count(&db, "SELECT count(*) FROM calls").await,
        1,
        "calls stay"
    );
    // The periodic task runs at once, then every `every`.
    let task = store::spawn_retention(&h, 1, Duration::from_secs(3600));
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(&db, "SELECT count(*) FROM call_events").await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention task did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    close(h, join).await;
}

async fn a_full_queue_spills_to_the_spool_and_loses_nothing(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let mut cfg = tdb.config();
    cfg.queue_capacity = 8;
    cfg.batch_max = 16;
    let (h, join) = Store::open(&cfg).await.unwrap_or_else(|e| panic!("{e}"));
    let id = CallId::new();
    h.submit(started(id, "burst@pbx", "+15550100", 0, true))
        .unwrap_or_else(|e| panic!("{e}"));
    // A burst with no await in between: the writer cannot keep up, so most records overflow.
    let n = 3000u32;
    let t0 = std::time::Instant::now();
    for seq in 0..n {
        h.submit(event(id, seq, kind::DTMF, json!({"digit": "5"})))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let submit_time = t0.elapsed();
    let overflowed = h.stats().overflowed;
    assert!(overflowed > 0, "the burst should overflow the queue of 8");
    wait_clean(&h, WAIT).await;
    let db = h.db().clone();
    assert_eq!(
        count(&db, "SELECT count(*) FROM call_events").await,
        i64::from(n)
    );
    let s = h.stats();
    assert_eq!(s.submitted, u64::from(n) + 1);
    assert_eq!(s.written + s.replayed, u64::from(n) + 1 + s.spooled);
    eprintln!("{n} submits took {submit_time:?} ({overflowed} overflowed); stats {s:?}");
    close(h, join).await;
}

async fn ticket_retries_with_the_same_key_make_one_ticket(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    let id = CallId::new();
    let t1 = NewTicket {
        call_id: Some(id),
        created_at: t(5),
        category: "support".into(),
        priority: "normal".into(),
        summary: "Router broken".into(),
        idempotency_key: Some(format!("{id}/call_7")),
        ..NewTicket::default()
    };
    let a = h
        .create_ticket(t1.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let b = h
        .create_ticket(NewTicket {
            created_at: t(6),
            ..t1
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b, "same key, same id and reference");
    wait_clean(&h, WAIT).await;
    let db = h.db().clone();
    assert_eq!(count(&db, "SELECT count(*) FROM tickets").await, 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM calls").await,
        1,
        "the ticket's call exists as a stub"
    );
    close(h, join).await;
}

async fn list_calls_shows_newest_first_within_the_limit(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    for i in 0..5 {
        let id = CallId::new();
        h.submit(started(
            id,
            &format!("c{i}@pbx"),
            &format!("+1555000{i}"),
            i * 100,
            true,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        if i < 4 {
            h.submit(ended(id, i * 100 + 65))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    wait_clean(&h, WAIT).await;
    close(h, join).await;

    let mut out = Vec::new();
    store::list_calls(&tdb.url, 3, false, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("TIME (UTC)") && lines[0].contains("OUTCOME"),
        "{text}"
    );
    assert!(
        lines[1].contains("+15550004") && lines[1].ends_with("in progress"),
        "{text}"
    );
    assert!(
        lines[2].contains("+15550003")
            && lines[2].contains("1m05s")
            && lines[2].ends_with("bye (caller)"),
        "{text}"
    );
    let mut out = Vec::new();
    store::list_calls(&tdb.url, 10, true, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.as_array().map(Vec::len), Some(5));
    assert_eq!(v[0]["sip_call_id"], "c4@pbx");
}

async fn a_record_the_database_refuses_is_set_aside_not_retried_forever(kind: Kind) {
    let Some(tdb) = TestDb::new(kind).await else {
        return;
    };
    let (h, join) = open(&tdb).await;
    let id = CallId::new();
    h.submit(started(id, "poison@pbx", "+15550100", 0, true))
        .unwrap_or_else(|e| panic!("{e}"));
    // Postgres refuses a NUL character in jsonb (SQLSTATE 22P05); SQLite stores it.
    h.submit(event(
        id,
        0,
        kind::ERROR,
        json!({"message": "bad\u{0}byte"}),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    for seq in 1..20 {
        h.submit(event(id, seq, kind::DTMF, json!({"digit": "1"})))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    wait_clean(&h, WAIT).await;
    let db = h.db().clone();
    assert_eq!(
        count(&db, "SELECT count(*) FROM call_events WHERE kind = 'dtmf'").await,
        19
    );
    if kind == Kind::Postgres {
        assert_eq!(h.stats().rejected, 1);
        let rejected: Vec<_> = std::fs::read_dir(tdb.spool_dir())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            rejected.iter().any(|n| n.starts_with("rejected-")),
            "{rejected:?}"
        );
    }
    close(h, join).await;
}
