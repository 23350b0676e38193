//! Hostile and malformed input (issue 5, item 2), through the raw HTTP/3 client of `support`.
//!
//! Each test sends one kind of bad input, asserts the error the client sees for it (a stream
//! reset or stop code, the connection's close code, or a 4xx/5xx answer) and then that the
//! server keeps serving: the same connection where it survives, and always a fresh one, still
//! opens a session that echoes a stream and a datagram.
//!
//! Error codes are written out here from the specs (RFC 9114 §8.1, RFC 9204 §6, RFC 9297 §5,
//! draft-ietf-webtrans-http3 §9.5) rather than taken from the server, so a wrong constant in the
//! server shows up as a failure.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use support::*;
use tokio::sync::mpsc;
use webtransport_napi::core::h3::{qpack, varint};
use webtransport_napi::core::webtransport::echo::echo_bidi;
use webtransport_napi::core::{IncomingRequest, RequestHandler, Session, SessionEnd};

const H3_NO_ERROR: u64 = 0x100;
const H3_STREAM_CREATION_ERROR: u64 = 0x103;
const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
const H3_FRAME_UNEXPECTED: u64 = 0x105;
const H3_FRAME_ERROR: u64 = 0x106;
const H3_ID_ERROR: u64 = 0x108;
const H3_SETTINGS_ERROR: u64 = 0x109;
const H3_MISSING_SETTINGS: u64 = 0x10a;
const H3_MESSAGE_ERROR: u64 = 0x10e;
const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
const H3_DATAGRAM_ERROR: u64 = 0x33;
const WT_BUFFERED_STREAM_REJECTED: u64 = 0x3994_bd84;
const WT_SESSION_GONE: u64 = 0x170d_7b68;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Every test runs under this bound: a hang is a failure, not a stuck CI job.
async fn bounded<F: std::future::Future>(secs: u64, test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), test).await.expect("the test exceeded its time bound (a hang)")
}

/// The server side of every test: accepts every session, hands it to the test, and serves it
/// according to its path.
/// - `/quiet`: echoes streams but never reads datagrams (the datagram flood target);
/// - `/firehose`: writes [`FIREHOSE`] bytes on the first bidirectional stream the client opens;
/// - `/idle`: accepts no stream and reads no datagram, so what the client opens stays queued;
/// - `/missing`: refused with 404, as an application refuses a path that takes no WebTransport;
/// - anything else: the full echo of `support::serve_echo`.
struct Hub {
    sessions: mpsc::UnboundedSender<Session>,
    /// Bytes the firehose has handed to its stream so far.
    written: Arc<AtomicU64>,
}

const FIREHOSE: usize = 8 << 20;

impl RequestHandler for Hub {
    fn on_request(&self, request: IncomingRequest) {
        let path = request.info.path.clone();
        let sessions = self.sessions.clone();
        let written = self.written.clone();
        if path == "/missing" {
            return request.reject(404, Vec::new());
        }
        tokio::spawn(async move {
            let Some(session) = request.accept(Vec::new(), String::new()).await else { return };
            let _ = sessions.send(session.clone());
            match path.as_str() {
                "/quiet" => echo_bidi(session).await,
                "/idle" => {
                    session.closed().await;
                }
                "/firehose" => firehose(session, written).await,
                _ => serve_echo(session).await,
            }
        });
    }
}

struct HubHandles {
    sessions: mpsc::UnboundedReceiver<Session>,
    written: Arc<AtomicU64>,
}

fn hub() -> (Arc<Hub>, HubHandles) {
    let (tx, rx) = mpsc::unbounded_channel();
    let written = Arc::new(AtomicU64::new(0));
    (Arc::new(Hub { sessions: tx, written: written.clone() }), HubHandles { sessions: rx, written })
}

fn echo_server(configure: impl FnOnce(&mut webtransport_napi::core::ServerConfig)) -> TestServer {
    let (handler, _) = hub();
    start_server(handler, configure)
}

fn firehose_byte(offset: usize) -> u8 {
    (offset % 251) as u8
}

async fn firehose(session: Session, written: Arc<AtomicU64>) {
    let Some((mut send, _recv)) = session.accept_bi().await else { return };
    let mut offset = 0;
    while offset < FIREHOSE {
        let chunk: Vec<u8> = (offset..offset + 64 * 1024).map(firehose_byte).collect();
        let len = chunk.len();
        if send.write(Bytes::from(chunk)).await.is_err() {
            return;
        }
        offset += len;
        written.store(offset as u64, Ordering::SeqCst);
    }
    let _ = send.finish();
    // Keep the session (and so the stream) alive until the client is done reading.
    session.closed().await;
}

/// A fresh connection with SETTINGS sent. Keep the control stream: dropping it finishes it,
/// which the server must treat as H3_CLOSED_CRITICAL_STREAM.
async fn client(server: &TestServer) -> (quinn::Connection, quinn::SendStream) {
    let conn = server.connect().await;
    let control = send_settings(&conn, SETTINGS_WT).await;
    (conn, control)
}

fn wt_bidi_header(session_id: u64) -> BytesMut {
    let mut header = BytesMut::new();
    varint::encode(0x41, &mut header);
    varint::encode(session_id, &mut header);
    header
}

fn wt_uni_header(session_id: u64) -> BytesMut {
    let mut header = BytesMut::new();
    varint::encode(0x54, &mut header);
    varint::encode(session_id, &mut header);
    header
}

fn datagram(quarter_id: u64, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    varint::encode(quarter_id, &mut out);
    out.put_slice(payload);
    out.freeze()
}

/// A WT_CLOSE_SESSION capsule with raw reason bytes, in its DATA frame.
fn close_capsule(code: u32, reason: &[u8]) -> Bytes {
    let mut capsule = BytesMut::new();
    varint::encode(0x2843, &mut capsule);
    varint::encode(4 + reason.len() as u64, &mut capsule);
    capsule.put_u32(code);
    capsule.put_slice(reason);
    frame(0x00, &capsule)
}

/// What the server did with a request stream.
enum Answer {
    /// A response HEADERS frame with this status.
    Status(u16),
    /// RESET_STREAM with this code.
    Reset(u64),
    /// A clean FIN before any response.
    Fin,
    /// The connection went away while waiting.
    Lost(quinn::ConnectionError),
    Other(String),
    /// Nothing within the wait.
    Silent,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "status {s}"),
            Self::Reset(code) => write!(f, "RESET_STREAM {code:#x}"),
            Self::Fin => write!(f, "FIN without a response"),
            Self::Lost(e) => write!(f, "connection lost: {e:?}"),
            Self::Other(e) => write!(f, "read error: {e}"),
            Self::Silent => write!(f, "nothing (the stream is left waiting)"),
        }
    }
}

async fn answer(recv: &mut quinn::RecvStream, wait: Duration) -> Answer {
    let read = async {
        let mut buf = BytesMut::new();
        loop {
            let mut cursor = &buf[..];
            if let (Some(kind), Some(len)) = (varint::decode(&mut cursor), varint::decode(&mut cursor)) {
                let header = buf.len() - cursor.len();
                if cursor.len() as u64 >= len {
                    let payload = buf[header..header + len as usize].to_vec();
                    let _ = buf.split_to(header + len as usize);
                    if kind == 0x01 {
                        let fields = qpack::decode_field_section(&payload, 1 << 16).expect("response headers decode");
                        let status = fields
                            .iter()
                            .find(|f| f.name == ":status")
                            .and_then(|f| f.value.parse().ok())
                            .expect("a :status in the response");
                        return Answer::Status(status);
                    }
                    continue;
                }
            }
            match recv.read_chunk(65536, true).await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                Ok(None) => return Answer::Fin,
                Err(quinn::ReadError::Reset(code)) => return Answer::Reset(code.into_inner()),
                Err(quinn::ReadError::ConnectionLost(e)) => return Answer::Lost(e),
                Err(e) => return Answer::Other(e.to_string()),
            }
        }
    };
    tokio::time::timeout(wait, read).await.unwrap_or(Answer::Silent)
}

/// Opens a request stream and writes `bytes` on it (without finishing it).
async fn send_raw(conn: &quinn::Connection, bytes: &[u8]) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, recv) = conn.open_bi().await.expect("open a request stream");
    send.write_all(bytes).await.expect("write the request");
    (send, recv)
}

