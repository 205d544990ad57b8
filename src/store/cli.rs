//! Reading the call log back for `voxgate calls`: a table of recent calls, and one call with its
//! transcript, tool calls and tickets. Output goes to a `&mut dyn Write` (stdout in `main`, a
//! buffer in tests), as text for people or JSON for scripts.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::db::{on_db, Db};
use super::record::{kind, CallId};
use super::StoreError;

/// One row of `calls`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRow {
    /// Our id.
    pub id: CallId,
    /// SIP Call-ID (None for a stub whose CallStarted has not arrived).
    pub sip_call_id: Option<String>,
    /// Caller.
    pub caller: Option<String>,
    /// Called number.
    pub callee: Option<String>,
    /// Dialplan name.
    pub dialplan: Option<String>,
    /// Start (INVITE accepted).
    pub started_at: DateTime<Utc>,
    /// Answer.
    pub answered_at: Option<DateTime<Utc>>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Who hung up.
    pub hangup_by: Option<String>,
    /// Codec.
    pub codec: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Transfer target.
    pub transfer_target: Option<String>,
    /// Usage (token counts).
    pub usage: Option<serde_json::Value>,
    /// Whether transcripts are kept for this call.
    pub store_transcripts: bool,
}

impl CallRow {
    /// Talk time: end minus answer (or start, if never answered); None while in progress.
    pub fn duration(&self) -> Option<chrono::Duration> {
        let from = self.answered_at.unwrap_or(self.started_at);
        self.ended_at.map(|end| end - from)
    }

    /// One phrase for the table: `bye (caller)`, `transferred to sip:…`, `in progress`.
    pub fn outcome(&self) -> String {
        let Some(reason) = &self.end_reason else {
            return if self.ended_at.is_some() {
                "ended"
            } else {
                "in progress"
            }
            .to_owned();
        };
        let mut s = reason.clone();
        if let Some(by) = &self.hangup_by {
            s.push_str(&format!(" ({by})"));
        }
        if let Some(t) = &self.transfer_target {
            s.push_str(&format!(" → {t}"));
        }
        s
    }
}

/// One row of `call_events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// Sequence number within the call.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Kind (see [`kind`]).
    pub kind: String,
    /// Details.
    pub data: serde_json::Value,
}

/// One row of `tickets`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketRow {
    /// Id.
    pub id: Uuid,
    /// Human reference.
    pub reference: String,
    /// Opened at.
    pub created_at: DateTime<Utc>,
    /// Caller.
    pub caller: Option<String>,
    /// Category.
    pub category: String,
    /// Priority.
    pub priority: String,
    /// Summary.
    pub summary: String,
    /// Details.
    pub details: Option<String>,
    /// Status.
    pub status: String,
    /// External reference.
    pub external_ref: Option<String>,
}

/// A call with its events (by `seq`) and tickets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallDetail {
    /// The call.
    pub call: CallRow,
    /// Its events, in order.
    pub events: Vec<EventRow>,
    /// Its tickets, oldest first.
    pub tickets: Vec<TicketRow>,
}

/// Reads a uuid column the way each backend stores it.
trait UuidColumn {
    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error>;
}

impl UuidColumn for sqlx::postgres::PgRow {
    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error> {
        self.try_get(col)
    }
}

impl UuidColumn for sqlx::sqlite::SqliteRow {
    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error> {
        self.try_get::<uuid::fmt::Hyphenated, _>(col)
            .map(Uuid::from)
    }
}

macro_rules! call_row {
    ($r:expr) => {{
        let r = $r;
        CallRow {
            id: CallId(r.uuid("id")?),
            sip_call_id: r.try_get("sip_call_id")?,
            caller: r.try_get("caller")?,
            callee: r.try_get("callee")?,
            dialplan: r.try_get("dialplan")?,
            started_at: r.try_get("started_at")?,
            answered_at: r.try_get("answered_at")?,
            ended_at: r.try_get("ended_at")?,
            end_reason: r.try_get("end_reason")?,
            hangup_by: r.try_get("hangup_by")?,
            codec: r.try_get("codec")?,
            model: r.try_get("model")?,
            transfer_target: r.try_get("transfer_target")?,
            usage: r
                .try_get::<Option<Json<serde_json::Value>>, _>("usage")?
                .map(|j| j.0),
            store_transcripts: r.try_get("store_transcripts")?,
        }
    }};
}

const CALL_COLUMNS: &str = "id, sip_call_id, caller, callee, dialplan, started_at, answered_at, \
    ended_at, end_reason, hangup_by, codec, model, transfer_target, usage, store_transcripts";

