"""Report for scripts/bench: the medians of its repetitions as one table, and the same as JSON.

usage: report.py JSON CORES STREAM_RESULTS LATENCY_RESULTS SNAPSHOT_RESULTS SNAPSHOT_ROWS LAT_TPS LAT_SECS DEBEZIUM_RESULTS
                 [COMPRESSED_RESULTS COMPRESSED_ROWS [EOS_RESULTS EOS_LATENCY_RESULTS [SEMI_RESULTS SEMI_TPS]]]

Input files that a phase did not write are skipped (PHASES picks the phases):
  STREAM_RESULTS   per line: name rep raw_s produce_s rowferry_s cpu_s peak_kib rows records
                   binlog_bytes peer_s peer_rows
  LATENCY_RESULTS  per line: "latency" rep rows seconds metrics_file visible_count visible_p50_ms visible_p99_ms
                   visible_max_ms (the last four: source commit → visible to a read_committed consumer)
  EOS_RESULTS      per line: name rep rowferry_s cpu_s peak_kib rows records (kafka.delivery = "exactly_once")
  EOS_LATENCY_RESULTS  as LATENCY_RESULTS, in exactly-once mode
  SNAPSHOT_RESULTS per line: scan_s snapshot_s snapshot_cpu_s snapshot_peak_kib verify_s verify_peak_kib
  DEBEZIUM_RESULTS per line: workload side rep rows to_first_s first_to_last_s cpu_s peak_kib records
  COMPRESSED_RESULTS per line: "C" rep rowferry_s cpu_s peak_kib rows records
  SEMI_RESULTS     per line: "semi_sync" rep mode p50_ms p99_ms max_ms txn_per_s max_txn_per_s no_tx
                   (mode: async or semi; COMMIT latency at SEMI_TPS transactions/s, the most
                   transactions/s on 16 connections, commits that timed out waiting for an ACK)
"""
import json
import os
import statistics
import sys

HISTOGRAM = "rowferry_commit_to_ack_seconds"


def lines(path):
    if not os.path.exists(path):
        return []
    return [line.split() for line in open(path) if line.strip()]


def quantile(q, buckets, count):
    """histogram_quantile: linear interpolation inside the bucket holding the q-th observation."""
    rank, lower, below = q * count, 0.0, 0
    for le, cumulative in buckets:
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return lower


def histogram(metrics_file, name=HISTOGRAM):
    buckets, count, top = [], 0, 0.0
    for line in open(metrics_file):
        if line.startswith(name + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), int(float(line.split()[-1]))))
        elif line.startswith(name + "_count"):
            count = int(float(line.split()[-1]))
        elif line.startswith(name + "_max"):
            top = float(line.split()[-1])
    return buckets, count, top


def latency_of(metrics_file, name=HISTOGRAM):
    """The records acknowledged (with NAME, what it observes) between the warm-up's end
    (METRICS.base) and METRICS."""
    base, base_count, _ = histogram(metrics_file + ".base", name)
    end, end_count, top = histogram(metrics_file, name)
    buckets = [(le, n - b) for (le, n), (_, b) in zip(end, base)]
    count = end_count - base_count
    if count <= 0:
        sys.exit(f"report: no commit → ack observations in {metrics_file}")
    # The max gauge covers the warm-up too: the measured max is at most it, and at most the
    # upper bound of the highest bucket that grew.
    grown = next(le for le, n in buckets if n == count)
    # (A histogram without a max gauge: the bucket's bound alone.)
    top = min(top, grown) if top > 0 else grown
    at = lambda q: min(quantile(q, buckets, count), top) * 1e3
    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": top * 1e3, "records": count}


