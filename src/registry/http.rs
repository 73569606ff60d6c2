//! The read side of Confluent Schema Registry's REST API, served from the embedded registry:
//! enough for stock deserializers (they fetch `/schemas/ids/{id}`) and for people looking around.
//! Errors use Confluent's shape: `{"error_code": 40403, "message": "Schema not found"}`.

use super::embedded::EmbeddedRegistry;
use super::store::Version;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

fn not_found(code: u32, message: &str) -> Response {
    reply(StatusCode::NOT_FOUND, json!({"error_code": code, "message": message}))
}

fn version_body(v: &Version) -> serde_json::Value {
    json!({"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema})
}

/// The registry routes, to be merged into rowferry's HTTP server.
pub fn router(registry: Arc<EmbeddedRegistry>) -> Router {
    Router::new()
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}/versions", get(versions))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route("/subjects/{subject}", post(lookup))
        .with_state(registry)
}

async fn schema_by_id(State(r): State<Arc<EmbeddedRegistry>>, Path(id): Path<u32>) -> Response {
    match r.read(|s| s.schema(id).map(str::to_string)) {
        Some(schema) => reply(StatusCode::OK, json!({"schema": schema})),
        None => not_found(40403, "Schema not found"),
    }
}

async fn subjects(State(r): State<Arc<EmbeddedRegistry>>) -> Response {
    reply(StatusCode::OK, json!(r.read(|s| s.subjects())))
}

async fn versions(State(r): State<Arc<EmbeddedRegistry>>, Path(subject): Path<String>) -> Response {
    match r.read(|s| s.versions(&subject)) {
        Some(v) => reply(StatusCode::OK, json!(v)),
        None => not_found(40401, "Subject not found"),
    }
}

async fn version(State(r): State<Arc<EmbeddedRegistry>>, Path((subject, version)): Path<(String, String)>) -> Response {
    let wanted = match version.as_str() {
        "latest" | "-1" => None,
        v => match v.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"error_code": 42202, "message": "Invalid version"}),
                );
            }
        },
    };
    if r.read(|s| s.versions(&subject)).is_none() {
        return not_found(40401, "Subject not found");
    }
    match r.read(|s| s.version(&subject, wanted)) {
        Some(v) => reply(StatusCode::OK, version_body(&v)),
        None => not_found(40402, "Version not found"),
    }
}

#[derive(serde::Deserialize)]
struct SchemaBody {
    schema: String,
}

async fn lookup(
    State(r): State<Arc<EmbeddedRegistry>>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> Response {
    if r.read(|s| s.versions(&subject)).is_none() {
        return not_found(40401, "Subject not found");
    }
    match r.read(|s| s.lookup(&subject, &body.schema)) {
        Some(v) => reply(StatusCode::OK, version_body(&v)),
        None => not_found(40403, "Schema not found"),
    }
}
