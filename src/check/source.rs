//! Gathers what the server says about itself (version, variables, privileges, table access) and
//! hands it to the pure rules. A query that fails becomes a failed finding, never a panic.

use super::report::Finding;
use super::rules::{self, Variables};
use crate::config::{FlavorSetting, Settings};
use crate::source::{self, Flavor, SourceError, query_one, query_text};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::BTreeSet;

/// At most this many tables are probed one by one when the user has no global SELECT.
const MAX_TABLES_PROBED: usize = 500;

/// All findings about the source server.
pub async fn check(settings: &Settings) -> Vec<Finding> {
    let s = &settings.source;
    let mut conn = match source::connect(s).await {
        Ok(conn) => conn,
        Err(e) => {
            // A rejected certificate's error ends with its own fix; the line carries it once.
            let text = e.to_string();
            let (found, fix) = match text.strip_suffix(source::TLS_FIX) {
                Some(found) => (found.to_string(), source::TLS_FIX.trim_start_matches("; fix: ")),
                None => (
                    text,
                    "check source.host, source.port, source.user and the password, and that the server accepts this client",
                ),
            };
            return vec![Finding::fail(
                "connection",
                format!("login to {}:{} as {}", s.host, s.port, s.user),
                found,
                fix,
            )];
        }
    };
    let findings = match gather(&mut conn, settings).await {
        Ok(findings) => findings,
        Err(e) => vec![Finding::fail("server", "answers to rowferry's checks", e.to_string(), "see the error above")],
    };
    // Best effort: the findings are complete whether or not the goodbye reaches the server.
    let _ = conn.disconnect().await;
    findings
}

pub(super) async fn gather(conn: &mut Conn, settings: &Settings) -> Result<Vec<Finding>, SourceError> {
    let info = source::server_info(conn).await?;
    let mut findings = Vec::new();
    let configured = match settings.source.flavor {
        FlavorSetting::Auto => None,
        FlavorSetting::MySql => Some(Flavor::MySql),
        FlavorSetting::MariaDb => Some(Flavor::MariaDb),
    };
    if let Some(want) = configured {
        findings.push(Finding::require(
            want == info.flavor,
            "source.flavor",
            &want.to_string(),
            &info.flavor.to_string(),
            || {
                format!(
                    "set source.flavor = \"{}\" or \"auto\" in rowferry's config",
                    info.flavor.to_string().to_lowercase()
                )
            },
        ));
    }
    let vars = variables(conn).await?;
    findings.extend(rules::settings(&info, &vars, settings.source.server_id.get()));
    if settings.source.semi_sync {
        findings.extend(rules::semi_sync(info.flavor, &vars));
    }

    let grantee = grantee(conn).await?;
    let privileges = global_privileges(conn, &grantee).await?;
    findings.extend(rules::replication_grants(info.flavor, &privileges, &grantee));
    findings.push(select_access(conn, settings, &privileges, &grantee).await?);
    Ok(findings)
}

async fn variables(conn: &mut Conn) -> Result<Variables, SourceError> {
    let names = rules::VARIABLES
        .iter()
        .chain(rules::SEMI_SYNC_VARIABLES)
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(",");
    let rows = query_text(conn, &format!("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Some(name), value] => Some((name.to_ascii_lowercase(), value.clone().unwrap_or_default())),
            _ => None,
        })
        .collect())
}

/// `'user'@'host'` of the account the server matched us to, as GRANT and USER_PRIVILEGES write it.
async fn grantee(conn: &mut Conn) -> Result<String, SourceError> {
    let current = query_one(conn, "SELECT CURRENT_USER()").await?;
    let (user, host) = current.rsplit_once('@').unwrap_or((current.as_str(), "%"));
    Ok(format!("'{user}'@'{host}'"))
}

async fn global_privileges(conn: &mut Conn, grantee: &str) -> Result<BTreeSet<String>, SourceError> {
    let query = format!(
        "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = '{}'",
        grantee.replace('\\', "\\\\").replace('\'', "\\'")
    );
    Ok(query_text(conn, &query)
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .map(|p| p.to_uppercase())
        .collect())
}

/// SELECT on the captured tables: global SELECT, or each visible captured table probed.
async fn select_access(
    conn: &mut Conn,
    settings: &Settings,
    privileges: &BTreeSet<String>,
    grantee: &str,
) -> Result<Finding, SourceError> {
    const EXPECTED: &str = "SELECT on the tables matched by tables.include";
    if privileges.contains("SELECT") {
        return Ok(Finding::ok("SELECT", EXPECTED, "global SELECT"));
    }
    let tables: Vec<(String, String)> = query_text(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2",
    )
    .await?
    .into_iter()
    .filter_map(|row| match row.as_slice() {
        [Some(db), Some(table)] => Some((db.clone(), table.clone())),
        _ => None,
    })
    .filter(|(db, table)| settings.tables.captures(db, table))
    .collect();
    if tables.is_empty() {
        return Ok(Finding::warn(
            "SELECT",
            EXPECTED,
            "no matching table visible to this user",
            format!("GRANT SELECT ON *.* TO {grantee}; (or ON `db`.* for each captured database)"),
        ));
    }
    let mut denied = Vec::new();
    for (db, table) in tables.iter().take(MAX_TABLES_PROBED) {
        let probe = format!("SELECT 1 FROM `{}`.`{}` LIMIT 0", db.replace('`', "``"), table.replace('`', "``"));
        if let Err(e) = conn.query_drop(&probe).await {
            match e {
                mysql_async::Error::Server(ref s) if s.code == 1142 => denied.push(format!("{db}.{table}")),
                other => return Err(SourceError::Query { query: probe, source: other }),
            }
        }
    }
    let probed = tables.len().min(MAX_TABLES_PROBED);
    if denied.is_empty() {
        return Ok(Finding::ok("SELECT", EXPECTED, format!("SELECT on all {probed} probed tables")));
    }
    let first: Vec<_> = denied.iter().take(5).cloned().collect();
    Ok(Finding::fail(
        "SELECT",
        EXPECTED,
        format!(
            "denied on {} of {probed} tables ({}{})",
            denied.len(),
            first.join(", "),
            if denied.len() > 5 { ", ..." } else { "" }
        ),
        format!("GRANT SELECT ON *.* TO {grantee}; (or ON `db`.* for each captured database)"),
    ))
}
