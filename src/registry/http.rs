//! Confluent Schema Registry's REST API, served from the embedded registry: the read side for
//! stock deserializers (they fetch `/schemas/ids/{id}`) and people looking around, and the write
//! side for stock serializers and operators — register (`POST /subjects/{s}/versions`, 409 when
//! incompatible), check (`POST /compatibility/subjects/{s}/versions/{v}`), and compatibility
//! levels (`GET /config`, `GET`/`PUT /config/{s}`), kept as CONFIG records in the schema topic.
//! Errors use Confluent's shape: `{"error_code": 40403, "message": "Schema not found"}`.
//!
//! The writes (registering, setting a level) pass the HTTP [`Gate`] as the control endpoints do:
//! on a reachable port, anyone could otherwise register a schema under rowferry's subjects or
//! relax a level. Reads, lookups and compatibility checks stay open for consumers.

use super::RegistryError;
use super::compat::Level;
use super::embedded::EmbeddedRegistry;
use super::store::Version;
use crate::ops::http::{Gate, guard};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
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
pub fn router(registry: Arc<EmbeddedRegistry>, gate: Gate) -> Router {
    let gated = axum::middleware::from_fn_with_state(gate, guard);
    Router::new()
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}/versions", post(register).route_layer(gated.clone()).get(versions))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route("/subjects/{subject}", post(lookup))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility))
        .route("/config", get(global_config))
        .route("/config/{subject}", put(set_subject_config).route_layer(gated).get(subject_config))
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

fn error(status: StatusCode, code: u32, message: impl std::fmt::Display) -> Response {
    reply(status, json!({"error_code": code, "message": message.to_string()}))
}

async fn register(
    State(r): State<Arc<EmbeddedRegistry>>,
    Path(subject): Path<String>,
    Json(body): Json<SchemaBody>,
) -> Response {
    match r.register(&subject, &body.schema).await {
        Ok(v) => reply(StatusCode::OK, json!({"id": v.id})),
        Err(e @ RegistryError::Incompatible { .. }) => error(StatusCode::CONFLICT, 409, e),
        Err(e @ RegistryError::Invalid { .. }) => error(StatusCode::UNPROCESSABLE_ENTITY, 42201, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, 50001, e),
    }
}

async fn compatibility(
    State(r): State<Arc<EmbeddedRegistry>>,
    Path((subject, version)): Path<(String, String)>,
    Json(body): Json<SchemaBody>,
) -> Response {
    if apache_avro::Schema::parse_str(&body.schema).is_err() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    }
    let Some(versions) = r.read(|s| s.versions(&subject)) else {
        return not_found(40401, "Subject not found");
    };
    if !matches!(version.as_str(), "latest" | "-1") && !version.parse::<u32>().is_ok_and(|v| versions.contains(&v)) {
        return not_found(40402, "Version not found");
    }
    match r.check(&subject, &body.schema) {
        Ok(()) => reply(StatusCode::OK, json!({"is_compatible": true})),
        Err(e) => reply(StatusCode::OK, json!({"is_compatible": false, "messages": [e.to_string()]})),
    }
}

async fn global_config(State(r): State<Arc<EmbeddedRegistry>>) -> Response {
    reply(StatusCode::OK, json!({"compatibilityLevel": r.global_level().name()}))
}

async fn subject_config(State(r): State<Arc<EmbeddedRegistry>>, Path(subject): Path<String>) -> Response {
    match r.read(|s| s.level(Some(&subject)).map(str::to_string)) {
        Some(level) => reply(StatusCode::OK, json!({"compatibilityLevel": level})),
        None => not_found(40408, "Subject does not have subject-level compatibility configured"),
    }
}

#[derive(serde::Deserialize)]
struct ConfigBody {
    compatibility: String,
}

async fn set_subject_config(
    State(r): State<Arc<EmbeddedRegistry>>,
    Path(subject): Path<String>,
    Json(body): Json<ConfigBody>,
) -> Response {
    let Some(level) = Level::parse(&body.compatibility) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42203, "Invalid compatibility level");
    };
    match r.set_level(Some(&subject), level).await {
        Ok(()) => reply(StatusCode::OK, json!({"compatibility": level.name()})),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, 50001, e),
    }
}
