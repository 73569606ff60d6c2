//! What the connector needs from the server, as pure functions from what the server reported
//! (version, global variables, privileges) to [`Finding`]s. No IO here, so every rule is unit
//! tested against both flavors; `check::source` gathers the inputs.
//!
//! Fixes are exact: `SET PERSIST` on MySQL (survives restarts), `SET GLOBAL` plus the config-file
//! line on MariaDB (which has no SET PERSIST), and a restart where the variable is read-only.

use super::report::Finding;
use crate::source::{Flavor, ServerInfo};
use std::collections::{BTreeMap, BTreeSet};

/// Global variables by lower-case name.
pub type Variables = BTreeMap<String, String>;

/// Binlog retention below this fails: a connector that is down over a weekend night must find
/// its position still there.
pub const MIN_RETENTION_SECS: u64 = 86_400;

/// The variables the rules read; `check::source` asks the server for exactly these.
pub const VARIABLES: &[&str] = &[
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "binlog_checksum",
    "server_id",
    "gtid_mode",
    "enforce_gtid_consistency",
    "binlog_order_commits",
    "gtid_strict_mode",
    "binlog_expire_logs_seconds",
    "binlog_expire_logs_auto_purge",
    "expire_logs_days",
];

/// The SQL (and config line) that sets a dynamic global variable for good.
fn set_fix(flavor: Flavor, var: &str, value: &str) -> String {
    let sql_value = if value.bytes().all(|b| b.is_ascii_digit()) { value.to_string() } else { format!("'{value}'") };
    match flavor {
        Flavor::MySql => format!("SET PERSIST {var} = {sql_value};"),
        Flavor::MariaDb => {
            format!("SET GLOBAL {var} = {sql_value}; and add `{var} = {value}` under [mariadbd] in the server config")
        }
    }
}

fn var<'a>(vars: &'a Variables, name: &str) -> Option<&'a str> {
    vars.get(name).map(String::as_str)
}

fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "(not set: variable missing)".to_string(), str::to_string)
}

/// Findings for the server version and its binlog/GTID settings.
pub fn settings(info: &ServerInfo, vars: &Variables, our_server_id: u32) -> Vec<Finding> {
    let flavor = info.flavor;
    let mut out = vec![Finding::require(
        info.is_supported(),
        "version",
        "MySQL ≥ 8.0 or MariaDB ≥ 10.6",
        &format!("{} {}", flavor, info.version_string),
        || "upgrade the server; older versions lack binlog_row_metadata=FULL".to_string(),
    )];

    let log_bin = var(vars, "log_bin");
    out.push(Finding::require(log_bin == Some("ON"), "log_bin", "ON", &shown(log_bin), || match flavor {
        Flavor::MySql => {
            "remove skip-log-bin / disable-log-bin from the server config and restart (MySQL 8+ logs by default)".into()
        }
        Flavor::MariaDb => "add `log_bin = mariadb-bin` under [mariadbd] in the server config and restart".into(),
    }));

    for (name, want) in [("binlog_format", "ROW"), ("binlog_row_image", "FULL"), ("binlog_row_metadata", "FULL")] {
        let found = var(vars, name);
        out.push(Finding::require(
            found.is_some_and(|v| v.eq_ignore_ascii_case(want)),
            name,
            want,
            &shown(found),
            || set_fix(flavor, name, want),
        ));
    }

    out.push(checksum(flavor, var(vars, "binlog_checksum")));
    out.push(server_id(flavor, var(vars, "server_id"), our_server_id));
    out.extend(gtid(flavor, vars));
    out.push(retention(flavor, vars));
    out
}

fn checksum(flavor: Flavor, found: Option<&str>) -> Finding {
    match found {
        Some(v) if v.eq_ignore_ascii_case("CRC32") => Finding::ok("binlog_checksum", "CRC32", v),
        other => Finding::warn(
            "binlog_checksum",
            "CRC32 (corrupted events are detected)",
            shown(other),
            set_fix(flavor, "binlog_checksum", "CRC32"),
        ),
    }
}

fn server_id(flavor: Flavor, found: Option<&str>, ours: u32) -> Finding {
    let expected = format!("nonzero and not {ours} (rowferry's source.server_id)");
    match found.and_then(|v| v.parse::<u32>().ok()) {
        Some(0) => Finding::fail("server_id", expected, "0", set_fix(flavor, "server_id", "1")),
        Some(id) if id == ours => Finding::fail(
            "server_id",
            expected,
            id.to_string(),
            format!(
                "set source.server_id in rowferry's config to a value no server or replica uses, e.g. {}",
                ours.wrapping_add(1).max(1)
            ),
        ),
        Some(id) => Finding::ok("server_id", expected, id.to_string()),
        None => Finding::fail("server_id", expected, shown(found), set_fix(flavor, "server_id", "1")),
    }
}

