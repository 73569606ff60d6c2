//! The replication connection, spoken by rowferry itself: connect, TLS, authenticate, register as
//! a replica, request the dump, then hand over each event's bytes exactly as the server sent them.
//!
//! Why not a client library's binlog stream: it parses every event into its own types (rowferry
//! then re-framed them to bytes and parsed them again), and it inflates a MySQL
//! TRANSACTION_PAYLOAD whole in memory before handing it over. Here the bytes of an event go
//! straight from the socket buffer to rowferry's decoder ([`crate::decoder::StreamDecoder`]),
//! which verifies the checksum and decompresses a payload as a stream.
//!
//! The protocol's building blocks (handshake, response, auth scrambles, the RSA exchange of
//! `caching_sha2_password`, dump commands, error packets) come from mysql_common; the flow is
//! here. Supported: `mysql_native_password`, `caching_sha2_password` (fast path, and full
//! authentication over TLS or with the server's RSA key), `mysql_clear_password` over TLS; TLS
//! modes as [`crate::config::TlsMode`] says, with the same meaning as for the other connections.
//!
//! **Semi-sync** ([`DumpConn::semi_sync`]): every dump packet then carries a two-byte header
//! (0xEF, and a flag: the source waits for an ACK of this event), stripped here; the write half
//! of the connection goes to an [`Acker`], which sends the ACK packets (0xEF, the 8-byte binlog
//! position, the file name) while the reader goes on reading.
//!
//! Invariants: a packet is at most [`MAX_PACKET`] bytes once reassembled (a larger one is an
//! error, never an allocation); sequence numbers are checked, so a desynchronised link is an
//! error, not a misread event; a semi-sync dump packet without its header is an error; nothing
//! here retries — the reader decides by the error's class.

use crate::config::{SourceSettings, TlsMode};
use crate::error::ErrorClass;
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, ComBinlogDump, ComBinlogDumpGtid, ComRegisterSlave, ErrPacket, HandshakePacket,
    HandshakeResponse, Sid, SslRequest,
};
use mysql_common::proto::MySerialize;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// Largest packet accepted: MySQL's and MariaDB's `max_allowed_packet` cannot exceed 1 GiB, and
/// no event can be larger than that; a bit more for the packet's own header byte.
pub const MAX_PACKET: usize = (1 << 30) + 64 * 1024;

/// utf8mb4_general_ci: known to every supported server.
const CHARSET: u8 = 45;
const MAX_CLIENT_PACKET: u32 = 16 * 1024 * 1024;

/// Why the replication connection failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An error packet from the server.
    #[error("ERROR {code}: {message}")]
    Server { code: u16, message: String },
    #[error("TLS: {0}{fix}", fix = crate::source::TLS_FIX)]
    Certificate(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("authentication: {0}")]
    Auth(String),
    #[error("unexpected packet from the source: {0}")]
    Protocol(String),
}

impl DumpError {
    /// A lost or garbled link is retried; a server error is retried unless it says the position
    /// cannot be served (1236); a refused certificate or login needs a fix in the settings.
    pub fn class(&self) -> ErrorClass {
        match self {
            DumpError::Io(_) | DumpError::Protocol(_) => ErrorClass::Retryable,
            DumpError::Server { code: 1236 | 1045 | 1227, .. } => ErrorClass::Fatal,
            DumpError::Server { .. } => ErrorClass::Retryable,
            DumpError::Certificate(_) | DumpError::Tls(_) | DumpError::Auth(_) => ErrorClass::Fatal,
        }
    }
}

trait Link: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Link for T {}

/// The buffered read half of a link, and its write half.
type Reading = BufReader<ReadHalf<Box<dyn Link>>>;
type Writing = WriteHalf<Box<dyn Link>>;

/// The semi-sync header's first byte, and the first byte of an ACK packet.
const SEMI_SYNC_MAGIC: u8 = 0xef;

/// One replication connection (see the module docs).
pub struct DumpConn {
    io: Reading,
    /// The write half; with the [`Acker`] once it is taken.
    out: Option<Writing>,
    seq: u8,
    capabilities: CapabilityFlags,
    /// The packet being read, reused.
    packet: Vec<u8>,
    /// Dump packets carry the semi-sync header.
    semi_sync: bool,
    /// The server's id of this connection (its dump thread's, for `KILL`).
    id: u32,
}

