//! `wt-load`: the load generator of `bench/`, a WebTransport client on the `wtransport` crate.
//!
//! It shares no code with the servers it measures. It pins the server certificate by its
//! SHA-256 hash, runs one mode, checks every byte that comes back, and prints exactly one JSON
//! line on stdout: `{"ok":true,"mode":...}` (exit 0) or `{"ok":false,"error":...}` (exit 1).
//! Every mode is bounded in count and in time (`--timeout-ms`, default 120 s).
//!
//! Usage:
//!   wt-load --url https://127.0.0.1:PORT/echo --cert-hash <sha256 hex> [--threads N]
//!           [--timeout-ms N] <mode> [mode options]
//!
//! Modes:
//!   bulk     [--bytes N]                 one bidi stream, N bytes written and read concurrently
//!   rr       [--sessions S] [--rounds M] [--size B]
//!                                        S sessions x M round trips, each on a fresh bidi stream
//!   dgram    [--seconds T] [--size B] [--rate R] [--sessions S]
//!                                        datagram echo for T s at R/s in all (no --rate: as fast
//!                                        as QUIC takes them), over S sessions (default 1)
//!   sessions [--count K] [--concurrency C] [--hold-ms H] [--wait-stdin]
//!                                        K sessions opened at once (at most C handshakes at a
//!                                        time if given); held until a line (or EOF) on stdin
//!                                        with --wait-stdin (at most H ms), else for H ms
//!
//! In `sessions` mode a line `{"event":"ready",...}` goes to stderr once all K are open, so that
//! a runner can sample the server while they are held.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tool_support::client::{self_cpu_seconds, Target};
use tool_support::hash::{self, HashError};
use tool_support::json::{Report, J};
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::endpoint::ConnectOptions;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

const USAGE: &str = "usage: wt-load --url https://HOST:PORT/PATH --cert-hash <sha256 hex> [--threads N] \
[--timeout-ms N] <mode> [options]\n\
modes: bulk [--bytes N] | rr [--sessions S] [--rounds M] [--size B] | \
dgram [--seconds T] [--size B] [--rate R] [--sessions S] | sessions [--count K] [--concurrency C] [--hold-ms H] [--wait-stdin]";

/// HTTP/3 H3_NO_ERROR: how the client leaves.
const H3_NO_ERROR: u32 = 0x100;

/// Four decimals, not the tools' usual three: bench/run.mjs reads rates and times from here.
const FLOAT_DECIMALS: usize = 4;

// ---------------------------------------------------------------------------------------------
// Arguments.

#[derive(Clone)]
struct Args {
    url: String,
    cert_hash: [u8; 32],
    timeout: Duration,
    threads: usize,
    mode: String,
    opts: Vec<(String, Option<String>)>,
}

impl Args {
    fn num(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.opts.iter().rev().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, Some(v))) => v.parse().map_err(|_| format!("bad --{name} {v:?}")),
            Some((_, None)) => Err(format!("--{name} needs a value")),
        }
    }
    fn opt_num(&self, name: &str) -> Result<Option<u64>, String> {
        if self.opts.iter().any(|(k, _)| k == name) {
            self.num(name, 0).map(Some)
        } else {
            Ok(None)
        }
    }
    fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(k, _)| k == name)
    }
}

fn parse_hex_hash(s: &str) -> Result<[u8; 32], String> {
    hash::parse_sha256(s).map_err(|e| match e {
        HashError::Length(n) => format!("--cert-hash must be 64 hex digits, got {n}"),
        HashError::NotAscii | HashError::NotHex => format!("--cert-hash is not hex: {s:?}"),
    })
}

const FLAGS: &[&str] = &["wait-stdin"];
const MODE_OPTIONS: &[(&str, &[&str])] = &[
    ("bulk", &["bytes", "chunk"]),
    ("rr", &["sessions", "rounds", "size"]),
    ("dgram", &["seconds", "size", "rate", "sessions"]),
    ("sessions", &["count", "concurrency", "hold-ms", "wait-stdin"]),
];

