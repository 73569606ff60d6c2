//! Which Kafka a cluster runs, asked the way `kafka-broker-api-versions.sh` asks: one ApiVersions
//! request (version 3) to the first bootstrap server. librdkafka sends the same request on every
//! connection but keeps the answer to itself, so rowferry sends its own.
//!
//! Kafka answers ApiVersions before any authentication (a SASL client sends it first, to learn
//! which handshake the broker speaks), so no credentials are needed: plain TCP, or TLS with the
//! CA and client certificate of `kafka.librdkafka` (`ssl.ca.location`, `ssl.certificate.location`,
//! `ssl.key.location`) when `security.protocol` is SSL or SASL_SSL.
//!
//! Since KRaft (Kafka 3.3) a version-3 answer carries the cluster's features: the broker
//! software's highest supported `metadata.version` level names its release (levels 31–33 are
//! Kafka 4.4), and the finalized level is what the cluster runs at (lower during an upgrade).
//! The protocol carries no version string: a broker without `metadata.version` (ZooKeeper-mode
//! Kafka, or another implementation of the protocol) is reported as such.

use crate::config::KafkaSettings;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What the broker said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerVersion {
    /// Highest `metadata.version` level the broker software supports.
    pub supported_level: Option<i16>,
    /// The cluster's finalized `metadata.version` level.
    pub finalized_level: Option<i16>,
    /// Highest Produce version it accepts.
    pub max_produce: Option<i16>,
}

impl BrokerVersion {
    /// "Apache Kafka 4.4 (metadata.version 4.4-IV2)", or what can be said without KRaft features.
    pub fn describe(&self) -> String {
        let name =
            |level: i16| release(level).map_or_else(|| format!("level {level}"), |(r, iv)| format!("{r}-IV{iv}"));
        match (self.supported_level, self.finalized_level) {
            (Some(supported), finalized) => {
                let software = release(supported)
                    .map_or_else(|| format!("newer than 4.5 (metadata.version level {supported})"), |(r, _)| r.into());
                let running = finalized.map_or_else(|| "not finalized".into(), name);
                format!("Apache Kafka {software} (metadata.version {running})")
            }
            (None, _) => format!(
                "a broker without KRaft metadata.version (ZooKeeper-mode Kafka before 4.0, or another implementation; \
                 Produce up to v{})",
                self.max_produce.unwrap_or(-1)
            ),
        }
    }
}

/// The release and internal version of a `metadata.version` feature level (Kafka's
/// `MetadataVersion` enum, 3.0 to 4.5).
pub fn release(level: i16) -> Option<(&'static str, u8)> {
    const RELEASES: [(i16, &str); 16] = [
        (1, "3.0"),
        (2, "3.1"),
        (3, "3.2"),
        (4, "3.3"),
        (8, "3.4"),
        (9, "3.5"),
        (12, "3.6"),
        (15, "3.7"),
        (20, "3.8"),
        (21, "3.9"),
        (22, "4.0"),
        (26, "4.1"),
        (28, "4.2"),
        (30, "4.3"),
        (31, "4.4"),
        (34, "4.5"),
    ];
    // 3.0-IV1 is level 1 (3.0-IV0 had none).
    let (first, name) = RELEASES.iter().rev().find(|(first, _)| *first <= level)?;
    let next = RELEASES.iter().find(|(f, _)| f > first).map_or(first + 1, |(f, _)| *f);
    (level < next).then(|| (*name, (level - first) as u8 + u8::from(*first == 1)))
}

