//! The speech-to-speech model: Realtime protocol, client and simulator (model bridge work).
//!
//! - [`protocol`]: GA Realtime events as serde types; no I/O.

pub mod protocol;