fn parse_args() -> Result<Args, String> {
    let mut target = Target::new(Duration::from_secs(120));
    let mut threads = 1usize;
    let mut positional = Vec::new();
    let mut opts = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if target.take(&arg, &mut it, parse_hex_hash)? {
            continue;
        }
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(USAGE.to_string()),
            "--threads" => {
                let v = value("--threads")?;
                threads = v.parse().map_err(|_| format!("bad --threads {v:?}"))?;
            }
            s if s.starts_with("--") => {
                let name = &s[2..];
                if FLAGS.contains(&name) {
                    opts.push((name.to_string(), None));
                } else {
                    opts.push((name.to_string(), Some(value(s)?)));
                }
            }
            _ => positional.push(arg),
        }
    }
    let (url, cert_hash, timeout) = target.finish(USAGE)?;
    if positional.len() != 1 {
        return Err(format!("exactly one mode is expected\n{USAGE}"));
    }
    let mode = positional.remove(0);
    let allowed = MODE_OPTIONS
        .iter()
        .find(|(m, _)| *m == mode)
        .map(|(_, o)| *o)
        .ok_or_else(|| format!("unknown mode {mode:?}\n{USAGE}"))?;
    if let Some((bad, _)) = opts.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(format!("--{bad} is not an option of {mode}\n{USAGE}"));
    }
    Ok(Args { url, cert_hash, timeout, threads, mode, opts })
}

// ---------------------------------------------------------------------------------------------
// Content: every payload is a slice of one table, so filling and checking are memcpy/memcmp.

/// The table's period: a prime, so a shifted or repeated chunk of any power-of-two size does not
/// line up with the table by accident.
const PERIOD: usize = 65521;
/// Largest slice ever taken from the table at once.
const MAX_SLICE: usize = 256 * 1024;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..(PERIOD + MAX_SLICE) as u64)
            .map(|i| {
                let i = i % PERIOD as u64;
                ((i.wrapping_mul(131) ^ (i >> 9)) % 251) as u8
            })
            .collect()
    })
}

/// `len` bytes of content starting at stream offset `offset`.
fn content(offset: u64, len: usize) -> &'static [u8] {
    let start = (offset % PERIOD as u64) as usize;
    &table()[start..start + len]
}

// ---------------------------------------------------------------------------------------------
// Connections.

const SOCKET_BUFFER: usize = 4 << 20;

/// The client socket's port, to read its kernel drop counter at the end.
static CLIENT_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

/// Datagrams the kernel dropped because the client socket's receive buffer was full
/// (/proc/net/udp, last column), if the socket is still open.
fn client_socket_drops() -> Option<u64> {
    let port = CLIENT_PORT.load(Ordering::Relaxed);
    if port == 0 {
        return None;
    }
    let want = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(1) == Some(&want.as_str()) {
            cols.last()?.parse().ok()
        } else {
            None
        }
    })
}

fn make_endpoint(args: &Args, idle: Duration) -> Result<Endpoint<Client>, String> {
    // One UDP socket for all the client's sessions, with 4 MiB kernel buffers (what
    // net.core.rmem_max allows by default on Linux): 200 handshakes answered at once, or a
    // datagram burst, must not overflow the client's socket and be counted against the server.
    let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot bind the client socket: {e}"))?;
    if let Ok(addr) = socket.local_addr() {
        CLIENT_PORT.store(addr.port(), Ordering::Relaxed);
    }
    if let Ok(state) = wtransport::quinn::udp::UdpSocketState::new((&socket).into()) {
        let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER);
    }
    let mut config = ClientConfig::builder()
        .with_bind_socket(socket)
        .with_server_certificate_hashes([Sha256Digest::new(args.cert_hash)])
        .build();
    // The same client settings against every server. Windows wide enough that the client never
    // limits a transfer on loopback, and a deep datagram receive buffer so that what the client
    // cannot read at once is not counted as the server's loss.
    let mut transport = QuicTransportConfig::default();
    transport.max_idle_timeout(Some(idle.try_into().map_err(|_| "idle timeout too large".to_string())?));
    transport.keep_alive_interval(Some(idle / 3));
    transport.stream_receive_window((4u32 << 20).into());
    transport.receive_window((16u32 << 20).into());
    transport.send_window(16 << 20);
    transport.datagram_receive_buffer_size(Some(16 << 20));
    transport.datagram_send_buffer_size(1 << 20);
    config.quic_config_mut().transport_config(Arc::new(transport));
    Endpoint::client(config).map_err(|e| format!("cannot create the client endpoint: {e}"))
}

async fn connect(endpoint: &Endpoint<Client>, url: &str) -> Result<Connection, String> {
    endpoint.connect(ConnectOptions::builder(url).build()).await.map_err(|e| format!("connect: {e}"))
}

