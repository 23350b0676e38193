//! The core's WebTransport client against the core's server: the same sessions, streams,
//! datagrams, capsules and flow control on both ends (both declare flow control, so every byte
//! and stream here is counted and credited by capsules both ways).

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::*;
use webtransport_napi::core::webtransport::client::{Client, ClientConfig, SessionRequest, SharedClients};
use webtransport_napi::core::ServerTrust;
use webtransport_napi::core::{FlowLimits, Session, SessionEnd};

async fn open(
    server: &TestServer,
    config: ClientConfig,
    path: &str,
) -> (Client, Result<Session, webtransport_napi::core::Error>) {
    let client = Client::new(server.client_endpoint(), config);
    let request = SessionRequest { authority: server.authority(), path: path.into(), ..SessionRequest::default() };
    let session = client.connect(server.addr, "localhost", request).await;
    (client, session)
}

async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), test).await.expect("the test exceeded its bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_echoes_streams_and_datagrams_with_our_server() {
    let server = start_server(Arc::new(Echo { headers: Vec::new() }), |_| {});
    bounded(async {
        let (client, session) = open(&server, ClientConfig::default(), "/echo").await;
        let session = session.expect("a session");
        assert_eq!(session.request().protocol, "webtransport-h3", "our server speaks the current drafts");

        let (mut send, mut recv) = session.open_bi().await.unwrap();
        send.write(Bytes::from_static(b"over our own client")).await.unwrap();
        send.finish().unwrap();
        let mut echoed = Vec::new();
        while let Some(chunk) = recv.read(65536).await.unwrap() {
            echoed.extend_from_slice(&chunk);
        }
        assert_eq!(echoed, b"over our own client");

        let mut uni = session.open_uni().await.unwrap();
        uni.write(Bytes::from_static(b"one way")).await.unwrap();
        uni.finish().unwrap();
        let mut back = session.accept_uni().await.expect("the server answers on a stream of its own");
        let mut answer = Vec::new();
        while let Some(chunk) = back.read(65536).await.unwrap() {
            answer.extend_from_slice(&chunk);
        }
        assert_eq!(answer, b"one way");

        let mut echoed_datagram = None;
        for _ in 0..20 {
            session.send_datagram(b"ping").unwrap();
            if let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(200), session.read_datagrams(8)).await {
                echoed_datagram = batch.into_iter().next();
                break;
            }
        }
        assert_eq!(echoed_datagram.as_deref(), Some(&b"ping"[..]));

        let flow = session.flow_stats().expect("both ends declare flow control");
        assert!(flow.data_sent >= 26 && flow.streams_opened_bidi == 1 && flow.streams_opened_uni == 1, "{flow:?}");

        session.close(7, "client says bye");
        assert_eq!(session.closed().await, SessionEnd::Closed { code: 7, reason: "client says bye".into() });
        client.close().await;
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}

/// 300 streams and 20 MiB each way against small limits on both ends: only capsules from each
/// side to the other let it finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_credit_runs_both_ways_between_our_ends() {
    let small = FlowLimits { max_data: 256 * 1024, max_streams_bidi: 16, max_streams_uni: 4 };
    let server = start_server(Arc::new(Echo { headers: Vec::new() }), |config| config.flow_control = small);
    bounded(async {
        let config = ClientConfig { flow_control: small, ..ClientConfig::default() };
        let (client, session) = open(&server, config, "/echo").await;
        let session = session.expect("a session");
        let payload = Bytes::from(vec![0x5a; 70_000]);
        let mut total = 0;
        for _ in 0..300 {
            let (mut send, mut recv) = session.open_bi().await.unwrap();
            let writing = {
                let payload = payload.clone();
                tokio::spawn(async move {
                    send.write(payload).await.unwrap();
                    send.finish().unwrap();
                })
            };
            while let Some(chunk) = recv.read(65536).await.unwrap() {
                total += chunk.len();
            }
            writing.await.unwrap();
        }
        assert_eq!(total, 300 * 70_000);
        let flow = session.flow_stats().unwrap();
        assert!(flow.remote_max_streams_bidi >= 300, "stream credit came by capsule: {flow:?}");
        assert!(flow.remote_max_data >= 300 * 70_000, "data credit came by capsule: {flow:?}");
        assert!(flow.credit_capsules_sent > 0, "and we credited the server's echo: {flow:?}");
        session.close(0, "");
        client.close().await;
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_reports_the_status() {
    let server = start_server(Arc::new(Echo { headers: Vec::new() }), |config| {
        config.origin_policy = webtransport_napi::core::OriginPolicy::SameHost;
    });
    bounded(async {
        let client = Client::new(server.client_endpoint(), ClientConfig::default());
        let request = SessionRequest {
            authority: server.authority(),
            path: "/echo".into(),
            origin: Some("https://elsewhere.example".into()),
            ..SessionRequest::default()
        };
        let error = client.connect(server.addr, "localhost", request).await.unwrap_err();
        assert!(error.message.contains("403"), "{error:?}");
        client.close().await;
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_clients_keep_one_endpoint_while_sessions_live_and_close_it_after_the_last() {
    let server = start_server(Arc::new(Echo { headers: Vec::new() }), |_| {});
    bounded(async {
        let clients = SharedClients::new(ClientConfig::default());
        let config = ClientConfig::default();
        let trust = ServerTrust::Hashes(vec![server.cert_hash()]);
        let request =
            || SessionRequest { authority: server.authority(), path: "/echo".into(), ..SessionRequest::default() };
        let first = clients.connect(None, &config, &trust, server.addr, "127.0.0.1", request()).await.unwrap();
        let second = clients.connect(None, &config, &trust, server.addr, "127.0.0.1", request()).await.unwrap();
        assert_eq!(clients.endpoints(), 1, "the two sessions share one endpoint");

        let wrong = ServerTrust::Hashes(vec![[0u8; 32]]);
        let refused = clients.connect(None, &config, &wrong, server.addr, "127.0.0.1", request()).await.unwrap_err();
        assert!(refused.message.contains("matches none of serverCertificateHashes"), "{refused:?}");
        assert_eq!(clients.endpoints(), 1, "a refused session leaves the endpoint to the others");

        first.close(0, "");
        first.closed().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(clients.endpoints(), 1, "one session is still open");
        second.close(0, "");
        second.closed().await;
        for _ in 0..100 {
            if clients.endpoints() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(clients.endpoints(), 0, "the endpoint closed with its last session");

        // A new session makes a new endpoint.
        let third = clients.connect(None, &config, &trust, server.addr, "127.0.0.1", request()).await.unwrap();
        assert_eq!(clients.endpoints(), 1);
        third.close(0, "");
        third.closed().await;
    })
    .await;
    server.server.close(0, "", Duration::from_millis(200)).await;
}
