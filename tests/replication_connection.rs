//! rowferry's own replication connection (`src/reader/dump.rs`) logging in the ways accounts do:
//! `caching_sha2_password`'s full authentication (the server's cache emptied by FLUSH
//! PRIVILEGES) over plain TCP (the RSA key exchange) and over TLS (the password in clear inside
//! TLS), `mysql_native_password` and `ed25519` on MariaDB, a wrong password as the server's own
//! error (a fatal one), and another server's CA refused with the fix named. The reader tests cover what follows
//! the login (the dump, heartbeats, dead links, takeover).

mod common;

use common::{MARIADB, MYSQL, admin, env, unique, unique_server_id};
use rowferry::config::{Secret, TlsMode, TlsSettings};
use rowferry::error::ErrorClass;
use rowferry::reader::dump::{DumpConn, DumpError};

const PW: &str = "dump-pw";

fn ca(server: &str) -> String {
    env(if server == MYSQL { "ROWFERRY_TEST_MYSQL_CA" } else { "ROWFERRY_TEST_MARIADB_CA" })
}

fn tls(mode: TlsMode, server: &str) -> TlsSettings {
    TlsSettings { mode, ca_file: Some(ca(server).into()), client_identity: None }
}

async fn login(server: &str, user: &str, password: &str, tls: TlsSettings) -> Result<DumpConn, DumpError> {
    let mut settings = common::source_settings(&env(server), unique_server_id(), None);
    settings.user = user.to_string();
    settings.password = Secret::new(password);
    settings.tls = tls;
    DumpConn::connect(&settings).await
}

async fn account(server: &str, plugin: Option<&str>) -> String {
    let user = unique("rf_dump");
    admin(
        &env(server),
        &[
            match plugin {
                // MariaDB's default, mysql_native_password.
                None => format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{PW}'"),
                Some(plugin) => format!("CREATE USER '{user}'@'%' IDENTIFIED WITH {plugin} BY '{PW}'"),
            },
            format!("GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%'"),
        ],
    )
    .await;
    user
}

#[tokio::test]
async fn mysql_caching_sha2_full_authentication_plain_and_over_tls() {
    let user = account(MYSQL, Some("caching_sha2_password")).await;
    for mode in [TlsMode::Disabled, TlsMode::VerifyIdentity, TlsMode::VerifyCa, TlsMode::Required] {
        // An empty cache: the server asks for full authentication.
        admin(&env(MYSQL), &["FLUSH PRIVILEGES".to_string()]).await;
        let mut conn =
            login(MYSQL, &user, PW, tls(mode.clone(), MYSQL)).await.unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        conn.execute("SET @rowferry_probe = 1").await.unwrap_or_else(|e| panic!("{mode:?}: a statement: {e}"));
    }
    // `required` encrypts without any CA at hand.
    let no_ca = TlsSettings { mode: TlsMode::Required, ca_file: None, client_identity: None };
    login(MYSQL, &user, PW, no_ca).await.expect("required, without a CA");
    let err = login(MYSQL, &user, "wrong", tls(TlsMode::Disabled, MYSQL)).await.expect_err("a wrong password");
    assert!(matches!(err, DumpError::Server { code: 1045, .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn mariadb_native_password_and_a_foreign_ca() {
    let user = account(MARIADB, None).await;
    let mut conn = login(MARIADB, &user, PW, tls(TlsMode::Disabled, MARIADB)).await.expect("plain login");
    conn.execute("SET @rowferry_probe = 1").await.expect("a statement");
    login(MARIADB, &user, PW, tls(TlsMode::VerifyIdentity, MARIADB)).await.expect("TLS login");
    let err = login(MARIADB, &user, PW, tls(TlsMode::VerifyCa, MYSQL)).await.expect_err("MySQL's CA for MariaDB");
    assert!(matches!(err, DumpError::Certificate(_)), "{err}");
    assert!(err.to_string().ends_with(rowferry::source::TLS_FIX), "{err}");
    assert_eq!(err.class(), ErrorClass::Fatal);
}

/// MariaDB's `ed25519` plugin (the server's default stays mysql_native_password, so the server
/// switches the login to the account's plugin): the replication connection and rowferry's setup
/// connection both log in, and a stream starts.
async fn mariadb_ed25519(server: &str) {
    let url = env(server);
    let user = unique("rf_ed");
    // Not binlogged: the environment's replicas do not load the plugin, and a replicated CREATE
    // USER … VIA ed25519 would stop their replication (tests/failover.rs moves to them).
    let unlogged = "SET SESSION sql_log_bin = 0".to_string();
    admin(
        &url,
        &[
            unlogged.clone(),
            "INSTALL PLUGIN IF NOT EXISTS ed25519 SONAME 'auth_ed25519'".to_string(),
            format!("CREATE USER '{user}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{PW}')"),
            format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'%'"),
        ],
    )
    .await;
    let mut conn = login(server, &user, PW, tls(TlsMode::Disabled, server)).await.expect("ed25519 login");
    conn.execute("SET @rowferry_probe = 1").await.expect("a statement");
    // Over TLS too (`required`: the MariaDB 11.8 server's CA is not exported to the tests).
    let required = TlsSettings { mode: TlsMode::Required, ca_file: None, client_identity: None };
    login(server, &user, PW, required).await.expect("ed25519 login over TLS");
    let err = login(server, &user, "wrong", tls(TlsMode::Disabled, server)).await.expect_err("a wrong password");
    assert!(matches!(err, DumpError::Server { code: 1045, .. }), "{err}");
    // The whole reader: setup queries (mysql_async) and the dump, as this account.
    let mut settings = common::source_settings(&url, unique_server_id(), None);
    settings.user = user.clone();
    settings.password = Secret::new(PW);
    let start = common::position_now(&url).await;
    let db = unique("ed");
    let (mut rx, _stats) = common::spawn_reader(settings, rowferry::reader::ReaderOptions::default(), start);
    admin(&url, &[format!("CREATE DATABASE {db}"), format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]).await;
    admin(&url, &[format!("INSERT INTO {db}.t VALUES (1)")]).await;
    let row = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(event) = rx.recv().await {
            if let rowferry::reader::TxnEvent::Row(change) = &event
                && change.table.db == db
            {
                return Some(change.clone());
            }
        }
        None
    })
    .await
    .expect("a row within 30 s");
    assert!(row.is_some(), "the reader streamed as the ed25519 account");
    admin(&url, &[format!("DROP DATABASE {db}")]).await;
    admin(&url, &[unlogged, format!("DROP USER '{user}'@'%'")]).await;
}

#[tokio::test]
async fn mariadb_ed25519_login_and_stream() {
    mariadb_ed25519(MARIADB).await;
}

#[tokio::test]
async fn mariadb_11_ed25519_login_and_stream() {
    mariadb_ed25519(common::MARIADB_11).await;
}
