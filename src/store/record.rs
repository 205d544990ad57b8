//! What the call flow writes to the call log: one [`Record`] per fact, each idempotent.
//!
//! Records are plain data, serialisable as they are (the spool stores them as JSON lines). Every
//! record carries the key it is written under (`CallId`, `(CallId, seq)`, `TicketId`), so writing
//! one twice, or in another order than it was made, gives the same rows. Times are the caller's:
//! this module never reads the clock except to stamp a new ticket id's uuid v7 with `created_at`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Our record id of one call (uuid v7); not the SIP Call-ID header, which is `sip_call_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub Uuid);

impl CallId {
    /// A fresh, time-ordered id (uuid v7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for CallId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Well-known values of [`Record::CallEvent`]'s `kind` (others are stored as given).
pub mod kind {
    /// `data: {"role": "caller"|"agent", "text": "…"}`; dropped when the call's
    /// `store_transcripts` is false.
    pub const TRANSCRIPT: &str = "transcript";
    /// `data: {"name": "…", "arguments": {…}, "call_id": "…"}`.
    pub const TOOL_CALL: &str = "tool_call";
    /// `data: {"name": "…", "output": …}`.
    pub const TOOL_RESULT: &str = "tool_result";
    /// `data: {"digit": "0"}`.
    pub const DTMF: &str = "dtmf";
    /// `data: {"target": "sip:…", "status": …}`.
    pub const TRANSFER: &str = "transfer";
    /// `data: {"message": "…", …}`.
    pub const ERROR: &str = "error";
}

/// One fact for the call log; see the module docs for the idempotency rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A call was accepted (written as an upsert: completes a stub made by later records).
    CallStarted {
        /// Our id for the call.
        id: CallId,
        /// The SIP Call-ID header value.
        sip_call_id: String,
        /// Caller (From user or number).
        caller: String,
        /// Called number (Request-URI user).
        callee: String,
        /// Name of the dialplan that took the call.
        dialplan: String,
        /// When the INVITE was accepted.
        started_at: DateTime<Utc>,
        /// Negotiated codec, e.g. `PCMU`.
        codec: String,
        /// Model name used for the call.
        model: String,
        /// Privacy switch: false = `transcript` events of this call are never stored.
        store_transcripts: bool,
    },
    /// The call was answered (200 OK / ACK).
    CallAnswered {
        /// The call.
        id: CallId,
        /// When it was answered.
        at: DateTime<Utc>,
    },
    /// Something happened in a call; `(call_id, seq)` is the idempotency key.
    CallEvent {
        /// The call.
        call_id: CallId,
        /// Per-call sequence number assigned by the call task (0, 1, 2, …).
        seq: u32,
        /// When it happened.
        at: DateTime<Utc>,
        /// What happened; see [`kind`].
        kind: String,
        /// Details, shaped by `kind`.
        data: serde_json::Value,
    },
    /// The call ended; makes a row even when `CallStarted` never arrived.
    CallEnded {
        /// The call.
        id: CallId,
        /// When it ended.
        ended_at: DateTime<Utc>,
        /// Why: `bye`, `max_duration`, `silence`, `transferred`, `model_failure`, …
        end_reason: String,
        /// Who hung up: `caller`, `agent` or `system`.
        hangup_by: Option<String>,
        /// Where the call was transferred to, if it was.
        transfer_target: Option<String>,
        /// Token counts and other usage, summed by the caller.
        usage: serde_json::Value,
    },
    /// A ticket (built by [`NewTicket::into_record`]).
    Ticket(TicketRecord),
}

impl Record {
    /// The call this record belongs to, if any.
    pub fn call_id(&self) -> Option<CallId> {
        match self {
            Record::CallStarted { id, .. }
            | Record::CallAnswered { id, .. }
            | Record::CallEnded { id, .. } => Some(*id),
            Record::CallEvent { call_id, .. } => Some(*call_id),
            Record::Ticket(t) => t.call_id,
        }
    }
}

/// A ticket as stored; `id` and `reference` are made client-side so the caller gets them at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// Ticket id (uuid v7, or derived from `idempotency_key`).
    pub id: Uuid,
    /// Short human reference read to the caller, e.g. `T-7K3Q9`.
    pub reference: String,
    /// The call that opened it.
    pub call_id: Option<CallId>,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// Caller number or name.
    pub caller: Option<String>,
    /// Category chosen by the agent or the dialplan.
    pub category: String,
    /// Priority, e.g. `low`, `normal`, `high`.
    pub priority: String,
    /// One-line summary.
    pub summary: String,
    /// Longer details.
    pub details: Option<String>,
    /// Status; new tickets are `open`.
    pub status: String,
    /// Reference in an external ticket system, if forwarded.
    pub external_ref: Option<String>,
    /// Dedup key (e.g. `"{call_id}/{tool_call_id}"`): same key, same ticket.
    pub idempotency_key: Option<String>,
}