/// One event of the dump: its bytes as the server sent them, and whether the source waits for
/// an ACK of it (semi-sync).
#[derive(Debug)]
pub struct DumpEvent<'a> {
    pub bytes: &'a [u8],
    pub ack: bool,
}

/// The read and write halves of a link.
fn halves(link: Box<dyn Link>) -> (Reading, Writing) {
    let (read, write) = tokio::io::split(link);
    (BufReader::new(read), write)
}

impl std::fmt::Debug for DumpConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpConn").field("seq", &self.seq).finish()
    }
}

/// What the dump starts from.
#[derive(Debug)]
pub enum DumpStart<'a> {
    /// MySQL: COM_BINLOG_DUMP_GTID with the executed set.
    Gtid(Vec<Sid<'a>>),
    /// MariaDB: COM_BINLOG_DUMP; the position was given in `@slave_connect_state`.
    MariaDb,
}

impl DumpConn {
    /// The server's id of this connection (`KILL CONNECTION` ends its dump thread).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Connects, upgrades to TLS as `settings.tls` says, and authenticates.
    pub async fn connect(settings: &SourceSettings) -> Result<DumpConn, DumpError> {
        let tcp = TcpStream::connect((settings.host.as_str(), settings.port)).await?;
        tcp.set_nodelay(true)?;
        let (io, out) = halves(Box::new(tcp));
        let mut conn = DumpConn {
            io,
            out: Some(out),
            seq: 0,
            capabilities: CapabilityFlags::empty(),
            packet: Vec::new(),
            semi_sync: false,
            id: 0,
        };
        conn.read_packet().await?;
        if conn.packet.first() == Some(&0xff) {
            return Err(conn.server_error());
        }
        let handshake: HandshakePacket<'_> =
            ParseBuf(&conn.packet).parse(()).map_err(|e| DumpError::Protocol(format!("handshake: {e}")))?;
        conn.id = handshake.connection_id();
        let server = handshake.capabilities();
        let version = handshake.server_version_parsed().unwrap_or((0, 0, 0));
        let mut nonce = handshake.nonce();
        let first_plugin = handshake.auth_plugin().map(AuthPlugin::into_owned);
        let tls = settings.tls.mode != TlsMode::Disabled;
        let wanted = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | if tls { CapabilityFlags::CLIENT_SSL } else { CapabilityFlags::empty() };
        if tls && !server.contains(CapabilityFlags::CLIENT_SSL) {
            return Err(DumpError::Tls(
                "the source does not offer TLS; fix: enable TLS on the server, or set source.tls.mode = \"disabled\""
                    .into(),
            ));
        }
        conn.capabilities = wanted & server;
        if tls {
            let mut request = Vec::new();
            SslRequest::new(conn.capabilities, MAX_CLIENT_PACKET, CHARSET).serialize(&mut request);
            conn.write_packet(&request).await?;
            conn.upgrade(settings).await?;
        }
        let password = settings.password.expose();
        // The handshake names the server's default plugin, not the account's: one rowferry
        // cannot answer is replaced by mysql_native_password, and the server switches the
        // account to its own plugin if that differs (an error only if that one is unsupported).
        let mut plugin = match first_plugin {
            Some(p @ (AuthPlugin::MysqlNativePassword | AuthPlugin::CachingSha2Password)) => p,
            _ => AuthPlugin::MysqlNativePassword,
        };
        let data = auth_data(&plugin, password, &nonce, tls)?;
        let mut response = Vec::new();
        HandshakeResponse::new(
            Some(data.as_slice()),
            version,
            Some(settings.user.as_bytes()),
            None::<&[u8]>,
            Some(plugin.clone()),
            conn.capabilities,
            None,
            MAX_CLIENT_PACKET,
        )
        .serialize(&mut response);
        conn.write_packet(&response).await?;
        loop {
            conn.read_packet().await?;
            match conn.packet.first() {
                Some(0x00) => return Ok(conn),
                Some(0xff) => return Err(conn.server_error()),
                Some(0xfe) => {
                    let switch: AuthSwitchRequest<'_> = ParseBuf(&conn.packet)
                        .parse(())
                        .map_err(|e| DumpError::Protocol(format!("auth switch: {e}")))?;
                    plugin = switch.auth_plugin().into_owned();
                    // Without a scramble's terminator; an ed25519 nonce's last 0 byte is kept
                    // (third_party/mysql_common's patch).
                    nonce = switch.plugin_data().to_vec();
                    let data = auth_data(&plugin, password, &nonce, tls)?;
                    conn.write_packet(&data).await?;
                }
                Some(0x01) if plugin == AuthPlugin::CachingSha2Password => match conn.packet.get(1) {
                    // Fast authentication succeeded: an OK follows.
                    Some(0x03) => {}
                    // Full authentication: the password in clear over TLS, else RSA-encrypted.
                    Some(0x04) if tls => {
                        let mut clear = password.as_bytes().to_vec();
                        clear.push(0);
                        conn.write_packet(&clear).await?;
                    }
                    Some(0x04) => {
                        conn.write_packet(&[0x02]).await?;
                        conn.read_packet().await?;
                        if conn.packet.first() != Some(&0x01) {
                            return Err(DumpError::Auth("the source did not send its RSA public key".into()));
                        }
                        let key = conn.packet[1..].to_vec();
                        let mut secret = password.as_bytes().to_vec();
                        secret.push(0);
                        for (i, b) in secret.iter_mut().enumerate() {
                            *b ^= nonce.get(i % nonce.len().max(1)).copied().unwrap_or(0);
                        }
                        let encrypted = std::panic::catch_unwind(|| mysql_common::crypto::encrypt(&secret, &key))
                            .map_err(|_| DumpError::Auth("the source's RSA public key does not parse".into()))?;
                        conn.write_packet(&encrypted).await?;
                    }
                    other => return Err(DumpError::Protocol(format!("caching_sha2_password step {other:?}"))),
                },
                other => return Err(DumpError::Protocol(format!("during authentication: first byte {other:?}"))),
            }
        }
    }

