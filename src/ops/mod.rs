//! Operations: tracing setup, metrics, health.
