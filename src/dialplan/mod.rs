//! Dialplans: schema, loading, routing (dialplan work).
