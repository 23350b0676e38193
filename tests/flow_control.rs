//! WebTransport flow control on the wire (draft-ietf-webtrans-http3-16 §5, and draft-14's rule
//! that SETTINGS_WT_MAX_SESSIONS > 1 declares it, which Safari 26.4+ follows), through the raw
//! HTTP/3 client of `support`: the client here keeps its own books of the server's limits, so a
//! server that forgets a capsule leaves it blocked and the test fails on its time bound.
//!
//! Codes and capsule types are written out from the draft rather than taken from the server.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::*;
use tokio::sync::Notify;
use webtransport_napi::core::h3::proto::PeerSettings;
use webtransport_napi::core::h3::varint;
use webtransport_napi::core::webtransport::wire::{take_capsule, Capsule};
use webtransport_napi::core::FlowLimits;

const WT_FLOW_CONTROL_ERROR: u64 = 0x045d_4487;
const H3_REQUEST_REJECTED: u64 = 0x10b;
const WT_MAX_DATA: u64 = 0x190b_4d3d;
const WT_MAX_STREAM_DATA: u64 = 0x190b_4d3e;
const WT_MAX_STREAMS_BIDI: u64 = 0x190b_4d3f;
const WT_MAX_STREAMS_UNI: u64 = 0x190b_4d40;
const WT_DATA_BLOCKED: u64 = 0x190b_4d41;
const WT_STREAMS_BLOCKED_UNI: u64 = 0x190b_4d44;

const SETTINGS_WT_MAX_SESSIONS: u64 = 0x14e9_cd29;
const SETTINGS_WT_INITIAL_MAX_DATA: u64 = 0x2b61;
const SETTINGS_WT_INITIAL_MAX_STREAMS_UNI: u64 = 0x2b64;
const SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI: u64 = 0x2b65;
const SETTINGS_WT_ENABLED: u64 = 0x2c7c_f000;

/// What Safari 26.4+ sends as reported (quic-go/webtransport-go #261 and #355, hyperium/h3
/// #347): H3 datagrams and SETTINGS_WT_MAX_SESSIONS above 1, which under draft-14 declares flow
/// control, so every limit the server does not give in SETTINGS is 0. The client's own initial
/// limits for the server are the test's choice (small, so the server has to wait for credit).
fn safari_settings(initial_data: u64, initial_uni: u64) -> Vec<(u64, u64)> {
    vec![
        (0x33, 1),
        (SETTINGS_WT_MAX_SESSIONS, 100),
        (SETTINGS_WT_INITIAL_MAX_DATA, initial_data),
        (SETTINGS_WT_INITIAL_MAX_STREAMS_UNI, initial_uni),
        (SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI, 0),
    ]
}

async fn bounded<F: std::future::Future>(secs: u64, test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), test).await.expect("the test exceeded its time bound (a hang)")
}

fn echo_server(flow: FlowLimits) -> TestServer {
    start_server(Arc::new(Echo { headers: Vec::new() }), |config| config.flow_control = flow)
}

/// Reads the server's control stream up to its SETTINGS.
async fn server_settings(conn: &quinn::Connection) -> PeerSettings {
    let mut recv = conn.accept_uni().await.expect("the server's control stream");
    let mut buf = BytesMut::new();
    while buf.is_empty() {
        let chunk = recv.read_chunk(4096, true).await.unwrap().expect("control stream data");
        buf.extend_from_slice(&chunk.bytes);
    }
    assert_eq!(varint::decode(&mut buf), Some(0x00), "a control stream");
    let (kind, payload) = read_frame(&mut recv, &mut buf).await.expect("a SETTINGS frame");
    assert_eq!(kind, 0x04);
    PeerSettings::parse(&payload).unwrap()
}

fn capsule_frame(kind: u64, value: u64) -> Bytes {
    let mut capsule = BytesMut::new();
    varint::encode(kind, &mut capsule);
    varint::encode(varint::size(value) as u64, &mut capsule);
    varint::encode(value, &mut capsule);
    frame(0x00, &capsule)
}

fn wt_header(signal: u64, session_id: u64) -> Bytes {
    let mut header = BytesMut::new();
    varint::encode(signal, &mut header);
    varint::encode(session_id, &mut header);
    header.freeze()
}

/// The client's books: the server's limits on it, and the capsules the server sent.
#[derive(Default)]
struct Books {
    max_data: u64,
    max_streams_bidi: u64,
    capsules: Vec<(u64, u64)>,
    /// Set when the CONNECT stream ended or was reset, with the reset code if any.
    ended: Option<Option<u64>>,
}

