//! What rowferry needs from the Kafka cluster, as pure functions from what the cluster reported
//! ([`Facts`]) to [`Finding`]s: the broker version, and for every topic rowferry writes — the
//! data topics of the captured tables, the offsets topic, the embedded registry's schemas topic —
//! the permissions of its principal and the layout the topic has, or would get when rowferry
//! creates it.
//!
//! Permissions: Describe and Write on every topic, plus Read on the offsets and schemas topics
//! (rowferry reads them back at start), plus Create (on the topic or the cluster) for each topic
//! that does not exist yet, plus IdempotentWrite on the cluster — which Kafka 2.8 and later no
//! longer ask of a producer that may Write to a topic (KIP-679). A topic that does not exist yet
//! has no permissions to report: Create is checked (CreateTopics with `validate_only`), Write once
//! it exists.
//!
//! Layout: the offsets and schemas topics must be compacted (otherwise retention deletes the
//! offset, or schemas still in use); `min.insync.replicas` above the replication factor makes
//! every write fail; a replicated topic with `min.insync.replicas` 1 lets `acks=all` succeed with
//! one copy (a warning).

use crate::check::report::Finding;
use crate::kafka::authorized::Operation;
use crate::kafka::version::BrokerVersion;

/// What a topic is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Data,
    Offsets,
    Schemas,
}

impl Role {
    fn needs(self) -> &'static [Operation] {
        match self {
            Role::Data => &[Operation::Describe, Operation::Write],
            Role::Offsets | Role::Schemas => &[Operation::Describe, Operation::Read, Operation::Write],
        }
    }

    fn compacted(self) -> bool {
        self != Role::Data
    }

    fn what(self) -> &'static str {
        match self {
            Role::Data => "data topic",
            Role::Offsets => "offsets topic",
            Role::Schemas => "schemas topic",
        }
    }
}

/// How a topic stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TopicState {
    /// It exists. `operations`: what the principal may do (`None`: the cluster did not say).
    Exists { operations: Option<Vec<Operation>>, replicas: usize, min_insync: Option<i32>, cleanup: Option<String> },
    /// It does not exist; rowferry would create it. `create`: the answer to a CreateTopics with
    /// `validate_only` (`Err((refused_for_permission, message))`).
    Absent { create: Result<(), (bool, String)> },
    /// The principal may not even Describe it.
    NotDescribable,
    /// It could not be asked about.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicFacts {
    pub name: String,
    pub role: Role,
    pub state: TopicState,
}

/// What the cluster reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub bootstrap: String,
    /// `User:<sasl.username>`, or a placeholder when the principal is not known here.
    pub principal: String,
    pub version: Result<BrokerVersion, String>,
    /// The principal's operations on the cluster (`None`: the cluster did not say).
    pub cluster_operations: Option<Vec<Operation>>,
    /// The brokers' `default.replication.factor` and `min.insync.replicas` (`None`: unreadable).
    pub default_replication: Option<i32>,
    pub default_min_insync: Option<i32>,
    pub brokers: usize,
    pub topics: Vec<TopicFacts>,
}

/// What the configuration asks of the topics rowferry creates.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// `topics.replication_factor` (-1: the cluster's default).
    pub replication: i32,
    /// `min.insync.replicas` in `topics.config` (data topics only).
    pub data_min_insync: Option<i32>,
}

/// Every Kafka finding except reachability.
pub fn findings(facts: &Facts, wanted: &Wanted) -> Vec<Finding> {
    let mut out = vec![version(facts)];
    if let Some(f) = idempotent_write(facts) {
        out.push(f);
    }
    let mut data_ok = Vec::new();
    for topic in &facts.topics {
        let finding = self::topic(facts, wanted, topic);
        if topic.role == Role::Data && finding.status == crate::check::Status::Ok {
            data_ok.push(finding);
        } else {
            out.push(finding);
        }
    }
    // Healthy data topics are one line (there may be hundreds).
    match data_ok.len() {
        0 => {}
        1 => out.extend(data_ok),
        n => out.push(Finding::ok(
            "kafka data topics",
            "Describe and Write (or Create), a usable layout",
            format!("{n} topics fine, e.g. {}", data_ok[0].found),
        )),
    }
    out
}

fn version(facts: &Facts) -> Finding {
    match &facts.version {
        Ok(v) => Finding::ok("kafka version", "Apache Kafka (any version with idempotent producers)", v.describe()),
        Err(e) => Finding::warn(
            "kafka version",
            "an answer to ApiVersions",
            format!("could not ask: {e}"),
            "none needed if the other kafka lines pass; otherwise check kafka.bootstrap_servers and the TLS settings",
        ),
    }
}