/// What the agent knows when it opens a ticket; see [`crate::store::StoreHandle::create_ticket`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewTicket {
    /// The call that opens it.
    pub call_id: Option<CallId>,
    /// When (the caller's clock).
    pub created_at: DateTime<Utc>,
    /// Caller number or name.
    pub caller: Option<String>,
    /// Category.
    pub category: String,
    /// Priority.
    pub priority: String,
    /// One-line summary.
    pub summary: String,
    /// Longer details.
    pub details: Option<String>,
    /// Reference in an external system, if any.
    pub external_ref: Option<String>,
    /// Dedup key: a retried tool call with the same key gets the same id and reference.
    pub idempotency_key: Option<String>,
}

/// The id of a ticket and the short reference the agent reads to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TicketId {
    /// Database id.
    pub id: Uuid,
    /// Human reference, `T-` and five Crockford base-32 characters.
    pub reference: String,
}

impl NewTicket {
    /// Assigns the id and reference and makes the record to submit.
    pub fn into_record(self) -> (TicketId, Record) {
        let id = match &self.idempotency_key {
            Some(key) => uuid::Builder::from_custom_bytes(fnv1a_128(key.as_bytes()).to_be_bytes())
                .into_uuid(),
            None => {
                let secs = u64::try_from(self.created_at.timestamp()).unwrap_or(0);
                let ts = uuid::Timestamp::from_unix(
                    uuid::NoContext,
                    secs,
                    self.created_at.timestamp_subsec_nanos(),
                );
                Uuid::new_v7(ts)
            }
        };
        let reference = ticket_reference(id);
        let ticket_id = TicketId {
            id,
            reference: reference.clone(),
        };
        let record = Record::Ticket(TicketRecord {
            id,
            reference,
            call_id: self.call_id,
            created_at: self.created_at,
            caller: self.caller,
            category: self.category,
            priority: self.priority,
            summary: self.summary,
            details: self.details,
            status: "open".to_owned(),
            external_ref: self.external_ref,
            idempotency_key: self.idempotency_key,
        });
        (ticket_id, record)
    }
}

/// Crockford base 32: no I, L, O, U, so a reference survives being read aloud and typed back.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `T-` and 25 bits of a hash of the id in Crockford base 32 (33 M values). Not unique by itself:
/// staff look a ticket up by reference plus caller or date; the id is the key.
pub fn ticket_reference(id: Uuid) -> String {
    let h = fnv1a_128(id.as_bytes());
    let mut bits = (h >> 64) as u64 ^ h as u64;
    let mut out = String::with_capacity(7);
    out.push_str("T-");
    for _ in 0..5 {
        out.push(char::from(CROCKFORD[(bits & 31) as usize]));
        bits >>= 5;
    }
    out
}

/// FNV-1a, 128-bit: a stable hash (unlike std's `DefaultHasher`) for deriving ids from keys.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(key: Option<&str>) -> NewTicket {
        NewTicket {
            created_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
            category: "billing".into(),
            priority: "normal".into(),
            summary: "refund".into(),
            idempotency_key: key.map(str::to_owned),
            ..NewTicket::default()
        }
    }

    #[test]
    fn reference_is_short_crockford() {
        let (t, _) = ticket(None).into_record();
        assert_eq!(t.reference.len(), 7);
        assert!(t.reference.starts_with("T-"));
        assert!(t.reference[2..].bytes().all(|b| CROCKFORD.contains(&b)));
        assert_eq!(t.id.get_version_num(), 7);
    }

    #[test]
    fn idempotency_key_gives_the_same_ticket() {
        let (a, _) = ticket(Some("call-1/tool-7")).into_record();
        let (b, _) = ticket(Some("call-1/tool-7")).into_record();
        let (c, _) = ticket(Some("call-1/tool-8")).into_record();
        assert_eq!(a, b);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn fresh_tickets_differ() {
        let (a, _) = ticket(None).into_record();
        let (b, _) = ticket(None).into_record();
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn records_round_trip_through_json() {
        let r = Record::CallEvent {
            call_id: CallId::new(),
            seq: 3,
            at: Utc::now(),
            kind: kind::TRANSCRIPT.into(),
            data: serde_json::json!({"role": "caller", "text": "hi\nthere"}),
        };
        let s = serde_json::to_string(&r).unwrap_or_default();
        assert!(!s.contains('\n'), "a record is one line");
        let back: Record = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
        assert_eq!(back, r);
    }
}
