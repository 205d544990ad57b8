//! The call's entries in the call log: `CallStarted` once, events with their sequence numbers,
//! and the privacy switch. Submits never block (a full queue spools).

use tracing::warn;

use crate::store::Record;

use super::{Call, CallPlan};

impl Call {
    /// Submits a record to the call log; never blocks (a full queue spools).
    pub(super) fn submit(&self, record: Record) {
        if let Err(e) = self.ctx.store.submit(record) {
            warn!("call log: {e}");
        }
    }
    /// Submits `CallStarted` once, with the codec if known.
    pub(super) fn record_start(&mut self, codec: &str) {
        if self.recorded_start {
            return;
        }
        self.recorded_start = true;
        let inc = self.uas.incoming();
        self.submit(Record::CallStarted {
            id: self.id,
            sip_call_id: inc.sip_call_id.clone(),
            caller: inc.caller.clone(),
            callee: inc.callee.clone(),
            dialplan: self.plan_name.clone(),
            started_at: self.started_utc,
            codec: codec.to_string(),
            model: self.agent.model.clone(),
            store_transcripts: self.store_transcripts(),
        });
    }
    /// The plan's privacy switch: may transcripts be kept (call log and logs)?
    pub(super) fn store_transcripts(&self) -> bool {
        match &self.plan {
            CallPlan::Open(p) | CallPlan::Closed { plan: p, .. } => p.privacy.store_transcripts,
            CallPlan::Reject(_) => true,
        }
    }
    /// Submits one call event (transcript, DTMF, error…).
    pub(super) fn event(&mut self, kind: &str, data: serde_json::Value) {
        self.record_start("");
        let seq = self.seq;
        self.seq += 1;
        self.submit(Record::CallEvent {
            call_id: self.id,
            seq,
            at: chrono::Utc::now(),
            kind: kind.to_string(),
            data,
        });
    }
}
