//! Helpers shared by the simulator's tests.

use std::sync::Arc;

use super::SimScript;
use crate::model::protocol::ServerEvent;

pub(super) fn script(yaml: &str) -> Arc<SimScript> {
    Arc::new(SimScript::from_yaml(yaml).expect("test script parses"))
}

/// A loud 440 Hz µ-law tone: "speech" to the energy VAD.
pub(super) fn loud_ulaw(ms: usize) -> Vec<u8> {
    (0..ms * 8)
        .map(|i| {
            let s = 8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin();
            audio_codec_algorithms::encode_ulaw(s as i16)
        })
        .collect()
}

/// µ-law digital silence.
pub(super) fn silence_ulaw(ms: usize) -> Vec<u8> {
    vec![0xFF; ms * 8]
}

pub(super) fn kinds(events: &[ServerEvent]) -> Vec<&str> {
    events.iter().map(ServerEvent::kind).collect()
}

pub(super) fn is_done(e: &ServerEvent) -> bool {
    matches!(e, ServerEvent::ResponseDone(_))
}
