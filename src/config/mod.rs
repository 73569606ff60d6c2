//! Configuration: defaults → TOML file → environment, into validated [`Settings`].
//!
//! Layers, later ones winning: built-in defaults (applied in [`Settings::from_raw`]), the TOML
//! file given with `--config`, then environment variables `ROWFERRY__SECTION__KEY` (double
//! underscores separate the path: `ROWFERRY__SOURCE__PASSWORD`, `ROWFERRY__KAFKA__TOPIC_PREFIX`).
//! The merged tree is deserialised into the raw structs of [`raw`] (unknown keys rejected, with
//! their path), then validated. Any problem is one [`ConfigError`] whose message names the key;
//! the binary prints it and exits with code 2.

mod columns;
pub mod compatibility;
pub mod raw;
mod secret;
mod settings;
mod snapshot;
mod tables;
mod topics;

pub use columns::{ColumnAction, ColumnPattern, ColumnRules};
pub use secret::Secret;
pub use settings::{
    DeliveryMode, EnvelopeFormat, FlavorSetting, HttpSettings, KafkaSettings, LogFormat, LogSettings, OffsetSettings,
    RegistrySettings, Settings, SourceSettings, TlsMode, TlsSettings, TransactionBounds,
};
pub use snapshot::{SnapshotMode, SnapshotSettings};
pub use tables::{SYSTEM_SCHEMAS, TableFilter, TablePattern};
pub use topics::{Route, TopicSettings};

use crate::error::ErrorClass;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "ROWFERRY";

/// A configuration problem; every variant names where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    #[error("config key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    /// Configuration errors are always fatal: the operator must change a value.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

/// Loads the configuration from the optional file and the process environment.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    let env: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    load_with_env(file, env)
}

/// Like [`load`], with the environment given explicitly (tests).
pub fn load_with_env(file: Option<&Path>, env: HashMap<String, String>) -> Result<Settings, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_path_buf(), problem: format!("cannot read: {e}") })?;
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX).prefix_separator("__").separator("__").source(Some(env)),
    );
    let merged = builder.build().map_err(|e| match file {
        Some(path) => ConfigError::File { path: path.to_path_buf(), problem: e.to_string() },
        None => ConfigError::Invalid { key: "(environment)".into(), problem: e.to_string() },
    })?;
    let raw: raw::RawConfig = serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { "(top level)".to_string() } else { path };
        // The config crate appends " for key `...`"; the path above already says it.
        let mut problem = e.into_inner().to_string();
        if let Some(at) = problem.rfind(" for key `")
            && let Some(len) = problem[at + 10..].find('`')
        {
            problem.replace_range(at..at + 10 + len + 1, "");
        }
        ConfigError::Invalid { key, problem }
    })?;
    Settings::from_raw(raw)
}

#[cfg(test)]
mod tests;