def stream(rows, out):
    print(f"{'':14}{'rows':>10}{'rowferry':>14}{'MB/s':>8}{'CPU s':>8}{'s/Mrow':>8}{'RSS MiB':>9}{'raw read':>14}"
          f"{'producer':>14}{'peer':>12}{'÷ceiling':>10}{'×peer':>8}")
    for name in dict.fromkeys(r[0] for r in rows):
        rs = [r for r in rows if r[0] == name]
        med = lambda i: statistics.median(float(r[i]) for r in rs)
        # The workload's rows are those in its binlog files, as the peer counts them (rowferry may
        # read on into the next workload while its offset for this one is being stored).
        n, secs, mb = med(11), med(4), med(9) / 1e6
        w = {
            "rows": int(n), "binlog_mb": round(mb, 1), "repetitions": len(rs),
            "rowferry_rows": int(med(7)), "rowferry_rows_per_s": round(n / secs), "rowferry_mb_per_s": round(mb / secs, 1),
            "rowferry_cpu_s": med(5), "rowferry_peak_rss_mib": round(med(6) / 1024, 1),
            # The producer ceiling sends as many records as rowferry published in its run; per row:
            "raw_read_rows_per_s": round(n / med(2)), "producer_rows_per_s": round(med(8) / med(3) * n / med(8)),
            "producer_records_per_s": round(med(8) / med(3)), "records_per_row": round(med(8) / med(7), 3),
            # 0: the peer was left out (BENCH_PEER=0).
            "peer_rows_per_s": round(med(11) / med(10)) if med(10) > 0 else 0,
        }
        ceiling = min(w["raw_read_rows_per_s"], w["producer_rows_per_s"])
        w["ratio_to_ceiling"] = round(w["rowferry_rows_per_s"] / ceiling, 2)
        w["ratio_to_peer"] = round(w["rowferry_rows_per_s"] / w["peer_rows_per_s"], 1) if w["peer_rows_per_s"] else 0
        # rowferry's own CPU (user + system) per million rows of the workload.
        w["rowferry_cpu_s_per_mrow"] = round(w["rowferry_cpu_s"] / n * 1e6, 2)
        if all(len(r) >= 21 for r in rs):
            # Where the machine's CPU went in each of the three runs, per million rows of the workload:
            # the whole machine (cores busy × seconds) and each process taking part (medians).
            per = lambda i: round(med(i) / n * 1e6, 2)
            w["cpu_s_per_mrow"] = {
                "rowferry_run": {"machine": round(med(12) * secs / n * 1e6, 2), "rowferry": per(5),
                                 "server": per(13), "broker": per(14), "machine_cores": med(12)},
                "raw_read": {"machine": round(med(15) * med(2) / n * 1e6, 2), "server": per(16), "client": per(17),
                             "machine_cores": med(15)},
                "producer_only": {"machine": round(med(18) * med(3) / n * 1e6, 2), "broker": per(19), "producer": per(20),
                                  "machine_cores": med(18)},
            }
        if all(len(r) >= 25 for r in rs):
            # Start-up apart from streaming: the seconds to rowferry's first stored offset, and the
            # rate after it — the rows after that offset (the workload's transactions are alike, so
            # rows ∝ sequence numbers) over the time from it to the last one.
            def steady(r):
                secs, first_s, first_seq, start, end = float(r[4]), float(r[21]), int(r[22]), int(r[23]), int(r[24])
                return n * (end - first_seq) / max(end - start, 1) / max(secs - first_s, 1e-3)
            w["rowferry_start_s"] = med(21)
            w["rowferry_streaming_rows_per_s"] = round(statistics.median(steady(r) for r in rs))
            w["streaming_ratio_to_ceiling"] = round(w["rowferry_streaming_rows_per_s"] / ceiling, 2)
        out["workloads"][name] = w
        print(f"{name + (' bulk' if name == 'A' else ' OLTP'):14}{w['rows']:>10,}{w['rowferry_rows_per_s']:>10,} r/s"
              f"{w['rowferry_mb_per_s']:>8}{w['rowferry_cpu_s']:>8}{w['rowferry_cpu_s_per_mrow']:>8}{w['rowferry_peak_rss_mib']:>9}"
              f"{w['raw_read_rows_per_s']:>10,} r/s{w['producer_rows_per_s']:>10,} r/s{w['peer_rows_per_s']:>8,} r/s"
              f"{w['ratio_to_ceiling']:>10}{w['ratio_to_peer']:>8}")
    for name, w in out["workloads"].items():
        if "rowferry_start_s" in w:
            print(f"{name}: {w['rowferry_start_s']} s to rowferry's first stored offset, then "
                  f"{w['rowferry_streaming_rows_per_s']:,} rows/s (÷ceiling {w['streaming_ratio_to_ceiling']})")
    cpu = {k: w["cpu_s_per_mrow"] for k, w in out["workloads"].items() if "cpu_s_per_mrow" in w}
    if cpu:
        print("\nCPU s per million rows (machine = cores busy × seconds; the others: that process alone)")
        for name, c in cpu.items():
            for run, f in c.items():
                parts = ", ".join(f"{k} {v}" for k, v in f.items() if k not in ("machine", "machine_cores"))
                print(f"  {name} {run:14} machine {f['machine']:>6} ({f['machine_cores']} cores busy): {parts}")