fn gtid(flavor: Flavor, vars: &Variables) -> Vec<Finding> {
    match flavor {
        Flavor::MySql => {
            let mode = var(vars, "gtid_mode");
            let enforce = var(vars, "enforce_gtid_consistency");
            vec![
                Finding::require(mode == Some("ON"), "gtid_mode", "ON", &shown(mode), || {
                    "SET PERSIST enforce_gtid_consistency = ON; SET PERSIST gtid_mode = OFF_PERMISSIVE; \
                     SET PERSIST gtid_mode = ON_PERMISSIVE; then, once SHOW STATUS LIKE \
                     'Ongoing_anonymous_transaction_count' shows 0, SET PERSIST gtid_mode = ON;"
                        .to_string()
                }),
                Finding::require(enforce == Some("ON"), "enforce_gtid_consistency", "ON", &shown(enforce), || {
                    set_fix(flavor, "enforce_gtid_consistency", "ON")
                }),
                order_commits(flavor, vars),
            ]
        }
        Flavor::MariaDb => {
            let strict = var(vars, "gtid_strict_mode");
            vec![if strict == Some("ON") {
                Finding::ok("gtid_strict_mode", "ON (recommended)", "ON")
            } else {
                Finding::warn(
                    "gtid_strict_mode",
                    "ON (recommended)",
                    shown(strict),
                    set_fix(flavor, "gtid_strict_mode", "ON"),
                )
            }]
        }
    }
}

/// MySQL snapshots take a chunk's low mark from `gtid_executed` and rely on a GTID entering it
/// only after its commit is visible, which `binlog_order_commits=ON` (the default) ensures.
/// Streaming does not need it, so OFF is a warning.
fn order_commits(flavor: Flavor, vars: &Variables) -> Finding {
    let found = var(vars, "binlog_order_commits");
    let expected = "ON (snapshots are consistent only with it)";
    if found == Some("ON") {
        Finding::ok("binlog_order_commits", expected, "ON")
    } else {
        Finding::warn("binlog_order_commits", expected, shown(found), set_fix(flavor, "binlog_order_commits", "ON"))
    }
}

/// Effective retention in seconds; `None` = never purged automatically.
fn retention_secs(flavor: Flavor, vars: &Variables) -> Result<Option<u64>, String> {
    if var(vars, "binlog_expire_logs_auto_purge") == Some("OFF") {
        return Ok(None);
    }
    let number = |name: &str| -> Result<u64, String> {
        match var(vars, name) {
            None => Ok(0),
            Some(v) => v.parse::<f64>().map(|f| f as u64).map_err(|_| format!("{name} = {v}")),
        }
    };
    let seconds = number("binlog_expire_logs_seconds")?;
    if seconds > 0 {
        return Ok(Some(seconds));
    }
    // MySQL 8.0 and MariaDB: 0 seconds defers to expire_logs_days; 0 there means never.
    let days =
        if flavor == Flavor::MySql || vars.contains_key("expire_logs_days") { number("expire_logs_days")? } else { 0 };
    Ok(if days > 0 { Some(days * 86_400) } else { None })
}

fn retention(flavor: Flavor, vars: &Variables) -> Finding {
    let expected = format!("≥ {MIN_RETENTION_SECS} s (1 day) or never purged");
    let fix = || set_fix(flavor, "binlog_expire_logs_seconds", "604800");
    match retention_secs(flavor, vars) {
        Err(text) => Finding::fail("binlog retention", expected, text, fix()),
        Ok(None) => Finding::ok("binlog retention", expected, "never purged automatically"),
        Ok(Some(s)) => {
            let found = format!("{s} s ({:.1} days)", s as f64 / 86_400.0);
            Finding::require(s >= MIN_RETENTION_SECS, "binlog retention", &expected, &found, fix)
        }
    }
}

/// The name of the privilege that allows SHOW BINARY LOGS / SHOW MASTER STATUS.
pub fn client_privilege(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MySql => "REPLICATION CLIENT",
        Flavor::MariaDb => "BINLOG MONITOR",
    }
}

/// Findings for the replication privileges; `privileges` are the user's global privilege names,
/// upper case; `grantee` is `'user'@'host'`.
pub fn replication_grants(flavor: Flavor, privileges: &BTreeSet<String>, grantee: &str) -> Vec<Finding> {
    let has = |p: &str| privileges.contains(p);
    let client = client_privilege(flavor);
    // MariaDB ≥ 10.5 reports REPLICATION CLIENT as BINLOG MONITOR; accept either name.
    let has_client = has(client) || has("REPLICATION CLIENT");
    [("REPLICATION SLAVE", has("REPLICATION SLAVE")), (client, has_client)]
        .into_iter()
        .map(|(name, granted)| {
            Finding::require(granted, name, "granted", if granted { "granted" } else { "missing" }, || {
                format!("GRANT {name} ON *.* TO {grantee};")
            })
        })
        .collect()
}

mod semi_sync;
pub use semi_sync::{VARIABLES as SEMI_SYNC_VARIABLES, semi_sync};

#[cfg(test)]
mod tests;
