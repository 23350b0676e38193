//! Transport-level behaviour through a raw HTTP/3 client: each test pins one of the defects of
//! h3-webtransport 0.1.2 / h3-datagram 0.0.2 that this server must not have, or a protocol rule.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::*;
use webtransport_napi::core::h3::varint;
use webtransport_napi::core::{IncomingRequest, RequestHandler, SessionEnd};

fn echo() -> Arc<Echo> {
    Arc::new(Echo { headers: Vec::new() })
}

/// h3-webtransport derived the session id as stream id / 4 and h3-datagram tagged every server
/// datagram with session 0: a CONNECT on stream 4 exposes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_off_stream_zero_routes_streams_and_datagrams() {
    let server = start_server(echo(), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    let get = encode_headers(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", &server.authority()),
        (":path", "/"),
    ]);
    let (headers, ..) = request(&conn, &get).await;
    assert_eq!(status(&headers), "404");
    let (headers, _send, recv, _) = request(&conn, &connect_headers(&server.authority(), "/echo", &[])).await;
    assert_eq!(status(&headers), "200");
    let session_id = u64::from(recv.id());
    assert_eq!(session_id, 4);
    assert_eq!(bidi_echo(&conn, session_id, b"on stream four").await, b"on stream four");

    let mut datagram = BytesMut::new();
    varint::encode(session_id / 4, &mut datagram);
    datagram.extend_from_slice(b"dgram");
    conn.send_datagram(datagram.freeze()).unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), conn.read_datagram()).await.unwrap().unwrap();
    let (quarter, n) = varint::decode_slice(&echoed).unwrap();
    assert_eq!(quarter, 1, "the echo is tagged with this session's quarter stream id, not 0");
    assert_eq!(&echoed[n..], b"dgram");
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// h3-webtransport checked the client's SETTINGS when the CONNECT arrived and killed the whole
/// connection if they were not there yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_arriving_after_the_connect_are_awaited() {
    let server = start_server(echo(), |_| {});
    let conn = server.connect().await;
    let pending = {
        let conn = conn.clone();
        let block = connect_headers(&server.authority(), "/echo", &[]);
        tokio::spawn(async move { request(&conn, &block).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    let (headers, _send, recv, _) = pending.await.unwrap();
    assert_eq!(status(&headers), "200");
    assert_eq!(bidi_echo(&conn, u64::from(recv.id()), b"late settings").await, b"late settings");
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// A client without WebTransport in its SETTINGS gets a 400 for its CONNECT, and the rest of
/// its connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_webtransport_is_refused_cleanly() {
    let server = start_server(echo(), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, &[(0x08, 1)]).await;
    let (headers, ..) = request(&conn, &connect_headers(&server.authority(), "/echo", &[])).await;
    assert_eq!(status(&headers), "400");
    assert!(headers.contains(&("wt-error".into(), "webtransport-not-enabled".into())));
    let get = encode_headers(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", &server.authority()),
        (":path", "/x"),
    ]);
    let (headers, ..) = request(&conn, &get).await;
    assert_eq!(status(&headers), "404");
    assert!(conn.close_reason().is_none());
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// Counts the streams it accepted while dropping its accept futures constantly, and accepts uni
/// and bidi streams from two separate tasks (h3-webtransport lost wakeups there).
struct Fickle {
    bidi: Arc<AtomicUsize>,
    uni: Arc<AtomicUsize>,
}

impl RequestHandler for Fickle {
    fn on_request(&self, request: IncomingRequest) {
        let (bidi, uni) = (self.bidi.clone(), self.uni.clone());
        tokio::spawn(async move {
            let Some(session) = request.accept(Vec::new(), String::new()).await else { return };
            let uni_session = session.clone();
            tokio::spawn(async move {
                while let Some(mut recv) = uni_session.accept_uni().await {
                    while let Ok(Some(_)) = recv.read(4096).await {}
                    uni.fetch_add(1, Ordering::SeqCst);
                }
            });
            loop {
                // The accept future is dropped every millisecond; a stream must never be lost.
                tokio::select! {
                    accepted = session.accept_bi() => match accepted {
                        Some((mut send, _recv)) => {
                            bidi.fetch_add(1, Ordering::SeqCst);
                            let _ = send.write(Bytes::from_static(b"k")).await;
                            let _ = send.finish();
                        }
                        None => return,
                    },
                    () = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_are_cancel_safe_and_independent() {
    let handler = Arc::new(Fickle { bidi: Arc::new(AtomicUsize::new(0)), uni: Arc::new(AtomicUsize::new(0)) });
    let server = start_server(handler.clone(), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    let (headers, _send, recv, _) = request(&conn, &connect_headers(&server.authority(), "/", &[])).await;
    assert_eq!(status(&headers), "200");
    let session_id = u64::from(recv.id());
    let mut tasks = Vec::new();
    for i in 0..60u32 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let mut header = BytesMut::new();
            if i % 2 == 0 {
                let (mut send, mut recv) = conn.open_bi().await.unwrap();
                varint::encode(0x41, &mut header);
                varint::encode(session_id, &mut header);
                send.write_all(&header).await.unwrap();
                send.finish().unwrap();
                recv.read_to_end(16).await.unwrap();
            } else {
                let mut send = conn.open_uni().await.unwrap();
                varint::encode(0x54, &mut header);
                varint::encode(session_id, &mut header);
                send.write_all(&header).await.unwrap();
                send.finish().unwrap();
                send.stopped().await.ok();
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t).await.unwrap().unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handler.uni.load(Ordering::SeqCst) < 30 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handler.bidi.load(Ordering::SeqCst), 30);
    assert_eq!(handler.uni.load(Ordering::SeqCst), 30);
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// h3-webtransport answered the CONNECT itself (always 200, no headers of the application's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_headers_reach_the_client() {
    let server = start_server(Arc::new(Echo { headers: vec![("x-served-by".into(), "core-test".into())] }), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    let (headers, ..) = request(&conn, &connect_headers(&server.authority(), "/", &[])).await;
    assert_eq!(status(&headers), "200");
    assert!(headers.contains(&("x-served-by".into(), "core-test".into())), "{headers:?}");
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// The close capsule both ways: h3-webtransport could neither send nor read it.
struct Recorder(tokio::sync::mpsc::UnboundedSender<webtransport_napi::core::Session>);

impl RequestHandler for Recorder {
    fn on_request(&self, request: IncomingRequest) {
        let tx = self.0.clone();
        tokio::spawn(async move {
            if let Some(session) = request.accept(Vec::new(), String::new()).await {
                let _ = tx.send(session);
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_capsules_both_ways() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = start_server(Arc::new(Recorder(tx)), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;

    // Client closes: capsule in a DATA frame, then FIN.
    let (headers, mut send, _recv, _) = request(&conn, &connect_headers(&server.authority(), "/a", &[])).await;
    assert_eq!(status(&headers), "200");
    let session = rx.recv().await.unwrap();
    let mut capsule = BytesMut::new();
    varint::encode(0x2843, &mut capsule);
    varint::encode(4 + 7, &mut capsule);
    capsule.extend_from_slice(&4_000_000_000u32.to_be_bytes());
    capsule.extend_from_slice(b"goodbye");
    send.write_all(&frame(0x00, &capsule)).await.unwrap();
    send.finish().unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), session.closed()).await.unwrap();
    assert_eq!(end, SessionEnd::Closed { code: 4_000_000_000, reason: "goodbye".into() });

    // Server closes: the client reads the capsule and then FIN.
    let (headers, _send, mut recv, mut buf) = request(&conn, &connect_headers(&server.authority(), "/b", &[])).await;
    assert_eq!(status(&headers), "200");
    let session = rx.recv().await.unwrap();
    session.close(7, "bye ✓");
    let (kind, payload) = read_frame(&mut recv, &mut buf).await.unwrap();
    assert_eq!(kind, 0x00);
    let mut payload = &payload[..];
    assert_eq!(varint::decode(&mut payload), Some(0x2843));
    assert_eq!(varint::decode(&mut payload), Some(4 + "bye ✓".len() as u64));
    assert_eq!(&payload[..4], &7u32.to_be_bytes());
    assert_eq!(&payload[4..], "bye ✓".as_bytes());
    assert!(read_frame(&mut recv, &mut buf).await.is_none(), "FIN after the capsule");
    assert_eq!(session.closed().await, SessionEnd::Closed { code: 7, reason: "bye ✓".into() });
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// Streams that arrive before their CONNECT is answered are held and delivered, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_before_the_session_is_accepted_are_delivered() {
    struct Slow;
    impl RequestHandler for Slow {
        fn on_request(&self, request: IncomingRequest) {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(session) = request.accept(Vec::new(), String::new()).await {
                    serve_echo(session).await;
                }
            });
        }
    }
    let server = start_server(Arc::new(Slow), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame(0x01, &connect_headers(&server.authority(), "/", &[]))).await.unwrap();
    let session_id = u64::from(send.id());
    // Sent while the application is still deciding.
    let early = tokio::spawn({
        let conn = conn.clone();
        async move { bidi_echo(&conn, session_id, b"early bird").await }
    });
    let mut buf = BytesMut::new();
    let (kind, _) = read_frame(&mut recv, &mut buf).await.unwrap();
    assert_eq!(kind, 0x01);
    assert_eq!(early.await.unwrap(), b"early bird");
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// Requests that are not WebTransport get real answers, and an origin from another host is
/// refused by the default rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_and_origin_rule() {
    let server = start_server(echo(), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    let auth = server.authority();
    let other = encode_headers(&[
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":authority", &auth),
        (":path", "/"),
    ]);
    assert_eq!(status(&request(&conn, &other).await.0), "501");
    let foreign = connect_headers(&auth, "/", &[("origin", "https://evil.example")]);
    assert_eq!(status(&request(&conn, &foreign).await.0), "403");
    let same = connect_headers(&auth, "/", &[("origin", "http://127.0.0.1:8080")]);
    assert_eq!(status(&request(&conn, &same).await.0), "200");
    assert_eq!(server.server.session_count(), 1);
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// Draft-16 clients (webtransport-go >= 0.11, go-libp2p) send `:protocol: webtransport-h3` and
/// the newer SETTINGS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft16_connect_opens_a_session() {
    let server = start_server(echo(), |_| {});
    let conn = server.connect().await;
    // Without flow-control settings: a client that declared flow control (SETTINGS_WT_MAX_SESSIONS
    // above 1 or an initial limit) and gave no credit could get no echo (tests/flow_control.rs).
    let _control = send_settings(&conn, &[(0x08, 1), (0x33, 1), (0x2c7cf000, 1)]).await;
    let block = encode_headers(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport-h3"),
        (":scheme", "https"),
        (":authority", &server.authority()),
        (":path", "/draft16"),
    ]);
    let (headers, _send, recv, _) = request(&conn, &block).await;
    assert_eq!(status(&headers), "200");
    assert_eq!(bidi_echo(&conn, u64::from(recv.id()), b"draft 16").await, b"draft 16");
    server.server.close(0, "", Duration::from_secs(1)).await;
}

/// The server advertises every draft's WebTransport settings, datagrams and extended CONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_settings_cover_every_draft() {
    let server = start_server(echo(), |c| c.max_sessions = 9);
    let conn = server.connect().await;
    let mut control = conn.accept_uni().await.unwrap();
    let mut buf = BytesMut::new();
    let mut first = [0u8; 1];
    control.read_exact(&mut first).await.unwrap();
    assert_eq!(first[0], 0x00, "control stream type");
    let (kind, payload) = read_frame(&mut control, &mut buf).await.unwrap();
    assert_eq!(kind, 0x04);
    let mut payload = &payload[..];
    let mut settings = std::collections::HashMap::new();
    while !payload.is_empty() {
        let id = varint::decode(&mut payload).unwrap();
        settings.insert(id, varint::decode(&mut payload).unwrap());
    }
    assert_eq!(settings.get(&0x08), Some(&1), "ENABLE_CONNECT_PROTOCOL");
    assert_eq!(settings.get(&0x33), Some(&1), "H3_DATAGRAM");
    assert_eq!(settings.get(&0x2b603742), Some(&1), "draft-02 ENABLE_WEBTRANSPORT");
    assert_eq!(settings.get(&0x2c7cf000), Some(&1), "WT_ENABLED");
    assert_eq!(settings.get(&0x14e9cd29), Some(&9), "WT_MAX_SESSIONS");
    assert_eq!(settings.get(&0x2b61), Some(&(16 << 20)), "WT_INITIAL_MAX_DATA");
    assert_eq!(settings.get(&0x2b65), Some(&100), "WT_INITIAL_MAX_STREAMS_BIDI");
    assert_eq!(settings.get(&0x2b64), Some(&100), "WT_INITIAL_MAX_STREAMS_UNI");
    assert!(conn.max_datagram_size().is_some(), "QUIC datagrams advertised (max_datagram_frame_size)");
    server.server.close(0, "", Duration::from_secs(1)).await;
}

struct DrainObserver {
    received: Arc<AtomicUsize>,
    drained: Arc<AtomicUsize>,
}

impl RequestHandler for DrainObserver {
    fn on_request(&self, request: IncomingRequest) {
        let (received, drained) = (self.received.clone(), self.drained.clone());
        tokio::spawn(async move {
            let Some(session) = request.accept(Vec::new(), String::new()).await else { return };
            let watcher = session.clone();
            tokio::spawn(async move {
                watcher.draining().await;
                drained.fetch_add(1, Ordering::SeqCst);
            });
            while let Some(mut recv) = session.accept_uni().await {
                let received = received.clone();
                tokio::spawn(async move {
                    while let Ok(Some(chunk)) = recv.read(65536).await {
                        received.fetch_add(chunk.len(), Ordering::SeqCst);
                    }
                });
            }
        });
    }
}

/// `close()` sends GOAWAY and DRAIN, lets the client's data in flight arrive during the grace
/// period, and only then closes the session with the given code and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_drains_then_closes_with_code() {
    let observer =
        Arc::new(DrainObserver { received: Arc::new(AtomicUsize::new(0)), drained: Arc::new(AtomicUsize::new(0)) });
    let server = start_server(observer.clone(), |_| {});
    let conn = server.connect().await;
    let _control = send_settings(&conn, SETTINGS_WT).await;
    let mut server_control = conn.accept_uni().await.unwrap();
    let mut control_buf = BytesMut::new();
    let mut first = [0u8; 1];
    server_control.read_exact(&mut first).await.unwrap();
    assert_eq!(read_frame(&mut server_control, &mut control_buf).await.unwrap().0, 0x04);

    let (headers, _send, mut recv, mut buf) = request(&conn, &connect_headers(&server.authority(), "/", &[])).await;
    assert_eq!(status(&headers), "200");
    let session_id = u64::from(recv.id());
    let closing = {
        let server = server.server.clone();
        tokio::spawn(async move { server.close(77, "maintenance", Duration::from_millis(1500)).await })
    };
    // GOAWAY names the first request stream not served: one past the CONNECT's.
    let (kind, payload) = read_frame(&mut server_control, &mut control_buf).await.unwrap();
    assert_eq!(kind, 0x07);
    assert_eq!(varint::decode_slice(&payload).unwrap().0, session_id + 4);
    // DRAIN first.
    let (kind, payload) = read_frame(&mut recv, &mut buf).await.unwrap();
    assert_eq!(kind, 0x00);
    assert_eq!(varint::decode_slice(&payload).unwrap().0, 0x78ae);
    // Data sent while draining reaches the application whole.
    let data = vec![0xabu8; 1 << 20];
    let mut uni = conn.open_uni().await.unwrap();
    let mut header = BytesMut::new();
    varint::encode(0x54, &mut header);
    varint::encode(session_id, &mut header);
    uni.write_all(&header).await.unwrap();
    uni.write_all(&data).await.unwrap();
    uni.finish().unwrap();
    // Then the close capsule with the server's code and reason, and FIN.
    let (kind, payload) = read_frame(&mut recv, &mut buf).await.unwrap();
    assert_eq!(kind, 0x00);
    let mut payload = &payload[..];
    assert_eq!(varint::decode(&mut payload), Some(0x2843));
    varint::decode(&mut payload).unwrap();
    assert_eq!(&payload[..4], &77u32.to_be_bytes());
    assert_eq!(&payload[4..], b"maintenance");
    tokio::time::timeout(Duration::from_secs(10), closing).await.unwrap().unwrap();
    assert_eq!(observer.received.load(Ordering::SeqCst), data.len());
    assert_eq!(observer.drained.load(Ordering::SeqCst), 1, "the server's session saw draining");
}

/// A panic inside a connection's task (injected; never expected) closes that one connection with
/// H3_INTERNAL_ERROR, is counted, and the server goes on serving.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_is_contained_to_its_connection() {
    let server = start_server(echo(), |_| {});
    let victim = server.connect().await;
    let bystander = server.connect().await;
    let _c1 = send_settings(&victim, SETTINGS_WT).await;
    let _c2 = send_settings(&bystander, SETTINGS_WT).await;
    let (headers, _s, recv, _) = request(&bystander, &connect_headers(&server.authority(), "/", &[])).await;
    assert_eq!(status(&headers), "200");
    let bystander_session = u64::from(recv.id());

    let (mut send, _recv) = victim.open_bi().await.unwrap();
    let get = encode_headers(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", &server.authority()),
        (":path", "/.fault-injection/panic"),
    ]);
    send.write_all(&frame(0x01, &get)).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), victim.closed()).await.unwrap();
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(close.error_code.into_inner(), 0x102),
        other => panic!("expected H3_INTERNAL_ERROR, got {other:?}"),
    }
    assert_eq!(server.server.counters().faults, 1);
    assert_eq!(bidi_echo(&bystander, bystander_session, b"still here").await, b"still here");
    let fresh = server.connect().await;
    let _c3 = send_settings(&fresh, SETTINGS_WT).await;
    let (headers, ..) = request(&fresh, &connect_headers(&server.authority(), "/", &[])).await;
    assert_eq!(status(&headers), "200");
    server.server.close(0, "", Duration::from_millis(100)).await;
    assert_eq!(server.server.counters().sessions, 0, "no session leaked");
}
