//! TODO(module): placeholder, filled in by the SIP foundation work.
