//! Function-call handlers (tools work).