/// The `limit` most recent calls, newest first.
pub async fn recent_calls(db: &Db, limit: u32) -> Result<Vec<CallRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {CALL_COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT $1"
    ));
    let rows = on_db!(db, p, _u => {
        let rows = sqlx::query(sql).bind(i64::from(limit)).fetch_all(p).await?;
        rows.iter().map(|r| Ok(call_row!(r))).collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows)
}

/// One call by our id, its SIP Call-ID (latest such call) or a ticket reference (`T-…`).
pub async fn find_call(db: &Db, key: &str) -> Result<CallDetail, StoreError> {
    let key = key.trim();
    let by_id = Uuid::parse_str(key).ok();
    let detail = on_db!(db, p, uid => {
        let call_sql = sqlx::AssertSqlSafe(format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE id = $1 OR sip_call_id = $2 \
             OR id = (SELECT call_id FROM tickets WHERE reference = $2 ORDER BY created_at DESC LIMIT 1) \
             ORDER BY (id = $1) DESC, started_at DESC LIMIT 1"
        ));
        let row = sqlx::query(call_sql)
            .bind(by_id.map(uid))
            .bind(key)
            .fetch_optional(p)
            .await?;
        let Some(row) = row else { return Err(StoreError::NotFound(key.to_owned())) };
        let call = call_row!(&row);
        let events = sqlx::query("SELECT seq, at, kind, data FROM call_events WHERE call_id = $1 ORDER BY seq")
            .bind(uid(call.id.0))
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    data: r.try_get::<Json<serde_json::Value>, _>("data")?.0,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let tickets = sqlx::query(
            "SELECT id, reference, created_at, caller, category, priority, summary, details, status, \
             external_ref FROM tickets WHERE call_id = $1 ORDER BY created_at, id",
        )
        .bind(uid(call.id.0))
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            Ok(TicketRow {
                id: r.uuid("id")?,
                reference: r.try_get("reference")?,
                created_at: r.try_get("created_at")?,
                caller: r.try_get("caller")?,
                category: r.try_get("category")?,
                priority: r.try_get("priority")?,
                summary: r.try_get("summary")?,
                details: r.try_get("details")?,
                status: r.try_get("status")?,
                external_ref: r.try_get("external_ref")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        CallDetail { call, events, tickets }
    });
    Ok(detail)
}

/// `voxgate calls [--limit N]`: recent calls as a table (time, caller, callee, plan, duration,
/// outcome) or as a JSON array.
pub async fn list_calls(
    url: &str,
    limit: u32,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), StoreError> {
    let db = Db::connect(url).await?;
    let calls = recent_calls(&db, limit).await;
    db.close().await;
    write_calls(&calls?, json, out)
}

/// `voxgate calls ID`: one call (by id, SIP Call-ID or ticket reference) with its transcript,
/// tool calls and tickets, as text or JSON.
pub async fn show_call(
    url: &str,
    id_or_sip_call_id: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), StoreError> {
    let db = Db::connect(url).await?;
    let detail = find_call(&db, id_or_sip_call_id).await;
    db.close().await;
    write_call(&detail?, json, out)
}

/// Renders a list of calls.
pub fn write_calls(calls: &[CallRow], json: bool, out: &mut dyn Write) -> Result<(), StoreError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, calls).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if calls.is_empty() {
        writeln!(out, "no calls")?;
        return Ok(());
    }
    let rows: Vec<[String; 6]> = calls
        .iter()
        .map(|c| {
            [
                c.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                opt(&c.caller),
                opt(&c.callee),
                opt(&c.dialplan),
                c.duration().map_or_else(|| "-".to_owned(), fmt_duration),
                c.outcome(),
            ]
        })
        .collect();
    let head = [
        "TIME (UTC)",
        "CALLER",
        "CALLEE",
        "PLAN",
        "DURATION",
        "OUTCOME",
    ];
    let mut widths = head.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6], out: &mut dyn Write| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 5 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(head, out)?;
    for row in &rows {
        line(row.each_ref().map(String::as_str), out)?;
    }
    Ok(())
}

