//! The Kafka side of `check`: does the cluster answer, which Kafka is it, and may rowferry's
//! principal use the topics it will use, laid out as the configuration asks? A producer built
//! from the same settings the publisher uses (bootstrap servers plus the `kafka.librdkafka`
//! pass-through, so a misspelt librdkafka property is caught here too) asks for metadata; then
//! [`gather`] collects the rest and the pure [`rules`] turn it into lines.
//!
//! The topics: one per captured table (listed from the source, best effort: without the source
//! only rowferry's own topics are checked), the offsets topic (Kafka store) and the schemas
//! topic (embedded registry).

mod rules;

pub use rules::{Facts, Role, TopicFacts, TopicState, Wanted};

use super::report::Finding;
use crate::config::{OffsetSettings, RegistrySettings, Settings};
use crate::kafka::{Context, TopicSpec};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Every Kafka finding.
pub async fn check(settings: &Settings) -> Vec<Finding> {
    let kafka = settings.kafka.clone();
    let expected = format!("brokers answering at {}", kafka.bootstrap_servers);
    let fix = "check kafka.bootstrap_servers and that the brokers are reachable from here";
    let reached = tokio::task::spawn_blocking(move || {
        let producer: BaseProducer =
            crate::kafka::client_config(&kafka).create().map_err(|e| ("kafka.librdkafka", e.to_string()))?;
        let metadata =
            producer.client().fetch_metadata(None, TIMEOUT).map_err(|e| ("kafka", format!("no answer: {e}")))?;
        let brokers: Vec<(i32, String)> =
            metadata.brokers().iter().map(|b| (b.id(), format!("{}@{}:{}", b.id(), b.host(), b.port()))).collect();
        Ok::<_, (&str, String)>(brokers)
    })
    .await;
    let brokers = match reached {
        Ok(Ok(brokers)) if !brokers.is_empty() => brokers,
        Ok(Ok(_)) => return vec![Finding::fail("kafka", expected, "a cluster with no brokers in its metadata", fix)],
        Ok(Err(("kafka.librdkafka", e))) => {
            return vec![Finding::fail(
                "kafka.librdkafka",
                "valid librdkafka properties",
                e,
                "fix or remove the property in kafka.librdkafka",
            )];
        }
        Ok(Err((setting, e))) => return vec![Finding::fail(setting, expected, e, fix)],
        Err(join) => return vec![Finding::fail("kafka", expected, format!("the check itself failed: {join}"), fix)],
    };
    let names: Vec<&str> = brokers.iter().map(|(_, b)| b.as_str()).collect();
    let mut out = vec![Finding::ok("kafka", expected, format!("{} broker(s): {}", brokers.len(), names.join(", ")))];
    let wanted = Wanted {
        replication: settings.topics.replication_factor,
        data_min_insync: settings.topics.config.get("min.insync.replicas").and_then(|v| v.parse().ok()),
    };
    match gather(settings, &brokers).await {
        Ok(facts) => out.extend(rules::findings(&facts, &wanted)),
        Err(e) => out.push(Finding::warn("kafka topics", "answers about the topics", e, "see the error")),
    }
    out
}

/// The topics rowferry will write, with their roles and how rowferry would create them.
async fn topics(settings: &Settings) -> Vec<(String, Role, TopicSpec)> {
    let internal = TopicSpec::internal(settings.topics.replication_factor);
    let mut out = Vec::new();
    if let OffsetSettings::Kafka { topic } = &settings.offsets {
        out.push((topic.clone(), Role::Offsets, internal.clone()));
    }
    if let RegistrySettings::Embedded { topic, .. } = &settings.registry {
        out.push((topic.clone(), Role::Schemas, internal));
    }
    // Best effort: the source lines already say why the source cannot be reached.
    if let Ok(mut conn) = crate::source::connect(&settings.source).await {
        if let Ok(tables) = crate::snapshot::describe::list_tables(&mut conn, &settings.tables).await {
            let mut data: Vec<String> =
                tables.iter().filter_map(|(db, table)| settings.topics.topic_for(db, table).ok()).collect();
            if settings.topics.transaction_metadata {
                data.push(settings.topics.transaction_topic());
            }
            data.sort();
            data.dedup();
            out.extend(data.into_iter().map(|t| (t, Role::Data, TopicSpec::data(&settings.topics))));
        }
        let _ = conn.disconnect().await;
    }
    out
}