    /// TLS over the connection, checked as `settings.tls.mode` says.
    async fn upgrade(&mut self, settings: &SourceSettings) -> Result<(), DumpError> {
        let config = tls_config(settings)?;
        let name = rustls::pki_types::ServerName::try_from(settings.host.clone())
            .map_err(|e| DumpError::Tls(format!("source.host {:?} as a TLS name: {e}", settings.host)))?;
        let (none, _) = halves(Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())));
        let read = std::mem::replace(&mut self.io, none).into_inner();
        let write = self.out.take().ok_or_else(|| DumpError::Protocol("TLS after the dump began".into()))?;
        let stream = read.unsplit(write);
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream).await.map_err(|e| {
            let text = e.to_string();
            if text.contains("certificate") || text.contains("Certificate") {
                DumpError::Certificate(text)
            } else {
                DumpError::Tls(text)
            }
        })?;
        let (io, out) = halves(Box::new(tls));
        (self.io, self.out) = (io, Some(out));
        Ok(())
    }

    /// Runs a statement that returns no rows (`SET …`).
    pub async fn execute(&mut self, sql: &str) -> Result<(), DumpError> {
        self.seq = 0;
        let mut command = Vec::with_capacity(1 + sql.len());
        command.push(0x03); // COM_QUERY
        command.extend_from_slice(sql.as_bytes());
        self.write_packet(&command).await?;
        self.expect_ok().await
    }

    /// Registers as a replica (COM_REGISTER_SLAVE): the source lists it, and ends an older dump
    /// of the same server_id.
    pub async fn register(&mut self, server_id: u32) -> Result<(), DumpError> {
        self.seq = 0;
        let mut command = Vec::new();
        ComRegisterSlave::new(server_id).serialize(&mut command);
        self.write_packet(&command).await?;
        self.expect_ok().await
    }

    /// Requests the binlog from `start`; events follow through [`DumpConn::next_event`].
    pub async fn dump(&mut self, server_id: u32, start: DumpStart<'_>) -> Result<(), DumpError> {
        self.seq = 0;
        let mut command = Vec::new();
        match start {
            DumpStart::Gtid(sids) => {
                ComBinlogDumpGtid::new(server_id).with_pos(4).with_sids(sids).serialize(&mut command)
            }
            DumpStart::MariaDb => ComBinlogDump::new(server_id).with_pos(4).serialize(&mut command),
        }
        self.write_packet(&command).await
    }

    /// From the next dump on, dump packets carry the semi-sync header: set after telling a source
    /// that has semi-sync (`@rpl_semi_sync_replica`) that this is a semi-sync replica.
    pub fn semi_sync(&mut self) {
        self.semi_sync = true;
    }

    /// The ACK sender (semi-sync), once the dump is requested: it takes the write half.
    pub fn acker(&mut self) -> Option<Acker> {
        self.out.take().map(|out| Acker { out, packet: Vec::new() })
    }

    /// Whether the next packet is already read from the socket whole (so reading it will not
    /// wait for the server).
    pub fn event_buffered(&self) -> bool {
        let buffered = self.io.buffer();
        match buffered {
            [a, b, c, _, rest @ ..] => {
                let len = usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16;
                len < 0xff_ffff && rest.len() >= len
            }
            _ => false,
        }
    }

    /// The next event's bytes (header, body, checksum) as the server sent them; `None` when the
    /// server ends the dump.
    pub async fn next_event(&mut self) -> Result<Option<DumpEvent<'_>>, DumpError> {
        self.read_packet().await?;
        match self.packet.first() {
            Some(0x00) if self.semi_sync => match self.packet.get(1..3) {
                Some(&[SEMI_SYNC_MAGIC, flag]) => {
                    let ack = flag & 1 == 1;
                    if ack {
                        // The source numbers the ACK 0 and goes on from 1 (both servers' flush_net).
                        self.seq = 1;
                    }
                    Ok(Some(DumpEvent { bytes: &self.packet[3..], ack }))
                }
                _ => Err(DumpError::Protocol("a semi-sync dump packet without its header".into())),
            },
            Some(0x00) => Ok(Some(DumpEvent { bytes: &self.packet[1..], ack: false })),
            Some(0xff) => Err(self.server_error()),
            Some(0xfe) if self.packet.len() < 9 => Ok(None),
            other => Err(DumpError::Protocol(format!("a dump packet starting with {other:?}"))),
        }
    }

    async fn expect_ok(&mut self) -> Result<(), DumpError> {
        self.read_packet().await?;
        match self.packet.first() {
            Some(0x00) => Ok(()),
            Some(0xff) => Err(self.server_error()),
            other => Err(DumpError::Protocol(format!("expected OK, got a packet starting with {other:?}"))),
        }
    }

    fn server_error(&self) -> DumpError {
        match ParseBuf(&self.packet).parse::<ErrPacket<'_>>(self.capabilities) {
            Ok(ErrPacket::Error(e)) => {
                DumpError::Server { code: e.error_code(), message: e.message_str().into_owned() }
            }
            Ok(ErrPacket::Progress(_)) => DumpError::Protocol("a progress report".into()),
            Err(e) => DumpError::Protocol(format!("an error packet that does not parse: {e}")),
        }
    }

    /// Reads one packet (reassembling frames of 2^24−1 bytes) into `self.packet`.
    async fn read_packet(&mut self) -> Result<(), DumpError> {
        self.packet.clear();
        loop {
            let mut header = [0u8; 4];
            self.io.read_exact(&mut header).await?;
            let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            if header[3] != self.seq {
                return Err(DumpError::Protocol(format!("packet sequence {} where {} was due", header[3], self.seq)));
            }
            self.seq = self.seq.wrapping_add(1);
            if self.packet.len() + len > MAX_PACKET {
                return Err(DumpError::Protocol(format!(
                    "a packet over {MAX_PACKET} bytes (max_allowed_packet cannot exceed 1 GiB)"
                )));
            }
            let start = self.packet.len();
            self.packet.resize(start + len, 0);
            self.io.read_exact(&mut self.packet[start..]).await?;
            if len < 0xff_ffff {
                return Ok(());
            }
        }
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), DumpError> {
        let mut chunks = payload.chunks(0xff_ffff).peekable();
        let mut out = Vec::with_capacity(payload.len() + 8);
        loop {
            let chunk = chunks.next().unwrap_or_default();
            let len = chunk.len();
            out.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, self.seq]);
            out.extend_from_slice(chunk);
            self.seq = self.seq.wrapping_add(1);
            // A payload of an exact multiple of 2^24−1 bytes ends with an empty frame.
            if chunks.peek().is_none() && len < 0xff_ffff {
                break;
            }
        }
        let io = self.out.as_mut().ok_or_else(|| DumpError::Protocol("a command after the dump began".into()))?;
        io.write_all(&out).await?;
        io.flush().await?;
        Ok(())
    }
}