/// `count` sessions, connected at once, each its own QUIC connection from `endpoint`'s socket.
async fn connect_all(endpoint: &Arc<Endpoint<Client>>, url: &str, count: u64) -> Result<Vec<Connection>, String> {
    let connecting: Vec<_> = (0..count)
        .map(|_| {
            let (endpoint, url) = (endpoint.clone(), url.to_owned());
            tokio::spawn(async move { connect(&endpoint, &url).await })
        })
        .collect();
    let mut conns = Vec::with_capacity(connecting.len());
    for task in connecting {
        conns.push(task.await.map_err(|e| format!("connect task: {e}"))??);
    }
    Ok(conns)
}

async fn open_bi(conn: &Connection) -> Result<(SendStream, RecvStream), String> {
    conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?.await.map_err(|e| format!("open_bi: {e}"))
}

/// Closes the connection as an HTTP/3 client leaves and lets the endpoint flush the close.
async fn shutdown(endpoint: &Endpoint<Client>, conns: &[Connection]) {
    for conn in conns {
        conn.close(VarInt::from_u32(H3_NO_ERROR), b"");
    }
    let _ = tokio::time::timeout(Duration::from_millis(2000), endpoint.wait_idle()).await;
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[idx])
}

// ---------------------------------------------------------------------------------------------
// bulk: one bidi stream, written and read at the same time, every byte checked.

async fn bulk(args: &Args) -> Result<Report, String> {
    let total = args.num("bytes", 100_000_000)?;
    let chunk = (args.num("chunk", 64 * 1024)? as usize).clamp(1, MAX_SLICE);
    let endpoint = make_endpoint(args, Duration::from_secs(10))?;
    let conn = connect(&endpoint, &args.url).await?;
    let (mut send, mut recv) = open_bi(&conn).await?;
    let started = Instant::now();
    let write = async {
        let mut sent = 0u64;
        while sent < total {
            let n = ((total - sent) as usize).min(chunk);
            send.write_all(content(sent, n)).await.map_err(|e| format!("write at offset {sent}: {e}"))?;
            sent += n as u64;
        }
        // quinn's own finish: does not wait for the peer's acknowledgement as wtransport's does.
        send.quic_stream_mut().finish().map_err(|e| format!("finish: {e}"))?;
        Ok::<_, String>(started.elapsed())
    };
    let read = async {
        let mut buf = vec![0u8; MAX_SLICE];
        let mut received = 0u64;
        let mut first_mismatch = None;
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(n)) => {
                    if first_mismatch.is_none() && buf[..n] != *content(received, n) {
                        let j = (0..n).find(|&j| buf[j] != content(received + j as u64, 1)[0]).unwrap_or(0);
                        first_mismatch = Some(received + j as u64);
                    }
                    received += n as u64;
                    if received > total {
                        return Err(format!("more bytes came back than were sent ({received} > {total})"));
                    }
                }
                Ok(None) => return Ok((received, first_mismatch)),
                Err(e) => return Err(format!("read after {received} bytes: {e}")),
            }
        }
    };
    let (written, read) = tokio::join!(write, read);
    let elapsed = started.elapsed();
    let (received, first_mismatch) = read?;
    let write_time = written?;
    shutdown(&endpoint, &[conn]).await;
    let secs = elapsed.as_secs_f64();
    Ok(Report::ok()
        .with("bytes", total)
        .with("received", received)
        .with("seconds", secs)
        .with("writeSeconds", write_time.as_secs_f64())
        .with("mbPerSec", total as f64 / 1e6 / secs)
        .with("firstMismatch", first_mismatch)
        .require(received == total, || format!("received {received} of {total} bytes"))
        .require(first_mismatch.is_none(), || format!("content differs at offset {}", first_mismatch.unwrap_or(0))))
}

// ---------------------------------------------------------------------------------------------
// rr: request/response round trips, each on a fresh bidi stream.

/// The request of round `round` of session `session`: its ids, then table content.
fn rr_request(session: u64, round: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&((session << 32) | round).to_le_bytes());
    out.extend_from_slice(content(session.wrapping_mul(1_000_003) ^ round.wrapping_mul(7919), size));
    out.truncate(size);
    out
}

