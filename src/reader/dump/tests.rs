use super::*;

/// The nonce an auth switch request hands over (mysql_common, patched): a 20-byte scramble
/// loses its terminator; MariaDB's 32-byte ed25519 nonce keeps a last 0 byte, which the
/// published crate dropped (the login then failed once in 256).
#[test]
fn an_auth_switch_nonce_loses_only_a_terminator() {
    let nonce = |plugin: &[u8], data: &[u8]| {
        let mut packet = Vec::new();
        AuthSwitchRequest::new(plugin.to_vec(), data.to_vec()).serialize(&mut packet);
        let parsed: AuthSwitchRequest<'_> = ParseBuf(&packet).parse(()).expect("auth switch");
        parsed.plugin_data().to_vec()
    };
    let mut scramble = vec![7u8; 20];
    scramble.push(0);
    assert_eq!(nonce(b"mysql_native_password", &scramble), vec![7u8; 20], "the terminator goes");
    let mut ed25519 = vec![9u8; 31];
    ed25519.push(0);
    assert_eq!(nonce(b"client_ed25519", &ed25519), ed25519, "ed25519: all 32 bytes kept");
}

/// A connection over an in-memory pipe; the other end plays the server.
fn pipe(semi_sync: bool) -> (DumpConn, tokio::io::DuplexStream) {
    let (ours, server) = tokio::io::duplex(1 << 16);
    let (io, out) = halves(Box::new(ours));
    let conn = DumpConn {
        io,
        out: Some(out),
        seq: 0,
        capabilities: CapabilityFlags::empty(),
        packet: Vec::new(),
        semi_sync,
        id: 0,
    };
    (conn, server)
}

fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn semi_sync_headers_are_stripped_and_the_numbering_restarts_after_an_ack_request() {
    let (mut conn, mut server) = pipe(true);
    // No ACK asked, then one asked (the server then numbers its next packet 1), then the next.
    for (seq, flag, body) in [(0, 0, b"first".as_slice()), (1, 1, b"second"), (1, 0, b"third")] {
        let mut payload = vec![0x00, SEMI_SYNC_MAGIC, flag];
        payload.extend_from_slice(body);
        server.write_all(&frame(seq, &payload)).await.expect("write");
    }
    for (want, ack) in [(b"first".as_slice(), false), (b"second", true), (b"third", false)] {
        let event = conn.next_event().await.expect("event").expect("not the end");
        assert_eq!((event.bytes, event.ack), (want, ack));
    }
    // A packet without the header is refused, not misread as an event.
    server.write_all(&frame(2, b"\x00plain")).await.expect("write");
    assert!(matches!(conn.next_event().await, Err(DumpError::Protocol(_))));
}

#[tokio::test]
async fn without_semi_sync_the_event_follows_the_ok_byte() {
    let (mut conn, mut server) = pipe(false);
    server.write_all(&frame(0, b"\x00\xefevent")).await.expect("write");
    let event = conn.next_event().await.expect("event").expect("not the end");
    assert_eq!((event.bytes, event.ack), (b"\xefevent".as_slice(), false));
}

#[tokio::test]
async fn an_ack_is_packet_0_with_the_magic_the_position_and_the_file() {
    let (mut conn, mut server) = pipe(true);
    let mut acker = conn.acker().expect("the write half");
    assert!(conn.acker().is_none(), "taken once");
    acker.ack("binlog.000002", 0x0102_0304).await.expect("ack");
    let mut got = vec![0u8; 4 + 1 + 8 + 13];
    server.read_exact(&mut got).await.expect("read");
    let mut want = vec![22, 0, 0, 0, 0xef, 4, 3, 2, 1, 0, 0, 0, 0];
    want.extend_from_slice(b"binlog.000002");
    assert_eq!(got, want);
}
