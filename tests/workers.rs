//! Endpoints per core (issue 15): packets steered to the worker their connection ID names, from
//! any client port; connections that survive their client's port changing; IDs of other servers
//! dropped. Each steering test has its negative control: the same with the kernel's 4-tuple hash.

mod support;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::ConnectionIdGenerator;
use support::*;
use webtransport_napi::core::endpoint::IdLayout;
use webtransport_napi::core::webtransport::client::{Client, ClientConfig, SessionRequest};
use webtransport_napi::core::SessionEnd;

const SERVER_ID: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

fn steered_server(steer: bool) -> TestServer {
    start_server(Arc::new(Echo { headers: Vec::new() }), |config| {
        config.workers = 2;
        config.server_id = SERVER_ID.to_vec();
        config.steer = steer;
    })
}

fn packets(server: &TestServer) -> Vec<u64> {
    server.server.counters().workers.iter().map(|w| w.packets).collect()
}

fn misrouted(server: &TestServer) -> u64 {
    server.server.counters().workers.iter().map(|w| w.misrouted).sum()
}

/// A short-header packet (and a long-header one) whose destination ID names `worker`.
fn packets_for(worker: u8) -> [Vec<u8>; 2] {
    let id = IdLayout::new(SERVER_ID.to_vec()).unwrap().generator(worker).generate_cid();
    let mut short = vec![0x43];
    short.extend_from_slice(&id);
    short.resize(40, 0x17);
    let mut long = vec![0xc3, 0, 0, 0, 1, id.len() as u8];
    long.extend_from_slice(&id);
    long.extend_from_slice(&[8, 1, 2, 3, 4, 5, 6, 7, 8]);
    long.resize(60, 0);
    [short, long]
}

