//! A consumer of rowferry's topics with stock crates: rdkafka for Kafka, the registry's REST API
//! (embedded in rowferry, or any Confluent-compatible one) for schemas, apache-avro to decode.
//! Prints each record as a JSON line `{"key": …, "value": …}` (a tombstone has a null value).
//!
//! ```text
//! cargo run --example consume -- 127.0.0.1:39192 http://127.0.0.1:8080 quickstart.demo.customers
//! ```
//!
//! Wire format (docs/avro.md): byte 0, the schema id as a big-endian u32, then the Avro datum.
//! apache-avro's JSON view prints a DECIMAL as its unscaled two's-complement bytes; apply the
//! field's `scale` from the schema to get the number.

use apache_avro::Schema;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message};
use std::collections::HashMap;

/// Schemas by id, fetched once each from `GET /schemas/ids/{id}`.
struct Schemas {
    registry: String,
    http: reqwest::Client,
    known: HashMap<u32, Schema>,
}

impl Schemas {
    async fn decode(&mut self, bytes: Option<&[u8]>) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let Some(bytes) = bytes else { return Ok(serde_json::Value::Null) };
        let [0, a, b, c, d, datum @ ..] = bytes else { return Err("not in the Confluent wire format".into()) };
        let id = u32::from_be_bytes([*a, *b, *c, *d]);
        if !self.known.contains_key(&id) {
            let url = format!("{}/schemas/ids/{id}", self.registry);
            let answer: serde_json::Value = self.http.get(&url).send().await?.error_for_status()?.json().await?;
            let text = answer["schema"].as_str().ok_or("the registry's answer has no schema")?;
            self.known.insert(id, Schema::parse_str(text)?);
        }
        let schema = &self.known[&id];
        let value =
            apache_avro::reader::datum::GenericDatumReader::builder(schema).build()?.read_value(&mut &datum[..])?;
        Ok(serde_json::Value::try_from(value)?)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, registry, topic] = args.as_slice() else {
        return Err("usage: consume BOOTSTRAP_SERVERS REGISTRY_URL TOPIC".into());
    };
    rowferry::install_tls_provider();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rowferry-example-consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()?;
    consumer.subscribe(&[topic.as_str()])?;
    let mut schemas = Schemas {
        registry: registry.trim_end_matches('/').to_string(),
        http: reqwest::Client::new(),
        known: HashMap::new(),
    };
    loop {
        let message = consumer.recv().await?;
        let key = schemas.decode(message.key()).await?;
        let value = schemas.decode(message.payload()).await?;
        println!("{}", serde_json::json!({"key": key, "value": value}));
    }
}