def latency(rows, tps, secs, out, key="latency", mode="at-least-once"):
    read = lambda r: latency_of(r[4], "rowferry_commit_to_read_seconds")  # noqa: E731
    runs = [dict(latency_of(r[4]), read_p50_ms=read(r)["p50_ms"], read_p99_ms=read(r)["p99_ms"],
                 rows_per_s=int(r[2]) / float(r[3]), visible_records=int(r[5]),
                 visible_p50_ms=float(r[6]), visible_p99_ms=float(r[7]), visible_max_ms=float(r[8])) for r in rows]
    med = lambda k: statistics.median(run[k] for run in runs)
    out[key] = {
        "source": "MySQL 9.7", "load": f"sysbench oltp_write_only, {tps} tx/s for {secs} s", "delivery": mode,
        "rows_per_s": round(med("rows_per_s")), "p50_ms": round(med("p50_ms"), 2), "p99_ms": round(med("p99_ms"), 2),
        "max_ms": round(med("max_ms"), 2), "records": int(med("records")), "repetitions": len(runs),
        "visible_p50_ms": round(med("visible_p50_ms"), 1), "visible_p99_ms": round(med("visible_p99_ms"), 1),
        "visible_max_ms": round(med("visible_max_ms"), 1), "visible_records": int(med("visible_records")),
        "read_p50_ms": round(med("read_p50_ms"), 2), "read_p99_ms": round(med("read_p99_ms"), 2),
    }
    l = out[key]
    print(f"\nlatency ({mode}), source commit → Kafka ack, MySQL 9.7 at {l['rows_per_s']:,} rows/s ({l['load']}): "
          f"p50 {l['p50_ms']} ms, p99 {l['p99_ms']} ms, max ≤ {l['max_ms']} ms ({l['records']:,} records); "
          f"→ visible to a read_committed consumer: p50 {l['visible_p50_ms']} ms, p99 {l['visible_p99_ms']} ms, "
          f"max {l['visible_max_ms']} ms ({l['visible_records']:,} records); source commit → read by rowferry: "
          f"p50 {l['read_p50_ms']} ms, p99 {l['read_p99_ms']} ms")


def exactly_once(rows, out):
    """Workloads A and B with kafka.delivery = "exactly_once", against their at-least-once runs."""
    out["exactly_once"] = {}
    print("\nexactly-once (kafka.delivery = \"exactly_once\") on the same binlogs:")
    for name in dict.fromkeys(r[0] for r in rows):
        rs = [r for r in rows if r[0] == name]
        med = lambda i: statistics.median(float(r[i]) for r in rs)  # noqa: E731
        alo = out["workloads"].get(name, {})
        n = alo.get("rows") or int(med(5))
        e = {"rows": n, "repetitions": len(rs), "rowferry_rows_per_s": round(n / med(2)), "rowferry_cpu_s": med(3),
             "rowferry_cpu_s_per_mrow": round(med(3) / n * 1e6, 2), "rowferry_peak_rss_mib": round(med(4) / 1024, 1)}
        if alo.get("rowferry_rows_per_s"):
            e["to_at_least_once"] = round(e["rowferry_rows_per_s"] / alo["rowferry_rows_per_s"], 2)
        out["exactly_once"][name] = e
        vs = f" = {e['to_at_least_once']} of at-least-once ({alo['rowferry_rows_per_s']:,} r/s)" if "to_at_least_once" in e else ""
        print(f"  {name}: {e['rowferry_rows_per_s']:,} r/s{vs}, {e['rowferry_cpu_s']} CPU s "
              f"({e['rowferry_cpu_s_per_mrow']} s/Mrow), {e['rowferry_peak_rss_mib']} MiB peak")


