//! The operations endpoints, merged with the embedded registry's into one server on
//! `http.listen`:
//!
//! * `GET /healthz` — 200 while the stream loop turns (liveness; see `ops`), else 503 and why;
//! * `GET /readyz` — 200 when ready, else 503, with the reasons as JSON;
//! * `GET /metrics` — Prometheus text ([`super::metrics`]);
//! * `GET /status` — the state as JSON (what `rowferry status` prints);
//! * `POST /pause`, `POST /resume` — stop and restart taking changes from the source (records in
//!   flight still settle and the offset is still committed); `POST /snapshot` with
//!   `{"tables": ["db.table", ...]}` — an incremental snapshot of those tables while streaming
//!   (202; progress in `/status` and `/metrics`).
//!
//! Control endpoints need `Authorization: Bearer <http.token>` when `http.token` is set, and are
//! refused (403) on a non-loopback listen address without a token: anyone who can reach the
//! port could otherwise pause the connector. The same [`Gate`] guards the embedded registry's
//! writes (registering a schema, setting a compatibility level).

use super::Ops;
use crate::config::Secret;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;

/// Who may use the endpoints that change something: with `http.token`, whoever sends it as a
/// bearer token; without one, anyone on a loopback listen address and no one otherwise.
#[derive(Debug, Clone)]
pub struct Gate {
    token: Option<Secret>,
    loopback: bool,
}

impl Gate {
    /// The gate for `http.token` = `token` on `http.listen` = `listen`.
    pub fn new(token: Option<Secret>, listen: std::net::SocketAddr) -> Gate {
        Gate { token, loopback: listen.ip().is_loopback() }
    }

    /// `None` when the request may pass, else the refusal.
    pub fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        let forbidden = |message: &str| Some(json_reply(StatusCode::FORBIDDEN, json!({"error": message})));
        match &self.token {
            None if self.loopback => None,
            None => forbidden(
                "this endpoint changes rowferry's state; on a non-loopback address it needs http.token (then send it \
                 as a bearer token)",
            ),
            Some(token) => {
                let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                let expected = format!("Bearer {}", token.expose());
                // Constant-time comparison: the token is a secret.
                let same = sent.is_some_and(|s| {
                    s.len() == expected.len()
                        && s.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
                });
                if same {
                    None
                } else {
                    Some(json_reply(StatusCode::UNAUTHORIZED, json!({"error": "missing or wrong bearer token"})))
                }
            }
        }
    }
}

/// Middleware: a request the gate refuses gets the refusal, the others go on.
pub async fn guard(
    State(gate): State<Gate>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match gate.refuse(request.headers()) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

#[derive(Clone)]
struct Control {
    ops: Arc<Ops>,
    gate: Gate,
}

/// The operations routes for `ops`; `gate` decides who may use the control endpoints.
pub fn router(ops: Arc<Ops>, gate: Gate) -> Router {
    let control = Control { ops: Arc::clone(&ops), gate };
    let control_routes = Router::new()
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/snapshot", post(snapshot))
        .with_state(control);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(ops)
        .merge(control_routes)
}

fn json_reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], format!("{body:#}\n")).into_response()
}

async fn healthz(State(ops): State<Arc<Ops>>) -> Response {
    match ops.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    let r = ops.readiness();
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_reply(status, json!({"ready": r.ready, "not_ready_because": r.reasons}))
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], super::metrics::render(&ops)).into_response()
}

async fn status(State(ops): State<Arc<Ops>>) -> Response {
    json_reply(StatusCode::OK, ops.status())
}

/// `None` when the request may use control endpoints, else the refusal.
fn refuse(c: &Control, headers: &HeaderMap) -> Option<Response> {
    c.gate.refuse(headers)
}

async fn pause(State(c): State<Control>, headers: HeaderMap) -> Response {
    set_paused(&c, &headers, true)
}

async fn resume(State(c): State<Control>, headers: HeaderMap) -> Response {
    set_paused(&c, &headers, false)
}

fn set_paused(c: &Control, headers: &HeaderMap, paused: bool) -> Response {
    if let Some(refusal) = refuse(c, headers) {
        return refusal;
    }
    c.ops.set_paused(paused);
    if paused {
        tracing::info!("paused by POST /pause: not taking changes from the source");
    } else {
        tracing::info!("resumed by POST /resume");
    }
    json_reply(StatusCode::OK, json!({"state": c.ops.state()}))
}

/// `POST /snapshot` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotRequest {
    tables: Vec<String>,
}

async fn snapshot(State(c): State<Control>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(refusal) = refuse(&c, &headers) {
        return refusal;
    }
    let request: SnapshotRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("expected {{\"tables\": [\"db.table\", ...]}}: {e}")}),
            );
        }
    };
    if request.tables.is_empty() {
        return json_reply(StatusCode::BAD_REQUEST, json!({"error": "no tables given"}));
    }
    match c.ops.request_snapshot(request.tables.clone()) {
        Ok(()) => json_reply(StatusCode::ACCEPTED, json!({"snapshot": request.tables})),
        Err(e) => json_reply(StatusCode::CONFLICT, json!({"error": e})),
    }
}

/// `rowferry snapshot --tables …` against a running connector: `POST /snapshot` on its
/// `http.listen`, with the bearer token if one is configured.
pub async fn request_snapshot(
    listen: std::net::SocketAddr,
    token: Option<&Secret>,
    tables: &[String],
) -> Result<String, String> {
    let url = format!("http://{}/snapshot", loopback(listen));
    crate::install_tls_provider();
    let client =
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let mut request = client.post(&url).json(&json!({"tables": tables}));
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {body}"));
    }
    Ok(body)
}

/// A wildcard listen address is asked on loopback.
fn loopback(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    addr
}

/// `rowferry status`: the running connector's `/status`, fetched from its `http.listen` (a
/// wildcard address is asked on loopback).
pub async fn fetch_status(listen: std::net::SocketAddr) -> Result<String, String> {
    let url = format!("http://{}/status", loopback(listen));
    crate::install_tls_provider();
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("no connector answers at {url} ({e}); is `rowferry run` running with this config?"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {body}"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(token: Option<&str>, loopback: bool) -> Control {
        Control {
            ops: Ops::new("c", std::time::Duration::from_secs(60)),
            gate: Gate { token: token.map(Secret::new), loopback },
        }
    }

    fn bearer(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header"));
        h
    }

    #[test]
    fn control_needs_a_token_off_loopback_and_the_right_one_when_set() {
        assert!(refuse(&control(None, true), &HeaderMap::new()).is_none(), "loopback without a token: open");
        let refused = refuse(&control(None, false), &HeaderMap::new()).expect("refused");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let c = control(Some("s3"), false);
        assert_eq!(refuse(&c, &HeaderMap::new()).map(|r| r.status()), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(refuse(&c, &bearer("Bearer s4")).map(|r| r.status()), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(refuse(&c, &bearer("Bearer s3x")).map(|r| r.status()), Some(StatusCode::UNAUTHORIZED));
        assert!(refuse(&c, &bearer("Bearer s3")).is_none());
    }
}
