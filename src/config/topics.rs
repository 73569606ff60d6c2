//! Where records go: the topic of each table, how missing topics are created, tombstones and
//! transaction metadata (`[topics]`).
//!
//! A table's topic is the first route whose `tables` pattern matches it, else
//! `<prefix>.<db>.<table>`. A route's topic is a template with `{prefix}`, `{db}` and `{table}`;
//! several tables may share one topic (their value schemas then evolve under one subject, so
//! they must stay compatible). Characters Kafka does not allow in topic names (anything but
//! letters, digits, `.`, `_`, `-`) are replaced by `_` in the names taken from the database, as
//! Debezium does; a route that still makes an invalid name (empty, `.`/`..`, over 249 bytes) is
//! refused at start-up for literal templates and when the table is first seen otherwise (as is a
//! default name over the limit).

use super::{ConfigError, TablePattern};
use std::collections::BTreeMap;

/// Longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// One `[[topics.routes]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    pub tables: TablePattern,
    pub topic: String,
}

/// `[topics]`, validated.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub prefix: String,
    pub routes: Vec<Route>,
    /// Partitions of the data topics rowferry creates.
    pub partitions: i32,
    /// Replication factor of every topic rowferry creates; -1 takes the broker's default.
    pub replication_factor: i32,
    /// Topic-level config of the data topics rowferry creates (`cleanup.policy`, `retention.ms`…).
    pub config: BTreeMap<String, String>,
    /// A null-value record after each delete, so compaction can drop the key.
    pub tombstones: bool,
    /// BEGIN/END records on `<prefix>.transaction` and the `transaction` block in each record.
    pub transaction_metadata: bool,
    /// An `op = "t"` record for each TRUNCATE of a captured table.
    pub truncate_records: bool,
    /// The `rowferry.gtid`, `rowferry.position` and `rowferry.table` headers on each record.
    pub headers: bool,
}

impl TopicSettings {
    /// Validates the `[topics]` values; `prefix` is the already validated `kafka.topic_prefix`.
    pub fn new(
        prefix: &str,
        routes: Vec<(String, String)>,
        partitions: Option<i32>,
        replication_factor: Option<i32>,
        config: BTreeMap<String, String>,
        tombstones: Option<bool>,
        transaction_metadata: Option<bool>,
    ) -> Result<TopicSettings, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid { key: key.into(), problem };
        let mut parsed = Vec::new();
        for (i, (tables, topic)) in routes.into_iter().enumerate() {
            let key = format!("topics.routes[{i}]");
            let pattern = TablePattern::parse(&tables).ok_or_else(|| {
                invalid(&format!("{key}.tables"), format!("{tables:?} is not a db.table pattern (e.g. \"shop.*\")"))
            })?;
            let mut rest = topic.as_str();
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').map(|c| open + c);
                let name = close.map(|c| &rest[open + 1..c]);
                if !matches!(name, Some("prefix" | "db" | "table")) {
                    return Err(invalid(
                        &format!("{key}.topic"),
                        format!("{topic:?}: only {{prefix}}, {{db}} and {{table}} may be used"),
                    ));
                }
                rest = &rest[close.map_or(rest.len(), |c| c + 1)..];
            }
            if !topic.contains("{db}") && !topic.contains("{table}") {
                let name = topic.replace("{prefix}", prefix);
                check_topic(&name).map_err(|p| invalid(&format!("{key}.topic"), p))?;
            }
            parsed.push(Route { tables: pattern, topic });
        }
        let partitions = partitions.unwrap_or(1);
        if partitions < 1 {
            return Err(invalid("topics.partitions", format!("{partitions} is not at least 1")));
        }
        let replication_factor = replication_factor.unwrap_or(-1);
        if replication_factor == 0 || replication_factor < -1 {
            return Err(invalid(
                "topics.replication_factor",
                format!("{replication_factor}: use -1 (the broker's default) or at least 1"),
            ));
        }
        Ok(TopicSettings {
            prefix: prefix.to_string(),
            routes: parsed,
            partitions,
            replication_factor,
            config,
            tombstones: tombstones.unwrap_or(true),
            transaction_metadata: transaction_metadata.unwrap_or(false),
            truncate_records: false,
            headers: false,
        })
    }

    /// With the `rowferry.*` headers on each record (default: none).
    pub fn with_headers(mut self, on: Option<bool>) -> Self {
        self.headers = on.unwrap_or(false);
        self
    }

    /// With `op = "t"` records for TRUNCATE (default: none).
    pub fn with_truncate_records(mut self, on: Option<bool>) -> Self {
        self.truncate_records = on.unwrap_or(false);
        self
    }

    /// The topic of `db.table`; an error names the route that made an invalid name.
    pub fn topic_for(&self, db: &str, table: &str) -> Result<String, String> {
        let (db, table) = (sanitize(db), sanitize(table));
        let Some(route) = self.routes.iter().find(|r| r.tables.matches(&db, &table)) else {
            let name = format!("{}.{db}.{table}", self.prefix);
            check_topic(&name).map_err(|p| format!("{db}.{table} gets the topic {p}; route it with topics.routes"))?;
            return Ok(name);
        };
        let name = route.topic.replace("{prefix}", &self.prefix).replace("{db}", &db).replace("{table}", &table);
        check_topic(&name).map_err(|p| format!("topics.routes {:?} gives {db}.{table} the topic {p}", route.topic))?;
        Ok(name)
    }

    /// The transaction metadata topic.
    pub fn transaction_topic(&self) -> String {
        format!("{}.transaction", self.prefix)
    }
}

