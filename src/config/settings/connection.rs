//! `[source]` and `[source.tls]`: the connection to the database, from the raw file to
//! [`SourceSettings`]. The same rules as the rest of `settings`: the first problem is an error
//! naming its key; nothing is clamped or guessed.

use super::{FlavorSetting, SourceSettings, TlsMode, TlsSettings, invalid};
use crate::config::ConfigError;
use crate::config::raw::{RawSource, RawTls};
use crate::config::secret::Secret;
use std::num::NonZeroU32;
use std::time::Duration;

pub(super) fn source(raw: RawSource) -> Result<SourceSettings, ConfigError> {
    let mut host = raw.host;
    let mut port = raw.port;
    let mut user = raw.user;
    let mut password = raw.password;
    if let Some(url) = raw.url {
        if host.is_some() || port.is_some() || user.is_some() {
            return Err(invalid("source.url", "set either source.url or source.host/port/user, not both"));
        }
        let parsed = url::Url::parse(url.expose())
            .map_err(|e| invalid("source.url", format!("not a URL ({e}); expected mysql://user:password@host:port")))?;
        if !matches!(parsed.scheme(), "mysql" | "mariadb") {
            return Err(invalid("source.url", format!("scheme {:?} is not mysql:// or mariadb://", parsed.scheme())));
        }
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(invalid(
                "source.url",
                "a database or options in the URL are not used; choose tables with tables.include and TLS with source.tls",
            ));
        }
        host = parsed.host_str().map(|h| h.trim_matches(['[', ']']).to_string());
        port = parsed.port();
        if !parsed.username().is_empty() {
            user = Some(decode_url_part(parsed.username(), "source.url")?);
        }
        if let Some(p) = parsed.password() {
            if password.is_some() || raw.password_file.is_some() {
                return Err(invalid(
                    "source.password",
                    "the password is set twice: in source.url and in source.password/password_file",
                ));
            }
            password = Some(Secret::new(decode_url_part(p, "source.url")?));
        }
    }
    let password = match (password, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "source.password_file",
                "set either source.password or source.password_file, not both",
            ));
        }
        (Some(p), None) => p,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid("source.password_file", format!("cannot read {}: {e}", path.display())))?;
            let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            Secret::new(text)
        }
        (None, None) => {
            return Err(invalid(
                "source.password",
                "missing: set source.password, source.password_file, a password in source.url, or ROWFERRY__SOURCE__PASSWORD (\"\" for none)",
            ));
        }
    };
    let user = user
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid("source.user", "missing: the replication user to log in as"))?;
    let server_id = raw.server_id.ok_or_else(|| {
        invalid(
            "source.server_id",
            "missing: pick a server_id that no server or replica of this topology uses, e.g. 5401",
        )
    })?;
    let server_id = NonZeroU32::new(server_id)
        .ok_or_else(|| invalid("source.server_id", "0 is not a valid server_id; use 1..=4294967295"))?;
    let flavor = match raw.flavor.as_deref() {
        None | Some("auto") => FlavorSetting::Auto,
        Some("mysql") => FlavorSetting::MySql,
        Some("mariadb") => FlavorSetting::MariaDb,
        Some(other) => return Err(invalid("source.flavor", format!("{other:?} is not one of auto, mysql, mariadb"))),
    };
    let connect_timeout = match raw.connect_timeout_secs {
        Some(0) => return Err(invalid("source.connect_timeout_secs", "must be at least 1")),
        Some(s) => Duration::from_secs(s),
        None => Duration::from_secs(10),
    };
    Ok(SourceSettings {
        host: host.filter(|h| !h.is_empty()).unwrap_or_else(|| "127.0.0.1".to_string()),
        port: port.unwrap_or(3306),
        user,
        password,
        server_id,
        flavor,
        connect_timeout,
        tls: tls(raw.tls)?,
        semi_sync: raw.semi_sync.unwrap_or(false),
    })
}

pub(super) fn decode_url_part(part: &str, key: &str) -> Result<String, ConfigError> {
    url::form_urlencoded::parse(format!("x={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| invalid(key, "cannot percent-decode the user or password"))
}

fn tls(raw: RawTls) -> Result<TlsSettings, ConfigError> {
    let mode = match raw.mode.as_deref() {
        None | Some("disabled") => TlsMode::Disabled,
        Some("required") => TlsMode::Required,
        Some("verify_ca") => TlsMode::VerifyCa,
        Some("verify_identity") => TlsMode::VerifyIdentity,
        Some("preferred") => {
            return Err(invalid(
                "source.tls.mode",
                "\"preferred\" is not supported (it silently falls back to plain text); use disabled or required",
            ));
        }
        Some(other) => {
            return Err(invalid(
                "source.tls.mode",
                format!("{other:?} is not one of disabled, required, verify_ca, verify_identity"),
            ));
        }
    };
    if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyIdentity) && raw.ca_file.is_none() {
        return Err(invalid("source.tls.ca_file", "missing: verify_ca and verify_identity need the CA's PEM file"));
    }
    if mode == TlsMode::Disabled && (raw.ca_file.is_some() || raw.cert_file.is_some() || raw.key_file.is_some()) {
        return Err(invalid("source.tls.mode", "TLS files are set but source.tls.mode is disabled"));
    }
    let client_identity = match (raw.cert_file, raw.key_file) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => return Err(invalid("source.tls.key_file", "missing: cert_file is set without its key")),
        (None, Some(_)) => {
            return Err(invalid("source.tls.cert_file", "missing: key_file is set without its certificate"));
        }
    };
    for (key, path) in [("source.tls.ca_file", raw.ca_file.as_ref())].into_iter().chain(
        client_identity.iter().flat_map(|(c, k)| [("source.tls.cert_file", Some(c)), ("source.tls.key_file", Some(k))]),
    ) {
        if let Some(p) = path.filter(|p| !p.is_file()) {
            return Err(invalid(key, format!("{} is not a readable file", p.display())));
        }
    }
    Ok(TlsSettings { mode, ca_file: raw.ca_file, client_identity })
}