struct Client {
    books: Mutex<Books>,
    changed: Notify,
}

impl Client {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap()
    }

    /// Waits until `ready` holds of the books.
    async fn wait_for(&self, mut ready: impl FnMut(&Books) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if ready(&self.books()) {
                return;
            }
            changed.await;
        }
    }

    fn count(&self, kind: u64) -> usize {
        self.books().capsules.iter().filter(|(k, _)| *k == kind).count()
    }
}

/// Reads the server's capsules off the CONNECT stream into the books until it ends.
fn read_capsules(client: Arc<Client>, mut recv: quinn::RecvStream, mut buf: BytesMut) {
    tokio::spawn(async move {
        let mut capsules = BytesMut::new();
        let ended = loop {
            // Whole DATA frames' payloads are capsule bytes; other frames are skipped.
            let mut cursor = &buf[..];
            if let (Some(kind), Some(len)) = (varint::decode(&mut cursor), varint::decode(&mut cursor)) {
                let header = buf.len() - cursor.len();
                if cursor.len() as u64 >= len {
                    let _ = buf.split_to(header);
                    let payload = buf.split_to(len as usize);
                    if kind == 0x00 {
                        capsules.extend_from_slice(&payload);
                    }
                    while let Some(capsule) = take_capsule(&mut capsules, 1 << 16).unwrap() {
                        let Capsule::Flow { kind, value } = capsule else { continue };
                        let mut books = client.books();
                        match kind {
                            WT_MAX_DATA => books.max_data = value,
                            WT_MAX_STREAMS_BIDI => books.max_streams_bidi = value,
                            _ => {}
                        }
                        books.capsules.push((kind, value));
                        drop(books);
                        client.changed.notify_waiters();
                    }
                    continue;
                }
            }
            match recv.read_chunk(65536, true).await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                Ok(None) => break None,
                Err(quinn::ReadError::Reset(code)) => break Some(code.into_inner()),
                Err(e) => panic!("the CONNECT stream failed: {e}"),
            }
        };
        client.books().ended = Some(ended);
        client.changed.notify_waiters();
    });
}

/// Opens a session with flow-control SETTINGS and starts keeping books of the server's limits.
async fn open_session(
    server: &TestServer,
    settings: &[(u64, u64)],
) -> (quinn::Connection, quinn::SendStream, quinn::SendStream, u64, Arc<Client>) {
    let conn = server.connect().await;
    let control = send_settings(&conn, settings).await;
    let theirs = server_settings(&conn).await;
    let client = Arc::new(Client {
        books: Mutex::new(Books {
            max_data: theirs.get(SETTINGS_WT_INITIAL_MAX_DATA).expect("the server sends WT_INITIAL_MAX_DATA"),
            max_streams_bidi: theirs
                .get(SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI)
                .expect("and WT_INITIAL_MAX_STREAMS_BIDI"),
            ..Books::default()
        }),
        changed: Notify::new(),
    });
    assert!(theirs.get(SETTINGS_WT_INITIAL_MAX_STREAMS_UNI).is_some_and(|n| n > 0));
    assert!(theirs.get(SETTINGS_WT_MAX_SESSIONS).is_some_and(|n| n > 1));
    let (headers, connect, recv, buf) = request(&conn, &connect_headers(&server.authority(), "/echo", &[])).await;
    assert_eq!(status(&headers), "200");
    let id = u64::from(recv.id());
    read_capsules(client.clone(), recv, buf);
    (conn, control, connect, id, client)
}