/// Sends semi-sync ACKs on a dump connection (its write half; see the module docs).
pub struct Acker {
    out: Writing,
    packet: Vec<u8>,
}

impl std::fmt::Debug for Acker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acker").finish()
    }
}

impl Acker {
    /// Tells the source that the binlog up to `position` of `file` is received (and, for
    /// rowferry, in Kafka). Each ACK is a packet of its own, numbered 0, as a replica's are.
    pub async fn ack(&mut self, file: &str, position: u64) -> Result<(), DumpError> {
        let len = 1 + 8 + file.len();
        if len >= 0xff_ffff {
            return Err(DumpError::Protocol(format!("a binlog file name of {} bytes", file.len())));
        }
        self.packet.clear();
        self.packet.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, 0, SEMI_SYNC_MAGIC]);
        self.packet.extend_from_slice(&position.to_le_bytes());
        self.packet.extend_from_slice(file.as_bytes());
        self.out.write_all(&self.packet).await?;
        self.out.flush().await?;
        Ok(())
    }
}

/// The auth response for `plugin`; plugins rowferry cannot answer are an error naming the fix.
fn auth_data(plugin: &AuthPlugin<'_>, password: &str, nonce: &[u8], tls: bool) -> Result<Vec<u8>, DumpError> {
    match plugin {
        AuthPlugin::MysqlNativePassword | AuthPlugin::CachingSha2Password | AuthPlugin::Ed25519 => {}
        AuthPlugin::MysqlClearPassword if tls => {}
        other => {
            return Err(DumpError::Auth(format!(
                "the account uses the authentication plugin {:?}, which rowferry's replication connection does not \
                 speak; fix: use caching_sha2_password or mysql_native_password for source.user (MariaDB: also \
                 ed25519; mysql_clear_password only with TLS)",
                String::from_utf8_lossy(other.as_bytes())
            )));
        }
    }
    let mut out = Vec::new();
    if let Some(data) = plugin.gen_data(Some(password), nonce) {
        data.serialize(&mut out);
    }
    Ok(out)
}

