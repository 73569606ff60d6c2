//! Command-line arguments, as typed (clap). Turning them into validated settings is
//! [`crate::config`]'s job; running a command is `main.rs`'s.

use crate::config::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// rowferry: MySQL/MariaDB binlog → Kafka change-data-capture, as Avro.
#[derive(Debug, Parser)]
#[command(name = "rowferry", version, about, long_about = None)]
pub struct Cli {
    /// Log format; overrides log.format. Human is the default (colours only on a terminal).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

/// The `--config` option every subcommand takes.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// TOML config file; ROWFERRY__SECTION__KEY environment variables override it.
    #[arg(long, short = 'c', env = "ROWFERRY_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream binlog changes to Kafka (resumes from the stored offset).
    Run(ConfigArg),
    /// Snapshot the captured tables into Kafka, then stop with the offset stored so `run`
    /// continues (or keep streaming with --then-stream). Against a running connector (one
    /// answers on http.listen), asks it for an incremental snapshot of --tables instead.
    Snapshot {
        #[command(flatten)]
        config: ConfigArg,
        /// Only these tables: `db.table`, comma-separated (default: every captured table).
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
        /// Keep streaming once the snapshot is done.
        #[arg(long)]
        then_stream: bool,
    },
    /// Compare the latest record per key in Kafka with the source tables; exit 1 on a
    /// persistent mismatch.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Only these tables: `db.table`, comma-separated (default: every captured table).
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
    },
    /// Check that the source server and Kafka give rowferry what it needs; exit 1 if not.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Only validate the configuration; connect to nothing.
        #[arg(long)]
        config_only: bool,
    },
    /// Print the running connector's status.
    Status(ConfigArg),
    /// Print a table's topic as JSON lines (decoded with the embedded registry's schemas).
    Tail {
        #[command(flatten)]
        config: ConfigArg,
        /// `db.table`
        table: String,
        /// Stop after this many records (default: keep following).
        #[arg(long)]
        count: Option<usize>,
    },
}