async fn rr_session(conn: Connection, session: u64, rounds: u64, size: usize) -> Result<Vec<f64>, String> {
    let mut latencies = Vec::with_capacity(rounds as usize);
    let mut buf = vec![0u8; size.max(64) * 2];
    for round in 0..rounds {
        let request = rr_request(session, round, size);
        let t = Instant::now();
        let (mut send, mut recv) = open_bi(&conn).await.map_err(|e| format!("session {session} round {round}: {e}"))?;
        send.write_all(&request).await.map_err(|e| format!("session {session} round {round}: write: {e}"))?;
        send.quic_stream_mut().finish().map_err(|e| format!("session {session} round {round}: finish: {e}"))?;
        let mut got = 0usize;
        loop {
            if got == buf.len() {
                return Err(format!("session {session} round {round}: more than {size} bytes came back"));
            }
            match recv.read(&mut buf[got..]).await {
                Ok(Some(n)) => got += n,
                Ok(None) => break,
                Err(e) => return Err(format!("session {session} round {round}: read after {got} bytes: {e}")),
            }
        }
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        if buf[..got] != request[..] {
            return Err(format!(
                "session {session} round {round}: the response ({got} bytes) differs from the request"
            ));
        }
    }
    Ok(latencies)
}

async fn rr(args: &Args) -> Result<Report, String> {
    let sessions = args.num("sessions", 10)?.clamp(1, 10_000);
    let rounds = args.num("rounds", 500)?.clamp(1, 10_000_000);
    let size = (args.num("size", 64)? as usize).clamp(8, 65536);
    let endpoint = Arc::new(make_endpoint(args, Duration::from_secs(10))?);
    let conns = connect_all(&endpoint, &args.url, sessions).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        tasks.push(tokio::spawn(rr_session(conn.clone(), i as u64, rounds, size)));
    }
    let mut latencies = Vec::with_capacity((sessions * rounds) as usize);
    let mut failure = None;
    for task in tasks {
        match task.await.map_err(|e| format!("session task: {e}")).and_then(|r| r) {
            Ok(l) => latencies.extend(l),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    shutdown(&endpoint, &conns).await;
    if let Some(e) = failure {
        return Err(e);
    }
    latencies.sort_by(f64::total_cmp);
    let done = latencies.len() as u64;
    Ok(Report::ok()
        .with("sessions", sessions)
        .with("rounds", rounds)
        .with("size", size)
        .with("streams", done)
        .with("seconds", elapsed)
        .with("streamsPerSec", done as f64 / elapsed)
        .with("p50Ms", percentile(&latencies, 0.50))
        .with("p99Ms", percentile(&latencies, 0.99))
        .with("maxMs", latencies.last().copied())
        .require(done == sessions * rounds, || format!("{done} of {} round trips completed", sessions * rounds)))
}

// ---------------------------------------------------------------------------------------------
// dgram: datagram echo, at a fixed rate or as fast as QUIC takes them.

/// Datagram `seq`: its sequence number, then table content that depends on it.
fn fill_datagram(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let n = buf.len() - 8;
    buf[8..].copy_from_slice(content(seq.wrapping_mul(997), n));
}

/// An HTTP/3 datagram: the quarter session id (a QUIC varint) and the payload.
fn split_h3_datagram(datagram: &[u8]) -> Option<(u64, &[u8])> {
    let first = *datagram.first()?;
    let len = 1usize << (first >> 6);
    let bytes = datagram.get(..len)?;
    let mut value = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
    }
    Some((value, &datagram[len..]))
}

/// Echoed datagrams: counted once each by sequence number, every one checked.
struct Tally {
    size: usize,
    seen: Vec<u64>,
    expected: Vec<u8>,
    echoed: u64,
    duplicates: u64,
    bad: Option<String>,
}

impl Tally {
    fn new(size: usize) -> Self {
        Tally { size, seen: Vec::new(), expected: vec![0u8; size], echoed: 0, duplicates: 0, bad: None }
    }

    fn check(&mut self, payload: &[u8]) {
        let size = self.size;
        if payload.len() != size {
            self.bad.get_or_insert_with(|| format!("a datagram of {} bytes came back, {size} sent", payload.len()));
            return;
        }
        let seq = u64::from_le_bytes(payload[..8].try_into().unwrap_or_default());
        fill_datagram(&mut self.expected, seq);
        if payload != self.expected.as_slice() {
            self.bad.get_or_insert_with(|| format!("datagram {seq} came back altered"));
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            if word > 100_000_000 {
                self.bad.get_or_insert_with(|| format!("datagram with impossible sequence number {seq}"));
                return;
            }
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
        } else {
            self.seen[word] |= 1 << bit;
            self.echoed += 1;
        }
    }
}

