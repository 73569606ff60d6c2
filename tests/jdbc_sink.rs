//! rowferry's `json` record format through a stock Kafka Connect sink (issue 15):
//! `scripts/jdbc-sink-e2e` runs rowferry (this test build, `envelope.format = "json"`) on MySQL
//! 9.7 into Apache Kafka, Debezium's JDBC sink 3.6.0 from there into a private PostgreSQL 15, and
//! fails unless the table the sink maintains equals the MySQL table after a snapshot, inserts,
//! updates, deletes, a primary-key change, a transaction and an added column; it also checks the
//! transaction metadata topic (JSON BEGIN/END records), `rowferry tail` on the json format and
//! `rowferry verify`'s refusal of it.

use std::path::Path;
use std::process::Command;

#[test]
fn debeziums_jdbc_sink_rebuilds_the_mysql_table_in_postgresql() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("scripts/jdbc-sink-e2e"))
        .env("ROWFERRY_BIN", env!("CARGO_BIN_EXE_rowferry"))
        .current_dir(root)
        .output()
        .expect("run scripts/jdbc-sink-e2e");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(output.status.success(), "the JDBC sink's table differs from MySQL's:\n{stdout}\n{stderr}");
    assert!(stdout.contains("5 rows, 27 columns: PostgreSQL's table equals MySQL's"), "{stdout}");
}
