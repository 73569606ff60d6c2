//! Unit tests of loading and validation; the binary's exit code is tested in tests/config.rs.

use super::*;
use std::io::Write;

const MINIMAL: &str = r#"
[source]
user = "rowferry"
password = "secret"
server_id = 5401
"#;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let f = file(text);
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    load_with_env(Some(f.path()), env)
}

fn err_text(text: &str, env: &[(&str, &str)]) -> String {
    match load_text(text, env) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_apply() {
    let s = load_text(MINIMAL, &[]).expect("valid");
    assert_eq!(s.name, "rowferry");
    assert_eq!(s.source.host, "127.0.0.1");
    assert_eq!(s.source.port, 3306);
    assert_eq!(s.source.server_id.get(), 5401);
    assert_eq!(s.kafka.bootstrap_servers, "127.0.0.1:9092");
    assert!(matches!(&s.registry, RegistrySettings::Embedded { topic, .. } if topic == "_schemas"));
    assert!(matches!(&s.offsets, OffsetSettings::Kafka { topic } if topic == "rowferry.offsets"));
    assert!(s.tables.captures("shop", "orders"));
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.log.format, LogFormat::Human);
    assert_eq!(s.envelope, EnvelopeFormat::Debezium);
    let native = load_text(MINIMAL, &[("ROWFERRY__ENVELOPE__FORMAT", "avro-native")]).expect("valid");
    assert_eq!(native.envelope, EnvelopeFormat::AvroNative);
    let json = load_text(MINIMAL, &[("ROWFERRY__ENVELOPE__FORMAT", "json")]).expect("valid");
    assert_eq!(json.envelope, EnvelopeFormat::Json);
}

#[test]
fn environment_overrides_file() {
    let s = load_text(
        MINIMAL,
        &[
            ("ROWFERRY__SOURCE__PORT", "3307"),
            ("ROWFERRY__SOURCE__PASSWORD", "0123"),
            ("ROWFERRY__KAFKA__TOPIC_PREFIX", "cdc"),
            ("ROWFERRY__KAFKA__LIBRDKAFKA__LINGER_MS", "7"),
        ],
    )
    .expect("valid");
    assert_eq!(s.source.port, 3307);
    // A numeric-looking password stays text, leading zero included.
    assert_eq!(s.source.password.expose(), "0123");
    assert_eq!(s.kafka.topic_prefix, "cdc");
    assert_eq!(s.kafka.librdkafka.get("linger.ms").map(String::as_str), Some("7"));
}

#[test]
fn librdkafka_keys_with_dots_pass_through() {
    let s = load_text(
        &format!("{MINIMAL}\n[kafka.librdkafka]\n\"linger.ms\" = \"5\"\n\"compression.type\" = \"zstd\"\n"),
        &[],
    )
    .expect("valid");
    assert_eq!(s.kafka.librdkafka.get("linger.ms").map(String::as_str), Some("5"));
    assert_eq!(s.kafka.librdkafka.get("compression.type").map(String::as_str), Some("zstd"));
}

#[test]
fn exactly_once_has_bounded_transactions() {
    use super::{DeliveryMode, TransactionBounds};
    let s = load_text(MINIMAL, &[]).expect("valid");
    assert_eq!(s.kafka.delivery, DeliveryMode::AtLeastOnce);
    let s = load_text(MINIMAL, &[("ROWFERRY__KAFKA__DELIVERY", "exactly_once")]).expect("valid");
    let bounds = TransactionBounds { interval: std::time::Duration::from_millis(100), max_bytes: 16 << 20 };
    assert_eq!(s.kafka.delivery, DeliveryMode::ExactlyOnce(bounds));
    let s = load_text(
        &format!("{MINIMAL}\n[kafka]\ndelivery = \"exactly_once\"\ntransaction_interval_ms = 20\ntransaction_max_bytes = 4096\n"),
        &[],
    )
    .expect("valid");
    let bounds = TransactionBounds { interval: std::time::Duration::from_millis(20), max_bytes: 4096 };
    assert_eq!(s.kafka.delivery, DeliveryMode::ExactlyOnce(bounds));
}

#[test]
fn url_form_is_parsed_and_decoded() {
    let s =
        load_text("[source]\nurl = \"mysql://rf%40x:p%3Ass@db.example:3310\"\nserver_id = 9\n", &[]).expect("valid");
    assert_eq!((s.source.user.as_str(), s.source.host.as_str(), s.source.port), ("rf@x", "db.example", 3310));
    assert_eq!(s.source.password.expose(), "p:ss");
}