/// Safari's SETTINGS, 200 bidirectional streams and 20 MiB in one session, against the default
/// limits (100 streams, 16 MiB): only the server's WT_MAX_STREAMS and WT_MAX_DATA capsules let
/// the client finish. The server's echo in turn is held by the client's small WT_MAX_DATA and
/// waits for the client's capsules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safari_settings_200_streams_and_20_mib_with_credit_by_capsules() {
    const STREAMS: u64 = 200;
    const PER_STREAM: usize = 20 * 1024 * 1024 / STREAMS as usize + 1;
    const CLIENT_WINDOW: u64 = 256 * 1024;
    let server = echo_server(FlowLimits::default());
    bounded(120, async {
        let (conn, _control, mut connect, id, client) = open_session(&server, &safari_settings(CLIENT_WINDOW, 0)).await;
        assert_eq!(client.books().max_streams_bidi, 100);
        assert_eq!(client.books().max_data, 16 * 1024 * 1024);

        // The client's side of flow control for the server's echo: credit as it reads.
        let read_total = Arc::new(AtomicU64::new(0));
        let (grant_tx, mut grant_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let granter = {
            let read_total = read_total.clone();
            tokio::spawn(async move {
                let mut limit = CLIENT_WINDOW;
                let mut sent = 0;
                while grant_rx.recv().await.is_some() {
                    let read = read_total.load(Ordering::SeqCst);
                    if limit - read.min(limit) <= CLIENT_WINDOW / 2 {
                        limit = read + CLIENT_WINDOW;
                        connect.write_all(&capsule_frame(WT_MAX_DATA, limit)).await.unwrap();
                        sent += 1;
                    }
                }
                (connect, sent)
            })
        };

        let mut sent_data = 0u64;
        let mut echoes = Vec::new();
        let payload = Bytes::from((0..PER_STREAM).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        for n in 0..STREAMS {
            client.wait_for(|b| b.max_streams_bidi > n).await;
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(&wt_header(0x41, id)).await.unwrap();
            let mut offset = 0;
            while offset < PER_STREAM {
                client.wait_for(|b| b.max_data > sent_data).await;
                let room = (client.books().max_data - sent_data) as usize;
                let take = room.min(PER_STREAM - offset).min(64 * 1024);
                send.write_all(&payload[offset..offset + take]).await.unwrap();
                offset += take;
                sent_data += take as u64;
            }
            send.finish().unwrap();
            let read_total = read_total.clone();
            let grant_tx = grant_tx.clone();
            let expected = payload.clone();
            echoes.push(tokio::spawn(async move {
                let mut got = Vec::with_capacity(PER_STREAM);
                while let Some(chunk) = recv.read_chunk(64 * 1024, true).await.unwrap() {
                    got.extend_from_slice(&chunk.bytes);
                    read_total.fetch_add(chunk.bytes.len() as u64, Ordering::SeqCst);
                    let _ = grant_tx.send(0);
                }
                assert!(got == expected[..], "an echo came back different");
            }));
        }
        for echo in echoes {
            echo.await.unwrap();
        }
        drop(grant_tx);
        let (_connect, grants) = granter.await.unwrap();
        assert_eq!(sent_data, STREAMS * PER_STREAM as u64);
        assert!(sent_data > 20 * 1024 * 1024);
        assert!(client.count(WT_MAX_STREAMS_BIDI) >= 1, "stream credit came by capsule");
        assert!(client.count(WT_MAX_DATA) >= 1, "data credit came by capsule");
        assert!(grants >= 1);
        assert!(client.count(WT_DATA_BLOCKED) >= 1, "the server's echo waited on the client's credit and said so");
        assert_eq!(client.books().ended, None, "the session is still open");
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}

/// A client stream beyond the limit ends the session: its CONNECT stream is reset with
/// WT_FLOW_CONTROL_ERROR.
#[tokio::test]
async fn streams_beyond_the_limit_are_a_flow_control_error() {
    let server = echo_server(FlowLimits { max_data: 1 << 20, max_streams_bidi: 2, max_streams_uni: 2 });
    bounded(20, async {
        let (conn, _control, _connect, id, client) = open_session(&server, &safari_settings(1 << 20, 0)).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            let (mut send, recv) = conn.open_bi().await.unwrap();
            send.write_all(&wt_header(0x41, id)).await.unwrap();
            held.push((send, recv));
        }
        client.wait_for(|b| b.ended.is_some()).await;
        assert_eq!(client.books().ended, Some(Some(WT_FLOW_CONTROL_ERROR)));
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}

/// Stream data beyond WT_MAX_DATA ends the session with WT_FLOW_CONTROL_ERROR.
#[tokio::test]
async fn data_beyond_the_limit_is_a_flow_control_error() {
    let server = echo_server(FlowLimits { max_data: 1000, max_streams_bidi: 10, max_streams_uni: 10 });
    bounded(20, async {
        let (conn, _control, _connect, id, client) = open_session(&server, &safari_settings(1 << 20, 0)).await;
        assert_eq!(client.books().max_data, 1000);
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&wt_header(0x41, id)).await.unwrap();
        send.write_all(&[7u8; 1500]).await.unwrap();
        client.wait_for(|b| b.ended.is_some()).await;
        assert_eq!(client.books().ended, Some(Some(WT_FLOW_CONTROL_ERROR)));
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}

/// A limit that does not increase is a violation too.
#[tokio::test]
async fn a_max_data_that_does_not_increase_is_a_flow_control_error() {
    let server = echo_server(FlowLimits::default());
    bounded(20, async {
        let (_conn, _control, mut connect, _id, client) = open_session(&server, &safari_settings(5000, 0)).await;
        connect.write_all(&capsule_frame(WT_MAX_DATA, 4000)).await.unwrap();
        client.wait_for(|b| b.ended.is_some()).await;
        assert_eq!(client.books().ended, Some(Some(WT_FLOW_CONTROL_ERROR)));
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}

/// The server's own streams and bytes wait for the client's limits: the echo's answer to a
/// unidirectional stream needs one stream (the client gave 0) and 11 bytes (it gave 3). The
/// server says WT_STREAMS_BLOCKED and WT_DATA_BLOCKED, and goes on when the capsules come.
#[tokio::test]
async fn our_streams_and_bytes_wait_for_the_clients_credit() {
    let server = echo_server(FlowLimits::default());
    bounded(20, async {
        let (conn, _control, mut connect, id, client) = open_session(&server, &safari_settings(3, 0)).await;
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(&wt_header(0x54, id)).await.unwrap();
        send.write_all(b"hello world").await.unwrap();
        send.finish().unwrap();

        client.wait_for(|b| b.capsules.contains(&(WT_STREAMS_BLOCKED_UNI, 0))).await;
        let early = tokio::time::timeout(Duration::from_millis(300), conn.accept_uni()).await;
        assert!(early.is_err(), "no stream may come before the client's WT_MAX_STREAMS");
        connect.write_all(&capsule_frame(WT_MAX_STREAMS_UNI, 1)).await.unwrap();

        let mut recv = conn.accept_uni().await.unwrap();
        client.wait_for(|b| b.capsules.contains(&(WT_DATA_BLOCKED, 3))).await;
        let mut got = Vec::new();
        let header = wt_header(0x54, id);
        while got.len() < header.len() + 3 {
            let chunk = recv.read_chunk(64, true).await.unwrap().unwrap();
            got.extend_from_slice(&chunk.bytes);
        }
        assert_eq!(&got[header.len()..], b"hel", "3 bytes of credit, 3 bytes (the header is not counted)");
        connect.write_all(&capsule_frame(WT_MAX_DATA, 11)).await.unwrap();
        let rest = recv.read_to_end(1024).await.unwrap();
        got.extend_from_slice(&rest);
        assert_eq!(&got[header.len()..], b"hello world");
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}

/// A draft-15/16 client that does not declare flow control: its flow-control capsules are
/// ignored (even ones that would be violations), and a second session on the connection is
/// refused with H3_REQUEST_REJECTED. A draft-02 client (what browsers send) may still pool.
#[tokio::test]
async fn without_flow_control_capsules_are_ignored_and_one_session_per_connection() {
    let server = echo_server(FlowLimits::default());
    bounded(20, async {
        let conn = server.connect().await;
        let _control = send_settings(&conn, &[(0x33, 1), (SETTINGS_WT_ENABLED, 1)]).await;
        let headers = connect_headers(&server.authority(), "/echo", &[]);
        let (answer, mut connect, recv, _) = request(&conn, &headers).await;
        assert_eq!(status(&answer), "200");
        let id = u64::from(recv.id());
        connect.write_all(&capsule_frame(WT_MAX_DATA, 0)).await.unwrap();
        connect.write_all(&capsule_frame(WT_MAX_STREAM_DATA, 1)).await.unwrap();
        assert_eq!(bidi_echo(&conn, id, b"still open").await, b"still open");

        let (mut send, mut second) = conn.open_bi().await.unwrap();
        send.write_all(&frame(0x01, &headers)).await.unwrap();
        match second.read_chunk(1024, true).await {
            Err(quinn::ReadError::Reset(code)) => assert_eq!(code.into_inner(), H3_REQUEST_REJECTED),
            other => panic!("a second session without flow control: {other:?}"),
        }
        assert_eq!(bidi_echo(&conn, id, b"first still serves").await, b"first still serves");

        let legacy = server.connect().await;
        let _legacy_control = send_settings(&legacy, SETTINGS_WT).await;
        for _ in 0..2 {
            let (answer, _send, _recv, _) = request(&legacy, &headers).await;
            assert_eq!(status(&answer), "200", "draft-02 clients pool sessions as before");
        }
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}
