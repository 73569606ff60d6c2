//! Client of an external Confluent-compatible Schema Registry (`registry.mode = "external"`).
//!
//! Subjects follow the TopicNameStrategy (`<topic>-key`, `<topic>-value`), chosen by the encoder.
//! Registering a schema: a cached id is used as is; otherwise the registry is asked whether the
//! subject already has it (`POST /subjects/{s}`), then whether it is compatible
//! (`POST /compatibility/subjects/{s}/versions/latest`, the pre-check), then it is registered
//! (`POST /subjects/{s}/versions`). An incompatible schema — at the pre-check or as a 409 — is a
//! [`RegistryError::Incompatible`] naming the subject and the level the registry applies, which
//! stops only that table. Transient failures (no connection, timeouts, 5xx, 408, 429) are retried
//! with exponential backoff for up to [`RETRY_FOR`]; 401/403 stop rowferry with an error naming
//! the credentials. Basic auth and TLS (system roots, plus `registry.ca_file`) as configured.

use super::RegistryError;
use crate::config::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long transient failures are retried before the registration fails.
pub const RETRY_FOR: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// See the module docs.
pub struct ExternalRegistry {
    client: reqwest::Client,
    url: url::Url,
    auth: Option<(String, Option<Secret>)>,
    /// (subject, normalised schema) → id.
    cache: Mutex<HashMap<(String, String), u32>>,
    retry_for: Duration,
}

impl std::fmt::Debug for ExternalRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalRegistry").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