/// Asks the first bootstrap server (see the module docs).
pub async fn probe(kafka: &KafkaSettings, limit: Duration) -> Result<BrokerVersion, String> {
    let server = kafka.bootstrap_servers.split(',').next().unwrap_or_default().trim();
    let server = server.rsplit_once("://").map_or(server, |(_, s)| s);
    let (host, _) = server.rsplit_once(':').ok_or_else(|| format!("{server}: no port"))?;
    let protocol = kafka.librdkafka.get("security.protocol").map(|p| p.to_ascii_uppercase()).unwrap_or_default();
    let ask = async {
        let tcp = tokio::net::TcpStream::connect(server).await.map_err(|e| format!("{server}: {e}"))?;
        if protocol == "SSL" || protocol == "SASL_SSL" {
            let connector = tls(kafka)?;
            let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| format!("{host}: {e}"))?;
            let stream = connector.connect(name, tcp).await.map_err(|e| format!("TLS with {server}: {e}"))?;
            exchange(stream).await
        } else {
            exchange(tcp).await
        }
    };
    tokio::time::timeout(limit, ask).await.map_err(|_| format!("{server} did not answer within {limit:?}"))?
}

/// A TLS client as `kafka.librdkafka` describes it.
fn tls(kafka: &KafkaSettings) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    crate::install_tls_provider();
    let setting = |key: &str| kafka.librdkafka.get(key).map(String::as_str);
    let mut roots = rustls::RootCertStore::empty();
    match setting("ssl.ca.location") {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("ssl.ca.location {path}: {e}"))?;
            for cert in rustls_pemfile_certs(&pem).map_err(|e| format!("ssl.ca.location {path}: {e}"))? {
                roots.add(cert).map_err(|e| format!("ssl.ca.location {path}: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match (setting("ssl.certificate.location"), setting("ssl.key.location")) {
        (Some(cert), Some(key)) => {
            let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
            let chain = rustls_pemfile_certs(&read(cert)?).map_err(|e| format!("ssl.certificate.location: {e}"))?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&read(key)?)
                .map_err(|e| format!("ssl.key.location: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

fn rustls_pemfile_certs(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| e.to_string())
}

/// Largest response accepted (a real one is about 1 KiB).
const MAX_RESPONSE: usize = 1 << 20;

async fn exchange(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> Result<BrokerVersion, String> {
    stream.write_all(&request(1)).await.map_err(|e| e.to_string())?;
    let size = stream.read_i32().await.map_err(|e| format!("reading the answer: {e}"))?;
    let size = usize::try_from(size).ok().filter(|s| *s <= MAX_RESPONSE).ok_or(format!("answer of {size} bytes"))?;
    let mut body = vec![0; size];
    stream.read_exact(&mut body).await.map_err(|e| format!("reading the answer: {e}"))?;
    parse(&body)
}

/// An ApiVersions v3 request with correlation id `correlation`, size-prefixed.
pub fn request(correlation: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(&correlation.to_be_bytes());
    let client = b"rowferry";
    body.extend_from_slice(&(client.len() as i16).to_be_bytes()); // header v2: a nullable string
    body.extend_from_slice(client);
    body.push(0); // header tagged fields
    for text in [&b"rowferry"[..], env!("CARGO_PKG_VERSION").as_bytes()] {
        body.push(text.len() as u8 + 1); // compact string (short)
        body.extend_from_slice(text);
    }
    body.push(0); // body tagged fields
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// Reads an ApiVersions response body (after the size; header v0, then the v3 body).
pub fn parse(bytes: &[u8]) -> Result<BrokerVersion, String> {
    let mut r = Reader { bytes, at: 0 };
    r.i32()?; // correlation id
    let error = r.i16()?;
    if error != 0 {
        // 35: UNSUPPORTED_VERSION — a broker older than 2.4, which answers with version 0.
        return Err(format!("the broker answered ApiVersions v3 with error {error} (a broker older than Kafka 2.4?)"));
    }
    let mut version = BrokerVersion { supported_level: None, finalized_level: None, max_produce: None };
    for _ in 0..r.compact_len()? {
        let (key, _min, max) = (r.i16()?, r.i16()?, r.i16()?);
        if key == 0 {
            version.max_produce = Some(max);
        }
        r.skip_tags()?;
    }
    r.i32()?; // throttle time
    for _ in 0..r.uvarint()? {
        let (tag, size) = (r.uvarint()?, r.uvarint()? as usize);
        let end = r.at.checked_add(size).filter(|e| *e <= bytes.len()).ok_or("a tagged field past the end")?;
        match tag {
            // SupportedFeatures: name, min_version, max_version; FinalizedFeatures: name,
            // max_version_level, min_version_level.
            0 | 2 => {
                for _ in 0..r.compact_len()? {
                    let name = r.compact_string()?;
                    let (first, second) = (r.i16()?, r.i16()?);
                    r.skip_tags()?;
                    if name == "metadata.version" {
                        if tag == 0 {
                            version.supported_level = Some(second);
                        } else {
                            version.finalized_level = Some(first);
                        }
                    }
                }
            }
            _ => {}
        }
        r.at = end;
    }
    Ok(version)
}

/// A cursor over a response; every read is bounds-checked (the bytes come from the network).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or("the answer ends early")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 5 bytes".into())
    }

    /// A compact array's element count (stored plus one; 0 is null).
    fn compact_len(&mut self) -> Result<u64, String> {
        Ok(self.uvarint()?.saturating_sub(1))
    }

    fn compact_string(&mut self) -> Result<String, String> {
        let n = self.compact_len()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    fn skip_tags(&mut self) -> Result<(), String> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v3 answer as Kafka 4.4 writes it: two APIs, then the features as tagged fields.
    fn answer(features: bool) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 1, 0, 0]; // correlation 1, no error
        b.push(3); // two APIs
        b.extend_from_slice(&[0, 0, 0, 3, 0, 13, 0]); // Produce 3..13
        b.extend_from_slice(&[0, 18, 0, 0, 0, 4, 0]); // ApiVersions 0..4
        b.extend_from_slice(&[0, 0, 0, 0]); // throttle
        if !features {
            b.push(0);
            return b;
        }
        let feature = |name: &str, a: i16, c: i16| {
            let mut f = vec![name.len() as u8 + 1];
            f.extend_from_slice(name.as_bytes());
            f.extend_from_slice(&a.to_be_bytes());
            f.extend_from_slice(&c.to_be_bytes());
            f.push(0);
            f
        };
        let supported = [vec![3], feature("kraft.version", 0, 1), feature("metadata.version", 7, 33)].concat();
        let finalized = [vec![2], feature("metadata.version", 32, 32)].concat();
        b.push(3); // three tagged fields
        b.extend_from_slice(&[0, supported.len() as u8]);
        b.extend(supported);
        b.extend_from_slice(&[1, 8, 0, 0, 0, 0, 0, 0, 0, 9]); // finalized epoch
        b.extend_from_slice(&[2, finalized.len() as u8]);
        b.extend(finalized);
        b
    }

    #[test]
    fn a_kraft_broker_names_its_release() {
        let v = parse(&answer(true)).expect("parses");
        assert_eq!(v, BrokerVersion { supported_level: Some(33), finalized_level: Some(32), max_produce: Some(13) });
        assert_eq!(v.describe(), "Apache Kafka 4.4 (metadata.version 4.4-IV1)");
    }

    #[test]
    fn a_broker_without_features_is_said_to_be_one() {
        let v = parse(&answer(false)).expect("parses");
        assert_eq!(v.supported_level, None);
        assert!(v.describe().contains("without KRaft metadata.version"), "{}", v.describe());
    }

    #[test]
    fn truncated_answers_are_errors_not_panics() {
        let full = answer(true);
        for cut in 0..full.len() {
            let _ = parse(&full[..cut]);
        }
        assert!(parse(&full[..10]).is_err());
    }

    #[test]
    fn levels_map_to_kafkas_releases() {
        assert_eq!(release(1), Some(("3.0", 1)));
        assert_eq!(release(7), Some(("3.3", 3)));
        assert_eq!(release(14), Some(("3.6", 2)));
        assert_eq!(release(25), Some(("4.0", 3)));
        assert_eq!(release(33), Some(("4.4", 2)));
        assert_eq!(release(34), Some(("4.5", 0)));
        assert_eq!(release(35), None);
        assert_eq!(release(0), None);
    }

    #[test]
    fn the_request_is_size_prefixed_api_versions_v3() {
        let r = request(7);
        assert_eq!(i32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize, r.len() - 4);
        assert_eq!(&r[4..8], &[0, 18, 0, 3]);
    }
}