#[test]
fn password_file_is_read_and_trimmed() {
    let pw = file("from-file\n");
    let text = format!("[source]\nuser = \"u\"\nserver_id = 1\npassword_file = {:?}\n", pw.path());
    assert_eq!(load_text(&text, &[]).expect("valid").source.password.expose(), "from-file");
}

#[test]
fn every_bad_value_names_its_key() {
    /// (file text, environment, text the error must contain)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("[source]\nuser = \"u\"\nserver_id = 1\n", &[], "`source.password`: missing"),
        ("[source]\nuser = \"u\"\npassword = \"\"\n", &[], "`source.server_id`: missing"),
        (MINIMAL, &[("ROWFERRY__SOURCE__SERVER_ID", "0")], "`source.server_id`: 0 is not a valid"),
        (MINIMAL, &[("ROWFERRY__SOURCE__PORT", "70000")], "`source.port`"),
        (MINIMAL, &[("ROWFERRY__SOURCE__PORT", "abc")], "`source.port`"),
        (MINIMAL, &[("ROWFERRY__SOURCE__HOTS", "x")], "unknown field `hots`"),
        (&format!("{MINIMAL}\nbogus = 1\n"), &[], "unknown field `bogus`"),
        (
            &format!("{MINIMAL}\n[kafka]\nbootstrap = \"x\"\n"),
            &[],
            "`kafka.bootstrap`: unknown field `bootstrap`, expected one of `bootstrap_servers`, `topic_prefix`, \
             `librdkafka`, `delivery`, `transaction_interval_ms`, `transaction_max_bytes`",
        ),
        (MINIMAL, &[("ROWFERRY__SOURCE__FLAVOR", "postgres")], "`source.flavor`"),
        (MINIMAL, &[("ROWFERRY__KAFKA__BOOTSTRAP_SERVERS", "localhost")], "`kafka.bootstrap_servers`"),
        (&format!("{MINIMAL}\n[kafka.librdkafka]\nacks = \"1\"\n"), &[], "rowferry sets acks itself"),
        (
            &format!("{MINIMAL}\n[kafka.librdkafka]\n\"bootstrap.servers\" = \"x:1\"\n"),
            &[],
            "kafka.bootstrap_servers instead",
        ),
        (&format!("{MINIMAL}\n[kafka.librdkafka]\n\"linger.ms\" = \"1\"\nlinger_ms = \"2\"\n"), &[], "set twice"),
        (
            &format!("{MINIMAL}\n[kafka.librdkafka]\n\"transactional.id\" = \"x\"\n"),
            &[],
            "set kafka.delivery = \"exactly_once\" instead",
        ),
        (&format!("{MINIMAL}\n[kafka.librdkafka]\n\"isolation.level\" = \"read_committed\"\n"), &[], "kafka.delivery"),
        (MINIMAL, &[("ROWFERRY__KAFKA__DELIVERY", "exactly-once")], "`kafka.delivery`: \"exactly-once\" is not one of"),
        (
            MINIMAL,
            &[("ROWFERRY__KAFKA__TRANSACTION_INTERVAL_MS", "50")],
            "`kafka.transaction_interval_ms`: set only with kafka.delivery",
        ),
        (
            MINIMAL,
            &[("ROWFERRY__KAFKA__DELIVERY", "exactly_once"), ("ROWFERRY__OFFSETS__STORE", "file")],
            "`offsets.store`: \"file\" cannot be used with kafka.delivery = \"exactly_once\"",
        ),
        (
            &format!("{MINIMAL}\n[kafka]\ndelivery = \"exactly_once\"\ntransaction_interval_ms = 40000\n"),
            &[],
            "more than half the Kafka transaction timeout",
        ),
        (MINIMAL, &[("ROWFERRY__REGISTRY__MODE", "external")], "`registry.url`: missing"),
        (MINIMAL, &[("ROWFERRY__OFFSETS__STORE", "file")], "`offsets.path`: missing"),
        (MINIMAL, &[("ROWFERRY__HTTP__LISTEN", "8080")], "`http.listen`"),
        (MINIMAL, &[("ROWFERRY__LOG__LEVEL", "infoo")], "`log.level`"),
        (MINIMAL, &[("ROWFERRY__SOURCE__TLS__MODE", "verify_ca")], "`source.tls.ca_file`: missing"),
        (MINIMAL, &[("ROWFERRY__SOURCE__TLS__MODE", "preferred")], "`source.tls.mode`"),
        (MINIMAL, &[("ROWFERRY__ENVELOPE__FORMAT", "native")], "`envelope.format`: \"native\" is not"),
        (MINIMAL, &[("ROWFERRY__SOURCE__URL", "mysql://a:b@h:1")], "`source.url`: set either"),
        ("source = [1]\n", &[], "`source`"),
        ("[source\n", &[], "config file"),
    ];
    for (text, env, want) in cases {
        let got = err_text(text, env);
        assert!(!got.contains(" for key `"), "doubled key in {got:?}");
        assert!(got.contains(want), "for {env:?} / {text:?}: wanted {want:?} in {got:?}");
    }
}

