//! The speech-to-speech model: Realtime protocol, client and simulator (model bridge work).
//!
//! - [`protocol`]: GA Realtime events as serde types; no I/O.
//! - [`client`]: the WebSocket session (connect, bounded non-blocking send, event stream).

pub mod client;
pub mod protocol;
