//! Does the Kafka cluster answer? A metadata request through a producer built from the same
//! settings the publisher uses (bootstrap servers plus the `kafka.librdkafka` pass-through), so a
//! misspelt librdkafka property is caught here too.

use super::report::Finding;
use crate::config::KafkaSettings;
use rdkafka::producer::{BaseProducer, Producer};
use std::time::Duration;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn check(settings: &KafkaSettings) -> Finding {
    let settings = settings.clone();
    let expected = format!("brokers answering at {}", settings.bootstrap_servers);
    let fix = "check kafka.bootstrap_servers and that the brokers are reachable from here";
    let outcome = tokio::task::spawn_blocking(move || {
        let producer: BaseProducer =
            crate::kafka::client_config(&settings).create().map_err(|e| ("kafka.librdkafka", e.to_string()))?;
        let metadata = producer
            .client()
            .fetch_metadata(None, METADATA_TIMEOUT)
            .map_err(|e| ("kafka", format!("no answer: {e}")))?;
        let brokers: Vec<String> =
            metadata.brokers().iter().map(|b| format!("{}@{}:{}", b.id(), b.host(), b.port())).collect();
        Ok::<_, (&str, String)>(brokers)
    })
    .await;
    match outcome {
        Ok(Ok(brokers)) if !brokers.is_empty() => {
            Finding::ok("kafka", expected, format!("{} broker(s): {}", brokers.len(), brokers.join(", ")))
        }
        Ok(Ok(_)) => Finding::fail("kafka", expected, "a cluster with no brokers in its metadata", fix),
        Ok(Err(("kafka.librdkafka", e))) => Finding::fail(
            "kafka.librdkafka",
            "valid librdkafka properties",
            e,
            "fix or remove the property in kafka.librdkafka",
        ),
        Ok(Err((setting, e))) => Finding::fail(setting, expected, e, fix),
        Err(join) => Finding::fail("kafka", expected, format!("the check itself failed: {join}"), fix),
    }
}
