//! The end-to-end benchmark (`scripts/bench`), run tiny so that it cannot rot: every phase on a
//! few thousand rows, once, with this test build of rowferry. It checks that the bench runs
//! through, prints its table, and that its JSON holds figures that make sense (rowferry streamed
//! at least the rows of each workload, the latency histogram grew, the snapshot and verify ran).
//! The figures themselves are not judged here: speed is for BENCHMARKS.md, not for tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Sizes small enough for seconds; their prepared data is cached like the real bench's.
const BULK_ROWS: u64 = 3000;
const OLTP_EVENTS: u64 = 300;

/// The test build's directory, with examples/produce_ceiling and commit_latency built into it
/// (`cargo test` builds examples only under hashed names; cargo does not hold its build lock
/// while tests run).
fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_rowferry")).parent().expect("bin dir").to_path_buf();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--quiet", "--example", "produce_ceiling", "--example", "commit_latency"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of the bench's examples failed");
    assert!(dir.join("examples/produce_ceiling").exists(), "no examples/produce_ceiling in {}", dir.display());
    dir
}

fn number(json: &serde_json::Value, path: &[&str]) -> f64 {
    let mut at = json;
    for key in path {
        at = &at[*key];
    }
    at.as_f64().unwrap_or_else(|| panic!("no number at {path:?} in\n{json:#}"))
}

