//! Call log (store work).
