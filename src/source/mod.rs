//! The source server: how to connect to it, which flavor and version it is, and reading its
//! settings safely.
//!
//! Shared by `check`, the binlog reader and the snapshot copier, so they all log in the same way
//! (TLS, timeouts) and tell MySQL from MariaDB the same way. Values read from the server are never
//! unwrapped: a row that does not have the expected shape becomes a [`SourceError::Unexpected`].

mod connect;
mod flavor;

pub use connect::{connect, connection_opts};
pub use flavor::{Flavor, ServerInfo};

use crate::error::ErrorClass;

/// Errors talking to the source server.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to {host}:{port} as {user}: {source}{}", if is_certificate_error(source) { TLS_FIX } else { "" })]
    Connect { host: String, port: u16, user: String, source: mysql_async::Error },
    #[error("query `{query}` failed: {source}")]
    Query { query: String, source: mysql_async::Error },
    #[error("unexpected answer to `{query}`: {detail}")]
    Unexpected { query: String, detail: String },
    #[error("source.flavor is {configured} but the server is {actual} ({version}); fix source.flavor or the address")]
    FlavorMismatch { configured: Flavor, actual: Flavor, version: String },
}

/// What fixes a rejected server certificate.
pub const TLS_FIX: &str = "; fix: source.tls.ca_file must hold the CA that signed the server's certificate \
     (and with tls.mode = \"verify_identity\" the certificate must name source.host)";

/// The server's TLS certificate was rejected (wrong CA, expired, another name).
pub fn is_certificate_error(e: &mysql_async::Error) -> bool {
    let text = e.to_string();
    text.contains("certificate") || text.contains("CertificateError")
}

impl SourceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Connect { source, .. } | SourceError::Query { source, .. } => match source {
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ErrorClass::Retryable,
                _ => ErrorClass::Fatal,
            },
            SourceError::Unexpected { .. } | SourceError::FlavorMismatch { .. } => ErrorClass::Fatal,
        }
    }
}

/// Runs a query and returns each row as a vector of optional strings (NULL → `None`).
///
/// Used for the small administrative queries (variables, grants, versions), where text is what
/// we compare anyway; binary column values that are not UTF-8 become an `Unexpected` error.
pub async fn query_text(conn: &mut mysql_async::Conn, query: &str) -> Result<Vec<Vec<Option<String>>>, SourceError> {
    use mysql_async::prelude::Queryable;
    let rows: Vec<mysql_async::Row> =
        conn.query(query).await.map_err(|source| SourceError::Query { query: query.to_string(), source })?;
    text_rows(rows, query)
}

/// [`query_text`] for a prepared statement with parameters (names and other values that must
/// not be spliced into SQL).
pub async fn exec_text(
    conn: &mut mysql_async::Conn,
    query: &str,
    params: Vec<mysql_async::Value>,
) -> Result<Vec<Vec<Option<String>>>, SourceError> {
    use mysql_async::prelude::Queryable;
    let rows: Vec<mysql_async::Row> =
        conn.exec(query, params).await.map_err(|source| SourceError::Query { query: query.to_string(), source })?;
    text_rows(rows, query)
}

fn text_rows(rows: Vec<mysql_async::Row>, query: &str) -> Result<Vec<Vec<Option<String>>>, SourceError> {
    rows.into_iter()
        .map(|row| {
            row.unwrap_raw()
                .into_iter()
                .map(|v| match v {
                    None | Some(mysql_async::Value::NULL) => Ok(None),
                    Some(mysql_async::Value::Bytes(b)) => {
                        String::from_utf8(b).map(Some).map_err(|e| SourceError::Unexpected {
                            query: query.to_string(),
                            detail: format!("a value is not UTF-8: {e}"),
                        })
                    }
                    Some(other) => Ok(Some(other.as_sql(true).trim_matches('\'').to_string())),
                })
                .collect()
        })
        .collect()
}

/// Runs a query expected to return exactly one non-NULL value.
pub async fn query_one(conn: &mut mysql_async::Conn, query: &str) -> Result<String, SourceError> {
    let rows = query_text(conn, query).await?;
    match rows.as_slice() {
        [row] => match row.first() {
            Some(Some(v)) => Ok(v.clone()),
            _ => Err(SourceError::Unexpected { query: query.to_string(), detail: "NULL or no column".into() }),
        },
        _ => Err(SourceError::Unexpected {
            query: query.to_string(),
            detail: format!("{} rows instead of one", rows.len()),
        }),
    }
}

/// The server's flavor and version (`SELECT VERSION()`).
pub async fn server_info(conn: &mut mysql_async::Conn) -> Result<ServerInfo, SourceError> {
    let version = query_one(conn, "SELECT VERSION()").await?;
    ServerInfo::from_version_string(&version).ok_or_else(|| SourceError::Unexpected {
        query: "SELECT VERSION()".into(),
        detail: format!("{version:?} is not a version"),
    })
}
