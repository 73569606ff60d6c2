//! The embedded schema registry against the real broker: Confluent's id rules, ids that survive a
//! restart (replay of the topic), and the REST read API that stock deserializers use.

mod common;

use common::{KAFKA, env, unique};
use rowferry::config::KafkaSettings;
use rowferry::registry::compat::Level;
use rowferry::registry::embedded::EmbeddedRegistry;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn kafka() -> KafkaSettings {
    KafkaSettings {
        bootstrap_servers: env(KAFKA),
        topic_prefix: "t".into(),
        librdkafka: Default::default(),
        delivery: Default::default(),
    }
}

/// A minimal HTTP/1.1 client: (status, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    http_as(addr, method, path, body, "").await
}

/// [`http`] with extra header lines (each ending in CRLF).
async fn http_as(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &str,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn ids_follow_confluent_rules_and_survive_a_restart() {
    let topic = unique("_schemas");
    // Id rules only: no compatibility level in the way of string → long.
    let r = EmbeddedRegistry::open(&kafka(), &topic, -1).await.expect("open").with_default_level(Level::None);
    let a = r.register("t.a-value", r#"{"type":"string"}"#).await.expect("register");
    let same = r.register("t.a-value", r#"{ "type" : "string" }"#).await.expect("again");
    let other = r.register("t.b-value", r#"{"type":"string"}"#).await.expect("other subject");
    let b = r.register("t.a-value", r#"{"type":"long"}"#).await.expect("new version");
    assert_eq!((a.id, a.version), (1, 1));
    assert_eq!((same.id, same.version), (1, 1));
    assert_eq!((other.id, other.version), (1, 1));
    assert_eq!((b.id, b.version), (2, 2));
    drop(r);

    // A new process: replays the topic, same ids, and continues the counter.
    let r = EmbeddedRegistry::open(&kafka(), &topic, -1).await.expect("reopen");
    assert_eq!(r.register("t.a-value", r#"{"type":"long"}"#).await.expect("known").id, 2);
    assert_eq!(r.register("t.c-value", r#"{"type":"int"}"#).await.expect("new").id, 3);
    assert_eq!(r.read(|s| s.subjects()), ["t.a-value", "t.b-value", "t.c-value"]);
}

#[tokio::test]
async fn rest_api_serves_what_deserializers_ask_for() {
    let topic = unique("_schemas");
    let r = Arc::new(EmbeddedRegistry::open(&kafka(), &topic, -1).await.expect("open"));
    let v = r
        .register("t.x-value", r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#)
        .await
        .expect("register");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            rowferry::registry::http::router(r, rowferry::ops::http::Gate::new(None, ([127, 0, 0, 1], 0).into())),
        )
        .await
    });

    let (status, body) = http(addr, "GET", &format!("/schemas/ids/{}", v.id), None).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["schema"], v.schema);
    assert_eq!(http(addr, "GET", "/schemas/ids/999", None).await.0, 404);
    assert_eq!(http(addr, "GET", "/subjects", None).await.1, r#"["t.x-value"]"#);
    assert_eq!(http(addr, "GET", "/subjects/t.x-value/versions", None).await.1, "[1]");
    let (status, body) = http(addr, "GET", "/subjects/t.x-value/versions/latest", None).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""id":1"#) && body.contains(r#""version":1"#), "{body}");
    assert_eq!(http(addr, "GET", "/subjects/nope/versions/1", None).await.0, 404);
    let lookup = serde_json::json!({"schema": v.schema}).to_string();
    let (status, body) = http(addr, "POST", "/subjects/t.x-value", Some(&lookup)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(addr, "POST", "/subjects/t.x-value", Some(r#"{"schema":"\"int\""}"#)).await;
    assert_eq!((status, body.contains("40403")), (404, true));
}

/// The writes (register, set a level) pass the same gate as the control endpoints: with a token
/// only with it; without one, not at all on a non-loopback address. Reads and lookups stay open.
#[tokio::test]
async fn rest_writes_need_the_http_token() {
    let topic = unique("_schemas");
    let subject = format!("{topic}-value");
    let r = Arc::new(EmbeddedRegistry::open(&kafka(), &topic, -1).await.expect("open"));
    let serve = |gate: rowferry::ops::http::Gate| {
        let r = Arc::clone(&r);
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(axum::serve(listener, rowferry::registry::http::router(r, gate)).into_future());
            addr
        }
    };
    let token = Some(rowferry::config::Secret::new("s3cret"));
    let with_token = serve(rowferry::ops::http::Gate::new(token, ([127, 0, 0, 1], 0).into())).await;
    let schema = serde_json::json!({"schema": r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#})
        .to_string();
    let register = format!("/subjects/{subject}/versions");
    let level = format!("/config/{subject}");
    let none = r#"{"compatibility": "NONE"}"#;
    assert_eq!(http(with_token, "POST", &register, Some(&schema)).await.0, 401, "no token");
    let wrong = "Authorization: Bearer nope\r\n";
    assert_eq!(http_as(with_token, "POST", &register, Some(&schema), wrong).await.0, 401, "wrong token");
    assert_eq!(http(with_token, "PUT", &level, Some(none)).await.0, 401);
    let right = "Authorization: Bearer s3cret\r\n";
    let (status, body) = http_as(with_token, "POST", &register, Some(&schema), right).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(http_as(with_token, "PUT", &level, Some(none), right).await.0, 200);
    // Reads and lookups need nothing.
    assert_eq!(http(with_token, "GET", &format!("/subjects/{subject}/versions"), None).await, (200, "[1]".into()));
    assert_eq!(http(with_token, "POST", &format!("/subjects/{subject}"), Some(&schema)).await.0, 200);
    assert_eq!(http(with_token, "GET", &level, None).await.0, 200);

    // Listening on every address without a token: writes are refused outright.
    let exposed = serve(rowferry::ops::http::Gate::new(None, ([0, 0, 0, 0], 0).into())).await;
    let (status, body) = http(exposed, "PUT", &level, Some(none)).await;
    assert_eq!(status, 403);
    assert!(body.contains("http.token"), "{body}");
    assert_eq!(http(exposed, "GET", &format!("/subjects/{subject}/versions"), None).await.0, 200);
}

/// The write side of the REST API, driven by the stock Python client: register, idempotent
/// re-register, the compatibility check, 409 on an incompatible schema, a per-subject level, and
/// that level surviving a restart.
#[tokio::test]
async fn stock_client_registers_checks_and_relaxes() {
    let topic = unique("_schemas");
    let subject = format!("{topic}-value");
    let r = Arc::new(EmbeddedRegistry::open(&kafka(), &topic, -1).await.expect("open"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        axum::serve(
            listener,
            rowferry::registry::http::router(
                Arc::clone(&r),
                rowferry::ops::http::Gate::new(None, ([127, 0, 0, 1], 0).into()),
            ),
        )
        .into_future(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env("ROWFERRY_TEST_PYTHON"))
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/registry_client.py"))
            .arg(format!("http://{addr}"))
            .arg(&subject)
            .output()
            .expect("python")
    })
    .await
    .expect("join");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id1 = seen["id1"].as_u64().expect("id1");
    assert_eq!(seen["id1_again"], id1, "same schema, same id");
    assert_eq!(seen["compatible"], false, "int → string is not BACKWARD compatible");
    assert_eq!(seen["conflict"], 409);
    assert_eq!(seen["level"], "NONE");
    let id2 = seen["id2"].as_u64().expect("id2");
    assert_ne!(id2, id1);
    assert_eq!(seen["latest"], serde_json::json!([2, id2]));

    // The level is a CONFIG record in the topic: a restarted registry applies it.
    let reopened = EmbeddedRegistry::open(&kafka(), &topic, -1).await.expect("reopen");
    assert_eq!(reopened.level(&format!("{topic}-value")).name(), "NONE");
    assert_eq!(reopened.level("other").name(), "BACKWARD");
}

/// The external-registry client against a registry that fails its first `failures` requests with
/// 503: transient failures are retried, and a registry that keeps failing is reported, not hung on.
async fn flaky_registry(failures: usize) -> (url::Url, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let r = Arc::new(EmbeddedRegistry::open(&kafka(), &unique("_schemas"), -1).await.expect("open"));
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let app = rowferry::registry::http::router(r, rowferry::ops::http::Gate::new(None, ([127, 0, 0, 1], 0).into()))
        .layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < failures {
                    axum::response::IntoResponse::into_response((axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy"))
                } else {
                    next.run(request).await
                }
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(axum::serve(listener, app).into_future());
    (url::Url::parse(&format!("http://{addr}")).expect("url"), seen)
}

#[tokio::test]
async fn external_client_retries_transient_failures_and_caches_ids() {
    use rowferry::registry::external::ExternalRegistry;
    use std::sync::atomic::Ordering;
    let (url, seen) = flaky_registry(3).await;
    let client = ExternalRegistry::new(&url, None, None, None).expect("client");
    let schema = r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":null}]}"#;
    let id = client.register("t-value", schema).await.expect("registered after retries");
    let requests = seen.load(Ordering::SeqCst);
    assert!(requests > 3, "three 503s, then the lookup, check and registration: {requests}");
    assert_eq!(client.register("t-value", schema).await.expect("cached"), id);
    assert_eq!(seen.load(Ordering::SeqCst), requests, "a known schema costs no request");

    let (url, _) = flaky_registry(usize::MAX).await;
    let client = ExternalRegistry::new(&url, None, None, None).expect("client").with_retry_for(Duration::from_secs(1));
    let err = client.register("t-value", schema).await.expect_err("never answers");
    assert!(matches!(err, rowferry::registry::RegistryError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
}
