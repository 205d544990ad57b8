//! Operations: tracing setup (text or JSON lines on stderr). Metrics and health endpoints arrive
//! with the operations work; until then counters live in the per-call summary log line.

pub mod logging;