/// What the cluster says about rowferry's topics and principal.
async fn gather(settings: &Settings, brokers: &[(i32, String)]) -> Result<Facts, String> {
    let wanted = topics(settings).await;
    let version = crate::kafka::version::probe(&settings.kafka, TIMEOUT).await;
    let config = crate::kafka::client_config(&settings.kafka);
    let admin: Arc<AdminClient<Context>> = Arc::new(crate::kafka::create(&config).map_err(|e| e.to_string())?);
    let names: Vec<String> = wanted.iter().map(|(n, _, _)| n.clone()).collect();
    let (cluster_operations, described, metadata) = {
        let admin = Arc::clone(&admin);
        tokio::task::spawn_blocking(move || {
            let client = admin.inner();
            let cluster = crate::kafka::authorized::cluster(client, TIMEOUT).ok();
            let described = crate::kafka::authorized::topics(client, &names, TIMEOUT);
            let metadata = client.fetch_metadata(None, TIMEOUT).map_err(|e| e.to_string());
            (cluster, described, metadata)
        })
        .await
        .map_err(|e| e.to_string())?
    };
    let metadata = metadata?;
    let replicas_of = |name: &str| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .and_then(|t| t.partitions().first())
            .map(|p| p.replicas().len())
    };
    // Without KIP-430 answers (an old broker), every topic counts as describable.
    let described = described.unwrap_or_default();
    let mut topics = Vec::new();
    for (name, role, spec) in wanted {
        let state = match (described.get(&name), replicas_of(&name)) {
            (Some(Err(RDKafkaErrorCode::TopicAuthorizationFailed)), _) => TopicState::NotDescribable,
            (Some(Ok(operations)), Some(replicas)) => {
                let (min_insync, cleanup) = topic_config(&admin, &name).await;
                TopicState::Exists { operations: Some(operations.clone()), replicas, min_insync, cleanup }
            }
            (None, Some(replicas)) => {
                let (min_insync, cleanup) = topic_config(&admin, &name).await;
                TopicState::Exists { operations: None, replicas, min_insync, cleanup }
            }
            (Some(Err(RDKafkaErrorCode::UnknownTopicOrPartition)) | None, None) => {
                TopicState::Absent { create: validate_create(&admin, &name, &spec).await }
            }
            (Some(Err(code)), _) => TopicState::Unknown(code.to_string()),
            (Some(Ok(_)), None) => TopicState::Unknown("described but not in the metadata".into()),
        };
        topics.push(TopicFacts { name, role, state });
    }
    let (default_replication, default_min_insync) = match brokers.first() {
        Some((id, _)) => broker_defaults(&admin, *id).await,
        None => (None, None),
    };
    let principal = match settings.kafka.librdkafka.get("sasl.username") {
        Some(user) => format!("User:{user}"),
        None => "User:<rowferry's principal>".into(),
    };
    Ok(Facts {
        bootstrap: settings.kafka.bootstrap_servers.clone(),
        principal,
        version,
        cluster_operations,
        default_replication,
        default_min_insync,
        brokers: brokers.len(),
        topics,
    })
}

/// A topic's `min.insync.replicas` and `cleanup.policy` (`None` where they cannot be read).
async fn topic_config(admin: &AdminClient<Context>, topic: &str) -> (Option<i32>, Option<String>) {
    let Ok(mut results) = admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()).await else {
        return (None, None);
    };
    let Some(Ok(resource)) = results.pop() else { return (None, None) };
    let value = |key: &str| resource.get(key).and_then(|e| e.value.clone());
    (value("min.insync.replicas").and_then(|v| v.parse().ok()), value("cleanup.policy"))
}

/// The broker's `default.replication.factor` — only when set on the broker: on KRaft the
/// controllers apply theirs, and a broker that does not set it reports Kafka's default (1),
/// which says nothing about the controllers' — and its `min.insync.replicas`, which the brokers
/// do apply.
async fn broker_defaults(admin: &AdminClient<Context>, broker: i32) -> (Option<i32>, Option<i32>) {
    let Ok(mut results) = admin.describe_configs([&ResourceSpecifier::Broker(broker)], &AdminOptions::new()).await
    else {
        return (None, None);
    };
    let Some(Ok(resource)) = results.pop() else { return (None, None) };
    let value = |key: &str| resource.get(key).and_then(|e| e.value.as_deref()?.parse().ok());
    let replication = resource
        .get("default.replication.factor")
        .filter(|e| e.source != rdkafka::admin::ConfigSource::Default)
        .and_then(|e| e.value.as_deref()?.parse().ok());
    (replication, value("min.insync.replicas"))
}

/// Whether the cluster would create `topic` as `spec` says (CreateTopics with `validate_only`):
/// `Err((refused_for_permission, message))` when not.
async fn validate_create(admin: &AdminClient<Context>, topic: &str, spec: &TopicSpec) -> Result<(), (bool, String)> {
    let mut new = NewTopic::new(topic, spec.partitions, TopicReplication::Fixed(spec.replication));
    for (key, value) in &spec.config {
        new = new.set(key, value);
    }
    let options = AdminOptions::new().validate_only(true).request_timeout(Some(TIMEOUT));
    match admin.create_topics([&new], &options).await {
        Ok(results) => match results.into_iter().next() {
            Some(Err((_, code))) if code != RDKafkaErrorCode::TopicAlreadyExists => Err((
                matches!(
                    code,
                    RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed
                ),
                code.to_string(),
            )),
            _ => Ok(()),
        },
        Err(e) => Err((false, e.to_string())),
    }
}
