//! Operations: tracing setup (text or JSON lines on stderr), Prometheus metrics, and the HTTP
//! endpoint that serves them with the health and readiness checks.

pub mod http;
pub mod logging;
pub mod metrics;