/// IdempotentWrite on the cluster, unless the cluster is new enough not to ask for it.
fn idempotent_write(facts: &Facts) -> Option<Finding> {
    let ops = facts.cluster_operations.as_ref()?;
    let kip_679 = facts.version.as_ref().is_ok_and(|v| v.supported_level.is_some());
    let granted = ops.contains(&Operation::IdempotentWrite);
    if granted || kip_679 {
        let found = if granted { "granted" } else { "not needed: Kafka 2.8+ accepts Write on the topics instead" };
        return Some(Finding::ok("kafka IdempotentWrite", "granted on the cluster (idempotent producer)", found));
    }
    Some(Finding::fail(
        "kafka IdempotentWrite",
        "granted on the cluster (idempotent producer)",
        "not granted",
        format!(
            "kafka-acls.sh --bootstrap-server {} --add --allow-principal {} --operation IdempotentWrite --cluster",
            facts.bootstrap, facts.principal
        ),
    ))
}

fn acl_fix(facts: &Facts, ops: &[Operation], topic: &str) -> String {
    let ops: String = ops.iter().map(|o| format!(" --operation {}", o.acl_name())).collect();
    format!(
        "kafka-acls.sh --bootstrap-server {} --add --allow-principal {}{ops} --topic {topic}",
        facts.bootstrap, facts.principal
    )
}

fn topic(facts: &Facts, wanted: &Wanted, t: &TopicFacts) -> Finding {
    let setting = format!("kafka {} {}", t.role.what(), t.name);
    let needs: Vec<&str> = t.role.needs().iter().map(|o| o.acl_name()).collect();
    let expected = format!("{} for {}", needs.join(", "), facts.principal);
    match &t.state {
        TopicState::NotDescribable => {
            Finding::fail(&setting, expected, "not authorized to Describe it", acl_fix(facts, t.role.needs(), &t.name))
        }
        TopicState::Unknown(e) => Finding::warn(&setting, expected, format!("could not ask: {e}"), "see the error"),
        TopicState::Absent { create: Err((true, e)) } => Finding::fail(
            &setting,
            "Create (the topic does not exist yet)",
            format!("not authorized to create it ({e})"),
            format!(
                "{} (or --operation Create --cluster), or create the topic yourself",
                acl_fix(facts, &[Operation::Create], &t.name)
            ),
        ),
        TopicState::Absent { create: Err((false, e)) } => Finding::fail(
            &setting,
            "a topic the cluster accepts",
            format!("the cluster refuses to create it: {e}"),
            "fix [topics] (replication_factor no larger than the number of brokers, valid config), or create the topic yourself",
        ),
        TopicState::Absent { create: Ok(()) } => {
            let replicas = if wanted.replication > 0 { Some(wanted.replication) } else { facts.default_replication };
            let min_insync =
                if t.role == Role::Data { wanted.data_min_insync } else { None }.or(facts.default_min_insync);
            let replication = match replicas {
                Some(r) if wanted.replication > 0 => format!("{r} replica(s)"),
                Some(r) => format!("{r} replica(s) (cluster default)"),
                None => "the controllers' default replication".into(),
            };
            let layout = format!(
                "to be created: {replication}, min.insync.replicas {}{} (Write is checked once it exists)",
                min_insync.map_or("?".into(), |m| m.to_string()),
                if t.role.compacted() { ", compacted" } else { "" }
            );
            layout_finding(facts, &setting, layout, replicas, min_insync)
        }
        TopicState::Exists { operations, replicas, min_insync, cleanup } => {
            if let Some(ops) = operations {
                let missing: Vec<Operation> = t.role.needs().iter().copied().filter(|o| !ops.contains(o)).collect();
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().map(|o| o.acl_name()).collect();
                    return Finding::fail(
                        &setting,
                        expected,
                        format!("missing {}", names.join(", ")),
                        acl_fix(facts, &missing, &t.name),
                    );
                }
            }
            if t.role.compacted() && !cleanup.as_deref().is_some_and(|c| c.contains("compact")) {
                return Finding::fail(
                    &setting,
                    "cleanup.policy=compact",
                    format!("cleanup.policy={}", cleanup.as_deref().unwrap_or("?")),
                    format!(
                        "kafka-configs.sh --bootstrap-server {} --alter --entity-type topics --entity-name {} \
                         --add-config cleanup.policy=compact (retention would otherwise delete what rowferry reads at start)",
                        facts.bootstrap, t.name
                    ),
                );
            }
            let layout = format!(
                "{replicas} replica(s), min.insync.replicas {}{}",
                min_insync.map_or("?".into(), |m| m.to_string()),
                cleanup.as_deref().map_or(String::new(), |c| format!(", cleanup.policy={c}"))
            );
            let finding = layout_finding(facts, &setting, layout, Some(*replicas as i32), *min_insync);
            if finding.status == crate::check::Status::Ok
                && wanted.replication > 0
                && *replicas as i32 != wanted.replication
            {
                return Finding::warn(
                    &setting,
                    format!("{} replicas (topics.replication_factor)", wanted.replication),
                    finding.found,
                    "rowferry uses an existing topic as it is: reassign its partitions (kafka-reassign-partitions.sh) to change it",
                );
            }
            finding
        }
    }
}

