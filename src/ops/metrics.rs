//! `/metrics` in the Prometheus text format (version 0.0.4). Every metric is declared once in
//! [`METRICS`] (name, type, help) and rendered from [`super::Ops`]; labels: `table` (bounded,
//! see the module docs of `ops`) and `op` (`c`, `u`, `d`). No label carries a position: a GTID
//! set as a label makes a new series on every commit (it is in `/status`).

use super::{Ops, now_ms};
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// Name, type and help of every metric, in output order.
pub const METRICS: &[(&str, &str, &str)] = &[
    ("rowferry_up", "gauge", "1 while the process serves metrics."),
    ("rowferry_ready", "gauge", "1 when /readyz would answer 200."),
    ("rowferry_paused", "gauge", "1 while paused by POST /pause."),
    ("rowferry_source_connected", "gauge", "1 while the binlog connection is up."),
    (
        "rowferry_events_total",
        "counter",
        "Source events taken by the pipeline (transaction boundaries, rows, statements, heartbeats).",
    ),
    ("rowferry_rows_total", "counter", "Row changes read, per table and op (c insert, u update, d delete)."),
    ("rowferry_records_published_total", "counter", "Records Kafka acknowledged."),
    ("rowferry_published_bytes_total", "counter", "Key and value bytes of the records Kafka acknowledged."),
    ("rowferry_delivery_errors_total", "counter", "Records Kafka refused for good (each stops the connector)."),
    ("rowferry_inflight_records", "gauge", "Records sent and not yet acknowledged."),
    ("rowferry_inflight_bytes", "gauge", "Key and value bytes of the records in flight."),
    (
        "rowferry_seconds_behind_source",
        "gauge",
        "Processing time minus source commit time of the last row; 0 after a heartbeat.",
    ),
    (
        "rowferry_commit_to_ack_seconds",
        "histogram",
        "Source commit to Kafka acknowledgement, per record (MySQL 8+: microsecond commit times; MariaDB: whole seconds).",
    ),
    (
        "rowferry_commit_to_read_seconds",
        "histogram",
        "Source commit to the transaction's first event read by rowferry, per transaction (the source's and the network's part of commit to ack).",
    ),
    (
        "rowferry_commit_to_ack_seconds_max",
        "gauge",
        "The largest source commit to Kafka acknowledgement time since start.",
    ),
    ("rowferry_last_ack_age_seconds", "gauge", "Seconds since the last acknowledgement from Kafka."),
    ("rowferry_source_last_event_age_seconds", "gauge", "Seconds since the last event or heartbeat from the source."),
    (
        "rowferry_committed_offset_age_seconds",
        "gauge",
        "Seconds since the stored offset was last up to date with every acknowledged transaction.",
    ),
    (
        "rowferry_offset_waiting_transactions",
        "gauge",
        "Transactions read but not yet covered by the stored offset (the stored GTID set is in /status).",
    ),
    ("rowferry_offset_held", "gauge", "1 while a table stopped by an error holds the stored offset."),
    (
        "rowferry_truncates_total",
        "counter",
        "TRUNCATE TABLE statements on captured tables: no record says their rows are gone (see the log).",
    ),
    ("rowferry_reconnects_total", "counter", "Binlog connections re-established."),
    (
        "rowferry_semi_sync_active",
        "gauge",
        "1 while the binlog connection is a semi-sync replica of the source (source.semi_sync).",
    ),
    ("rowferry_semi_sync_acks_total", "counter", "Semi-sync ACKs sent to the source (each once Kafka has the point)."),
    ("rowferry_stalls_total", "counter", "Times the watchdog found the source silent and reconnected it."),
    ("rowferry_tables_stopped", "gauge", "Tables stopped by a per-table error (see /status)."),
    ("rowferry_snapshot_rows", "gauge", "Rows copied by the snapshot so far, per table."),
    ("rowferry_snapshot_rows_estimate", "gauge", "The server's row estimate of each table being snapshotted."),
    ("rowferry_snapshot_done", "gauge", "1 once a table's snapshot is complete and durable."),
    (
        "rowferry_snapshot_chunk_retries_total",
        "counter",
        "Snapshot chunks read again because the stream passed their low mark first, or DDL crossed them.",
    ),
];

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The exposition text.
/// A histogram's buckets, sum and count, as Prometheus' text format has them.
fn histogram(out: &mut String, name: &str, h: &crate::histogram::Histogram) {
    let (buckets, sum, count) = h.snapshot();
    let bounds = crate::histogram::BOUNDS.iter().map(|b| b.to_string()).chain(["+Inf".to_string()]);
    for (le, n) in bounds.zip(buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
}

pub fn render(ops: &Ops) -> String {
    let readiness = ops.readiness();
    let reader = ops.reader.get();
    let age = |ms: u64| now_ms().saturating_sub(ms) as f64 / 1000.0;
    let committed = ops.committed.lock().ok().and_then(|c| c.clone());
    let tables = ops
        .tables
        .lock()
        .map(|t| t.iter().map(|(n, c)| (n.clone(), [c.inserts, c.updates, c.deletes], c.stopped.is_some())).collect())
        .unwrap_or_else(|_| Vec::new());
    let snapshot = ops.snapshot_tables();
    let mut out = String::new();
    for &(name, kind, help) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        let mut sample = |labels: &str, value: f64| {
            let _ = writeln!(out, "{name}{labels} {value}");
        };
        match name {
            "rowferry_up" => sample("", 1.0),
            "rowferry_ready" => sample("", f64::from(u8::from(readiness.ready))),
            "rowferry_paused" => sample("", f64::from(u8::from(*ops.paused.borrow()))),
            "rowferry_source_connected" => {
                sample("", f64::from(u8::from(reader.is_some_and(|r| r.connected.load(Ordering::Relaxed)))))
            }
            "rowferry_events_total" => sample("", ops.events.load(Ordering::Relaxed) as f64),
            "rowferry_rows_total" => {
                for (table, counts, _) in &tables {
                    for (op, n) in ["c", "u", "d"].iter().zip(counts) {
                        sample(&format!("{{table=\"{}\",op=\"{op}\"}}", escape(table)), *n as f64);
                    }
                }
            }
            "rowferry_records_published_total" => sample("", ops.published.load(Ordering::Relaxed) as f64),
            "rowferry_published_bytes_total" => sample("", ops.published_bytes.load(Ordering::Relaxed) as f64),
            "rowferry_delivery_errors_total" => sample("", ops.delivery_errors.load(Ordering::Relaxed) as f64),
            "rowferry_inflight_records" => sample("", ops.inflight_records.load(Ordering::Relaxed) as f64),
            "rowferry_inflight_bytes" => sample("", ops.inflight_bytes.load(Ordering::Relaxed) as f64),
            "rowferry_seconds_behind_source" => sample("", ops.behind_ms.load(Ordering::Relaxed) as f64 / 1000.0),
            "rowferry_commit_to_ack_seconds" => {
                if let Some(h) = ops.latency.get() {
                    histogram(&mut out, name, h);
                }
            }
            "rowferry_commit_to_read_seconds" => {
                if let Some(r) = ops.reader.get() {
                    histogram(&mut out, name, &r.commit_to_read);
                }
            }
            "rowferry_commit_to_ack_seconds_max" => {
                if let Some(h) = ops.latency.get() {
                    sample("", h.max_seconds());
                }
            }
            "rowferry_last_ack_age_seconds" => sample("", age(ops.last_ack_ms.load(Ordering::Relaxed))),
            "rowferry_source_last_event_age_seconds" => {
                if let Some(r) = reader {
                    sample("", age(r.last_seen_ms.load(Ordering::Relaxed)));
                }
            }
            "rowferry_committed_offset_age_seconds" => {
                if let Some((_, at)) = &committed {
                    sample("", age(*at));
                }
            }
            "rowferry_offset_waiting_transactions" => sample("", ops.offset_waiting().0 as f64),
            "rowferry_offset_held" => sample("", if ops.offset_waiting().1 { 1.0 } else { 0.0 }),
            "rowferry_truncates_total" => sample("", ops.truncates() as f64),
            "rowferry_reconnects_total" => {
                sample("", reader.map_or(0, |r| r.reconnects.load(Ordering::Relaxed)) as f64)
            }
            "rowferry_semi_sync_active" => {
                sample("", f64::from(u8::from(reader.is_some_and(|r| r.semi_sync.load(Ordering::Relaxed)))))
            }
            "rowferry_semi_sync_acks_total" => {
                sample("", reader.map_or(0, |r| r.semi_sync_acks.load(Ordering::Relaxed)) as f64)
            }
            "rowferry_stalls_total" => sample("", ops.stalls.load(Ordering::Relaxed) as f64),
            "rowferry_tables_stopped" => sample("", tables.iter().filter(|(_, _, s)| *s).count() as f64),
            "rowferry_snapshot_rows"
            | "rowferry_snapshot_rows_estimate"
            | "rowferry_snapshot_done"
            | "rowferry_snapshot_chunk_retries_total" => {
                for (table, t) in &snapshot {
                    let value = match name {
                        "rowferry_snapshot_rows" => t.rows as f64,
                        "rowferry_snapshot_rows_estimate" => t.estimate as f64,
                        "rowferry_snapshot_chunk_retries_total" => t.chunk_retries as f64,
                        _ => f64::from(u8::from(t.done)),
                    };
                    sample(&format!("{{table=\"{}\"}}", escape(table)), value);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One row of `table` (`op`: `c`, `u` or `d`), as the pipeline reports a batch of one.
    fn row(ops: &Ops, table: &str, op: &str) {
        let mut counts = crate::ops::RowCounts::default();
        counts.add(op);
        ops.rows(table, counts, 0, 0);
    }

    #[test]
    fn every_declared_metric_is_rendered_once_with_help_and_type() {
        let ops = Ops::new("c1", Duration::from_secs(60));
        row(&ops, "shop.orders", "c");
        row(&ops, "shop.\"odd\"", "d");
        ops.committed("0-1-5".into());
        let text = render(&ops);
        for (name, kind, _) in METRICS {
            assert_eq!(text.matches(&format!("# TYPE {name} {kind}\n")).count(), 1, "{name}");
            assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1, "{name}");
        }
        assert!(text.contains("rowferry_rows_total{table=\"shop.orders\",op=\"c\"} 1\n"), "{text}");
        assert!(text.contains("rowferry_rows_total{table=\"shop.\\\"odd\\\"\",op=\"d\"} 1\n"), "{text}");
        assert!(!text.contains("0-1-5"), "no label carries the GTID set (one series per commit)");
        assert!(text.contains("rowferry_offset_waiting_transactions 0\n"), "{text}");
        assert!(text.contains("rowferry_ready 0\n"), "starting is not ready");
        let names: std::collections::HashSet<_> = METRICS.iter().map(|m| m.0).collect();
        assert_eq!(names.len(), METRICS.len(), "declared once");
    }

    #[test]
    fn table_series_are_bounded() {
        let ops = Ops::new("c1", Duration::from_secs(60));
        for i in 0..super::super::MAX_TABLES + 5 {
            row(&ops, &format!("db.t{i}"), "c");
        }
        let text = render(&ops);
        assert_eq!(text.matches("rowferry_rows_total{").count(), 3 * (super::super::MAX_TABLES + 1));
        assert!(text.contains("table=\"_other\",op=\"c\"} 5\n"));
    }

    #[test]
    fn a_batch_of_rows_adds_to_the_counts() {
        let ops = Ops::new("c1", Duration::from_secs(60));
        let mut counts = crate::ops::RowCounts::default();
        for op in ["c", "c", "u", "d", "c"] {
            counts.add(op);
        }
        row(&ops, "shop.orders", "u");
        ops.rows("shop.orders", counts, 1_000, 1_250);
        let text = render(&ops);
        for (op, n) in [("c", 3), ("u", 2), ("d", 1)] {
            assert!(
                text.contains(&format!("rowferry_rows_total{{table=\"shop.orders\",op=\"{op}\"}} {n}\n")),
                "{text}"
            );
        }
        assert!(text.contains("rowferry_seconds_behind_source 0.25\n"), "{text}");
    }
}
