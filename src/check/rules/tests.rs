use super::*;
use crate::check::report::Status;

fn info(version: &str) -> ServerInfo {
    ServerInfo::from_version_string(version).expect("version")
}

fn vars(pairs: &[(&str, &str)]) -> Variables {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn good_mysql() -> Variables {
    vars(&[
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
        ("binlog_checksum", "CRC32"),
        ("server_id", "1"),
        ("gtid_mode", "ON"),
        ("enforce_gtid_consistency", "ON"),
        ("binlog_order_commits", "ON"),
        ("binlog_expire_logs_seconds", "2592000"),
        ("binlog_expire_logs_auto_purge", "ON"),
    ])
}

fn good_mariadb() -> Variables {
    vars(&[
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
        ("binlog_checksum", "CRC32"),
        ("server_id", "1"),
        ("gtid_strict_mode", "ON"),
        ("binlog_expire_logs_seconds", "0"),
        ("expire_logs_days", "0.000000"),
    ])
}

fn line(findings: &[Finding], setting: &str) -> String {
    findings.iter().find(|f| f.setting == setting).map(|f| f.to_string()).unwrap_or_else(|| panic!("no {setting}"))
}

#[test]
fn correct_servers_pass_every_rule() {
    for (version, v) in [("9.7.4", good_mysql()), ("10.11.19-MariaDB-0+deb12u1", good_mariadb())] {
        let findings = settings(&info(version), &v, 5401);
        assert!(findings.iter().all(|f| f.status == Status::Ok), "{version}: {findings:#?}");
    }
}

#[test]
fn wrong_binlog_settings_name_the_fix_per_flavor() {
    let mut v = good_mysql();
    v.insert("binlog_format".into(), "STATEMENT".into());
    v.insert("binlog_row_metadata".into(), "MINIMAL".into());
    let f = settings(&info("9.7.4"), &v, 5401);
    assert_eq!(
        line(&f, "binlog_format"),
        "FAIL binlog_format: expected ROW, found STATEMENT — fix: SET PERSIST binlog_format = 'ROW';"
    );
    assert_eq!(
        line(&f, "binlog_row_metadata"),
        "FAIL binlog_row_metadata: expected FULL, found MINIMAL — fix: SET PERSIST binlog_row_metadata = 'FULL';"
    );

    let mut v = good_mariadb();
    v.insert("binlog_row_metadata".into(), "NO_LOG".into());
    let f = settings(&info("10.11.19-MariaDB"), &v, 5401);
    assert_eq!(
        line(&f, "binlog_row_metadata"),
        "FAIL binlog_row_metadata: expected FULL, found NO_LOG — fix: SET GLOBAL binlog_row_metadata = 'FULL'; \
         and add `binlog_row_metadata = FULL` under [mariadbd] in the server config"
    );
}

#[test]
fn gtid_rules_differ_by_flavor() {
    let mut v = good_mysql();
    v.insert("gtid_mode".into(), "OFF".into());
    let f = settings(&info("8.0.41"), &v, 5401);
    assert!(
        line(&f, "gtid_mode")
            .starts_with("FAIL gtid_mode: expected ON, found OFF — fix: SET PERSIST enforce_gtid_consistency = ON;")
    );

    let mut v = good_mysql();
    v.insert("binlog_order_commits".into(), "OFF".into());
    let f = settings(&info("9.7.4"), &v, 5401);
    assert_eq!(
        line(&f, "binlog_order_commits"),
        "warn binlog_order_commits: expected ON (snapshots are consistent only with it), found OFF — fix: \
         SET PERSIST binlog_order_commits = 'ON';"
    );

    let mut v = good_mariadb();
    v.insert("gtid_strict_mode".into(), "OFF".into());
    let f = settings(&info("10.6.20-MariaDB"), &v, 5401);
    assert!(line(&f, "gtid_strict_mode").starts_with("warn gtid_strict_mode: expected ON (recommended), found OFF"));
    assert!(!f.iter().any(|x| x.setting == "gtid_mode"));
}

#[test]
fn server_id_must_differ_from_ours_and_be_nonzero() {
    let mut v = good_mysql();
    v.insert("server_id".into(), "5401".into());
    assert_eq!(
        settings(&info("9.7.4"), &v, 5401).iter().find(|f| f.setting == "server_id").map(|f| f.status),
        Some(Status::Fail)
    );
    v.insert("server_id".into(), "0".into());
    assert_eq!(
        settings(&info("9.7.4"), &v, 5401).iter().find(|f| f.setting == "server_id").map(|f| f.status),
        Some(Status::Fail)
    );
}

#[test]
fn retention_rules() {
    let check = |flavor: &str, pairs: &[(&str, &str)]| {
        let mut v = if flavor.contains("MariaDB") { good_mariadb() } else { good_mysql() };
        v.extend(vars(pairs));
        let f = settings(&info(flavor), &v, 5401);
        f.iter().find(|x| x.setting == "binlog retention").cloned().expect("retention finding")
    };
    assert_eq!(check("9.7.4", &[("binlog_expire_logs_seconds", "3600")]).status, Status::Fail);
    assert_eq!(
        check("9.7.4", &[("binlog_expire_logs_seconds", "3600"), ("binlog_expire_logs_auto_purge", "OFF")]).status,
        Status::Ok
    );
    assert_eq!(
        check("8.0.41", &[("binlog_expire_logs_seconds", "0"), ("expire_logs_days", "0")]).found,
        "never purged automatically"
    );
    assert_eq!(check("10.11.1-MariaDB", &[("binlog_expire_logs_seconds", "0")]).status, Status::Ok);
    assert_eq!(
        check("10.11.1-MariaDB", &[("binlog_expire_logs_seconds", "43200"), ("expire_logs_days", "0.5")]).status,
        Status::Fail
    );
    assert_eq!(check("10.11.1-MariaDB", &[("binlog_expire_logs_seconds", "zzz")]).status, Status::Fail);
}

#[test]
fn old_versions_fail() {
    let f = settings(&info("5.7.44-log"), &good_mysql(), 5401);
    assert_eq!(f[0].status, Status::Fail);
    assert_eq!(f[0].setting, "version");
}

#[test]
fn grants_name_the_exact_grant_statement() {
    let privs: BTreeSet<String> = ["SELECT", "BINLOG MONITOR"].iter().map(|s| s.to_string()).collect();
    let f = replication_grants(Flavor::MariaDb, &privs, "'rf'@'%'");
    assert_eq!(
        line(&f, "REPLICATION SLAVE"),
        "FAIL REPLICATION SLAVE: expected granted, found missing — fix: GRANT REPLICATION SLAVE ON *.* TO 'rf'@'%';"
    );
    assert_eq!(line(&f, "BINLOG MONITOR"), "ok   BINLOG MONITOR: expected granted, found granted");
    let f = replication_grants(Flavor::MySql, &privs, "'rf'@'%'");
    assert_eq!(
        line(&f, "REPLICATION CLIENT"),
        "FAIL REPLICATION CLIENT: expected granted, found missing — fix: GRANT REPLICATION CLIENT ON *.* TO 'rf'@'%';"
    );
}