async fn wait_for_packets(server: &TestServer, total: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = packets(server);
        if counts.iter().sum::<u64>() >= total || Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends each source port's packets for both workers; returns how many went to each.
fn send_from_many_ports(server: &TestServer, ports: usize) -> [u64; 2] {
    let mut sent = [0u64; 2];
    for _ in 0..ports {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        for worker in 0..2u8 {
            for packet in packets_for(worker) {
                socket.send_to(&packet, server.addr).unwrap();
                sent[worker as usize] += 1;
            }
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_naming_worker_i_reach_socket_i_from_any_source_port() {
    let server = steered_server(true);
    let sent = send_from_many_ports(&server, 24);
    let counts = wait_for_packets(&server, sent.iter().sum()).await;
    assert_eq!(counts, sent.to_vec(), "short and long headers, 24 source ports, each on the worker its ID names");
    assert_eq!(misrouted(&server), 0);
    server.server.close(0, "", Duration::from_millis(100)).await;
}

/// The negative control: the kernel's hash puts all of one port's packets on one socket, so
/// every port's packets for the other worker are misrouted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_steering_a_ports_packets_all_land_on_one_socket() {
    let server = steered_server(false);
    let sent = send_from_many_ports(&server, 24);
    wait_for_packets(&server, sent.iter().sum()).await;
    assert_eq!(misrouted(&server), 24, "one short packet of every port reached the other worker");
    server.server.close(0, "", Duration::from_millis(100)).await;
}

/// A packet for an unknown connection of ours earns a stateless reset; one whose ID carries
/// another server's ID (a balancer's mistake, or noise) is dropped silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_without_our_server_id_are_dropped_not_reset() {
    let server = steered_server(true);
    let answer = |id: &[u8]| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
        let mut packet = vec![0x45];
        packet.extend_from_slice(id);
        packet.resize(200, 0x33);
        socket.send_to(&packet, server.addr).unwrap();
        let mut buf = [0u8; 1500];
        socket.recv(&mut buf).ok()
    };
    let ours = IdLayout::new(SERVER_ID.to_vec()).unwrap().generator(1).generate_cid();
    let reset = answer(&ours).expect("a stateless reset for an unknown connection of ours");
    assert!(reset < 200, "a reset is smaller than what incited it");
    let mut foreign = ours.to_vec();
    foreign[2] ^= 0xff;
    tokio::time::sleep(Duration::from_millis(50)).await; // past quinn's reset rate limit
    assert_eq!(answer(&foreign), None, "another server's ID gets no answer");
    server.server.close(0, "", Duration::from_millis(100)).await;
}

/// What one connection did: whether every byte came back across the rebind, and where its
/// packets went.
struct Round {
    echoed: bool,
    end: Option<SessionEnd>,
    packets: Vec<u64>,
    misrouted: u64,
}

/// Waits for the server to forget the round's connection, so that its last packets (the close
/// and its acknowledgement) are counted in its own round.
async fn settle(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.server.counters().connections > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One client connection: a session echoing 2 MB on one stream, its client endpoint moved to a
/// new UDP port after the first half (a NAT rebinding, from the server's side).
async fn rebinding_round(server: &TestServer) -> Round {
    let before = (packets(server), misrouted(server));
    let endpoint = server.client_endpoint();
    let client = Client::new(endpoint.clone(), ClientConfig::default());
    let request = SessionRequest { authority: server.authority(), path: "/echo".into(), ..SessionRequest::default() };
    let session = client.connect(server.addr, "localhost", request).await.expect("a session");
    let (mut send, mut recv) = session.open_bi().await.unwrap();
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let reader = tokio::spawn(async move {
        let mut echoed = Vec::new();
        while let Ok(Some(chunk)) = recv.read(65536).await {
            echoed.extend_from_slice(&chunk);
        }
        echoed
    });
    let (first, second) = payload.split_at(payload.len() / 2);
    let mut wrote = send.write(Bytes::copy_from_slice(first)).await.is_ok();
    endpoint.rebind(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    wrote = wrote && send.write(Bytes::copy_from_slice(second)).await.is_ok() && send.finish().is_ok();
    let echoed = if wrote {
        tokio::time::timeout(Duration::from_secs(10), reader).await.ok().and_then(|r| r.ok())
    } else {
        None
    };
    let echoed = echoed.is_some_and(|e| e == payload);
    let end = tokio::time::timeout(Duration::from_millis(50), session.closed()).await.ok();
    session.close(0, "");
    client.close().await;
    settle(server).await;
    let after = (packets(server), misrouted(server));
    Round {
        echoed,
        end,
        packets: after.0.iter().zip(&before.0).map(|(a, b)| a - b).collect(),
        misrouted: after.1 - before.1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_its_client_changing_port_mid_transfer() {
    let server = steered_server(true);
    for round in 0..8 {
        let r = tokio::time::timeout(Duration::from_secs(30), rebinding_round(&server)).await.expect("bounded");
        assert!(r.echoed, "round {round}: every byte came back across the rebind");
        assert_eq!(r.end, None, "round {round}: the session was still open");
        assert_eq!(r.packets.iter().filter(|&&p| p > 0).count(), 1, "round {round}: one worker only: {:?}", r.packets);
        assert_eq!(r.misrouted, 0, "round {round}: no packet reached the other worker, so no stateless reset was sent");
    }
    server.server.close(0, "", Duration::from_millis(100)).await;
}

/// The negative control: with the kernel's 4-tuple hash, the new port lands on the other worker
/// about half the time, which answers with a stateless reset and the connection dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_steering_about_half_the_rebound_connections_die() {
    let server = steered_server(false);
    let rounds = 24;
    let mut died = 0;
    for _ in 0..rounds {
        let r = tokio::time::timeout(Duration::from_secs(30), rebinding_round(&server)).await.expect("bounded");
        if !r.echoed {
            died += 1;
            assert!(r.misrouted > 0, "it died because its packets reached the other worker: {:?}", r.packets);
            match r.end {
                Some(SessionEnd::Aborted { message, connection_lost: true }) => {
                    assert!(message.contains("reset"), "ended by a stateless reset: {message}")
                }
                other => panic!("a dead connection ends as lost by reset, got {other:?}"),
            }
        }
    }
    assert!((4..=20).contains(&died), "about half of {rounds} died, got {died}");
    server.server.close(0, "", Duration::from_millis(100)).await;
}