def snapshot(rows, n, out):
    med = lambda i: statistics.median(float(r[i]) for r in rows)
    scan, snap, cpu, peak, verify, vpeak = (med(i) for i in range(6))
    out["snapshot"] = {
        "rows": n, "repetitions": len(rows), "scan_rows_per_s": round(n / scan),
        "snapshot_rows_per_s": round(n / snap), "snapshot_to_scan": round(scan / snap, 2),
        "snapshot_cpu_s": cpu, "snapshot_peak_rss_mib": round(peak / 1024, 1),
        "verify_rows_per_s": round(n / verify), "verify_to_scan": round(scan / verify, 2),
        "verify_peak_rss_mib": round(vpeak / 1024, 1),
    }
    s = out["snapshot"]
    print(f"\nsnapshot of sbtest1 ({n:,} rows): full-scan SELECT {s['scan_rows_per_s']:,} r/s; snapshot into Kafka "
          f"{s['snapshot_rows_per_s']:,} r/s ({s['snapshot_to_scan']} of the scan; {cpu:.1f} CPU s, "
          f"{s['snapshot_peak_rss_mib']:.0f} MiB peak); verify {s['verify_rows_per_s']:,} r/s "
          f"({s['verify_to_scan']} of the scan; {s['verify_peak_rss_mib']:.0f} MiB peak)")


SIDES = ["rowferry", "debezium-json", "debezium-json-schemas"]
WORKLOADS = {"A": "A bulk", "B": "B OLTP", "S": "snapshot"}


def debezium(rows, out):
    """Side by side: per workload and side the medians, and rowferry's ratios to Debezium (JSON,
    schemas off: its fastest common setup)."""
    out["debezium"] = {}
    print("\nside by side with Debezium 3.6.1 (Kafka Connect standalone), MySQL 9.7, same binlog, same broker:")
    print(f"{'':10}{'side':24}{'rows':>10}{'rows/s':>10}{'CPU s':>8}{'µs CPU/row':>11}{'RSS MiB':>9}{'1st rec s':>10}")
    for w, title in WORKLOADS.items():
        sides = {}
        for side in SIDES:
            rs = [r for r in rows if r[0] == w and r[1] == side]
            if not rs:
                continue
            med = lambda i: statistics.median(float(r[i]) for r in rs)  # noqa: E731
            n = int(med(3))
            figures = {
                "rows": n, "repetitions": len(rs), "rows_per_s": round(n / max(med(5), 1e-3)),
                "cpu_s": round(med(6), 2), "cpu_us_per_row": round(med(6) / n * 1e6, 2),
                "peak_rss_mib": round(med(7) / 1024, 1), "time_to_first_record_s": round(med(4), 2),
            }
            sides[side] = figures
            print(f"{title:10}{side:24}{n:>10,}{figures['rows_per_s']:>10,}{figures['cpu_s']:>8}"
                  f"{figures['cpu_us_per_row']:>11}{figures['peak_rss_mib']:>9}{figures['time_to_first_record_s']:>10}")
        if "rowferry" in sides and "debezium-json" in sides:
            rf, dbz = sides["rowferry"], sides["debezium-json"]
            sides["ratios"] = {
                "rows_per_s": round(rf["rows_per_s"] / dbz["rows_per_s"], 1),
                "cpu_per_row": round(dbz["cpu_us_per_row"] / rf["cpu_us_per_row"], 1),
                "peak_rss": round(dbz["peak_rss_mib"] / rf["peak_rss_mib"], 1),
            }
            r = sides["ratios"]
            print(f"{'':10}{'rowferry ÷ Debezium JSON':24}  {r['rows_per_s']}x the rows/s, 1/{r['cpu_per_row']} of the "
                  f"CPU per row, 1/{r['peak_rss']} of the memory")
        out["debezium"][w] = sides


