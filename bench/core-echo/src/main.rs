//! `core-echo`: the ceiling of `bench/` — the same echo as `bench/js-echo.mjs` and
//! `bench/wtransport-echo`, written in Rust directly on `webtransport_napi::core` (no napi, no
//! JS): what the binding could reach if crossing into JavaScript cost nothing. Bidirectional
//! streams are echoed chunk by chunk (each received chunk is written back as is, no copy),
//! unidirectional streams are answered on a new unidirectional stream, and datagrams are sent
//! back in the batches they are read in.
//!
//! Usage: core-echo [--cert cert.pem --key key.pem] [--port N] [--socket-buffer BYTES]
//!                  [--workers N] [--threads N]
//!
//! Listens on 127.0.0.1 only, with the core's default `ServerConfig` (`--workers N`: N QUIC
//! endpoints sharing the port, `ServerConfig::workers`). Without `--cert`/`--key` it generates a
//! certificate with `core::cert`. Prints one JSON line when listening:
//! `{"ready":true,"port":N,"pid":N,"certHash":"<sha256 hex>"}`, then answers each line it reads
//! on stdin with one line of the server's counters, `{"counters":{"connections":N,"sessions":N,
//! "workers":[{"packets":N,"misrouted":N,"connections":N},...]}}` (`workers`: each endpoint's
//! counts since the start). Exits when stdin reaches its end (so a runner that dies takes its
//! servers with it) or on SIGTERM/SIGINT.

use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tool_support::hash::hex;
use tool_support::json::J;
use tool_support::server::{self, Listen};
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
    listen: Listen,
    /// Overrides the socket receive buffer request (diagnosis: its effect on bulk throughput).
    socket_buffer: Option<usize>,
    /// Overrides the number of QUIC endpoints (bench/run.mjs: 1 against 2).
    workers: Option<usize>,
    /// Overrides the runtime's threads (diagnosis: one endpoint on as many threads as two get).
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { listen: Listen::default(), socket_buffer: None, workers: None, threads: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if args.listen.take(&arg, &mut it)? {
            continue;
        }
        match arg.as_str() {
            "--socket-buffer" => {
                let value = it.next().ok_or("--socket-buffer needs a value")?;
                args.socket_buffer = Some(value.parse().map_err(|_| "bad --socket-buffer".to_string())?)
            }
            "--workers" => {
                let value = it.next().ok_or("--workers needs a value")?;
                args.workers = Some(value.parse().map_err(|_| "bad --workers".to_string())?)
            }
            "--threads" => {
                let value = it.next().ok_or("--threads needs a value")?;
                args.threads = Some(value.parse().ok().filter(|n: &usize| *n > 0).ok_or("bad --threads")?)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    args.listen.check()?;
    Ok(args)
}

fn pems(args: &Args) -> Result<(Vec<u8>, Vec<u8>), String> {
    if let Some((cert, key)) = args.listen.pem_files() {
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
    let args = parse_args().unwrap_or_else(|e| fail(e));
    let (cert_pem, key_pem) = pems(&args).unwrap_or_else(|e| fail(e));
    let leaf = tls::parse_cert_chain(&cert_pem).map_err(|e| e.to_string()).unwrap_or_else(|e| fail(e));
    let hash = leaf.first().map(|der| ring::digest::digest(&ring::digest::SHA256, der.as_ref()));
    let hash = hash.map(|h| hex(h.as_ref())).unwrap_or_default();
    let mut config = ServerConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, args.listen.port)), cert_pem, key_pem);
    if let Some(bytes) = args.socket_buffer {
        config.socket_buffer = bytes;
    }
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    // The addon's runtime size (core::config::runtime_workers), so that (b) is the ceiling the
    // binding can reach on the same threads; but at least a thread per endpoint: each endpoint's
    // driver is one task, and K of them on fewer threads take turns instead of running in
    // parallel, which is what K endpoints are for. (The addon does not grow its runtime so:
    // there, `workers: 2` on a one-thread runtime is what a user gets.)
    let threads = args.threads.unwrap_or(config::runtime_workers().max(config.workers));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")));
    runtime.block_on(serve(config, hash));
}

async fn serve(config: ServerConfig, hash: String) {
    let server = Server::bind(config, Arc::new(Echo)).unwrap_or_else(|e| fail(e.to_string()));
    let port = server.local_addr().port();
    server::print_ready(port, &hash, &[]);
    answer_stdin(server);
    std::future::pending::<()>().await;
}

/// Answers each line on stdin with the server's counters (bench/run.mjs asks before and after a
/// run); exits at stdin's end, as `tool_support::server::exit_on_stdin_eof` does.
fn answer_stdin(server: Server) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            let c = server.counters();
            let workers = c.workers.iter().map(|w| {
                J::obj([
                    ("packets", J::Num(w.packets)),
                    ("misrouted", J::Num(w.misrouted)),
                    ("connections", J::Num(w.connections)),
                ])
            });
            let counters = J::obj([
                ("connections", J::Num(c.connections)),
                ("sessions", J::Num(c.sessions)),
                ("workers", J::Arr(workers.collect())),
            ]);
            println!("{}", J::obj([("counters", counters)]).to_json());
            let _ = std::io::stdout().flush();
        }
        std::process::exit(0);
    });
}