/// What one session of `dgram` sent and got back.
struct DgramSession {
    sent: u64,
    buffer_full: u64,
    send_time: Duration,
    echoed: u64,
    duplicates: u64,
    bad: Option<String>,
    /// Datagrams that reached the client's QUIC, read by the client or not.
    returned: u64,
    /// Of those, what the client's QUIC dropped before the reader took it (its buffer was full).
    client_dropped: u64,
    packets_lost: u64,
}

async fn dgram(args: &Args) -> Result<Report, String> {
    let seconds = args.num("seconds", 5)?.clamp(1, 600);
    let size = (args.num("size", 1000)? as usize).clamp(16, 65536);
    let rate = args.opt_num("rate")?.filter(|r| *r > 0);
    // Each session is its own QUIC connection (all from the one client socket). A server that
    // spreads its load over several endpoints (ServerConfig::workers) spreads connections, so
    // datagrams on one session only ever reach one of them.
    let sessions = args.num("sessions", 1)?.clamp(1, 1000);
    let endpoint = Arc::new(make_endpoint(args, Duration::from_secs(10))?);
    let conns = connect_all(&endpoint, &args.url, sessions).await?;
    for conn in &conns {
        match conn.max_datagram_size() {
            Some(max) if max >= size => {}
            other => return Err(format!("the session takes datagrams of at most {other:?} bytes, {size} wanted")),
        }
    }
    let duration = Duration::from_secs(seconds);
    // The fixed rate is the total: each session sends its share.
    let session_rate = rate.map(|r| r as f64 / sessions as f64);
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .iter()
        .map(|conn| tokio::spawn(dgram_session(conn.clone(), size, session_rate, started, duration)))
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.map_err(|e| format!("session task: {e}"))??);
    }
    let socket_drops = client_socket_drops();
    shutdown(&endpoint, &conns).await;
    let sum = |pick: fn(&DgramSession) -> u64| results.iter().map(pick).sum::<u64>();
    let (sent, returned, echoed) = (sum(|r| r.sent), sum(|r| r.returned), sum(|r| r.echoed));
    let bad = results.iter().find_map(|r| r.bad.clone());
    let secs = results.iter().map(|r| r.send_time).max().unwrap_or_default().as_secs_f64();
    let loss = if sent > 0 { 100.0 * sent.saturating_sub(returned) as f64 / sent as f64 } else { 0.0 };
    // Sessions that got nothing back: not a failure by itself, since an overloaded server may
    // serve some sessions and starve others (which is worth seeing, hence the count).
    let unanswered = results.iter().filter(|r| r.returned == 0).count();
    Ok(Report::ok()
        .with("size", size)
        .with("rate", rate)
        .with("sessions", sessions)
        .with("seconds", secs)
        .with("sent", sent)
        .with("returned", returned)
        .with("echoedChecked", echoed)
        .with("offeredPerSec", sent as f64 / secs)
        .with("echoedPerSec", returned as f64 / secs)
        .with("lossPercent", loss)
        .with("duplicates", sum(|r| r.duplicates))
        .with("sendBufferFull", sum(|r| r.buffer_full))
        .with("clientDropped", sum(|r| r.client_dropped))
        .with("clientSocketDrops", socket_drops)
        .with("packetsLost", sum(|r| r.packets_lost))
        // How evenly the sessions were served: each one's echoes.
        .with("returnedPerSession", J::Arr(results.iter().map(|r| J::Num(r.returned)).collect()))
        .with("sessionsUnanswered", unanswered)
        .require(bad.is_none(), || bad.clone().unwrap_or_default())
        .require(sent > 0, || "no datagram could be sent".into())
        .require(echoed > 0, || format!("none of {sent} datagrams came back"))
        .require(returned <= sent, || format!("{returned} echoes for {sent} datagrams")))
}