/// The application error code the connection was closed with, or a panic naming `what`.
async fn connection_error(conn: &quinn::Connection, what: &str) -> u64 {
    let error = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap_or_else(|_| panic!("{what}: the server did not close the connection"));
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => close.error_code.into_inner(),
        other => panic!("{what}: the connection ended with {other:?}, not an HTTP/3 error"),
    }
}

async fn expect_connection_error(conn: &quinn::Connection, code: u64, what: &str) {
    let got = connection_error(conn, what).await;
    assert_eq!(got, code, "{what}: connection closed with {got:#x}, expected {code:#x}");
}

/// The code of the STOP_SENDING the server sent on a stream of ours; `None` if it did not stop it.
async fn stop_code(send: &quinn::SendStream, wait: Duration) -> Option<u64> {
    match tokio::time::timeout(wait, send.stopped()).await {
        Ok(Ok(Some(code))) => Some(code.into_inner()),
        _ => None,
    }
}

/// Checks a datagram sent on `session_id` comes back (retrying: datagrams may be lost).
async fn assert_datagram_echo(conn: &quinn::Connection, session_id: u64) {
    let payload = format!("datagram for {session_id}");
    for _ in 0..5 {
        conn.send_datagram(datagram(session_id / 4, payload.as_bytes())).expect("send a datagram");
        let echoed = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                let Ok(d) = conn.read_datagram().await else { return false };
                let Some((quarter, n)) = varint::decode_slice(&d) else { continue };
                if quarter == session_id / 4 && &d[n..] == payload.as_bytes() {
                    return true;
                }
            }
        })
        .await;
        if echoed == Ok(true) {
            return;
        }
    }
    panic!("no datagram echo on session {session_id}");
}

/// Opens a session on `conn` (SETTINGS already sent) and checks it echoes a stream and a datagram.
async fn assert_session_echoes(server: &TestServer, conn: &quinn::Connection, what: &str) {
    assert!(conn.close_reason().is_none(), "{what}: the connection was closed: {:?}", conn.close_reason());
    let (headers, mut send, recv, _) = request(conn, &connect_headers(&server.authority(), "/echo", &[])).await;
    assert_eq!(status(&headers), "200", "{what}: a session request after the bad input");
    let id = u64::from(recv.id());
    assert_eq!(bidi_echo(conn, id, b"still serving").await, b"still serving", "{what}: stream echo");
    assert_datagram_echo(conn, id).await;
    let _ = send.finish();
}

/// The server keeps serving: on `same` if given (a connection that must have survived), and
/// always on a fresh connection.
async fn assert_serves(server: &TestServer, same: Option<&quinn::Connection>) {
    if let Some(conn) = same {
        assert_session_echoes(server, conn, "same connection").await;
    }
    let (conn, _control) = client(server).await;
    assert_session_echoes(server, &conn, "fresh connection").await;
    conn.close(quinn::VarInt::from_u32(H3_NO_ERROR as u32), b"done");
}

async fn shutdown(server: TestServer) {
    server.server.close(0, "", Duration::from_millis(200)).await;
}

// ---------------------------------------------------------------------------------------------
// Request validation
// ---------------------------------------------------------------------------------------------

/// A CONNECT without `:protocol` is a plain (proxy) CONNECT: never a session. The answer is an
/// error status (the server is no proxy) or, since this one also carries `:scheme` and `:path`
/// that RFC 9114 §4.4 says a plain CONNECT omits, H3_MESSAGE_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_protocol_is_not_a_session() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();
        let block =
            encode_headers(&[(":method", "CONNECT"), (":scheme", "https"), (":authority", &auth), (":path", "/echo")]);
        let (_send, mut recv) = send_raw(&conn, &frame(0x01, &block)).await;
        match answer(&mut recv, Duration::from_secs(5)).await {
            Answer::Status(s) => assert!((400..600).contains(&s), "a CONNECT without :protocol got {s}"),
            Answer::Reset(code) => assert_eq!(code, H3_MESSAGE_ERROR),
            other => panic!("a CONNECT without :protocol got {other:?}"),
        }
        assert_eq!(server.server.session_count(), 0, "no session was opened");

        // A well-formed plain CONNECT (only :method and :authority) gets an error status.
        let block = encode_headers(&[(":method", "CONNECT"), (":authority", &auth)]);
        let (_send, mut recv) = send_raw(&conn, &frame(0x01, &block)).await;
        match answer(&mut recv, Duration::from_secs(5)).await {
            Answer::Status(s) => assert!((400..600).contains(&s), "a plain CONNECT got {s}"),
            other => panic!("a plain CONNECT got {other:?}"),
        }
        assert_eq!(server.server.session_count(), 0);
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9114 §4.4: a plain CONNECT must carry `:authority`; one without is malformed, a stream
/// error H3_MESSAGE_ERROR (§4.1.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_connect_without_authority_is_malformed() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let block = encode_headers(&[(":method", "CONNECT")]);
        let (send, mut recv) = send_raw(&conn, &frame(0x01, &block)).await;
        let got = answer(&mut recv, Duration::from_secs(5)).await;
        assert!(matches!(got, Answer::Reset(H3_MESSAGE_ERROR)), "a CONNECT with no :authority got {got:?}");
        assert_eq!(stop_code(&send, Duration::from_secs(2)).await, Some(H3_MESSAGE_ERROR));
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