impl ExternalRegistry {
    /// A client for the registry at `url`; `ca_file` adds a PEM CA to the system roots.
    pub fn new(
        url: &url::Url,
        username: Option<&str>,
        password: Option<&Secret>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<ExternalRegistry, RegistryError> {
        let refuse = |detail: String| RegistryError::Refused { url: url.to_string(), status: 0, detail };
        crate::install_tls_provider();
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).connect_timeout(REQUEST_TIMEOUT);
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| refuse(format!("registry.ca_file {}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| refuse(format!("registry.ca_file {}: not a PEM certificate: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().map_err(|e| refuse(format!("building the HTTP client: {e}")))?;
        let mut url = url.clone();
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        Ok(ExternalRegistry {
            client,
            url,
            auth: username.map(|u| (u.to_string(), password.cloned())),
            cache: Mutex::new(HashMap::new()),
            retry_for: RETRY_FOR,
        })
    }

    /// Shortens the retry window (tests).
    pub fn with_retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// The id of `schema` under `subject`; see the module docs.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let cache_key = (subject.to_string(), super::store::normalise(schema));
        if let Some(id) = self.cache.lock().ok().and_then(|c| c.get(&cache_key).copied()) {
            return Ok(id);
        }
        let body = json!({ "schema": schema });
        let id = match self.call(Method::POST, &["subjects", subject], Some(&body)).await? {
            (StatusCode::OK, found) => id_of(&found, subject)?,
            _ => {
                self.precheck(subject, &body).await?;
                match self.call(Method::POST, &["subjects", subject, "versions"], Some(&body)).await? {
                    (StatusCode::OK, registered) => id_of(&registered, subject)?,
                    (StatusCode::CONFLICT, answer) => {
                        return Err(RegistryError::Incompatible {
                            subject: subject.into(),
                            level: self.level(subject).await,
                            detail: message(&answer),
                        });
                    }
                    (StatusCode::UNPROCESSABLE_ENTITY, answer) => {
                        return Err(RegistryError::Invalid { subject: subject.into(), detail: message(&answer) });
                    }
                    (status, answer) => return Err(self.unexpected(status, &answer)),
                }
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(cache_key, id);
        }
        Ok(id)
    }

    /// The compatibility pre-check of a schema the subject does not have yet.
    async fn precheck(&self, subject: &str, body: &Value) -> Result<(), RegistryError> {
        let path = ["compatibility", "subjects", subject, "versions", "latest"];
        match self.call(Method::POST, &path, Some(body)).await? {
            (StatusCode::OK, answer) if answer["is_compatible"].as_bool() == Some(true) => Ok(()),
            (StatusCode::OK, answer) => Err(RegistryError::Incompatible {
                subject: subject.into(),
                level: self.level(subject).await,
                detail: answer["messages"]
                    .as_array()
                    .filter(|m| !m.is_empty())
                    .map_or_else(|| "the registry says it is not compatible".into(), |m| format!("{m:?}")),
            }),
            // No such subject (40401) or no version yet (40402): nothing to be compatible with.
            (StatusCode::NOT_FOUND, _) => Ok(()),
            (StatusCode::UNPROCESSABLE_ENTITY, answer) => {
                Err(RegistryError::Invalid { subject: subject.into(), detail: message(&answer) })
            }
            (status, answer) => Err(self.unexpected(status, &answer)),
        }
    }

    /// The level the registry applies to `subject` (for error messages; best effort).
    async fn level(&self, subject: &str) -> String {
        let subject_level = match self.call(Method::GET, &["config", subject], None).await {
            Ok((StatusCode::OK, v)) => v["compatibilityLevel"].as_str().map(str::to_string),
            _ => None,
        };
        if let Some(level) = subject_level {
            return level;
        }
        match self.call(Method::GET, &["config"], None).await {
            Ok((StatusCode::OK, v)) => v["compatibilityLevel"].as_str().unwrap_or("(unknown)").to_string(),
            _ => "(unknown)".to_string(),
        }
    }

    fn unexpected(&self, status: StatusCode, answer: &Value) -> RegistryError {
        RegistryError::Refused { url: self.url.to_string(), status: status.as_u16(), detail: message(answer) }
    }

    /// One request, retried while the failure is transient; returns any other answer.
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), RegistryError> {
        let mut url = self.url.clone();
        url.path_segments_mut()
            .map_err(|()| self.unexpected(StatusCode::BAD_REQUEST, &json!("registry.url cannot be a base URL")))?
            .pop_if_empty()
            .extend(path);
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let mut request = self.client.request(method.clone(), url.clone()).header("Accept", CONTENT_TYPE);
            if let Some((user, password)) = &self.auth {
                request = request.basic_auth(user, password.as_ref().map(Secret::expose));
            }
            if let Some(body) = body {
                request = request.header("Content-Type", CONTENT_TYPE).body(body.to_string());
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        return Err(RegistryError::Refused {
                            url: self.url.to_string(),
                            status: status.as_u16(),
                            detail: "check registry.username and registry.password, and the user's rights".into(),
                        });
                    }
                    let transient = status.is_server_error()
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status == StatusCode::TOO_MANY_REQUESTS;
                    let text = response.text().await.unwrap_or_default();
                    if !transient {
                        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                        return Ok((status, value));
                    }
                    format!("{method} {}: {status} {}", url.path(), text.chars().take(200).collect::<String>())
                }
                Err(e) => format!("{method} {}: {e}", url.path()),
            };
            if started.elapsed() + pause > self.retry_for {
                return Err(RegistryError::Unavailable {
                    url: self.url.to_string(),
                    detail: format!("{failure} (retried for {:?})", started.elapsed()),
                });
            }
            tracing::warn!(failure = %failure, retry_in_ms = pause.as_millis() as u64, "schema registry unavailable; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

fn id_of(answer: &Value, subject: &str) -> Result<u32, RegistryError> {
    answer["id"].as_u64().and_then(|id| u32::try_from(id).ok()).ok_or_else(|| RegistryError::Subject {
        subject: subject.into(),
        detail: format!("the registry's answer has no schema id: {answer}"),
    })
}

/// The `message` of a Confluent error body, or the body.
fn message(answer: &Value) -> String {
    answer["message"].as_str().map_or_else(|| answer.to_string(), str::to_string)
}
