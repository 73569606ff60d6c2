//! `source.semi_sync = true`: what the primary needs so that its COMMIT waits for rowferry's ACK
//! (docs/running.md, "Semi-sync"). MySQL names the variables `rpl_semi_sync_source_*` (the
//! `semisync_source.so` plugin) or, with the older plugin, `rpl_semi_sync_master_*`; MariaDB has
//! them built in as `rpl_semi_sync_master_*`.

use super::{Variables, set_fix, shown, var};
use crate::check::report::Finding;
use crate::source::Flavor;

/// The semi-sync variables the rules read, under both names.
pub const VARIABLES: &[&str] = &[
    "rpl_semi_sync_source_enabled",
    "rpl_semi_sync_source_wait_point",
    "rpl_semi_sync_source_timeout",
    "rpl_semi_sync_source_wait_for_replica_count",
    "rpl_semi_sync_master_enabled",
    "rpl_semi_sync_master_wait_point",
    "rpl_semi_sync_master_timeout",
    "rpl_semi_sync_master_wait_for_slave_count",
];

/// A timeout below this is warned: rowferry ACKs after Kafka's ack, which can take longer than a
/// network round trip under load, and the primary falls back to asynchronous on the first miss.
pub const MIN_TIMEOUT_MS: u64 = 1000;

/// Findings for the primary's semi-sync settings (asked for with `source.semi_sync = true`).
pub fn semi_sync(flavor: Flavor, vars: &Variables) -> Vec<Finding> {
    let prefix =
        if vars.contains_key("rpl_semi_sync_source_enabled") { "rpl_semi_sync_source" } else { "rpl_semi_sync_master" };
    let name = |suffix: &str| format!("{prefix}_{suffix}");
    let enabled_var = name("enabled");
    let Some(enabled) = var(vars, &enabled_var) else {
        return vec![Finding::fail(
            "semi-sync",
            "the semi-sync source plugin (source.semi_sync = true)",
            "not installed",
            "INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'; SET PERSIST \
             rpl_semi_sync_source_enabled = ON; SET PERSIST rpl_semi_sync_source_wait_point = AFTER_SYNC; (and \
             plugin-load-add = semisync_source.so under [mysqld] so it loads at restart)",
        )];
    };
    let mut out =
        vec![Finding::require(enabled == "ON", &enabled_var, "ON", enabled, || set_fix(flavor, &enabled_var, "ON"))];

    let point_var = name("wait_point");
    let point = var(vars, &point_var);
    out.push(match point {
        Some(p) if p.eq_ignore_ascii_case("AFTER_SYNC") => Finding::ok(&point_var, "AFTER_SYNC", p),
        other => Finding::warn(
            &point_var,
            "AFTER_SYNC (other sessions see a commit only once rowferry has it)",
            format!(
                "{}: other sessions can read a commit that is not in Kafka yet, and lose it with the primary",
                shown(other)
            ),
            set_fix(flavor, &point_var, "AFTER_SYNC"),
        ),
    });

    let timeout_var = name("timeout");
    let timeout = var(vars, &timeout_var);
    let expected =
        format!("≥ {MIN_TIMEOUT_MS} ms (how long a COMMIT waits for an ACK before the primary goes asynchronous)");
    out.push(match timeout.and_then(|t| t.parse::<u64>().ok()) {
        Some(ms) if ms >= MIN_TIMEOUT_MS => Finding::ok(&timeout_var, expected, format!("{ms} ms")),
        _ => Finding::warn(&timeout_var, expected, shown(timeout), set_fix(flavor, &timeout_var, "10000")),
    });

    // MariaDB waits for one replica; MySQL for rpl_semi_sync_source_wait_for_replica_count.
    let count_var =
        name(if prefix == "rpl_semi_sync_source" { "wait_for_replica_count" } else { "wait_for_slave_count" });
    let expected = "1 (rowferry is one semi-sync replica)";
    out.push(match var(vars, &count_var) {
        None => Finding::ok("semi-sync replicas waited for", expected, "1"),
        Some("1") => Finding::ok(&count_var, expected, "1"),
        Some(n) => Finding::warn(
            &count_var,
            expected,
            format!("{n}: a COMMIT also waits for other semi-sync replicas; without them it waits for the timeout"),
            set_fix(flavor, &count_var, "1"),
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::report::Status;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn statuses(findings: &[Finding]) -> Vec<(String, Status)> {
        findings.iter().map(|f| (f.setting.clone(), f.status)).collect()
    }

    #[test]
    fn a_mysql_primary_with_after_sync_passes() {
        let v = vars(&[
            ("rpl_semi_sync_source_enabled", "ON"),
            ("rpl_semi_sync_source_wait_point", "AFTER_SYNC"),
            ("rpl_semi_sync_source_timeout", "10000"),
            ("rpl_semi_sync_source_wait_for_replica_count", "1"),
        ]);
        let f = semi_sync(Flavor::MySql, &v);
        assert!(f.iter().all(|f| f.status == Status::Ok), "{f:?}");
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn a_missing_plugin_fails_with_the_install_line() {
        let f = semi_sync(Flavor::MySql, &vars(&[("log_bin", "ON")]));
        assert_eq!(statuses(&f), [("semi-sync".to_string(), Status::Fail)]);
        assert!(f[0].fix.as_deref().is_some_and(|x| x.contains("INSTALL PLUGIN rpl_semi_sync_source")), "{f:?}");
    }

    #[test]
    fn mariadb_disabled_after_commit_short_timeout_each_say_their_fix() {
        let v = vars(&[
            ("rpl_semi_sync_master_enabled", "OFF"),
            ("rpl_semi_sync_master_wait_point", "AFTER_COMMIT"),
            ("rpl_semi_sync_master_timeout", "500"),
        ]);
        let f = semi_sync(Flavor::MariaDb, &v);
        assert_eq!(
            statuses(&f),
            [
                ("rpl_semi_sync_master_enabled".to_string(), Status::Fail),
                ("rpl_semi_sync_master_wait_point".to_string(), Status::Warn),
                ("rpl_semi_sync_master_timeout".to_string(), Status::Warn),
                ("semi-sync replicas waited for".to_string(), Status::Ok),
            ]
        );
        let fixes: Vec<&str> = f.iter().filter_map(|f| f.fix.as_deref()).collect();
        assert!(fixes[0].starts_with("SET GLOBAL rpl_semi_sync_master_enabled = 'ON'"), "{fixes:?}");
        assert!(fixes[1].starts_with("SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'"), "{fixes:?}");
        assert!(fixes[2].starts_with("SET GLOBAL rpl_semi_sync_master_timeout = 10000"), "{fixes:?}");
    }

    #[test]
    fn mysql_waiting_for_two_replicas_is_warned() {
        let v = vars(&[
            ("rpl_semi_sync_source_enabled", "ON"),
            ("rpl_semi_sync_source_wait_point", "AFTER_SYNC"),
            ("rpl_semi_sync_source_timeout", "10000"),
            ("rpl_semi_sync_source_wait_for_replica_count", "2"),
        ]);
        let f = semi_sync(Flavor::MySql, &v);
        assert_eq!(f[3].status, Status::Warn);
        assert_eq!(f[3].fix.as_deref(), Some("SET PERSIST rpl_semi_sync_source_wait_for_replica_count = 1;"));
    }
}
