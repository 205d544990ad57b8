//! The per-call orchestrator: the one place where SIP, media (and later the model, dialplans,
//! tools and the store) meet. One tokio task owns one call.

pub mod bridge;
pub mod latency;
pub mod media;
pub mod plan;
pub mod server;
pub mod session;
