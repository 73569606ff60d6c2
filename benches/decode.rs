//! Decode benchmark: rowferry's decoder against mysql_common's row decoding and against framing
//! alone, on the same binlog files, one core each.
//!
//! `cargo bench --bench decode -- FILE... [--ceiling-secs NAME=SECONDS...]` prints, per file,
//! events, rows, and rows/s for: framing only (split + CRC32), rowferry (StreamDecoder: framing,
//! TABLE_MAP plans, typed values), and mysql_common (EventStreamReader + RowsEvent::rows, the
//! baseline INFRA.md measured at ~1.26M rows/s bulk, ~0.5M OLTP), with ratios; the median of
//! `--runs` (default 5). `scripts/bench-decode` prepares the files and the remote-read ceiling.
//! Run without files (as `cargo test` does) it measures the golden binlogs once, in well under a
//! second, so the harness cannot rot.

use rowferry::binlog::file::FileEvents;
use rowferry::decoder::{Item, StreamDecoder};
use rowferry::schema::{CollationMap, SchemaOptions};
use std::time::{Duration, Instant};

struct Figures {
    events: usize,
    rows: usize,
}

fn framing(bytes: &[u8]) -> Figures {
    let mut reader = rowferry::binlog::EventReader::new();
    let mut events = 0;
    for event in FileEvents::new(bytes).expect("binlog file") {
        let (_, event) = event.expect("event");
        if reader.read(event).is_ok() {
            events += 1;
        }
    }
    Figures { events, rows: 0 }
}

fn rowferry_decode(bytes: &[u8]) -> Figures {
    let mut decoder = StreamDecoder::new(CollationMap::default(), SchemaOptions { require_full_metadata: false });
    let (mut events, mut rows) = (0, 0);
    for event in FileEvents::new(bytes).expect("binlog file") {
        let (_, event) = event.expect("event");
        events += 1;
        if decoder
            .push(event, &mut |item| {
                if let Item::Row(row) = item {
                    rows += 1;
                    std::hint::black_box(row);
                }
            })
            .is_err()
        {
            break;
        }
    }
    Figures { events, rows }
}

fn mysql_common_decode(bytes: &[u8]) -> Figures {
    use mysql_common::binlog::events::EventData;
    let mut reader =
        mysql_common::binlog::EventStreamReader::new(mysql_common::binlog::consts::BinlogVersion::Version4);
    let (mut events, mut rows) = (0, 0);
    let mut input = &bytes[4..];
    while !input.is_empty() {
        let Ok(Some(event)) = reader.read(&mut input) else { break };
        events += 1;
        if let Ok(Some(EventData::RowsEvent(data))) = event.read_data()
            && let Some(tme) = reader.get_tme(data.table_id())
        {
            for row in data.rows(tme) {
                match row {
                    Ok(r) => {
                        rows += 1;
                        std::hint::black_box(r);
                    }
                    Err(_) => break,
                }
            }
        }
    }
    Figures { events, rows }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, f: impl Fn() -> Figures) -> (Figures, Duration) {
    let mut times = Vec::with_capacity(runs);
    let mut figures = f();
    for _ in 0..runs {
        let start = Instant::now();
        figures = f();
        times.push(start.elapsed());
    }
    (figures, median(times))
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut files = Vec::new();
    let mut ceilings = std::collections::HashMap::new();
    let mut runs = 5;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|r| r.parse().ok()).expect("--runs N"),
            "--ceiling-secs" => {
                let spec = it.next().expect("--ceiling-secs NAME=SECONDS");
                let (name, secs) = spec.split_once('=').expect("NAME=SECONDS");
                ceilings.insert(name.to_string(), secs.parse::<f64>().expect("seconds"));
            }
            other => files.push(std::path::PathBuf::from(other)),
        }
    }
    if files.is_empty() {
        // Tiny mode (cargo test): the golden files, one run.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/mysql-binlogs");
        files = ["mysql-enum-string-set.000001", "vector.binlog", "update-full-row.binlog"]
            .iter()
            .map(|f| dir.join(f))
            .collect();
        runs = 1;
    }
    println!(
        "{:<16} {:>9} {:>10} {:>14} {:>14} {:>14} {:>9} {:>9} {:>12}",
        "file", "events", "rows", "framing ev/s", "rowferry r/s", "mysql_common", "vs m_c", "vs frame", "vs remote"
    );
    let mut json = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (frame, t_frame) = time(runs, || framing(&bytes));
        let (ours, t_ours) = time(runs, || rowferry_decode(&bytes));
        let (theirs, t_theirs) = time(runs, || mysql_common_decode(&bytes));
        assert_eq!(ours.rows, theirs.rows, "{name}: rowferry and mysql_common must see the same rows");
        let ours_rate = rate(ours.rows, t_ours);
        let theirs_rate = rate(theirs.rows, t_theirs);
        // Time to decode vs time to frame the same events: how close decoding is to the floor.
        let vs_frame = t_frame.as_secs_f64() / t_ours.as_secs_f64().max(1e-9);
        let remote = ceilings.get(&name).map(|secs| t_ours.as_secs_f64() / secs);
        println!(
            "{:<16} {:>9} {:>10} {:>14.0} {:>14.0} {:>14.0} {:>8.2}x {:>8.2}x {:>12}",
            name,
            frame.events,
            ours.rows,
            rate(frame.events, t_frame),
            ours_rate,
            theirs_rate,
            ours_rate / theirs_rate.max(1e-9),
            vs_frame,
            remote.map_or("-".to_string(), |r| format!("{:.2}x time", r)),
        );
        json.push(format!(
            "{{\"file\":\"{name}\",\"events\":{},\"rows\":{},\"framing_events_per_s\":{:.0},\"rowferry_rows_per_s\":{ours_rate:.0},\"mysql_common_rows_per_s\":{theirs_rate:.0},\"remote_read_secs\":{}}}",
            frame.events,
            ours.rows,
            rate(frame.events, t_frame),
            ceilings.get(&name).map_or("null".to_string(), |s| s.to_string())
        ));
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    if std::fs::create_dir_all(&out).is_ok() {
        let _ = std::fs::write(out.join("bench-decode.json"), format!("[{}]\n", json.join(",")));
    }
}
