//! Per-call orchestrator.