/// One session of `dgram`: sends from `started` for `duration` (at `rate` per second, else as
/// fast as QUIC takes them) while it reads and checks the echoes.
async fn dgram_session(
    conn: Connection,
    size: usize,
    rate: Option<f64>,
    started: Instant,
    duration: Duration,
) -> Result<DgramSession, String> {
    let sending = AtomicBool::new(true);

    let send = async {
        let quic = conn.quic_connection();
        let mut buf = vec![0u8; size];
        let mut seq = 0u64;
        // Times the client found QUIC's datagram send buffer full: datagrams not offered.
        let mut buffer_full = 0u64;
        loop {
            let now = Instant::now();
            if now >= started + duration {
                break;
            }
            match rate {
                None => {
                    let mut batch = 0;
                    while batch < 64 && quic.datagram_send_buffer_space() >= size + 16 {
                        fill_datagram(&mut buf, seq);
                        conn.send_datagram(&buf).map_err(|e| format!("send datagram {seq}: {e}"))?;
                        seq += 1;
                        batch += 1;
                    }
                    if batch == 0 {
                        buffer_full += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                Some(rate) => {
                    let due = (rate * (now - started).as_secs_f64()) as u64;
                    while seq < due {
                        if quic.datagram_send_buffer_space() < size + 16 {
                            buffer_full += 1;
                            break;
                        }
                        fill_datagram(&mut buf, seq);
                        conn.send_datagram(&buf).map_err(|e| format!("send datagram {seq}: {e}"))?;
                        seq += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        let send_time = started.elapsed();
        sending.store(false, Ordering::SeqCst);
        Ok::<_, String>((seq, buffer_full, send_time))
    };

    // The receiver reads from the QUIC connection itself rather than through wtransport's
    // `receive_datagram`, which hands datagrams over one at a time through a channel of one
    // slot: at a few hundred thousand per second that hand-over, not the server, was the limit.
    // wtransport's driver keeps at most one datagram for itself; it is drained at the end.
    let session_prefix = conn.session_id().into_u64() / 4;
    let receive = async {
        let quic = conn.quic_connection();
        let mut tally = Tally::new(size);
        let mut last_arrival = Instant::now();
        let mut sender_done_at: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                datagram = quic.read_datagram() => {
                    let datagram = datagram.map_err(|e| format!("receive datagram after {}: {e}", tally.echoed))?;
                    last_arrival = Instant::now();
                    match split_h3_datagram(&datagram) {
                        Some((prefix, payload)) if prefix == session_prefix => tally.check(payload),
                        _ => {
                            tally.bad.get_or_insert_with(|| "a datagram for another session came back".into());
                        }
                    }
                }
                _ = tick.tick() => {
                    if !sending.load(Ordering::SeqCst) {
                        let done_at = *sender_done_at.get_or_insert_with(Instant::now);
                        // Stragglers: wait until nothing came for 300 ms, at most 2 s.
                        if last_arrival.elapsed() > Duration::from_millis(300) || done_at.elapsed() > Duration::from_secs(2) {
                            break;
                        }
                    }
                }
            }
        }
        while let Ok(Ok(datagram)) = tokio::time::timeout(Duration::from_millis(1), conn.receive_datagram()).await {
            tally.check(&datagram);
        }
        Ok::<_, String>(tally)
    };

    let (sent, received) = tokio::join!(send, receive);
    let (sent, buffer_full, send_time) = sent?;
    let tally = received?;
    // Datagrams that reached the client's QUIC but not the reader (its receive buffer was full):
    // the client's loss, not the server's.
    let stats = conn.quic_connection().stats();
    let (echoed, duplicates) = (tally.echoed, tally.duplicates);
    let client_dropped = stats.frame_rx.datagram.saturating_sub(echoed + duplicates + u64::from(tally.bad.is_some()));
    Ok(DgramSession {
        sent,
        buffer_full,
        send_time,
        echoed,
        duplicates,
        bad: tally.bad,
        // What the server echoed is what reached the client's QUIC, read by the client or not.
        returned: stats.frame_rx.datagram.max(echoed),
        client_dropped,
        packets_lost: stats.path.lost_packets,
    })
}

// ---------------------------------------------------------------------------------------------
// sessions: K sessions opened at once, held, closed.

async fn sessions(args: &Args) -> Result<Report, String> {
    let count = args.num("count", 200)?.clamp(1, 100_000);
    let hold = Duration::from_millis(args.num("hold-ms", 1000)?);
    let wait_stdin = args.flag("wait-stdin");
    // Handshakes in flight at once; all K by default ("at once").
    let concurrency = (args.num("concurrency", count)? as usize).clamp(1, count as usize);
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    // Long enough for K handshakes queued behind each other (the idle timeout also bounds a
    // handshake); keep-alives keep the held ones open.
    let idle = if count > 1000 { Duration::from_secs(30) } else { Duration::from_secs(10) };
    let endpoint = Arc::new(make_endpoint(args, idle)?);
    let started = Instant::now();
    let mut connecting = Vec::new();
    for _ in 0..count {
        let endpoint = endpoint.clone();
        let url = args.url.clone();
        let gate = gate.clone();
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let conn = connect(&endpoint, &url).await?;
            Ok::<_, String>((conn, started.elapsed().as_secs_f64() * 1000.0))
        }));
    }
    let mut conns = Vec::new();
    let mut times = Vec::new();
    let mut failures = 0u64;
    let mut first_error = None;
    for task in connecting {
        match task.await.map_err(|e| format!("connect task: {e}")).and_then(|r| r) {
            Ok((conn, ms)) => {
                conns.push(conn);
                times.push(ms);
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let all_ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    times.sort_by(f64::total_cmp);
    eprintln!(
        "{{\"event\":\"ready\",\"sessions\":{},\"failed\":{failures},\"allReadyMs\":{all_ready_ms:.1}}}",
        conns.len()
    );
    let _ = std::io::stderr().flush();
    if wait_stdin {
        let line = tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
        });
        let _ = tokio::time::timeout(hold, line).await;
    } else {
        tokio::time::sleep(hold).await;
    }
    // Sessions that ended while held (idle timeout, server gone) count as failures too, and each
    // held session must still echo one small stream, content-checked.
    let alive = conns.iter().filter(|c| c.quic_connection().close_reason().is_none()).count();
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let mut checks = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        let (conn, gate) = (conn.clone(), gate.clone());
        checks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            rr_session(conn, 1_000_000 + i as u64, 1, 32).await
        }));
    }
    let mut echo_failures = 0u64;
    let mut echo_error = None;
    for check in checks {
        if let Err(e) = check.await.map_err(|e| e.to_string()).and_then(|r| r) {
            echo_failures += 1;
            echo_error.get_or_insert(e);
        }
    }
    let socket_drops = client_socket_drops();
    shutdown(&endpoint, &conns).await;
    Ok(Report::ok()
        .with("count", count)
        .with("opened", conns.len())
        .with("failed", failures)
        .with("aliveAtClose", alive)
        .with("allReadyMs", all_ready_ms)
        .with("p50ReadyMs", percentile(&times, 0.5))
        .with("clientSocketDrops", socket_drops)
        .with("firstError", first_error.clone())
        .require(failures == 0, || {
            format!("{failures} of {count} sessions failed: {}", first_error.unwrap_or_default())
        })
        .with("echoFailuresAfterHold", echo_failures)
        .require(alive == conns.len(), || {
            format!("{} of {} sessions ended while held", conns.len() - alive, conns.len())
        })
        .require(echo_failures == 0, || {
            format!("{echo_failures} held sessions failed their echo: {}", echo_error.unwrap_or_default())
        }))
}

