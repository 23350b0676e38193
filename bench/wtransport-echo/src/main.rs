//! `wtransport-echo`: the baseline server of `bench/` — an echo written the ordinary way on the
//! `wtransport` 0.7 server, with its default QUIC settings. Bidirectional streams are echoed
//! (read into a 64 KiB buffer, `write_all` it back, finish), unidirectional streams are answered
//! on a new unidirectional stream, and datagrams are sent back as they come.
//!
//! Usage: wtransport-echo [--cert cert.pem --key key.pem] [--port N] [--transport core]
//!
//! Listens on 127.0.0.1 only. Without `--cert`/`--key` it generates a self-signed ECDSA P-256
//! certificate valid 10 days (what hash pinning accepts). Prints one JSON line when listening:
//! `{"ready":true,"port":N,"pid":N,"certHash":"<sha256 hex>"}`. Exits when stdin reaches its end
//! (so a runner that dies takes its servers with it) or on SIGTERM/SIGINT.
//!
//! `--transport core` applies the QUIC transport settings our core uses (flow-control windows,
//! datagram buffers) instead of quinn's defaults, for an apples-to-apples comparison.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tool_support::hash::hex;
use tool_support::server::{self, Listen};
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection, Endpoint, RecvStream, SendStream, ServerConfig};

struct Args {
    listen: Listen,
    core_transport: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { listen: Listen::default(), core_transport: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if args.listen.take(&arg, &mut it)? {
            continue;
        }
        match arg.as_str() {
            "--transport" => match it.next().ok_or("--transport needs a value")?.as_str() {
                "core" => args.core_transport = true,
                "default" => args.core_transport = false,
                other => return Err(format!("--transport is 'default' or 'core', not {other:?}")),
            },
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    args.listen.check()?;
    Ok(args)
}

/// What `webtransport_napi::core::ServerConfig::quinn_config` sets, for `--transport core`.
fn core_transport() -> QuicTransportConfig {
    let mut t = QuicTransportConfig::default();
    t.max_concurrent_bidi_streams(101u32.into());
    t.max_concurrent_uni_streams(103u32.into());
    t.max_idle_timeout(Some(Duration::from_secs(30).try_into().expect("30 s is a valid idle timeout")));
    t.datagram_receive_buffer_size(Some(4 * 1024 * 1024));
    t.datagram_send_buffer_size(1024 * 1500);
    t.stream_receive_window((2u32 * 1024 * 1024).into());
    t.receive_window((16u32 * 1024 * 1024).into());
    t.send_window(16 * 1024 * 1024);
    t
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wtransport-echo: {e}");
            std::process::exit(2);
        }
    };
    let identity = match server::wtransport_identity(&args.listen).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("wtransport-echo: {e}");
            std::process::exit(1);
        }
    };
    let hash = hex(identity.certificate_chain().as_slice()[0].hash().as_ref());
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.listen.port));
    let builder = ServerConfig::builder().with_bind_address(addr);
    let config = if args.core_transport {
        builder.with_custom_transport(identity, core_transport()).build()
    } else {
        builder.with_identity(identity).build()
    };
    let server = match Endpoint::server(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wtransport-echo: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let port = server.local_addr().map(|a| a.port()).unwrap_or(0);
    server::print_ready(port, &hash, &[]);
    server::exit_on_stdin_eof();
    loop {
        let incoming = server.accept().await;
        tokio::spawn(session(incoming));
    }
}

async fn session(incoming: IncomingSession) {
    let Ok(request) = incoming.await else { return };
    let Ok(conn) = request.accept().await else { return };
    let datagrams = conn.clone();
    tokio::spawn(async move {
        while let Ok(datagram) = datagrams.receive_datagram().await {
            let _ = datagrams.send_datagram(datagram.payload());
        }
    });
    let uni = conn.clone();
    tokio::spawn(async move {
        while let Ok(recv) = uni.accept_uni().await {
            let uni = uni.clone();
            tokio::spawn(async move {
                let _ = echo_uni(&uni, recv).await;
            });
        }
    });
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(echo_bidi(send, recv));
    }
}

async fn echo_bidi(mut send: SendStream, mut recv: RecvStream) {
    let mut buf = vec![0u8; 65536];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                if send.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let _ = send.finish().await;
}

async fn echo_uni(conn: &Connection, mut recv: RecvStream) -> Result<(), Box<dyn std::error::Error>> {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(n) = recv.read(&mut buf).await? {
        data.extend_from_slice(&buf[..n]);
    }
    let mut send = conn.open_uni().await?.await?;
    send.write_all(&data).await?;
    send.finish().await?;
    Ok(())
}
