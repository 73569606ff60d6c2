//! `rowferry tail <db.table>`: prints a table's topic as JSON lines, `{"key": …, "value": …}`,
//! decoded with the schemas of the embedded registry — what any Confluent-compatible consumer
//! would see. Records of the `json` format are printed as they are (their payloads). From the beginning of the topic; stops after `--count` records, or keeps following.

use crate::config::Settings;
use crate::encoder::wire;
use crate::registry::embedded::EmbeddedRegistry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

/// Prints records of `table` (`db.table`); `count` = stop after that many.
pub async fn tail(settings: &Settings, table: &str, count: Option<usize>) -> Result<(), String> {
    let (db, name) = table.split_once('.').ok_or_else(|| format!("{table:?} is not db.table"))?;
    let topic = format!("{}.{db}.{name}", settings.kafka.topic_prefix);
    let registry_topic = match &settings.registry {
        crate::config::RegistrySettings::Embedded { topic, .. } => topic.clone(),
        crate::config::RegistrySettings::External { .. } => {
            return Err("tail reads the embedded registry; registry.mode is external".into());
        }
    };
    let mut registry = EmbeddedRegistry::open(&settings.kafka, &registry_topic, settings.topics.replication_factor)
        .await
        .map_err(|e| e.to_string())?;
    let config = crate::kafka::assigning(&crate::kafka::client_config(&settings.kafka));
    let consumer: BaseConsumer<crate::kafka::Context> = crate::kafka::create(&config).map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning).map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut schemas: HashMap<u32, apache_avro::Schema> = HashMap::new();
    let mut printed = 0;
    let stdout = std::io::stdout();
    while count.is_none_or(|c| printed < c) {
        let polled = consumer.poll(Duration::from_millis(200));
        let Some(message) = crate::kafka::next_record(polled).map_err(|e| e.to_string())? else {
            tokio::task::yield_now().await;
            continue;
        };
        // A schema registered after this tail started: replay the registry topic again.
        for bytes in [message.key(), message.payload()].into_iter().flatten().filter(|b| !is_json(b)) {
            let (id, _) = wire::parse(bytes).map_err(|e| e.to_string())?;
            if !schemas.contains_key(&id) && registry.read(|s| s.schema(id).is_none()) {
                registry = EmbeddedRegistry::open(&settings.kafka, &registry_topic, settings.topics.replication_factor)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut decode = |bytes: Option<&[u8]>| -> Result<serde_json::Value, String> {
            let Some(bytes) = bytes else { return Ok(serde_json::Value::Null) };
            if is_json(bytes) {
                let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                return Ok(doc.get("payload").cloned().unwrap_or(doc));
            }
            let (id, datum) = wire::parse(bytes).map_err(|e| e.to_string())?;
            if let std::collections::hash_map::Entry::Vacant(slot) = schemas.entry(id) {
                let text = registry
                    .read(|s| s.schema(id).map(str::to_string))
                    .ok_or_else(|| format!("schema id {id} unknown"))?;
                slot.insert(apache_avro::Schema::parse_str(&text).map_err(|e| e.to_string())?);
            }
            let schema = schemas.get(&id).ok_or("schema cache")?;
            let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
                .build()
                .and_then(|r| r.read_value(&mut &datum[..]))
                .map_err(|e| e.to_string())?;
            serde_json::Value::try_from(value).map_err(|e| e.to_string())
        };
        let line = serde_json::json!({"key": decode(message.key())?, "value": decode(message.payload())?});
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        printed += 1;
    }
    Ok(())
}

/// A record of the `json` format (Connect's JSON, `{"schema": …, "payload": …}`), not the
/// Confluent wire format (which starts with the byte 0).
fn is_json(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
}
