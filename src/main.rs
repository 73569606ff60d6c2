//! The binary's edge: parse arguments, load and validate the configuration, set up logging, run
//! the command, and turn the outcome into an exit code.
//!
//! Exit codes: 0 success; 1 the command ran and found a problem (a failed check, a runtime
//! error); 2 the invocation is wrong (bad arguments or configuration, command not available yet);
//! 3 fenced: another instance with the same connector name took over its Kafka transactions
//! (exactly-once delivery) — restarting this one would only fence that one in turn.

use clap::Parser;
use rowferry::cli::{Cli, Command, ConfigArg};
use rowferry::{check, config, logging};
use std::process::ExitCode;

const EXIT_PROBLEM: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_FENCED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config_arg, name) = match &cli.command {
        Command::Run(c) => (c, "run"),
        Command::Snapshot { config, .. } => (config, "snapshot"),
        Command::Verify { config, .. } => (config, "verify"),
        Command::Check { config, .. } => (config, "check"),
        Command::Status(c) => (c, "status"),
        Command::Tail { config, .. } => (config, "tail"),
    };
    let settings = match load(config_arg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rowferry: invalid configuration: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    logging::init(cli.log_format.unwrap_or(settings.log.format), &settings.log.level);
    tracing::debug!(file = ?config_arg.config, connector = %settings.name, command = name, "configuration loaded");
    match cli.command {
        Command::Check { config_only: true, .. } => {
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Command::Check { .. } => match run_check(&settings) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("rowferry: {e:#}");
                ExitCode::from(EXIT_PROBLEM)
            }
        },
        Command::Run(_) => finish("run", runtime().map(|rt| rt.block_on(rowferry::app::run(settings)))),
        Command::Snapshot { tables, then_stream, .. } => {
            let outcome = runtime().map(|rt| rt.block_on(snapshot(settings, tables, then_stream)));
            finish("snapshot", outcome)
        }
        Command::Verify { tables, .. } => {
            match runtime().map(|rt| rt.block_on(rowferry::verify::verify(&settings, tables))) {
                Ok(Ok(reports)) => {
                    let mut clean = true;
                    for r in &reports {
                        let rate = r.rows as f64 / r.seconds.max(1e-3);
                        if let Some(why) = &r.skipped {
                            println!("{}: skipped — {why}", r.table);
                        } else if r.mismatches.is_empty() {
                            println!(
                                "{}: OK — {} rows, {} records in {} ({:.1} s, {rate:.0} rows/s)",
                                r.table, r.rows, r.records, r.topic, r.seconds
                            );
                        } else {
                            clean = false;
                            let counts: Vec<String> =
                                r.mismatches.iter().map(|(p, n)| format!("{n} {p:?}").to_lowercase()).collect();
                            println!(
                                "{}: MISMATCH — {} ({} rows, {} records in {})",
                                r.table,
                                counts.join(", "),
                                r.rows,
                                r.records,
                                r.topic
                            );
                            for (key, problem) in &r.listed {
                                println!("  {problem:?}: key {key}");
                            }
                        }
                    }
                    if clean { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PROBLEM) }
                }
                Ok(Err(e)) => {
                    eprintln!("rowferry verify: {e}");
                    ExitCode::from(EXIT_PROBLEM)
                }
                Err(e) => {
                    eprintln!("rowferry: {e:#}");
                    ExitCode::from(EXIT_PROBLEM)
                }
            }
        }
        Command::Status(_) => {
            match runtime().map(|rt| rt.block_on(rowferry::ops::http::fetch_status(settings.http.listen))) {
                Ok(Ok(body)) => {
                    print!("{body}");
                    ExitCode::SUCCESS
                }
                Ok(Err(e)) => {
                    eprintln!("rowferry status: {e}");
                    ExitCode::from(EXIT_PROBLEM)
                }
                Err(e) => {
                    eprintln!("rowferry: {e:#}");
                    ExitCode::from(EXIT_PROBLEM)
                }
            }
        }
        Command::Tail { ref table, count, .. } => {
            match runtime().map(|rt| rt.block_on(rowferry::tail::tail(&settings, table, count))) {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => {
                    eprintln!("rowferry tail: {e}");
                    ExitCode::from(EXIT_PROBLEM)
                }
                Err(e) => {
                    eprintln!("rowferry: {e:#}");
                    ExitCode::from(EXIT_PROBLEM)
                }
            }
        }
    }
}

/// The exit code of a long-running command.
fn finish(name: &str, outcome: anyhow::Result<Result<(), rowferry::app::RunError>>) -> ExitCode {
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "rowferry {name} stopped");
            eprintln!("rowferry: {e}");
            ExitCode::from(if e.is_fenced() { EXIT_FENCED } else { EXIT_PROBLEM })
        }
        Err(e) => {
            eprintln!("rowferry: {e:#}");
            ExitCode::from(EXIT_PROBLEM)
        }
    }
}

/// `rowferry snapshot`: ask a running connector, or bootstrap (with progress bars on a terminal).
async fn snapshot(
    settings: config::Settings,
    tables: Option<Vec<String>>,
    then_stream: bool,
) -> Result<(), rowferry::app::RunError> {
    let listen = settings.http.listen;
    if rowferry::ops::http::fetch_status(listen).await.is_ok() {
        let Some(tables) = tables else {
            return Err(rowferry::app::RunError::Other(format!(
                "a connector is running on {listen}: name the tables to snapshot with --tables db.table,... \
                 (or stop it to bootstrap every table)"
            )));
        };
        let reply = rowferry::ops::http::request_snapshot(listen, settings.http.token.as_ref(), &tables)
            .await
            .map_err(rowferry::app::RunError::Other)?;
        println!("{reply}");
        return Ok(());
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        tokio::spawn(rowferry::snapshot::bars::show(listen));
    }
    let options = rowferry::app::RunOptions { force_snapshot: true, tables, stop_after_snapshot: !then_stream };
    rowferry::app::run_with(settings, options).await
}

fn load(arg: &ConfigArg) -> Result<config::Settings, config::ConfigError> {
    config::load(arg.config.as_deref())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn run_check(settings: &config::Settings) -> anyhow::Result<ExitCode> {
    let report = runtime()?.block_on(check::run(settings));
    println!("{report}");
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PROBLEM) })
}