/// The rustls client for `source.tls`: `required` encrypts without checking the certificate,
/// `verify_ca` checks it against the CA but not the name, `verify_identity` checks both.
fn tls_config(settings: &SourceSettings) -> Result<rustls::ClientConfig, DumpError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::install_tls_provider();
    let mut roots = rustls::RootCertStore::empty();
    match &settings.tls.ca_file {
        Some(path) => {
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|e| DumpError::Tls(format!("{}: {e}", path.display())))?
            {
                let cert = cert.map_err(|e| DumpError::Tls(format!("{}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| DumpError::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let roots = Arc::new(roots);
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let builder = rustls::ClientConfig::builder();
    let builder = match settings.tls.mode {
        TlsMode::VerifyIdentity | TlsMode::Disabled => builder.with_root_certificates(roots),
        TlsMode::VerifyCa => {
            // No trust anchor at all is an error here, not in `required` mode.
            let webpki = rustls::client::WebPkiServerVerifier::builder(roots)
                .build()
                .map_err(|e| DumpError::Tls(format!("{e}; fix: set source.tls.ca_file")))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(Lenient { webpki: Some(webpki), algorithms }))
        }
        TlsMode::Required => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(Lenient { webpki: None, algorithms }))
        }
    };
    match &settings.tls.client_identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| DumpError::Tls(format!("{}: {e}", cert.display())))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| DumpError::Tls(format!("{}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| DumpError::Tls(format!("client certificate: {e}")))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `verify_ca` (the chain against the CA, not the name: `webpki` set) and `required` (no
/// certificate check: `webpki` unset); the handshake's signatures are always checked.
#[derive(Debug)]
struct Lenient {
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError as C, Error as E};
        let Some(webpki) = &self.webpki else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. })) => {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
