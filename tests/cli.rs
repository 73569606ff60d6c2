//! The binary's contract without servers: a bad configuration is one clear message naming the
//! key and exit code 2; commands not built yet say so with exit code 2; secrets never print.

mod common;

use common::rowferry;

const GOOD: &str = "[source]\nuser = \"u\"\npassword = \"pw-never-printed\"\nserver_id = 7\n";

fn assert_config_error(config: &str, want: &str) {
    let out = rowferry(&["check"], config);
    assert_eq!(out.code, Some(2), "{out:#?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one message, got {lines:?}");
    assert!(lines[0].starts_with("rowferry: invalid configuration: "), "{lines:?}");
    assert!(lines[0].contains(want), "wanted {want:?} in {lines:?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
}

#[test]
fn bad_values_name_their_key_with_exit_code_2() {
    assert_config_error("[source]\nuser = \"u\"\nserver_id = 7\n", "config key `source.password`: missing");
    assert_config_error(&format!("{GOOD}port = \"x\"\n"), "config key `source.port`");
    assert_config_error(&format!("{GOOD}server_id_typo = 1\n"), "config key `source.server_id_typo`: unknown field");
    assert_config_error(
        &format!("{GOOD}\n[offsets]\nstore = \"s3\"\n"),
        "config key `offsets.store`: \"s3\" is not one of kafka, file",
    );
    assert_config_error(&format!("{GOOD}\n[tables]\ninclude = [\"nodot\"]\n"), "config key `tables.include`");
    assert_config_error(&format!("{GOOD}\n[http]\nlisten = \"nowhere\"\n"), "config key `http.listen`");
    assert_config_error(
        &format!("{GOOD}\n[kafka.librdkafka]\n\"enable.idempotence\" = \"false\"\n"),
        "rowferry sets enable.idempotence itself",
    );
}

#[test]
fn environment_overrides_are_validated_too() {
    let mut file = tempfile::NamedTempFile::new().expect("temp");
    std::io::Write::write_all(&mut file, GOOD.as_bytes()).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rowferry"))
        .args(["check", "--config-only", "--config"])
        .arg(file.path())
        .env("ROWFERRY__SOURCE__SERVER_ID", "0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config key `source.server_id`: 0 is not a valid server_id"));
}

#[test]
fn missing_config_file_is_exit_code_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rowferry"))
        .args(["check", "--config", "/nonexistent/rowferry.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config file /nonexistent/rowferry.toml: cannot read"));
}

#[test]
fn config_only_validates_without_connecting() {
    let out = rowferry(&["check", "--config-only"], GOOD);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stdout.trim(), "configuration is valid");
}

#[test]
fn status_without_a_running_connector_says_where_it_looked() {
    let out = rowferry(&["status"], &format!("{GOOD}\n[http]\nlisten = \"127.0.0.1:1\"\n"));
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("no connector answers at http://127.0.0.1:1/status"), "{}", out.stderr);
}

#[test]
fn json_logs_when_asked() {
    let out =
        rowferry(&["--log-format", "json", "check", "--config-only"], &format!("{GOOD}\n[log]\nlevel = \"debug\"\n"));
    assert_eq!(out.code, Some(0), "{out:#?}");
    let logged: Vec<serde_json::Value> =
        out.stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    assert!(
        logged.iter().any(|v| v["fields"]["message"] == "configuration loaded" && v["level"] == "DEBUG"),
        "{logged:?}"
    );
    assert!(!out.stderr.contains("pw-never-printed"));
}
