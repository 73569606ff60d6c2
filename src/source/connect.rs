//! Connection options from [`SourceSettings`]: one place that decides TLS, timeouts and the
//! password handling for every connection rowferry opens to the source.

use super::SourceError;
use crate::config::{SourceSettings, TlsMode};
use mysql_async::{ClientIdentity, Conn, OptsBuilder, SslOpts};

/// Builds the driver options. The password goes from the [`crate::config::Secret`] straight into
/// the driver and nowhere else.
pub fn connection_opts(settings: &SourceSettings) -> OptsBuilder {
    let ssl = match settings.tls.mode {
        TlsMode::Disabled => None,
        ref mode => {
            let mut ssl = SslOpts::default();
            if let Some(ca) = &settings.tls.ca_file {
                ssl = ssl.with_root_certs(vec![ca.clone().into()]);
            }
            if let Some((cert, key)) = &settings.tls.client_identity {
                ssl = ssl.with_client_identity(Some(ClientIdentity::new(cert.clone().into(), key.clone().into())));
            }
            ssl = ssl
                .with_danger_accept_invalid_certs(*mode == TlsMode::Required)
                .with_danger_skip_domain_validation(*mode != TlsMode::VerifyIdentity);
            Some(ssl)
        }
    };
    OptsBuilder::default()
        .ip_or_hostname(settings.host.clone())
        .tcp_port(settings.port)
        .user(Some(settings.user.clone()))
        .pass(Some(settings.password.expose().to_string()))
        .prefer_socket(false)
        .ssl_opts(ssl)
}

/// Opens one connection, bounded by `source.connect_timeout_secs`.
pub async fn connect(settings: &SourceSettings) -> Result<Conn, SourceError> {
    let error = |source| SourceError::Connect {
        host: settings.host.clone(),
        port: settings.port,
        user: settings.user.clone(),
        source,
    };
    match tokio::time::timeout(settings.connect_timeout, Conn::new(connection_opts(settings))).await {
        Ok(result) => result.map_err(error),
        Err(_) => Err(error(mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {}s", settings.connect_timeout.as_secs()),
        ))))),
    }
}
