//! How an error is handled, shared by every module's own error enum.
//!
//! Each module has its own `thiserror` enum with structured fields; each of those enums has a
//! `class()` method returning one of these classes, so the code that wires the stages (and the
//! binary's exit code) can decide what to do without knowing every variant:
//!
//! * [`ErrorClass::Retryable`]: the world may fix itself (a dropped connection, a broker that is
//!   restarting). Reconnect with backoff from the last committed position.
//! * [`ErrorClass::Fatal`]: retrying cannot help (a bad setting, a missing grant, a purged binlog).
//!   Stop with the error's sentence, which names the fix.
//! * [`ErrorClass::PerTable`]: one table cannot continue (an incompatible schema change); stop that
//!   table, record why, keep streaming the others.

/// What the caller should do with an error; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: retry or reconnect with backoff.
    Retryable,
    /// Definite: stop and tell the operator the fix.
    Fatal,
    /// Definite for one table only: stop that table, keep the rest.
    PerTable,
}
