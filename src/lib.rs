//! voxgate: a SIP user agent that answers calls and puts a speech-to-speech model on the line.
//!
//! Layers (see `DESIGN.md` in the shared docs and the README):
//! - [`sip`]: SIP messages, transports, sans-IO transactions and dialogs, SDP offer/answer.
//! - [`media`]: RTP, jitter buffer, codecs, DTMF, 20 ms playout; sans-IO cores.
//! - [`model`]: the Realtime protocol, client and simulator.
//! - [`call`]: the per-call orchestrator, the one place where the other layers meet.
//! - [`dialplan`], [`tools`], [`store`]: business rules, function calls, call log.
//! - [`ops`]: logging, metrics, health.
//! - [`config`]: daemon configuration (defaults <- YAML <- `VOXGATE_*` env).

pub mod call;
pub mod config;
pub mod dialplan;
pub mod media;
pub mod model;
pub mod ops;
pub mod sip;
pub mod store;
pub mod tools;
