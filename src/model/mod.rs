//! The speech-to-speech model: Realtime protocol, client and simulator (model bridge work).
//!
//! - [`protocol`]: GA Realtime events as serde types; no I/O.
//! - [`client`]: the WebSocket session (connect, bounded non-blocking send, event stream).
//! - [`sim`]: the protocol-faithful simulator server used by tests and the quick start.

pub mod client;
pub mod protocol;
pub mod sim;