// ---------------------------------------------------------------------------------------------

async fn run(args: &Args) -> Report {
    let result = match args.mode.as_str() {
        "bulk" => bulk(args).await,
        "rr" => rr(args).await,
        "dgram" => dgram(args).await,
        "sessions" => sessions(args).await,
        other => Err(format!("unknown mode {other:?}")),
    };
    result.unwrap_or_else(Report::fail)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            println!("{}", Report::fail(e.lines().next().unwrap_or("bad arguments")).to_json_with(FLOAT_DECIMALS));
            return ExitCode::from(2);
        }
    };
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            println!("{}", Report::fail(format!("tokio runtime: {e}")).to_json_with(FLOAT_DECIMALS));
            return ExitCode::from(1);
        }
    };
    let _ = table();
    let timeout = args.timeout;
    let report = runtime.block_on(async {
        match tokio::time::timeout(timeout, run(&args)).await {
            Ok(report) => report,
            Err(_) => Report::fail(format!("timed out after {} ms", timeout.as_millis())),
        }
    });
    let report = report
        .with("mode", args.mode.as_str())
        .with("threads", args.threads)
        .with("clientCpuSeconds", self_cpu_seconds());
    println!("{}", report.to_json_with(FLOAT_DECIMALS));
    let _ = std::io::stdout().flush();
    // Don't wait for lingering tasks (a blocked stdin read, a connection still closing).
    std::process::exit(if report.ok { 0 } else { 1 })
}