def compressed(rows, n, out):
    """Workload C: compressed MySQL transactions (TRANSACTION_PAYLOAD), rowferry alone."""
    med = lambda i: statistics.median(float(r[i]) for r in rows)  # noqa: E731
    c = {
        "rows": n, "repetitions": len(rows), "rowferry_rows": int(med(5)), "rowferry_rows_per_s": round(n / med(2)),
        "rowferry_cpu_s": med(3), "rowferry_cpu_s_per_mrow": round(med(3) / n * 1e6, 2),
        "rowferry_peak_rss_mib": round(med(4) / 1024, 1),
    }
    out["workloads"]["C"] = c
    print(f"\nC compressed, MySQL 9.7 binlog_transaction_compression=ON ({n:,} rows): {c['rowferry_rows_per_s']:,} r/s, "
          f"{c['rowferry_cpu_s']} CPU s ({c['rowferry_cpu_s_per_mrow']} s/Mrow), {c['rowferry_peak_rss_mib']} MiB peak")


def semi_sync(rows, tps, out):
    """COMMIT latency and throughput on MySQL 9.7, rowferry asynchronous vs semi-sync replica."""
    res = {}
    for mode in ("async", "semi"):
        runs = [r for r in rows if r[2] == mode]
        if not runs:
            continue
        med = lambda i: statistics.median(float(r[i]) for r in runs)  # noqa: E731
        res[mode] = {
            "repetitions": len(runs), "commit_p50_ms": round(med(3), 2), "commit_p99_ms": round(med(4), 2),
            "commit_max_ms": round(med(5), 2), "txn_per_s": round(med(6)), "max_txn_per_s": round(med(7)),
            "timed_out_commits": int(max(float(r[8]) for r in runs)),
        }
    out["semi_sync"] = res
    print(f"\nsemi-sync, MySQL 9.7 (AFTER_SYNC), COMMIT latency of autocommit single-row INSERTs at {int(tps):,} txn/s "
          "(16 connections), and the most txn/s on 16 connections:")
    for mode, label in (("async", "rowferry asynchronous"), ("semi", "source.semi_sync = true")):
        if m := res.get(mode):
            print(f"  {label:<24} p50 {m['commit_p50_ms']} ms  p99 {m['commit_p99_ms']} ms  max {m['commit_max_ms']} ms  "
                  f"at {m['txn_per_s']:,} txn/s; most {m['max_txn_per_s']:,} txn/s; "
                  f"{m['timed_out_commits']} commits timed out waiting for an ACK")
    if "async" in res and "semi" in res:
        res["max_txn_ratio"] = round(res["semi"]["max_txn_per_s"] / res["async"]["max_txn_per_s"], 2)
        print(f"  semi-sync ÷ async, most txn/s: {res['max_txn_ratio']}")


def main():
    path, cores, stream_file, latency_file, snapshot_file, snapshot_rows, tps, secs = sys.argv[1:9]
    debezium_file = sys.argv[9] if len(sys.argv) > 9 else ""
    out = {"cores": int(cores), "workloads": {}}
    if rows := lines(stream_file):
        stream(rows, out)
    if rows := lines(latency_file):
        latency(rows, tps, secs, out)
    if rows := lines(snapshot_file):
        snapshot(rows, int(open(snapshot_rows).read()), out)
    if rows := lines(debezium_file):
        debezium(rows, out)
    if len(sys.argv) > 11 and (rows := lines(sys.argv[10])):
        compressed(rows, int(sys.argv[11]), out)
    if len(sys.argv) > 12 and (rows := lines(sys.argv[12])):
        exactly_once(rows, out)
    if len(sys.argv) > 13 and (rows := lines(sys.argv[13])):
        latency(rows, tps, secs, out, "latency_exactly_once", "exactly-once")
    if len(sys.argv) > 15 and (rows := lines(sys.argv[14])):
        semi_sync(rows, sys.argv[15], out)
    json.dump(out, open(path, "w"), indent=2)
    print(f"\nmedians of the repetitions; JSON: {path}")


main()
