//! SIP signalling: message helpers over rsip, UDP/TCP transports, RFC 3261 §17 transactions,
//! UAS dialogs and RFC 3264 SDP offer/answer. Knows nothing of media, models or dialplans.

pub mod admission;
pub mod dialog;
pub mod endpoint;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod transport;