#[test]
fn the_benchmark_runs_tiny_and_reports_every_phase() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join("scripts/bench"))
        .current_dir(root)
        .env("BENCH_BIN_DIR", bin_dir())
        .env("BENCH_PORT_BASE", "15390")
        .env("BENCH_STALL_SECS", "60")
        .env("BULK_ROWS", BULK_ROWS.to_string())
        .env("OLTP_EVENTS", OLTP_EVENTS.to_string())
        .env("REPS", "1")
        .env("LAT_SECS", "3")
        .env("LAT_TPS", "100")
        .env("LAT_ROWS", "1000")
        .env("SEMI_MAX_SECS", "2")
        // Debezium with JSON schemas on only for A (checked below): each of its runs starts a JVM.
        .env("DBZ_SCHEMAS_ON", "A")
        .output()
        .expect("run scripts/bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scripts/bench failed ({}):\n{stdout}\n{stderr}", output.status);
    for line in [
        "A bulk",
        "B OLTP",
        "÷ceiling",
        "latency (at-least-once), source commit → Kafka ack",
        "latency (exactly-once), source commit → Kafka ack",
        "exactly-once (kafka.delivery",
        "snapshot of sbtest1",
        "C compressed",
        "semi-sync, MySQL 9.7 (AFTER_SYNC), COMMIT latency",
        "side by side with Debezium",
    ] {
        assert!(stdout.contains(line), "no '{line}' in the bench's output:\n{stdout}");
    }
    let json_path =
        stdout.lines().find_map(|l| l.split("JSON: ").nth(1)).unwrap_or_else(|| panic!("no JSON path in:\n{stdout}"));
    let text = std::fs::read_to_string(root.join(json_path.trim())).expect("read the bench JSON");
    let json: serde_json::Value = serde_json::from_str(&text).expect("the bench JSON parses");

    // A: sysbench prepare's inserts; B: 4 row changes per oltp_write_only transaction.
    for (name, rows) in [("A", BULK_ROWS), ("B", 4 * OLTP_EVENTS)] {
        let w = |figure| number(&json, &["workloads", name, figure]);
        assert_eq!(w("rows") as u64, rows, "{name}: rows in the binlog");
        assert!(w("rowferry_rows") as u64 >= rows, "{name}: rowferry streamed them all");
        for figure in [
            "rowferry_rows_per_s",
            "raw_read_rows_per_s",
            "producer_rows_per_s",
            "peer_rows_per_s",
            "rowferry_cpu_s_per_mrow",
        ] {
            assert!(w(figure) > 0.0, "{name}: {figure}");
        }
        assert!(w("ratio_to_ceiling") > 0.0);
        // Start-up measured apart (the rate after it is 0 when the first stored offset is the
        // last, as it can be on these sizes), and where the machine's CPU went in each run.
        assert!(w("rowferry_start_s") > 0.0, "{name}: seconds to the first stored offset");
        assert!(w("rowferry_streaming_rows_per_s") >= 0.0);
        for (run, figures) in [
            ("rowferry_run", &["machine", "rowferry", "server", "broker"][..]),
            ("raw_read", &["machine", "server", "client"][..]),
            ("producer_only", &["machine", "broker", "producer"][..]),
        ] {
            for figure in figures {
                assert!(number(&json, &["workloads", name, "cpu_s_per_mrow", run, figure]) >= 0.0);
            }
        }
        assert!(number(&json, &["workloads", name, "cpu_s_per_mrow", "rowferry_run", "rowferry"]) > 0.0);
    }
    // C: A's rows as compressed MySQL transactions.
    assert_eq!(number(&json, &["workloads", "C", "rows"]) as u64, BULK_ROWS);
    assert!(number(&json, &["workloads", "C", "rowferry_rows"]) as u64 >= BULK_ROWS, "C: rowferry streamed them all");
    for figure in ["rowferry_rows_per_s", "rowferry_cpu_s_per_mrow", "rowferry_peak_rss_mib"] {
        assert!(number(&json, &["workloads", "C", figure]) > 0.0, "C: {figure}");
    }
    // Exactly-once: A and B again in that mode, against their at-least-once runs.
    for name in ["A", "B"] {
        for figure in ["rowferry_rows_per_s", "rowferry_cpu_s_per_mrow", "to_at_least_once"] {
            assert!(number(&json, &["exactly_once", name, figure]) > 0.0, "exactly-once {name}: {figure}");
        }
    }
    // Source commit → visible to a read_committed consumer, in both modes.
    for key in ["latency", "latency_exactly_once"] {
        let p50 = number(&json, &[key, "visible_p50_ms"]);
        assert!(0.0 < p50 && p50 <= number(&json, &[key, "visible_p99_ms"]), "{key}: visible quantiles in order");
        assert!(number(&json, &[key, "visible_records"]) >= 100.0, "{key}: the consumer saw the load");
    }
    let p50 = number(&json, &["latency", "p50_ms"]);
    let p99 = number(&json, &["latency", "p99_ms"]);
    let max = number(&json, &["latency", "max_ms"]);
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "latency quantiles in order: {p50} {p99} {max}");
    assert!(number(&json, &["latency", "records"]) >= 100.0, "the load was measured");
    // Semi-sync: COMMIT latency and throughput in both modes; no commit timed out waiting for
    // rowferry's ACK.
    for mode in ["async", "semi"] {
        let m = |figure| number(&json, &["semi_sync", mode, figure]);
        assert!(0.0 < m("commit_p50_ms") && m("commit_p50_ms") <= m("commit_p99_ms"), "{mode}: quantiles in order");
        assert!(m("txn_per_s") > 0.0 && m("max_txn_per_s") > 0.0, "{mode}: throughput");
    }
    assert_eq!(number(&json, &["semi_sync", "semi", "timed_out_commits"]), 0.0, "semi-sync commits that timed out");
    // oltp_write_only deletes a row and inserts it again: the table keeps its size.
    assert_eq!(number(&json, &["snapshot", "rows"]) as u64, BULK_ROWS, "snapshot table rows");
    assert!(number(&json, &["snapshot", "snapshot_rows_per_s"]) > 0.0);
    assert!(number(&json, &["snapshot", "verify_rows_per_s"]) > 0.0);
    // Side by side with Debezium on MySQL 9.7: both streamed A and B and snapshotted the table.
    for (w, rows) in [("A", BULK_ROWS), ("B", 4 * OLTP_EVENTS), ("S", BULK_ROWS)] {
        for side in ["rowferry", "debezium-json"] {
            assert_eq!(number(&json, &["debezium", w, side, "rows"]) as u64, rows, "{w} {side}: rows");
            for figure in ["rows_per_s", "cpu_s", "peak_rss_mib", "time_to_first_record_s"] {
                assert!(number(&json, &["debezium", w, side, figure]) > 0.0, "{w} {side}: {figure}");
            }
        }
        assert!(number(&json, &["debezium", w, "ratios", "rows_per_s"]) > 0.0, "{w}: ratio");
    }
    assert!(number(&json, &["debezium", "A", "debezium-json-schemas", "rows_per_s"]) > 0.0);
}