async fn check_malformed_connect(fields: &[(&str, &str)], what: &str) {
    let server = echo_server(|_| {});
    let (conn, _control) = client(&server).await;
    let (send, mut recv) = send_raw(&conn, &frame(0x01, &encode_headers(fields))).await;
    let got = answer(&mut recv, Duration::from_secs(5)).await;
    assert!(matches!(got, Answer::Reset(H3_MESSAGE_ERROR)), "{what}: got {got:?}, expected a H3_MESSAGE_ERROR reset");
    assert_eq!(stop_code(&send, Duration::from_secs(2)).await, Some(H3_MESSAGE_ERROR), "{what}: STOP_SENDING code");
    assert_eq!(server.server.session_count(), 0);
    assert_serves(&server, Some(&conn)).await;
    shutdown(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_without_authority_is_a_message_error() {
    bounded(40, async {
        let base = [(":method", "CONNECT"), (":protocol", "webtransport"), (":scheme", "https"), (":path", "/echo")];
        check_malformed_connect(&base, "no :authority").await;
        let mut empty = base.to_vec();
        empty.push((":authority", ""));
        check_malformed_connect(&empty, "empty :authority").await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_without_path_is_a_message_error() {
    bounded(40, async {
        let base = [(":method", "CONNECT"), (":protocol", "webtransport"), (":scheme", "https"), (":authority", "a:1")];
        check_malformed_connect(&base, "no :path").await;
        let mut empty = base.to_vec();
        empty.push((":path", ""));
        check_malformed_connect(&empty, "empty :path").await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_protocol_is_501() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();
        for protocol in ["websocket", "connect-udp", "webtransport-h4", ""] {
            let block = encode_headers(&[
                (":method", "CONNECT"),
                (":protocol", protocol),
                (":scheme", "https"),
                (":authority", &auth),
                (":path", "/echo"),
            ]);
            let (_send, mut recv) = send_raw(&conn, &frame(0x01, &block)).await;
            let got = answer(&mut recv, Duration::from_secs(5)).await;
            assert!(matches!(got, Answer::Status(501)), ":protocol {protocol:?} got {got:?}");
        }
        assert_eq!(server.server.session_count(), 0);
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// A GET with a body is answered (404: only sessions live here); the server stops reading the
/// body with H3_NO_ERROR (RFC 9114 §4.1) and the connection is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_a_body_is_answered_404() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();
        let get = encode_headers(&[(":method", "GET"), (":scheme", "https"), (":authority", &auth), (":path", "/x")]);
        let mut bytes = BytesMut::from(&frame(0x01, &get)[..]);
        for _ in 0..3 {
            bytes.put_slice(&frame(0x00, &[0xab; 1000]));
        }
        let (mut send, mut recv) = send_raw(&conn, &bytes).await;
        let got = answer(&mut recv, Duration::from_secs(5)).await;
        assert!(matches!(got, Answer::Status(404)), "GET with a body got {got:?}");
        // A large body keeps coming: the server stops it rather than reading it all.
        let writer = tokio::spawn(async move {
            let chunk = frame(0x00, &[0xcd; 60_000]);
            for _ in 0..100 {
                if let Err(e) = send.write_all(&chunk).await {
                    return Some(e);
                }
            }
            None
        });
        let stopped = tokio::time::timeout(Duration::from_secs(10), writer).await.expect("writer bounded").unwrap();
        assert!(
            matches!(stopped, Some(quinn::WriteError::Stopped(code)) if code.into_inner() == H3_NO_ERROR),
            "the body after the response is stopped with H3_NO_ERROR, got {stopped:?}"
        );
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// Header sections over the advertised SETTINGS_MAX_FIELD_SECTION_SIZE (16 KiB) get 431, however
/// they are big: a big frame, a small frame that decodes big, or a frame that only claims to be big.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_sections_get_431() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();

        // 20 KB of encoded header block.
        let big = "v".repeat(20_000);
        let block = connect_headers(&auth, "/echo", &[("x-big", &big)]);
        assert!(block.len() > 16 * 1024);
        let (_send, mut recv) = send_raw(&conn, &frame(0x01, &block)).await;
        let got = answer(&mut recv, Duration::from_secs(5)).await;
        assert!(matches!(got, Answer::Status(431)), "a 20 KB header block got {got:?}");

        // About 4 KB encoded, but 600 fields of 32 bytes' overhead each: ~21 KB as RFC 9114 §4.2.2 counts.
        let many: Vec<(String, String)> = (0..600).map(|i| (format!("x-{i}"), String::new())).collect();
        let mut fields: Vec<(&str, &str)> = vec![
            (":method", "CONNECT"),
            (":protocol", "webtransport"),
            (":scheme", "https"),
            (":authority", &auth),
            (":path", "/echo"),
        ];
        fields.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let block = encode_headers(&fields);
        assert!(block.len() < 16 * 1024);
        let (_send, mut recv) = send_raw(&conn, &frame(0x01, &block)).await;
        let got = answer(&mut recv, Duration::from_secs(5)).await;
        assert!(matches!(got, Answer::Status(431)), "a header section decoding to ~21 KB got {got:?}");

        // A HEADERS frame claiming 2^62-1 bytes, with almost nothing behind it.
        let mut claim = BytesMut::new();
        varint::encode(0x01, &mut claim);
        varint::encode((1 << 62) - 1, &mut claim);
        claim.put_slice(&[0, 0]);
        let (_send, mut recv) = send_raw(&conn, &claim).await;
        let got = answer(&mut recv, Duration::from_secs(5)).await;
        assert!(matches!(got, Answer::Status(431)), "a HEADERS frame claiming 2^62-1 bytes got {got:?}");

        assert_eq!(server.server.session_count(), 0);
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Garbage frames on request streams
// ---------------------------------------------------------------------------------------------

/// RFC 9114 §7.2.4, §4.1 and §7.2.8: SETTINGS on a request stream, DATA before HEADERS and
/// HTTP/2-only frame types are connection errors H3_FRAME_UNEXPECTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_frames_on_a_request_stream_are_frame_unexpected() {
    bounded(40, async {
        let server = echo_server(|_| {});
        let cases: [(&str, Bytes); 4] = [
            ("SETTINGS on a request stream", frame(0x04, &[0x33, 0x01])),
            ("DATA before HEADERS", frame(0x00, b"body first")),
            ("HTTP/2 PRIORITY (0x02)", frame(0x02, &[0; 5])),
            ("GOAWAY on a request stream", frame(0x07, &[0x00])),
        ];
        for (what, bytes) in cases {
            let (conn, _control) = client(&server).await;
            let (_send, _recv) = send_raw(&conn, &bytes).await;
            expect_connection_error(&conn, H3_FRAME_UNEXPECTED, what).await;
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// The same frames on the CONNECT stream of an open session are still a request stream's
/// garbage: connection error H3_FRAME_UNEXPECTED (RFC 9114 §7.2.4: "If an endpoint receives a
/// SETTINGS frame on a different stream, the endpoint MUST respond with a connection error of
/// type H3_FRAME_UNEXPECTED"), not a session-level message error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_on_an_open_session_stream_is_frame_unexpected() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let (headers, mut send, _recv, _) = request(&conn, &connect_headers(&server.authority(), "/echo", &[])).await;
        assert_eq!(status(&headers), "200");
        send.write_all(&frame(0x04, &[0x33, 0x01])).await.unwrap();
        expect_connection_error(&conn, H3_FRAME_UNEXPECTED, "SETTINGS on a CONNECT stream").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// Random bytes as a HEADERS payload: QPACK_DECOMPRESSION_FAILED (connection) when they do not
/// decode, H3_MESSAGE_ERROR (stream) when they decode to a malformed request. Never a hang, a
/// session or a dead server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_header_blocks_are_refused() {
    bounded(60, async {
        let server = echo_server(|_| {});
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut payloads: Vec<(String, Vec<u8>)> = Vec::new();
        for seed in 0..8 {
            let bytes = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            payloads.push((format!("random block #{seed}"), bytes));
        }
        // Prefix 0,0 then random bytes: gets past the section prefix into the field lines.
        for (what, bytes) in payloads.clone() {
            let mut b = vec![0, 0];
            b.extend_from_slice(&bytes);
            payloads.push((format!("{what} after a valid prefix"), b));
        }
        payloads.push(("all 0xff".into(), vec![0xff; 64]));
        payloads.push(("non-zero Required Insert Count".into(), vec![0x01, 0x00, 0xd1]));
        // Decodes, but an upper-case name makes the request malformed.
        payloads.push(("upper-case field name".into(), encode_headers(&[(":method", "GET"), ("X-Upper", "v")])));
        for (what, bytes) in payloads {
            let (conn, _control) = client(&server).await;
            let (_send, mut recv) = send_raw(&conn, &frame(0x01, &bytes)).await;
            match answer(&mut recv, Duration::from_secs(5)).await {
                Answer::Reset(code) => assert_eq!(code, H3_MESSAGE_ERROR, "{what}: stream reset code"),
                Answer::Lost(quinn::ConnectionError::ApplicationClosed(close)) => assert_eq!(
                    close.error_code.into_inner(),
                    QPACK_DECOMPRESSION_FAILED,
                    "{what}: connection close code"
                ),
                other => panic!("{what}: got {other:?}"),
            }
            conn.close(quinn::VarInt::from_u32(0x100), b"");
        }
        assert_eq!(server.server.session_count(), 0);
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9114 §7.1: "When a stream terminates cleanly, if the last frame on the stream was
/// truncated, this MUST be treated as a connection error of type H3_FRAME_ERROR."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_headers_frame_is_frame_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let block = connect_headers(&server.authority(), "/echo", &[]);
        let whole = frame(0x01, &block);
        let (mut send, _recv) = send_raw(&conn, &whole[..whole.len() / 2]).await;
        send.finish().unwrap();
        expect_connection_error(&conn, H3_FRAME_ERROR, "a HEADERS frame cut short by FIN").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// draft-ietf-webtrans-http3 §4.3: WT_STREAM (0x41) anywhere but the very first bytes of a
/// request stream "MUST be treated as a connection error of type H3_FRAME_ERROR".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wt_stream_signal_after_other_frames_is_frame_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let mut bytes = BytesMut::from(&frame(0x21, &[])[..]); // a reserved (grease) frame first
        bytes.put_slice(&wt_bidi_header(0));
        bytes.put_slice(b"payload");
        let (_send, _recv) = send_raw(&conn, &bytes).await;
        expect_connection_error(&conn, H3_FRAME_ERROR, "WT_STREAM after a grease frame").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// WebTransport streams and datagrams for sessions that do not exist
// ---------------------------------------------------------------------------------------------

/// A stream naming a session that is never requested is buffered (draft §4.6: SHOULD buffer,
/// MUST limit); past the limit a stream is refused with WT_BUFFERED_STREAM_REJECTED. The rest
/// of the connection works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_for_a_session_never_requested_are_buffered_up_to_a_limit() {
    bounded(40, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let ghost = 4 * 10_000;
        let mut sends = Vec::new();
        let mut readers = tokio::task::JoinSet::new();
        for i in 0..65u32 {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            let mut bytes = wt_bidi_header(ghost);
            bytes.put_slice(format!("ghost {i}").as_bytes());
            send.write_all(&bytes).await.unwrap();
            sends.push(send);
            readers.spawn(async move { answer(&mut recv, Duration::from_millis(1500)).await });
        }
        let (mut rejected, mut waiting) = (0, 0);
        while let Some(outcome) = readers.join_next().await {
            match outcome.unwrap() {
                Answer::Reset(WT_BUFFERED_STREAM_REJECTED) => rejected += 1,
                Answer::Silent => waiting += 1,
                other => panic!("a stream for a session never requested got {other:?}"),
            }
        }
        assert_eq!((rejected, waiting), (1, 64), "64 streams are buffered, the one beyond is refused");
        // The buffer is full: a unidirectional stream for it is refused too.
        let mut uni = conn.open_uni().await.unwrap();
        uni.write_all(&wt_uni_header(ghost)).await.unwrap();
        assert_eq!(stop_code(&uni, Duration::from_secs(3)).await, Some(WT_BUFFERED_STREAM_REJECTED));
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// Streams buffered for a stream id that turns out to be a plain request are refused with
/// WT_BUFFERED_STREAM_REJECTED when that request arrives, and later ones at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_for_a_request_that_is_not_a_session_are_refused() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();
        let get = encode_headers(&[(":method", "GET"), (":scheme", "https"), (":authority", &auth), (":path", "/")]);

        let (mut early, mut early_recv) = conn.open_bi().await.unwrap();
        assert_eq!(u64::from(early.id()), 0);
        early.write_all(&wt_bidi_header(8)).await.unwrap();
        early.write_all(b"early").await.unwrap();
        let mut early_uni = conn.open_uni().await.unwrap();
        early_uni.write_all(&wt_uni_header(8)).await.unwrap();
        let (plain, mut plain_recv) = send_raw(&conn, &frame(0x01, &get)).await;
        assert_eq!(u64::from(plain.id()), 4);
        assert!(matches!(answer(&mut plain_recv, Duration::from_secs(5)).await, Answer::Status(404)));
        // Still buffered: stream 8 has not come yet.
        assert!(matches!(answer(&mut early_recv, Duration::from_millis(300)).await, Answer::Silent));

        let (request8, mut recv8) = send_raw(&conn, &frame(0x01, &get)).await;
        assert_eq!(u64::from(request8.id()), 8);
        assert!(matches!(answer(&mut recv8, Duration::from_secs(5)).await, Answer::Status(404)));
        let got = answer(&mut early_recv, Duration::from_secs(3)).await;
        assert!(matches!(got, Answer::Reset(WT_BUFFERED_STREAM_REJECTED)), "buffered bidi stream got {got:?}");
        assert_eq!(stop_code(&early_uni, Duration::from_secs(3)).await, Some(WT_BUFFERED_STREAM_REJECTED));

        // Arriving after the request was answered: refused at once.
        for id in [4, 8] {
            let (mut late, mut late_recv) = conn.open_bi().await.unwrap();
            late.write_all(&wt_bidi_header(id)).await.unwrap();
            let got = answer(&mut late_recv, Duration::from_secs(3)).await;
            assert!(matches!(got, Answer::Reset(WT_BUFFERED_STREAM_REJECTED)), "stream for request {id} got {got:?}");
        }
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// A stream naming a session that has ended: draft §4 says such ids are not invalid and are
/// handled as §6 says, which is to reset and stop the session's streams with WT_SESSION_GONE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_for_an_ended_session_get_session_gone() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let (headers, mut send, _recv, _) = request(&conn, &connect_headers(&server.authority(), "/echo", &[])).await;
        assert_eq!(status(&headers), "200");
        let id = u64::from(send.id());
        send.finish().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while server.server.session_count() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "the session did not end after its FIN");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (mut late, mut late_recv) = conn.open_bi().await.unwrap();
        late.write_all(&wt_bidi_header(id)).await.unwrap();
        let got = answer(&mut late_recv, Duration::from_secs(3)).await;
        assert!(matches!(got, Answer::Reset(WT_SESSION_GONE)), "a stream for an ended session got {got:?}");
        let mut late_uni = conn.open_uni().await.unwrap();
        late_uni.write_all(&wt_uni_header(id)).await.unwrap();
        let stop = stop_code(&late_uni, Duration::from_secs(3)).await;
        assert_eq!(stop, Some(WT_SESSION_GONE), "a uni stream for an ended session got STOP_SENDING {stop:x?}");
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// draft §4: a session id that is not a client-initiated bidirectional stream id "MUST close the
/// connection with an H3_ID_ERROR".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_id_not_divisible_by_four_is_id_error() {
    bounded(40, async {
        let server = echo_server(|_| {});
        for bad in [1, 2, 3, 4 * 7 + 1] {
            let (conn, _control) = client(&server).await;
            let (mut send, _recv) = conn.open_bi().await.unwrap();
            send.write_all(&wt_bidi_header(bad)).await.unwrap();
            expect_connection_error(&conn, H3_ID_ERROR, &format!("bidi stream for session {bad}")).await;

            let (conn, _control) = client(&server).await;
            let mut uni = conn.open_uni().await.unwrap();
            uni.write_all(&wt_uni_header(bad)).await.unwrap();
            expect_connection_error(&conn, H3_ID_ERROR, &format!("uni stream for session {bad}")).await;
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// Datagrams for sessions that do not exist (never requested, or a plain request) are dropped
/// silently; they never reach another session and the connection stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_for_unknown_sessions_are_dropped() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();
        let get = encode_headers(&[(":method", "GET"), (":scheme", "https"), (":authority", &auth), (":path", "/")]);
        let (_plain, mut plain_recv) = send_raw(&conn, &frame(0x01, &get)).await;
        assert!(matches!(answer(&mut plain_recv, Duration::from_secs(5)).await, Answer::Status(404)));
        // Stream 0 was the GET; quarter ids 1000.. were never opened.
        for i in 0..500u64 {
            let quarter = if i % 2 == 0 { 0 } else { 1000 + i };
            conn.send_datagram(datagram(quarter, b"stray")).unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(conn.close_reason().is_none(), "stray datagrams closed the connection: {:?}", conn.close_reason());
        let (headers, _send, recv, _) = request(&conn, &connect_headers(&auth, "/echo", &[])).await;
        assert_eq!(status(&headers), "200");
        let id = u64::from(recv.id());
        assert_datagram_echo(&conn, id).await;
        // Nothing stray is echoed on the new session.
        let stray = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                let Ok(d) = conn.read_datagram().await else { return None };
                if d.ends_with(b"stray") {
                    return Some(d);
                }
            }
        })
        .await;
        assert!(stray.is_err(), "a datagram for another session reached this one: {stray:?}");
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9297 §2.1: the Quarter Stream ID is at most 2^60-1; a larger one "MUST be treated as an
/// HTTP/3 connection error of type H3_DATAGRAM_ERROR".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_quarter_id_beyond_the_stream_id_space_is_datagram_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        conn.send_datagram(datagram(1 << 60, b"too far")).unwrap();
        expect_connection_error(&conn, H3_DATAGRAM_ERROR, "quarter stream id 2^60").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// A datagram too short to hold its Quarter Stream ID: H3_DATAGRAM_ERROR (RFC 9297 §2.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_without_a_quarter_id_is_datagram_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        for (what, bytes) in [("empty datagram", Bytes::new()), ("truncated varint", Bytes::from_static(&[0xc0, 0, 0]))]
        {
            let (conn, _control) = client(&server).await;
            conn.send_datagram(bytes).unwrap();
            expect_connection_error(&conn, H3_DATAGRAM_ERROR, what).await;
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Close capsules
// ---------------------------------------------------------------------------------------------

/// draft §6: a close reason over 1024 bytes or not UTF-8 makes the receiver "reset the stream
/// with code H3_MESSAGE_ERROR". Only that session ends; its neighbour on the same connection
/// keeps working. Exactly 1024 bytes is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_close_capsules_end_only_their_session() {
    bounded(40, async {
        let (handler, mut handles) = hub();
        let server = start_server(handler, |_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();

        let (headers, _nsend, nrecv, _) = request(&conn, &connect_headers(&auth, "/neighbour", &[])).await;
        assert_eq!(status(&headers), "200");
        let neighbour_id = u64::from(nrecv.id());
        let neighbour = handles.sessions.recv().await.unwrap();

        let long = vec![b'x'; 1025];
        let cases: [(&str, Vec<u8>); 3] = [
            ("1025-byte reason", long),
            ("invalid UTF-8", b"bad \xff\xfe reason".to_vec()),
            ("lone surrogate", b"\xed\xa0\x80".to_vec()),
        ];
        for (what, reason) in cases {
            let (headers, mut send, mut recv, _) = request(&conn, &connect_headers(&auth, "/victim", &[])).await;
            assert_eq!(status(&headers), "200");
            let session = handles.sessions.recv().await.unwrap();
            send.write_all(&close_capsule(7, &reason)).await.unwrap();
            let got = answer(&mut recv, Duration::from_secs(5)).await;
            assert!(matches!(got, Answer::Reset(H3_MESSAGE_ERROR)), "{what}: the CONNECT stream got {got:?}");
            assert_eq!(stop_code(&send, Duration::from_secs(2)).await, Some(H3_MESSAGE_ERROR), "{what}: stop code");
            let end = tokio::time::timeout(Duration::from_secs(5), session.closed()).await.expect("session ends");
            assert!(matches!(end, SessionEnd::Aborted { connection_lost: false, .. }), "{what}: session end {end:?}");
            // The neighbour is untouched.
            assert!(neighbour.end().is_none(), "{what}: the neighbour session ended: {:?}", neighbour.end());
            assert_eq!(bidi_echo(&conn, neighbour_id, what.as_bytes()).await, what.as_bytes());
            assert_datagram_echo(&conn, neighbour_id).await;
        }

        // The boundary: 1024 bytes of reason is a normal close.
        let (headers, mut send, _recv, _) = request(&conn, &connect_headers(&auth, "/limit", &[])).await;
        assert_eq!(status(&headers), "200");
        let session = handles.sessions.recv().await.unwrap();
        let reason = "é".repeat(512);
        send.write_all(&close_capsule(9, reason.as_bytes())).await.unwrap();
        send.finish().unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), session.closed()).await.unwrap();
        assert_eq!(end, SessionEnd::Closed { code: 9, reason });
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// draft §6: "If any additional stream data is received on the CONNECT stream after receiving a
/// WT_CLOSE_SESSION capsule, the stream MUST be reset with code H3_MESSAGE_ERROR."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_after_a_close_capsule_is_message_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let (headers, mut send, mut recv, _) = request(&conn, &connect_headers(&server.authority(), "/", &[])).await;
        assert_eq!(status(&headers), "200");
        let mut bytes = BytesMut::from(&close_capsule(1, b"bye")[..]);
        bytes.put_slice(&frame(0x00, &[0x78, 0xae, 0x00])); // a DRAIN capsule after the close
        send.write_all(&bytes).await.unwrap();
        let got = answer(&mut recv, Duration::from_secs(5)).await;
        assert!(matches!(got, Answer::Reset(H3_MESSAGE_ERROR)), "data after the close capsule: {got:?}");
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Floods and slow peers
// ---------------------------------------------------------------------------------------------

/// Opens streams until one does not open within `wait`; returns how many opened.
async fn open_until_blocked_bi(
    conn: &quinn::Connection,
    session_id: u64,
    limit: usize,
) -> Vec<(quinn::SendStream, quinn::RecvStream)> {
    let mut open = Vec::new();
    while open.len() < limit {
        match tokio::time::timeout(Duration::from_millis(700), conn.open_bi()).await {
            Ok(Ok((mut send, recv))) => {
                let mut bytes = wt_bidi_header(session_id);
                bytes.put_slice(b"x");
                send.write_all(&bytes).await.unwrap();
                open.push((send, recv));
            }
            Ok(Err(e)) => panic!("open_bi failed: {e}"),
            Err(_) => break,
        }
    }
    open
}

/// More streams than the configured limits: the client is held by MAX_STREAMS (the server never
/// sees the excess), a finished stream frees a slot, and another client is unaffected meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_flood_is_held_by_max_streams() {
    bounded(60, async {
        let server = echo_server(|c| {
            c.max_incoming_bidi_streams = 4;
            c.max_incoming_uni_streams = 4;
        });
        let (conn, _control) = client(&server).await;
        let (headers, _csend, crecv, _) = request(&conn, &connect_headers(&server.authority(), "/echo", &[])).await;
        assert_eq!(status(&headers), "200");
        let id = u64::from(crecv.id());

        let mut open = open_until_blocked_bi(&conn, id, 20).await;
        assert_eq!(open.len(), 4, "exactly maxIncomingBidiStreams session streams open at once");

        let mut unis = Vec::new();
        while unis.len() < 20 {
            match tokio::time::timeout(Duration::from_millis(700), conn.open_uni()).await {
                Ok(Ok(mut send)) => {
                    let mut bytes = wt_uni_header(id);
                    bytes.put_slice(b"u");
                    send.write_all(&bytes).await.unwrap();
                    unis.push(send);
                }
                Ok(Err(e)) => panic!("open_uni failed: {e}"),
                Err(_) => break,
            }
        }
        // The client's control stream takes one of the 4 + 3 (HTTP/3's own) slots.
        assert!((4..=6).contains(&unis.len()), "{} uni streams opened before MAX_STREAMS held the client", unis.len());

        // Another client is served meanwhile.
        assert_serves(&server, None).await;

        // Finishing a stream frees a slot for the next.
        let (mut send, mut recv) = open.remove(0);
        send.finish().unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1024)).await.unwrap().unwrap();
        assert_eq!(echoed, b"x");
        let (mut send, mut recv) = tokio::time::timeout(Duration::from_secs(5), conn.open_bi())
            .await
            .expect("a bidi slot frees once a stream is done")
            .unwrap();
        let mut bytes = wt_bidi_header(id);
        bytes.put_slice(b"next");
        send.write_all(&bytes).await.unwrap();
        send.finish().unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1024)).await.unwrap().unwrap();
        assert_eq!(echoed, b"next");

        let mut uni = unis.remove(0);
        uni.finish().unwrap();
        let mut next = tokio::time::timeout(Duration::from_secs(5), conn.open_uni())
            .await
            .expect("a uni slot frees once a stream is done")
            .unwrap();
        next.write_all(&wt_uni_header(id)).await.unwrap();
        next.finish().unwrap();
        assert!(conn.close_reason().is_none());
        shutdown(server).await;
    })
    .await
}

/// 100,000 datagrams at a session that never reads them: the session's queue stays at its bound,
/// dropping the oldest, and the counters account for every one received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_flood_is_bounded_and_drops_oldest() {
    bounded(120, async {
        const QUEUE: usize = 256;
        let (handler, mut handles) = hub();
        let server = start_server(handler, |c| c.datagram_queue = QUEUE);
        let (conn, _control) = client(&server).await;
        let (headers, _send, recv, _) = request(&conn, &connect_headers(&server.authority(), "/quiet", &[])).await;
        assert_eq!(status(&headers), "200");
        let id = u64::from(recv.id());
        let session = handles.sessions.recv().await.unwrap();
        for seq in 0..100_000u64 {
            let mut d = BytesMut::with_capacity(9);
            varint::encode(id / 4, &mut d);
            d.put_u64(seq);
            conn.send_datagram_wait(d.freeze()).await.unwrap();
        }
        // Wait for the flood to land.
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (_, received, _) = session.datagram_counters();
            if received == last {
                break;
            }
            last = received;
        }
        let (_, received, dropped) = session.datagram_counters();
        assert!(received > 4 * QUEUE as u64, "only {received} datagrams arrived: the flood did not test the bound");
        let queued = session.read_datagrams(usize::MAX).await.expect("the session is open");
        assert_eq!(queued.len(), QUEUE, "the queue holds exactly its bound");
        assert_eq!(dropped, received - QUEUE as u64, "every datagram beyond the bound is counted as dropped");
        let seqs: Vec<u64> = queued.iter().map(|d| u64::from_be_bytes(d[..8].try_into().unwrap())).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "queued datagrams are in order");
        // The k-th datagram received has a sequence number >= k, so keeping the newest QUEUE
        // means every kept one is >= received - QUEUE.
        assert!(
            seqs[0] >= received - QUEUE as u64,
            "the oldest kept is #{} though {received} arrived: the queue did not drop the oldest",
            seqs[0]
        );
        // The flooded session and its connection still work.
        assert_eq!(bidi_echo(&conn, id, b"after the flood").await, b"after the flood");
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// A client that stops reading: the server's writes wait on QUIC flow control instead of
/// buffering, other sessions (same connection and others) are unaffected, and once the client
/// reads again every byte arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_gets_backpressure_not_buffering() {
    bounded(60, async {
        let (handler, handles) = hub();
        let server = start_server(handler, |_| {});
        let (conn, _control) = client(&server).await;
        let (headers, _csend, crecv, _) = request(&conn, &connect_headers(&server.authority(), "/firehose", &[])).await;
        assert_eq!(status(&headers), "200");
        let id = u64::from(crecv.id());
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let mut bytes = wt_bidi_header(id);
        bytes.put_slice(b"go");
        send.write_all(&bytes).await.unwrap();

        // Wait until the server's writes stop making progress.
        let mut last = u64::MAX;
        let mut still = 0;
        while still < 3 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = handles.written.load(Ordering::SeqCst);
            if now == last && now > 0 {
                still += 1;
            } else {
                still = 0;
            }
            last = now;
        }
        let stalled = handles.written.load(Ordering::SeqCst);
        assert!(stalled < FIREHOSE as u64, "the server wrote all {FIREHOSE} bytes to a client that reads nothing");
        assert!(
            stalled <= 4 << 20,
            "{stalled} bytes accepted for a client that reads nothing: more than flow control allows"
        );

        assert_serves(&server, Some(&conn)).await;
        assert_eq!(handles.written.load(Ordering::SeqCst), stalled, "still waiting on the slow reader");

        let data = tokio::time::timeout(Duration::from_secs(30), recv.read_to_end(FIREHOSE + 1))
            .await
            .expect("the rest arrives once the client reads")
            .unwrap();
        assert_eq!(data.len(), FIREHOSE);
        assert!(data.iter().enumerate().all(|(i, &b)| b == firehose_byte(i)), "the data arrived intact");
        shutdown(server).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Handshakes that never finish
// ---------------------------------------------------------------------------------------------

/// Captures the Initial packet a QUIC client sends, by pointing one at a socket of ours.
async fn capture_initial() -> Vec<u8> {
    let fake = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut crypto = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"h3".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap()));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connecting = endpoint.connect_with(config, fake.local_addr().unwrap(), "localhost").unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), fake.recv_from(&mut buf)).await.unwrap().unwrap();
    buf.truncate(n);
    drop(connecting);
    endpoint.close(0u32.into(), b"");
    assert_eq!(buf[0] & 0xf0, 0xc0, "a long-header Initial packet");
    assert!(buf.len() >= 1200, "Initials are padded to 1200 bytes");
    buf
}

/// Whether `socket` receives anything within `wait`.
async fn hears_back(socket: &tokio::net::UdpSocket, wait: Duration) -> bool {
    let mut buf = [0u8; 2048];
    tokio::time::timeout(wait, socket.recv_from(&mut buf)).await.is_ok()
}

/// Garbage datagrams, a truncated Initial (RFC 9000 §14.1: a server MUST discard an Initial in a
/// datagram under 1200 bytes) and real Initials from clients that never go on: the server drops
/// or abandons them and serves everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_handshakes_do_not_disturb_the_server() {
    bounded(60, async {
        let server = echo_server(|c| c.idle_timeout = Duration::from_secs(1));
        let initial = capture_initial().await;

        let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        raw.set_nonblocking(true).unwrap();
        let raw = tokio::net::UdpSocket::from_std(raw).unwrap();

        // Truncated Initial: discarded without an answer.
        raw.send_to(&initial[..300], server.addr).await.unwrap();
        assert!(!hears_back(&raw, Duration::from_millis(700)).await, "the server answered a 300-byte Initial");

        // Garbage of all shapes.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        };
        let mut long_header_junk = vec![0xc3, 0, 0, 0, 1, 8];
        long_header_junk.extend(noise(1300));
        let mut short_header_junk = vec![0x40];
        short_header_junk.extend(noise(60));
        let mut initial_with_garbled_payload = initial.clone();
        for b in &mut initial_with_garbled_payload[40..] {
            *b ^= 0x5a;
        }
        for junk in
            [vec![0u8], noise(1200), noise(40), long_header_junk, short_header_junk, initial_with_garbled_payload]
        {
            raw.send_to(&junk, server.addr).await.unwrap();
        }

        // Real Initials from ten clients that never go on: the server answers each (a handshake
        // starts) and is left waiting.
        let mut half_open = vec![(raw, initial)];
        for _ in 0..9 {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            half_open.push((socket, capture_initial().await));
        }
        for (socket, initial) in &half_open {
            socket.send_to(initial, server.addr).await.unwrap();
        }
        for (i, (socket, _)) in half_open.iter().enumerate() {
            assert!(hears_back(socket, Duration::from_secs(3)).await, "the server did not answer real Initial #{i}");
        }

        assert_serves(&server, None).await;
        // After the idle timeout has reaped the half-open handshakes, still serving.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Control and other critical streams
// ---------------------------------------------------------------------------------------------

async fn open_uni_with(conn: &quinn::Connection, bytes: &[u8]) -> quinn::SendStream {
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send
}

fn settings_payload(settings: &[(u64, u64)]) -> BytesMut {
    let mut payload = BytesMut::new();
    for &(id, value) in settings {
        varint::encode(id, &mut payload);
        varint::encode(value, &mut payload);
    }
    payload
}

fn control_stream_bytes(frames: &[Bytes]) -> BytesMut {
    let mut bytes = BytesMut::from(&[0x00u8][..]);
    for f in frames {
        bytes.put_slice(f);
    }
    bytes
}

/// RFC 9114 §6.2.1: "Receipt of a second stream claiming to be a control stream MUST be treated
/// as a connection error of type H3_STREAM_CREATION_ERROR."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_control_stream_is_stream_creation_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let _second = send_settings(&conn, SETTINGS_WT).await;
        expect_connection_error(&conn, H3_STREAM_CREATION_ERROR, "a second control stream").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9114 §6.2.2: "...if a server receives a client-initiated push stream, this MUST be treated
/// as a connection error of type H3_STREAM_CREATION_ERROR."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_stream_from_the_client_is_stream_creation_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let (conn, _control) = client(&server).await;
        let _push = open_uni_with(&conn, &[0x01, 0x00]).await;
        expect_connection_error(&conn, H3_STREAM_CREATION_ERROR, "a client push stream").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9114 §6.2.1: "If either control stream is closed at any point, this MUST be treated as a
/// connection error of type H3_CLOSED_CRITICAL_STREAM."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_control_stream_is_closed_critical_stream() {
    bounded(40, async {
        let server = echo_server(|_| {});
        let (conn, mut control) = client(&server).await;
        control.finish().unwrap();
        expect_connection_error(&conn, H3_CLOSED_CRITICAL_STREAM, "control stream finished").await;

        // Reset only once the server has surely read the stream type (a session opened, so the
        // SETTINGS arrived): a reset that overtakes the type is legal to ignore (RFC 9114 §6.2).
        let (conn, mut control) = client(&server).await;
        let (headers, ..) = request(&conn, &connect_headers(&server.authority(), "/echo", &[])).await;
        assert_eq!(status(&headers), "200");
        control.reset(0x100u32.into()).unwrap();
        expect_connection_error(&conn, H3_CLOSED_CRITICAL_STREAM, "control stream reset").await;

        let conn = server.connect().await;
        let mut control = open_uni_with(&conn, &[0x00]).await;
        control.finish().unwrap();
        expect_connection_error(&conn, H3_CLOSED_CRITICAL_STREAM, "control stream finished before SETTINGS").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// The same, with the stream ending inside a frame: still a closed critical stream (or a
/// truncated frame, H3_FRAME_ERROR); never silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_stream_closed_mid_frame_is_an_error() {
    bounded(40, async {
        let server = echo_server(|_| {});
        let settings = frame(0x04, &settings_payload(SETTINGS_WT));
        let cases: [(&str, Vec<u8>); 3] = [
            ("inside the SETTINGS payload", control_stream_bytes(&[settings.slice(..settings.len() - 3)]).to_vec()),
            ("between a frame type and its length", vec![0x00, 0x04]),
            (
                "inside a later unknown frame",
                control_stream_bytes(&[settings.clone(), Bytes::from_static(&[0x21, 0x10, 1, 2, 3])]).to_vec(),
            ),
        ];
        for (what, bytes) in cases {
            let conn = server.connect().await;
            let mut control = open_uni_with(&conn, &bytes).await;
            control.finish().unwrap();
            let code = connection_error(&conn, what).await;
            assert!(
                code == H3_CLOSED_CRITICAL_STREAM || code == H3_FRAME_ERROR,
                "control stream closed {what}: connection closed with {code:#x}"
            );
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9114 §6.2.1: a first control frame other than SETTINGS "MUST be treated as a connection
/// error of type H3_MISSING_SETTINGS".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_control_frame_not_settings_is_missing_settings() {
    bounded(40, async {
        let server = echo_server(|_| {});
        for (what, first) in [
            ("GOAWAY first", frame(0x07, &[0x00])),
            ("MAX_PUSH_ID first", frame(0x0d, &[0x00])),
            ("a reserved frame type first", frame(0x21, b"grease")),
        ] {
            let conn = server.connect().await;
            let _control = open_uni_with(&conn, &control_stream_bytes(&[first])).await;
            expect_connection_error(&conn, H3_MISSING_SETTINGS, what).await;
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9114 §7.2.4: a duplicated setting identifier and an HTTP/2-only one are H3_SETTINGS_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_settings_error() {
    bounded(40, async {
        let server = echo_server(|_| {});
        for (what, settings) in [
            ("duplicate H3_DATAGRAM", vec![(0x08, 1), (0x33, 1), (0x33, 1)]),
            ("duplicate unknown id", vec![(0x1f * 3 + 0x21, 1), (0x1f * 3 + 0x21, 2)]),
            ("HTTP/2 SETTINGS_ENABLE_PUSH (0x02)", vec![(0x33, 1), (0x02, 0)]),
            ("HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (0x03)", vec![(0x03, 100)]),
        ] {
            let conn = server.connect().await;
            let _control = send_settings(&conn, &settings).await;
            expect_connection_error(&conn, H3_SETTINGS_ERROR, what).await;
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9114 §7.1: "a frame payload that terminates before the end of the identified fields MUST
/// be treated as a connection error of type H3_FRAME_ERROR" -- a SETTINGS frame whose last
/// identifier has no value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_settings_payload_is_frame_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let conn = server.connect().await;
        let _control = open_uni_with(&conn, &control_stream_bytes(&[frame(0x04, &[0x08, 0x01, 0x33])])).await;
        expect_connection_error(&conn, H3_FRAME_ERROR, "a setting without its value").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9114 §7.2.4: "If an endpoint receives a second SETTINGS frame on the control stream, the
/// endpoint MUST respond with a connection error of type H3_FRAME_UNEXPECTED."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_settings_frame_is_frame_unexpected() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let conn = server.connect().await;
        let settings = frame(0x04, &settings_payload(SETTINGS_WT));
        let _control = open_uni_with(&conn, &control_stream_bytes(&[settings.clone(), settings])).await;
        expect_connection_error(&conn, H3_FRAME_UNEXPECTED, "a second SETTINGS frame").await;
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9204 §4.2: "Receipt of a second instance of either stream type MUST be treated as a
/// connection error of type H3_STREAM_CREATION_ERROR."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_qpack_stream_is_stream_creation_error() {
    bounded(30, async {
        let server = echo_server(|_| {});
        for (what, kind) in [("a second QPACK encoder stream", 0x02u8), ("a second QPACK decoder stream", 0x03)] {
            let (conn, _control) = client(&server).await;
            let _first = open_uni_with(&conn, &[kind]).await;
            let _second = open_uni_with(&conn, &[kind]).await;
            expect_connection_error(&conn, H3_STREAM_CREATION_ERROR, what).await;
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// RFC 9204 §4.2: "Closure of either unidirectional stream type MUST be treated as a connection
/// error of type H3_CLOSED_CRITICAL_STREAM."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_qpack_stream_is_closed_critical_stream() {
    bounded(30, async {
        let server = echo_server(|_| {});
        for (what, kind) in [("QPACK encoder stream finished", 0x02u8), ("QPACK decoder stream finished", 0x03)] {
            let (conn, _control) = client(&server).await;
            let mut stream = open_uni_with(&conn, &[kind]).await;
            stream.finish().unwrap();
            expect_connection_error(&conn, H3_CLOSED_CRITICAL_STREAM, what).await;
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Draft-16 answers, drain, and what a session's end does to its streams
// ---------------------------------------------------------------------------------------------

const WT_CLOSE_SESSION: u64 = 0x2843;
const WT_DRAIN_SESSION: u64 = 0x78ae;
/// What a draft-16 client (webtransport-go >= 0.11) announces.
/// A draft-16 client that uses WebTransport flow control (as webtransport-go 0.12 does), with
/// initial limits that let the server answer.
const SETTINGS_DRAFT16: &[(u64, u64)] =
    &[(0x08, 1), (0x33, 1), (0x2c7c_f000, 1), (0x2b61, 1 << 20), (0x2b64, 16), (0x2b65, 16)];

fn connect_with_token(token: &str, authority: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", "CONNECT"),
        (":protocol", token),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
    ];
    fields.extend_from_slice(extra);
    encode_headers(&fields)
}

/// The next capsule on a CONNECT stream (one per DATA frame, as the server writes them): its
/// type and payload; `None` when the stream ends or fails first.
async fn read_capsule(recv: &mut quinn::RecvStream, buf: &mut BytesMut) -> Option<(u64, Bytes)> {
    let (kind, payload) = tokio::time::timeout(Duration::from_secs(5), read_frame(recv, buf)).await.ok()??;
    assert_eq!(kind, 0x00, "a capsule comes in a DATA frame");
    let mut cursor = &payload[..];
    let capsule_type = varint::decode(&mut cursor).expect("capsule type");
    let len = varint::decode(&mut cursor).expect("capsule length") as usize;
    assert_eq!(cursor.len(), len, "one whole capsule per DATA frame");
    Some((capsule_type, Bytes::copy_from_slice(cursor)))
}

/// Whether the stream ends (FIN) with nothing more on it, within `wait`.
async fn ends_clean(recv: &mut quinn::RecvStream, buf: &BytesMut, wait: Duration) -> Result<(), String> {
    if !buf.is_empty() {
        return Err(format!("{} more bytes before the end", buf.len()));
    }
    match tokio::time::timeout(wait, recv.read_chunk(1 << 16, true)).await {
        Ok(Ok(None)) => Ok(()),
        Ok(Ok(Some(chunk))) => Err(format!("{} more bytes: {:x?}", chunk.bytes.len(), &chunk.bytes[..])),
        Ok(Err(e)) => Err(format!("read error {e}")),
        Err(_) => Err("no FIN".into()),
    }
}

/// `Session::drain` sends DRAIN_WEBTRANSPORT_SESSION (draft §4.6) once however often it is
/// called, resolves the server's own `draining`, and leaves the session working (the draft: an
/// endpoint "MAY continue using the session"); the close that follows is the next and last
/// capsule, and a drain after the end does nothing. A server close after a drain sends no second
/// drain either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_sends_one_capsule_and_the_session_keeps_working() {
    bounded(40, async {
        let (handler, mut handles) = hub();
        let server = start_server(handler, |_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();

        let (headers, mut send, mut recv, mut buf) = request(&conn, &connect_headers(&auth, "/echo", &[])).await;
        assert_eq!(status(&headers), "200");
        let id = u64::from(recv.id());
        let session = handles.sessions.recv().await.unwrap();
        session.drain();
        session.drain();
        tokio::time::timeout(Duration::from_secs(2), session.draining()).await.expect("draining resolves here too");
        assert_eq!(read_capsule(&mut recv, &mut buf).await, Some((WT_DRAIN_SESSION, Bytes::new())));
        assert_eq!(bidi_echo(&conn, id, b"after the drain").await, b"after the drain");
        assert_datagram_echo(&conn, id).await;
        session.drain();
        session.close(7, "drained");
        let (kind, payload) = read_capsule(&mut recv, &mut buf).await.expect("the close capsule");
        assert_eq!(kind, WT_CLOSE_SESSION, "the capsule after the drain is the close, not a second drain");
        assert_eq!(&payload[..], b"\0\0\0\x07drained");
        ends_clean(&mut recv, &buf, Duration::from_secs(5)).await.expect("FIN after the close capsule");
        send.finish().unwrap();
        tokio::time::timeout(Duration::from_secs(5), session.closed()).await.unwrap();
        session.drain();

        // A drained session and then a server close: the close is the only capsule that follows.
        let (headers, _send, mut recv, mut buf) = request(&conn, &connect_headers(&auth, "/echo", &[])).await;
        assert_eq!(status(&headers), "200");
        let session = handles.sessions.recv().await.unwrap();
        session.drain();
        assert_eq!(read_capsule(&mut recv, &mut buf).await, Some((WT_DRAIN_SESSION, Bytes::new())));
        let closing = tokio::spawn(async move { server.server.close(9, "bye", Duration::from_millis(200)).await });
        let (kind, payload) = read_capsule(&mut recv, &mut buf).await.expect("the server's close capsule");
        assert_eq!(kind, WT_CLOSE_SESSION, "a server close after a drain sends no second drain");
        assert_eq!(&payload[..], b"\0\0\0\x09bye");
        closing.await.unwrap();
    })
    .await
}

/// `:protocol` reaches the application as sent, for either draft's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_protocol_is_the_token_the_client_sent() {
    bounded(30, async {
        let (handler, mut handles) = hub();
        let server = start_server(handler, |_| {});
        let conn = server.connect().await;
        let _control = send_settings(&conn, SETTINGS_DRAFT16).await;
        for token in ["webtransport", "webtransport-h3"] {
            let block = connect_with_token(token, &server.authority(), "/echo", &[]);
            let (headers, mut send, _recv, _) = request(&conn, &block).await;
            assert_eq!(status(&headers), "200", "{token}");
            let session = handles.sessions.recv().await.unwrap();
            assert_eq!(session.request().protocol, token);
            assert_eq!(session.request().method, "CONNECT");
            send.finish().unwrap();
        }
        assert_serves(&server, None).await;
        shutdown(server).await;
    })
    .await
}

/// draft-16 §3.2: a resource that does not take WebTransport "SHOULD reply with status code
/// 405" to a `webtransport-h3` request; the application says so with a 404, which a draft-02
/// client (`webtransport`) still gets, as its draft says. A 405 carries `allow` (RFC 9110
/// §15.5.6), empty: the server serves no method there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_405_for_webtransport_h3() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let conn = server.connect().await;
        let _control = send_settings(&conn, SETTINGS_DRAFT16).await;
        let auth = server.authority();
        let (headers, ..) = request(&conn, &connect_with_token("webtransport-h3", &auth, "/missing", &[])).await;
        assert_eq!(status(&headers), "405");
        assert!(headers.iter().any(|(n, v)| n == "allow" && v.is_empty()), "405 without allow: {headers:?}");
        let (headers, ..) = request(&conn, &connect_with_token("webtransport", &auth, "/missing", &[])).await;
        assert_eq!(status(&headers), "404");
        assert!(!headers.iter().any(|(n, _)| n == "allow"), "a 404 got allow: {headers:?}");
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// draft-16 §3.2: "If the verification fails, the WebTransport server SHOULD reply with status
/// code 403", for both tokens; no session is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_origin_check_is_403() {
    bounded(30, async {
        let server = echo_server(|_| {});
        let conn = server.connect().await;
        let _control = send_settings(&conn, SETTINGS_DRAFT16).await;
        for token in ["webtransport", "webtransport-h3"] {
            let block = connect_with_token(token, &server.authority(), "/echo", &[("origin", "https://evil.example")]);
            let (headers, ..) = request(&conn, &block).await;
            assert_eq!(status(&headers), "403", "{token}");
        }
        assert_eq!(server.server.session_count(), 0);
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}

/// A bidirectional and a unidirectional stream of the session, opened and written but not
/// finished; when `echoed`, waits until the application has the bidirectional one (a byte of
/// echo comes back).
async fn open_session_streams(
    conn: &quinn::Connection,
    id: u64,
    echoed: bool,
) -> (quinn::SendStream, quinn::RecvStream, quinn::SendStream) {
    let (mut bi_send, mut bi_recv) = conn.open_bi().await.unwrap();
    let mut bytes = wt_bidi_header(id);
    bytes.put_slice(b"x");
    bi_send.write_all(&bytes).await.unwrap();
    if echoed {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), bi_recv.read_exact(&mut byte)).await.unwrap().unwrap();
    }
    let mut uni = conn.open_uni().await.unwrap();
    let mut bytes = wt_uni_header(id);
    bytes.put_slice(b"y");
    uni.write_all(&bytes).await.unwrap();
    // Routed to the session (its queue, or the application) before the end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (bi_send, bi_recv, uni)
}

async fn assert_gone(
    what: &str,
    bi_send: &quinn::SendStream,
    bi_recv: &mut quinn::RecvStream,
    uni: &quinn::SendStream,
) {
    let got = answer(bi_recv, Duration::from_secs(5)).await;
    assert!(matches!(got, Answer::Reset(WT_SESSION_GONE)), "{what}: the bidi stream's read got {got:?}");
    let stop = stop_code(bi_send, Duration::from_secs(5)).await;
    assert_eq!(stop, Some(WT_SESSION_GONE), "{what}: the bidi stream's write got STOP_SENDING {stop:x?}");
    let stop = stop_code(uni, Duration::from_secs(5)).await;
    assert_eq!(stop, Some(WT_SESSION_GONE), "{what}: the uni stream got STOP_SENDING {stop:x?}");
}

/// draft §6: once a session is terminated the endpoint "MUST reset the send side and abort
/// reading on the receive side of all ... streams associated with the session ... using the
/// WT_SESSION_GONE error code": streams the application is using, and streams still queued for
/// an application that never accepted them. On a local close the server also stops the CONNECT
/// stream's receive side with WT_SESSION_GONE ("MAY", done so the client need not send more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_end_resets_and_stops_its_streams_with_session_gone() {
    bounded(60, async {
        let (handler, mut handles) = hub();
        let server = start_server(handler, |_| {});
        let (conn, _control) = client(&server).await;
        let auth = server.authority();

        for (path, echoed) in [("/idle", false), ("/echo", true)] {
            // The client closes: capsule and FIN.
            let (headers, mut send, mut recv, _) = request(&conn, &connect_headers(&auth, path, &[])).await;
            assert_eq!(status(&headers), "200");
            let id = u64::from(recv.id());
            let session = handles.sessions.recv().await.unwrap();
            let (bi_send, mut bi_recv, uni) = open_session_streams(&conn, id, echoed).await;
            send.write_all(&close_capsule(1, b"done")).await.unwrap();
            send.finish().unwrap();
            let what = format!("{path}, client close");
            assert_gone(&what, &bi_send, &mut bi_recv, &uni).await;
            assert!(matches!(answer(&mut recv, Duration::from_secs(5)).await, Answer::Fin), "{what}: CONNECT FIN");
            tokio::time::timeout(Duration::from_secs(5), session.closed()).await.unwrap();

            // The server closes.
            let (headers, send, mut recv, mut buf) = request(&conn, &connect_headers(&auth, path, &[])).await;
            assert_eq!(status(&headers), "200");
            let id = u64::from(recv.id());
            let session = handles.sessions.recv().await.unwrap();
            let (bi_send, mut bi_recv, uni) = open_session_streams(&conn, id, echoed).await;
            session.close(2, "bye");
            let what = format!("{path}, server close");
            assert_eq!(read_capsule(&mut recv, &mut buf).await.map(|c| c.0), Some(WT_CLOSE_SESSION), "{what}");
            ends_clean(&mut recv, &buf, Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_gone(&what, &bi_send, &mut bi_recv, &uni).await;
            let stop = stop_code(&send, Duration::from_secs(5)).await;
            assert_eq!(stop, Some(WT_SESSION_GONE), "{what}: the CONNECT stream got STOP_SENDING {stop:x?}");
        }
        assert_serves(&server, Some(&conn)).await;
        shutdown(server).await;
    })
    .await
}
