//! Operations surface: /healthz, /readyz, /metrics, /status, control endpoints and the stall
//! watchdog, served on `http.listen`.
//!
//! Not built yet: issue #7 (operations).
