//! Wiring: the one place that creates the stages and the bounded channels between them, in
//! downstream-first order (the receiver exists before any sender is handed out, so no stage can
//! write into a channel nobody created — Ghostferry #331). It holds no logic of its own.
//!
//! Not built yet: the streaming pipeline lands with the `rowferry run` issue (#5). Until then only
//! `check` is wired, directly from `main.rs`.
