//! `core-echo`: the ceiling of `bench/` — the same echo as `bench/js-echo.mjs` and
//! `bench/wtransport-echo`, written in Rust directly on `webtransport_napi::core` (no napi, no
//! JS): what the binding could reach if crossing into JavaScript cost nothing. Bidirectional
//! streams are echoed chunk by chunk (each received chunk is written back as is, no copy),
//! unidirectional streams are answered on a new unidirectional stream, and datagrams are sent
//! back in the batches they are read in.
//!
//! Usage: core-echo [--cert cert.pem --key key.pem] [--port N] [--socket-buffer BYTES]
//!
//! Listens on 127.0.0.1 only, with the core's default `ServerConfig`. Without `--cert`/`--key`
//! it generates a certificate with `core::cert`. Prints one JSON line when listening:
//! `{"ready":true,"port":N,"pid":N,"certHash":"<sha256 hex>"}`. Exits when stdin reaches its end
//! (so a runner that dies takes its servers with it) or on SIGTERM/SIGINT.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use webtransport_napi::core::webtransport::echo;
use webtransport_napi::core::{cert, config, tls, IncomingRequest, RequestHandler, Server, ServerConfig};

struct Echo;

impl RequestHandler for Echo {
    fn on_request(&self, request: IncomingRequest) {
        tokio::spawn(async move {
            if let Some(session) = request.accept(Vec::new(), String::new()).await {
                echo::serve(session).await;
            }
        });
    }
}

struct Args {
    cert: Option<String>,
    key: Option<String>,
    port: u16,
    /// Overrides the socket receive buffer request (diagnosis: its effect on bulk throughput).
    socket_buffer: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { cert: None, key: None, port: 0, socket_buffer: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--cert" => args.cert = Some(value("--cert")?),
            "--key" => args.key = Some(value("--key")?),
            "--port" => args.port = value("--port")?.parse().map_err(|_| "bad --port".to_string())?,
            "--socket-buffer" => {
                args.socket_buffer =
                    Some(value("--socket-buffer")?.parse().map_err(|_| "bad --socket-buffer".to_string())?)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.cert.is_some() != args.key.is_some() {
        return Err("--cert and --key go together".into());
    }
    Ok(args)
}

fn pems(args: &Args) -> Result<(Vec<u8>, Vec<u8>), String> {
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let c = std::fs::read(cert).map_err(|e| format!("cannot read {cert}: {e}"))?;
        let k = std::fs::read(key).map_err(|e| format!("cannot read {key}: {e}"))?;
        return Ok((c, k));
    }
    let generated = cert::generate(&["localhost".into(), "127.0.0.1".into()], 10).map_err(|e| e.to_string())?;
    Ok((generated.cert_pem.into_bytes(), generated.key_pem.into_bytes()))
}

fn fail(message: String) -> ! {
    eprintln!("core-echo: {message}");
    std::process::exit(1)
}

fn main() {
    // The addon's runtime size (core::config::runtime_workers), so that (b) is the ceiling the
    // binding can reach on the same threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config::runtime_workers())
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")));
    runtime.block_on(serve());
}

async fn serve() {
    let args = parse_args().unwrap_or_else(|e| fail(e));
    let (cert_pem, key_pem) = pems(&args).unwrap_or_else(|e| fail(e));
    let leaf = tls::parse_cert_chain(&cert_pem).map_err(|e| e.to_string()).unwrap_or_else(|e| fail(e));
    let hash = leaf.first().map(|der| ring::digest::digest(&ring::digest::SHA256, der.as_ref()));
    let hash: String = hash.map(|h| h.as_ref().iter().map(|b| format!("{b:02x}")).collect()).unwrap_or_default();
    let mut config = ServerConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)), cert_pem, key_pem);
    if let Some(bytes) = args.socket_buffer {
        config.socket_buffer = bytes;
    }
    let server = Server::bind(config, Arc::new(Echo)).unwrap_or_else(|e| fail(e.to_string()));
    let port = server.local_addr().port();
    println!("{{\"ready\":true,\"port\":{port},\"pid\":{},\"certHash\":\"{hash}\"}}", std::process::id());
    let _ = std::io::stdout().flush();
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    std::future::pending::<()>().await;
}