#[test]
fn errors_and_debug_never_show_the_password() {
    let s = load_text(MINIMAL, &[]).expect("valid");
    assert!(!format!("{s:?}").contains("secret"));
    let e = err_text("[source]\nurl = \"mysql://u:topsecret@h:1/db\"\nserver_id = 1\n", &[]);
    assert!(!e.contains("topsecret"), "{e}");
}

#[test]
fn a_missing_file_is_named() {
    let e = load_with_env(Some(std::path::Path::new("/nonexistent/rowferry.toml")), HashMap::new())
        .expect_err("missing file");
    assert!(e.to_string().contains("/nonexistent/rowferry.toml"), "{e}");
}

#[test]
fn secrets_never_print() {
    let text = format!(
        "{MINIMAL}\n[kafka]\nlibrdkafka = {{ \"sasl.password\" = \"kpass1\", \"ssl.key.password\" = \"kpass2\", \
         \"linger.ms\" = \"7\" }}\n[registry]\nmode = \"external\"\nurl = \"https://alice:r%40pass3@registry.example:8081/x\"\n"
    );
    let s = load_text(&text, &[]).expect("valid");
    let printed = format!("{s:?}");
    for secret in ["secret", "kpass1", "kpass2", "r@pass3", "r%40pass3"] {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
    assert!(printed.contains("\"linger.ms\": \"7\""), "other properties stay readable: {printed}");
    match &s.registry {
        RegistrySettings::External { url, username, password, .. } => {
            assert_eq!(url.as_str(), "https://registry.example:8081/x", "the URL carries no credentials");
            assert_eq!(username.as_deref(), Some("alice"));
            assert_eq!(password.as_ref().map(Secret::expose), Some("r@pass3"));
        }
        other => panic!("{other:?}"),
    }
    // A URL that does not parse is quoted without its user and password.
    let bad = format!("{MINIMAL}\n[registry]\nmode = \"external\"\nurl = \"https://bob:pw9@[bad\"\n");
    let e = err_text(&bad, &[]);
    assert!(!e.contains("pw9") && e.contains("https://***@[bad"), "{e}");
    // Both ways at once is ambiguous.
    let both = format!(
        "{MINIMAL}\n[registry]\nmode = \"external\"\nurl = \"https://a:b@r.example\"\nusername = \"c\"\npassword = \"d\"\n"
    );
    assert!(err_text(&both, &[]).contains("keep one"));
}

#[test]
fn semi_sync_lingers_1_ms_unless_told_otherwise() {
    let semi = MINIMAL.replace("[source]", "[source]\nsemi_sync = true");
    let s = load_text(&semi, &[]).expect("valid");
    assert!(s.source.semi_sync);
    assert_eq!(s.data_producer().librdkafka.get("linger.ms").map(String::as_str), Some("1"));
    assert!(!s.kafka.librdkafka.contains_key("linger.ms"), "only the data producer lingers less");
    let s = load_text(&format!("{semi}\n[kafka.librdkafka]\n\"linger.ms\" = \"0\"\n"), &[]).expect("valid");
    assert_eq!(s.data_producer().librdkafka.get("linger.ms").map(String::as_str), Some("0"));
    let s = load_text(MINIMAL, &[]).expect("valid");
    assert!(!s.source.semi_sync && !s.data_producer().librdkafka.contains_key("linger.ms"));
    let s = load_text(MINIMAL, &[("ROWFERRY__SOURCE__SEMI_SYNC", "true")]).expect("valid");
    assert!(s.source.semi_sync, "from the environment");
}
