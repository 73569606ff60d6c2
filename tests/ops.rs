//! The operations surface of a running `rowferry run`: /healthz, /readyz, /metrics, /status and
//! `rowferry status`, pause/resume with a bearer token, and the stall watchdog — a frozen source
//! link turns readiness false, and the watchdog's reconnect brings it back with nothing lost.

mod common;

use common::connector::{Connector, covers, offset_reaches, stop};
use common::proxy::Proxy;
use common::{MARIADB, MYSQL, admin, env, host_port, position_now, unique};
use std::time::{Duration, Instant};

fn client() -> reqwest::Client {
    rowferry::install_tls_provider();
    reqwest::Client::new()
}

async fn get(c: &Connector, path: &str) -> (u16, String) {
    match client().get(format!("http://{}{path}", c.http)).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

async fn post(c: &Connector, path: &str, token: Option<&str>) -> u16 {
    let mut request = client().post(format!("http://{}{path}", c.http));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Polls `path` until its status is `want` (bounded).
async fn until_status(c: &Connector, path: &str, want: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = get(c, path).await;
        if status == want {
            return;
        }
        assert!(Instant::now() < deadline, "{path} stayed {status} ({body}), wanted {want}\nlog:\n{}", c.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/metrics` as soon as `ready` holds for it (bounded).
async fn metrics_when(c: &Connector, ready: impl Fn(&str) -> bool, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (status, metrics) = get(c, "/metrics").await;
        if status == 200 && ready(&metrics) {
            return metrics;
        }
        assert!(Instant::now() < deadline, "metrics never settled:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One sample of the exposition text, e.g. `rowferry_rows_total{table="a.b",op="c"}`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_status_and_control() {
    let url = env(MARIADB);
    let db = unique("ops");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let connector = Connector::new(&url, &db).with_http("token = \"t0k\"");
    let mut child = connector.start();
    until_status(&connector, "/healthz", 200, Duration::from_secs(60)).await;
    until_status(&connector, "/readyz", 200, Duration::from_secs(60)).await;

    admin(&url, &[format!("INSERT INTO {db}.t VALUES (1), (2), (3)"), format!("DELETE FROM {db}.t WHERE id = 3")])
        .await;
    let written = position_now(&url).await.to_string();
    offset_reaches(&connector, |g| covers(g, &written)).await;
    // The committed position and the in-flight gauge are refreshed on rowferry's ticks: wait
    // until the exposition shows both settled.
    let settled = |m: &str| {
        sample(m, "rowferry_offset_waiting_transactions") == Some(0.0)
            && sample(m, "rowferry_inflight_records") == Some(0.0)
    };
    let metrics = metrics_when(&connector, settled, Duration::from_secs(10)).await;
    let table = format!("{db}.t");
    assert_eq!(sample(&metrics, &format!("rowferry_rows_total{{table=\"{table}\",op=\"c\"}}")), Some(3.0), "{metrics}");
    assert_eq!(sample(&metrics, &format!("rowferry_rows_total{{table=\"{table}\",op=\"d\"}}")), Some(1.0));
    // Three inserts, a delete and its tombstone.
    assert_eq!(sample(&metrics, "rowferry_records_published_total"), Some(5.0));
    assert_eq!(sample(&metrics, "rowferry_ready"), Some(1.0));
    assert_eq!(sample(&metrics, "rowferry_source_connected"), Some(1.0));
    assert_eq!(sample(&metrics, "rowferry_inflight_records"), Some(0.0));
    assert_eq!(sample(&metrics, "rowferry_offset_held"), Some(0.0));
    assert!(!metrics.contains("gtid_set"), "no series per position: {metrics}");
    // Every acknowledged record (with its source commit time) is in the latency histogram.
    assert_eq!(sample(&metrics, "rowferry_commit_to_ack_seconds_count"), Some(5.0), "{metrics}");
    assert_eq!(sample(&metrics, "rowferry_commit_to_ack_seconds_bucket{le=\"+Inf\"}"), Some(5.0));
    assert!(sample(&metrics, "rowferry_commit_to_ack_seconds_sum").is_some_and(|s| s >= 0.0));
    // Every transaction read (the server's others too) is in the read-latency histogram.
    let read = sample(&metrics, "rowferry_commit_to_read_seconds_count").unwrap_or(0.0);
    assert!(read >= 2.0, "at least this test's two transactions: {metrics}");
    assert_eq!(sample(&metrics, "rowferry_commit_to_read_seconds_bucket{le=\"+Inf\"}"), Some(read));

    let (_, body) = get(&connector, "/status").await;
    let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    assert_eq!(status["state"], "streaming");
    assert_eq!(status["ready"], true);
    assert_eq!(status["tables"][&table]["rows"], serde_json::json!({"c": 3, "u": 0, "d": 1}));
    assert!(covers(status["committed"]["gtid_set"].as_str().expect("committed"), &written), "{status}");
    let password = url::Url::parse(&url).expect("url").password().unwrap_or_default().to_string();
    assert!(!password.is_empty() && !body.contains(&password), "the source password never appears: {body}");

    // `rowferry status` prints the same document.
    let out = connector.cli(&["status"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["connector"], db);
    assert_eq!(printed["tables"][&table]["rows"]["c"], 3);

    // Control needs the bearer token.
    assert_eq!(post(&connector, "/pause", None).await, 401);
    assert_eq!(post(&connector, "/pause", Some("wrong")).await, 401);
    assert_eq!(post(&connector, "/pause", Some("t0k")).await, 200);
    let (_, body) = get(&connector, "/status").await;
    assert!(body.contains("\"state\": \"paused\""), "{body}");
    // Paused: a change is not taken, so the offset stays (observed for a few seconds).
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (4)")]).await;
    let during = position_now(&url).await.to_string();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let stored = connector.offset().and_then(|o| o["gtid_set"].as_str().map(String::from)).unwrap_or_default();
        assert!(!covers(&stored, &during), "paused, yet {stored} covers {during}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    until_status(&connector, "/readyz", 200, Duration::from_secs(5)).await;
    assert_eq!(post(&connector, "/resume", Some("t0k")).await, 200);
    offset_reaches(&connector, |g| covers(g, &during)).await;
    // An incremental snapshot: the endpoint wants the token and a table list; `rowferry snapshot
    // --tables` finds the running connector and asks it; progress shows in /metrics.
    assert_eq!(post(&connector, "/snapshot", None).await, 401);
    assert_eq!(post(&connector, "/snapshot", Some("t0k")).await, 400, "no table list");
    let out = connector.cli(&["snapshot", "--tables", &table]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = format!("rowferry_snapshot_done{{table=\"{table}\"}}");
    let metrics = metrics_when(&connector, |m| sample(m, &done) == Some(1.0), Duration::from_secs(30)).await;
    assert_eq!(sample(&metrics, &format!("rowferry_snapshot_rows{{table=\"{table}\"}}")), Some(3.0), "{metrics}");
    // TRUNCATE leaves no rows in the binlog: counted and warned about, never silent.
    assert_eq!(sample(&metrics, "rowferry_truncates_total"), Some(0.0));
    admin(&url, &[format!("TRUNCATE TABLE {db}.t")]).await;
    metrics_when(&connector, |m| sample(m, "rowferry_truncates_total") == Some(1.0), Duration::from_secs(30)).await;
    assert!(connector.log().contains("TRUNCATE TABLE"), "{}", connector.log());
    assert_eq!(stop(&mut child).await, Some(0));
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

#[tokio::test]
async fn a_frozen_source_link_turns_readiness_false_then_recovers() {
    let url = env(MYSQL);
    let db = unique("stall");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let (host, port) = host_port(&url);
    let proxy = Proxy::start(format!("{host}:{port}").parse().expect("address")).await;
    let parsed = url::Url::parse(&url).expect("url");
    let via_proxy = format!("mysql://{}:{}@{}", parsed.username(), parsed.password().unwrap_or(""), proxy.addr);
    let connector = Connector::new(&via_proxy, &db).with_top("stall_timeout_secs = 3");
    let mut child = connector.start();
    until_status(&connector, "/readyz", 200, Duration::from_secs(60)).await;

    // The link goes silent: no event, no heartbeat. Readiness turns false within the bound...
    proxy.freeze();
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (1)")]).await;
    let written = position_now(&url).await.to_string();
    until_status(&connector, "/readyz", 503, Duration::from_secs(20)).await;
    let (_, body) = get(&connector, "/readyz").await;
    assert!(body.contains("source"), "the reason names the source: {body}");
    // ...then the reconnect (a new connection through the proxy works) brings it back.
    until_status(&connector, "/readyz", 200, Duration::from_secs(30)).await;
    offset_reaches(&connector, |g| covers(g, &written)).await;
    let (_, metrics) = get(&connector, "/metrics").await;
    let recovered = sample(&metrics, "rowferry_stalls_total").unwrap_or(0.0)
        + sample(&metrics, "rowferry_reconnects_total").unwrap_or(0.0);
    assert!(recovered >= 1.0, "a stall or reconnect is counted: {metrics}");
    assert_eq!(stop(&mut child).await, Some(0));
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}

/// Passwords and keys given to rowferry never come back out: not in `rowferry check`'s report,
/// the log (errors included), `/status`, `/metrics` or `rowferry status`. The registry is
/// unreachable on purpose, so its errors (which name its URL) are logged.
#[tokio::test]
async fn secrets_never_reach_any_output() {
    let url = env(MARIADB);
    let db = unique("secrets");
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    let (kafka_secret, registry_secret) = ("kafka-pw-8c1f", "registry-pw-77ad");
    let connector = Connector::new(&url, &db)
        .with_registry(
            &format!("mode = \"external\"\nurl = \"http://svc:{registry_secret}@127.0.0.1:9/\""),
            "http://127.0.0.1:9",
        )
        .with_extra(&format!(
            "[kafka.librdkafka]\n\"sasl.password\" = \"{kafka_secret}\"\n\"ssl.key.password\" = \"{kafka_secret}\"\n"
        ));
    let rowferry = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rowferry"))
            .args(args)
            .arg("--config")
            .arg(connector.config.path())
            .output()
            .expect("rowferry");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let mut outputs = vec![("check", rowferry(&["check"]))];
    let mut child = connector.start();
    until_status(&connector, "/healthz", 200, Duration::from_secs(60)).await;
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (1)")]).await;
    // The record's schema cannot be registered: the retries are logged with the registry's URL.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !connector.log().contains("127.0.0.1:9") {
        assert!(Instant::now() < deadline, "no registry error logged:\n{}", connector.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    outputs.push(("/status", get(&connector, "/status").await.1));
    outputs.push(("/metrics", get(&connector, "/metrics").await.1));
    outputs.push(("rowferry status", rowferry(&["status"])));
    let _ = stop(&mut child).await;
    outputs.push(("log", connector.log()));
    for (what, text) in &outputs {
        for secret in [kafka_secret, registry_secret] {
            assert!(!text.contains(secret), "{secret} appears in {what}:\n{text}");
        }
    }
    let source_password = url::Url::parse(&url).expect("url").password().unwrap_or_default().to_string();
    for (what, text) in &outputs {
        assert!(!text.contains(&format!(":{source_password}@")), "the source password appears in {what}");
    }
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
}