/// The replication rules for a layout (`found` describes it).
fn layout_finding(
    facts: &Facts,
    setting: &str,
    found: String,
    replicas: Option<i32>,
    min_insync: Option<i32>,
) -> Finding {
    let expected = "min.insync.replicas ≤ replicas (≥ 2 when replicated)";
    match (replicas, min_insync) {
        (Some(r), Some(m)) if m > r => Finding::fail(
            setting,
            expected,
            found,
            format!(
                "every write would fail with NOT_ENOUGH_REPLICAS: lower min.insync.replicas to {r} or raise the replication factor"
            ),
        ),
        (Some(r), Some(1)) if r > 1 => Finding::warn(
            setting,
            expected,
            found,
            "set min.insync.replicas = 2 (topics.config, or the topic's config): with 1, acks=all is satisfied by one copy",
        ),
        (Some(1), _) if facts.brokers >= 3 => Finding::warn(
            setting,
            "replicated on a cluster of 3 or more brokers",
            found,
            "set topics.replication_factor = 3 (one broker's loss would otherwise stop or lose the topic)",
        ),
        _ => Finding::ok(setting, expected, found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    fn facts(topics: Vec<TopicFacts>) -> Facts {
        Facts {
            bootstrap: "b:9092".into(),
            principal: "User:rf".into(),
            version: Ok(BrokerVersion { supported_level: Some(33), finalized_level: Some(33), max_produce: Some(13) }),
            cluster_operations: Some(vec![Operation::Describe]),
            default_replication: Some(3),
            default_min_insync: Some(2),
            brokers: 3,
            topics,
        }
    }

    fn wanted() -> Wanted {
        Wanted { replication: -1, data_min_insync: None }
    }

    fn exists(ops: &[Operation], cleanup: &str) -> TopicState {
        TopicState::Exists {
            operations: Some(ops.to_vec()),
            replicas: 3,
            min_insync: Some(2),
            cleanup: Some(cleanup.into()),
        }
    }

    fn one(role: Role, state: TopicState) -> Finding {
        let f = findings(&facts(vec![TopicFacts { name: "t".into(), role, state }]), &wanted());
        f.into_iter().find(|f| f.setting.contains(" t")).expect("the topic's line")
    }

    #[test]
    fn a_missing_write_on_the_offsets_topic_is_named_with_its_acl() {
        let f = one(Role::Offsets, exists(&[Operation::Describe, Operation::Read], "compact"));
        assert_eq!(f.status, Status::Fail);
        assert_eq!(f.found, "missing Write");
        let fix = f.fix.expect("fix");
        assert!(fix.contains("--allow-principal User:rf --operation Write --topic t"), "{fix}");
    }

    #[test]
    fn an_absent_topic_needs_create() {
        let f =
            one(Role::Data, TopicState::Absent { create: Err((true, "Broker: Topic authorization failed".into())) });
        assert_eq!(f.status, Status::Fail);
        assert!(f.fix.expect("fix").contains("--operation Create --topic t"));
        let ok = one(Role::Data, TopicState::Absent { create: Ok(()) });
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        assert!(ok.found.contains("3 replica(s)") && ok.found.contains("min.insync.replicas 2"), "{}", ok.found);
        assert!(ok.found.starts_with("to be created"), "{}", ok.found);
    }

    #[test]
    fn rowferrys_own_topics_must_be_compacted() {
        let all = [Operation::Describe, Operation::Read, Operation::Write];
        assert_eq!(one(Role::Schemas, exists(&all, "delete")).status, Status::Fail);
        assert_eq!(one(Role::Schemas, exists(&all, "compact")).status, Status::Ok);
        assert_eq!(one(Role::Data, exists(&all, "delete")).status, Status::Ok);
    }

    #[test]
    fn replication_rules() {
        let layout = |replicas, min| TopicState::Exists {
            operations: None,
            replicas,
            min_insync: Some(min),
            cleanup: Some("delete".into()),
        };
        assert_eq!(one(Role::Data, layout(1, 2)).status, Status::Fail, "min.insync above replicas");
        assert_eq!(one(Role::Data, layout(3, 1)).status, Status::Warn, "min.insync 1 when replicated");
        assert_eq!(one(Role::Data, layout(1, 1)).status, Status::Warn, "one replica on 3 brokers");
        assert_eq!(one(Role::Data, layout(3, 2)).status, Status::Ok);
    }

    #[test]
    fn idempotent_write_is_needed_only_before_kip_679() {
        let mut f = facts(vec![]);
        assert_eq!(idempotent_write(&f).expect("line").status, Status::Ok);
        f.version = Ok(BrokerVersion { supported_level: None, finalized_level: None, max_produce: Some(8) });
        let line = idempotent_write(&f).expect("line");
        assert_eq!(line.status, Status::Fail);
        assert!(line.fix.expect("fix").contains("--operation IdempotentWrite --cluster"));
    }

    #[test]
    fn healthy_data_topics_share_one_line() {
        let all = [Operation::Describe, Operation::Write];
        let topics = (0..5)
            .map(|i| TopicFacts { name: format!("d{i}"), role: Role::Data, state: exists(&all, "delete") })
            .collect();
        let f = findings(&facts(topics), &wanted());
        assert_eq!(f.iter().filter(|f| f.setting.starts_with("kafka data")).count(), 1, "{f:#?}");
    }
}