/// Renders one call with its transcript, events and tickets.
pub fn write_call(d: &CallDetail, json: bool, out: &mut dyn Write) -> Result<(), StoreError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, d).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let c = &d.call;
    let ts = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    writeln!(out, "call      {}", c.id)?;
    writeln!(out, "sip       {}", opt(&c.sip_call_id))?;
    writeln!(out, "from      {}", opt(&c.caller))?;
    writeln!(out, "to        {}", opt(&c.callee))?;
    writeln!(out, "plan      {}", opt(&c.dialplan))?;
    writeln!(out, "started   {}", ts(&c.started_at))?;
    if let Some(t) = &c.answered_at {
        writeln!(out, "answered  {}", ts(t))?;
    }
    if let Some(t) = &c.ended_at {
        let dur = c.duration().map(fmt_duration).unwrap_or_default();
        writeln!(out, "ended     {} ({dur})", ts(t))?;
    }
    writeln!(out, "outcome   {}", c.outcome())?;
    writeln!(out, "media     {} / {}", opt(&c.codec), opt(&c.model))?;
    if let Some(u) = &c.usage {
        writeln!(out, "usage     {u}")?;
    }
    if !c.store_transcripts {
        writeln!(out, "          (transcripts not stored for this call)")?;
    }
    writeln!(out)?;
    if d.events.is_empty() {
        writeln!(out, "no events")?;
    }
    for e in &d.events {
        writeln!(out, "{}  {}", e.at.format("%H:%M:%S"), event_line(e))?;
    }
    if !d.tickets.is_empty() {
        writeln!(out)?;
        writeln!(out, "tickets")?;
        for t in &d.tickets {
            writeln!(
                out,
                "  {}  {} / {}  {}  {}",
                t.reference, t.category, t.priority, t.status, t.summary
            )?;
            if let Some(x) = &t.external_ref {
                writeln!(out, "      external: {x}")?;
            }
        }
    }
    Ok(())
}

/// One event as a transcript line: `caller: …`, `agent: …`, `tool create_ticket(…)`, …
fn event_line(e: &EventRow) -> String {
    let s = |k: &str| e.data.get(k).and_then(|v| v.as_str());
    match e.kind.as_str() {
        kind::TRANSCRIPT => {
            let who = match s("role") {
                Some("user" | "caller") => "caller",
                Some("assistant" | "agent") => "agent",
                Some(other) => other,
                None => "?",
            };
            format!("{who}: {}", s("text").unwrap_or(""))
        }
        kind::TOOL_CALL => {
            let args = e.data.get("arguments").map(compact).unwrap_or_default();
            format!("tool {}({args})", s("name").unwrap_or("?"))
        }
        kind::TOOL_RESULT => {
            let output = e.data.get("output").map(compact).unwrap_or_default();
            format!("tool {} → {output}", s("name").unwrap_or("?"))
        }
        kind::DTMF => format!("dtmf {}", s("digit").unwrap_or("?")),
        other => format!("[{other}] {}", compact(&e.data)),
    }
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "?".to_owned())
}

fn fmt_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap_or_default()
    }

    fn call() -> CallRow {
        CallRow {
            id: CallId(Uuid::nil()),
            sip_call_id: Some("abc@pbx".into()),
            caller: Some("+15550123".into()),
            callee: Some("100".into()),
            dialplan: Some("acme-support".into()),
            started_at: at(0),
            answered_at: Some(at(2)),
            ended_at: Some(at(194)),
            end_reason: Some("bye".into()),
            hangup_by: Some("caller".into()),
            codec: Some("PCMU".into()),
            model: Some("gpt-realtime".into()),
            transfer_target: None,
            usage: None,
            store_transcripts: true,
        }
    }

    #[test]
    fn table_has_the_columns_and_outcome() {
        let mut out = Vec::new();
        let mut live = call();
        live.ended_at = None;
        live.end_reason = None;
        write_calls(&[call(), live], false, &mut out).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TIME (UTC)"), "{text}");
        assert!(lines[1].contains("+15550123") && lines[1].contains("acme-support"));
        assert!(
            lines[1].contains("3m12s") && lines[1].ends_with("bye (caller)"),
            "{text}"
        );
        assert!(lines[2].ends_with("in progress"), "{text}");
    }

    #[test]
    fn transcript_lines_name_the_speaker() {
        let ev = |kind: &str, data| EventRow {
            seq: 0,
            at: at(0),
            kind: kind.into(),
            data,
        };
        use serde_json::json;
        assert_eq!(
            event_line(&ev("transcript", json!({"role":"user","text":"hi"}))),
            "caller: hi"
        );
        assert_eq!(
            event_line(&ev("transcript", json!({"role":"agent","text":"yo"}))),
            "agent: yo"
        );
        assert_eq!(
            event_line(&ev("tool_call", json!({"name":"end_call","arguments":{}}))),
            "tool end_call({})"
        );
        assert_eq!(event_line(&ev("dtmf", json!({"digit":"0"}))), "dtmf 0");
    }
}