/// Names from the database with the characters Kafka refuses replaced by `_`.
fn sanitize(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().all(legal) {
        name.into()
    } else {
        name.chars().map(|c| if legal(c) { c } else { '_' }).collect::<String>().into()
    }
}

fn legal(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-".contains(c)
}

fn check_topic(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.len() > MAX_TOPIC_LEN || !name.chars().all(legal) {
        return Err(format!(
            "{name:?}, which Kafka refuses (1–{MAX_TOPIC_LEN} letters, digits, '.', '_', '-'; not . or ..)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(routes: &[(&str, &str)]) -> Result<TopicSettings, ConfigError> {
        let routes = routes.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        TopicSettings::new("app", routes, None, None, BTreeMap::new(), None, None)
    }

    #[test]
    fn default_route_and_first_match_wins() {
        let t = settings(&[("shop_*.orders", "{prefix}.orders"), ("shop_1.*", "x.{db}.{table}")]).expect("valid");
        assert_eq!(t.topic_for("crm", "people").as_deref(), Ok("app.crm.people"));
        assert_eq!(t.topic_for("shop_1", "orders").as_deref(), Ok("app.orders"));
        assert_eq!(t.topic_for("shop_2", "orders").as_deref(), Ok("app.orders"));
        assert_eq!(t.topic_for("shop_1", "items").as_deref(), Ok("x.shop_1.items"));
        assert!(t.tombstones && !t.transaction_metadata && t.partitions == 1 && t.replication_factor == -1);
    }

    #[test]
    fn names_kafka_refuses_are_sanitized_or_refused() {
        let t = settings(&[]).expect("valid");
        assert_eq!(t.topic_for("my db", "tåble$1").as_deref(), Ok("app.my_db.t_ble_1"));
        let long = "x".repeat(245);
        assert!(t.topic_for("db", &long).expect_err("too long").contains("topics.routes"));
        let t = settings(&[("*.*", "{table}")]).expect("valid");
        assert!(t.topic_for("db", &long).is_ok());
        assert!(t.topic_for("db", &"y".repeat(250)).expect_err("too long").contains("topics.routes"));
    }

    #[test]
    fn bad_routes_name_the_key() {
        for (routes, key) in [
            (vec![("shop", "t")], "topics.routes[0].tables"),
            (vec![("a.b", "{schema}.x")], "topics.routes[0].topic"),
            (vec![("a.b", "ok"), ("a.c", "bad topic")], "topics.routes[1].topic"),
            (vec![("a.b", "{prefix")], "topics.routes[0].topic"),
        ] {
            let err = settings(&routes).expect_err("invalid").to_string();
            assert!(err.contains(key), "{err}");
        }
        let err = TopicSettings::new("p", vec![], Some(0), None, BTreeMap::new(), None, None).expect_err("0");
        assert!(err.to_string().contains("topics.partitions"));
        let err = TopicSettings::new("p", vec![], None, Some(0), BTreeMap::new(), None, None).expect_err("0");
        assert!(err.to_string().contains("topics.replication_factor"));
    }
}
