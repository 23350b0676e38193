//! `wt-client`: an independent WebTransport test client built on the `wtransport` crate.
//!
//! It shares no code with the server under test. It pins the server certificate by its SHA-256
//! hash (never disabling validation), runs one scenario against the echo server in
//! `__test__/support/echo-server.mjs`, and prints exactly one JSON object as its last stdout line:
//! `{"ok":true,...}` (exit 0) or `{"ok":false,"error":"...",...}` (exit 1).
//!
//! Usage:
//!   wt-client --url https://127.0.0.1:PORT/echo --cert-hash <sha256 hex> [--timeout-ms N]
//!             [--origin VALUE] [--header NAME=VALUE]... [--stream-window BYTES] <scenario> [args]
//!
//! `--stream-window` sets the flow-control window the client grants each stream (quinn's default
//! is 1.25 MB), so that a server can queue more than that per stream.
//!
//! Scenarios: bidi-echo [bytes], uni-echo [bytes], server-streams, datagrams [count], bulk [bytes],
//! client-close <code> <reason...>, server-close <code> <reason...>, expect-refused,
//! reset-codes <code,code,...> (RESET_STREAM / STOP_SENDING application codes, both directions),
//! shutdown <downloads> <bytes> <uploads> <bytes> <pace-ms> <code> <reason...> (streams both ways
//! across a server close), flood <ms> (streams and datagrams pushed at a server that never reads,
//! then wait for the server to end the session), soak <sessions> <concurrency> [echoes] (sessions
//! opened and closed, `concurrency` at a time, each with `echoes` bidi echoes, a uni echo and a
//! datagram), send-order <uni|bidi> (two competing streams from the server, read at once; reports
//! which finished first: the server opens two uni streams, or answers two bidi streams the client
//! opens with a one-letter tag each; every server stream starts with its tag byte),
//! export-keying-material <label-hex>,<context-hex>,<length>... (the WebTransport exporter of
//! draft-ietf-webtrans-http3 §4.8 for each triple, as hex; context `-` means omitted).

use std::collections::HashSet;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tool_support::client::Target;
use tool_support::hash::{self, HashError};
use tool_support::json::{Report, J};
use wtransport::config::IpBindConfig;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::endpoint::ConnectOptions;
use wtransport::error::{ConnectingError, ConnectionError};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

const USAGE: &str = "usage: wt-client --url https://HOST:PORT/PATH --cert-hash <sha256 hex> \
[--timeout-ms N] [--origin VALUE] [--header NAME=VALUE]... [--stream-window BYTES] <scenario> [args]\n\
scenarios: bidi-echo [bytes] | uni-echo [bytes] | server-streams | datagrams [count] | bulk [bytes] | \
client-close <code> <reason> | server-close <code> <reason> | expect-refused | reset-codes <code,...> | \
pipe-errors <code,...> | soak <sessions> <concurrency> [echoes] | \
shutdown <downloads> <bytes> <uploads> <bytes> <pace-ms> <code> <reason> | flood <ms> | \
send-order <uni|bidi> | export-keying-material <label-hex>,<context-hex>,<length>...";

/// HTTP/3 H3_NO_ERROR, used to tear the connection down after a scenario.
const H3_NO_ERROR: u32 = 0x100;

// ---------------------------------------------------------------------------------------------
// Arguments.

struct Args {
    url: String,
    cert_hash: [u8; 32],
    timeout: Duration,
    headers: Vec<(String, String)>,
    /// Per-stream receive window, when not quinn's default.
    stream_window: Option<u32>,
    scenario: String,
    rest: Vec<String>,
}

fn parse_hex_hash(s: &str) -> Result<[u8; 32], String> {
    hash::parse_sha256(s).map_err(|e| match e {
        HashError::Length(n) => format!("--cert-hash must be 32 bytes of hex (64 digits), got {n} digits"),
        HashError::NotAscii | HashError::NotHex => format!("--cert-hash is not hex: {s:?}"),
    })
}

fn parse_args() -> Result<Args, String> {
    let mut target = Target::new(Duration::from_millis(20_000));
    let mut headers = Vec::new();
    let mut stream_window = None;
    let mut positional = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if target.take(&arg, &mut it, parse_hex_hash)? {
            continue;
        }
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(USAGE.to_string()),
            "--origin" => headers.push(("origin".to_string(), value("--origin")?)),
            "--header" => {
                let v = value("--header")?;
                let (k, val) = v
                    .split_once('=')
                    .or_else(|| v.split_once(':'))
                    .ok_or_else(|| format!("--header wants NAME=VALUE, got {v:?}"))?;
                headers.push((k.trim().to_ascii_lowercase(), val.trim().to_string()));
            }
            "--stream-window" => {
                let v = value("--stream-window")?;
                stream_window = Some(v.parse().map_err(|_| format!("bad --stream-window {v:?} (bytes, < 4 GiB)"))?);
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => positional.push(arg),
        }
    }
    let (url, cert_hash, timeout) = target.finish(USAGE)?;
    if positional.is_empty() {
        return Err(format!("no scenario given\n{USAGE}"));
    }
    let scenario = positional.remove(0);
    Ok(Args { url, cert_hash, timeout, headers, stream_window, scenario, rest: positional })
}

fn num_arg(rest: &[String], idx: usize, default: u64, what: &str) -> Result<u64, String> {
    match rest.get(idx) {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| format!("bad {what} {s:?}")),
    }
}

/// `<code> <reason...>` for the close scenarios; the reason is the remaining args joined by spaces.
fn close_args(rest: &[String]) -> Result<(u32, String), String> {
    let code = rest.first().ok_or("missing <code>")?;
    let code: u32 = code.parse().map_err(|_| format!("bad close code {code:?} (0..=4294967295)"))?;
    Ok((code, rest[1..].join(" ")))
}

// ---------------------------------------------------------------------------------------------
// Connection helpers.

/// Whether the URL's host is an IPv6 literal (`https://[::1]:443/...`), to pick the bind family.
fn url_host_is_v6(url: &str) -> bool {
    let after = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    if let Some(r) = after.strip_prefix('[') {
        return r.split(']').next().and_then(|h| h.parse::<IpAddr>().ok()).is_some();
    }
    false
}

fn make_endpoint(args: &Args) -> Result<Endpoint<Client>, String> {
    let bind = if url_host_is_v6(&args.url) { IpBindConfig::InAddrAnyV6 } else { IpBindConfig::InAddrAnyV4 };
    let config = ClientConfig::builder()
        .with_bind_config(bind)
        .with_server_certificate_hashes([Sha256Digest::new(args.cert_hash)])
        .max_idle_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("idle timeout: {e}"))?
        .keep_alive_interval(Some(Duration::from_secs(2)))
        .build();
    let mut config = config;
    if let Some(window) = args.stream_window {
        // The builder offers no window setting: the transport config is replaced whole, with
        // the idle timeout and keep-alive set above repeated.
        let mut transport = wtransport::quinn::TransportConfig::default();
        let idle =
            wtransport::quinn::IdleTimeout::try_from(Duration::from_secs(10)).map_err(|e| format!("idle: {e}"))?;
        transport
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(Duration::from_secs(2)))
            .stream_receive_window(window.into());
        config.quic_config_mut().transport_config(Arc::new(transport));
    }
    Endpoint::client(config).map_err(|e| format!("cannot create client endpoint: {e}"))
}

fn connect_options(args: &Args) -> ConnectOptions {
    let mut builder = ConnectOptions::builder(&args.url);
    for (k, v) in &args.headers {
        builder = builder.add_header(k, v);
    }
    builder.build()
}

fn conn_error_kind(e: &ConnectionError) -> &'static str {
    match e {
        ConnectionError::ConnectionClosed(_) => "ConnectionClosed",
        ConnectionError::ApplicationClosed(_) => "ApplicationClosed",
        ConnectionError::LocallyClosed => "LocallyClosed",
        ConnectionError::LocalH3Error(_) => "LocalH3Error",
        ConnectionError::TimedOut => "TimedOut",
        ConnectionError::QuicProto(_) => "QuicProto",
        ConnectionError::CidsExhausted => "CidsExhausted",
    }
}

fn connecting_error_kind(e: &ConnectingError) -> &'static str {
    match e {
        ConnectingError::InvalidUrl(_) => "InvalidUrl",
        ConnectingError::DnsLookup(_) => "DnsLookup",
        ConnectingError::DnsNotFound => "DnsNotFound",
        ConnectingError::ConnectionError(_) => "ConnectionError",
        ConnectingError::SessionRejected => "SessionRejected",
        ConnectingError::ReservedHeader(_) => "ReservedHeader",
        ConnectingError::EndpointStopping => "EndpointStopping",
        ConnectingError::CidsExhausted => "CidsExhausted",
        ConnectingError::InvalidServerName(_) => "InvalidServerName",
        ConnectingError::InvalidRemoteAddress(_) => "InvalidRemoteAddress",
    }
}

/// Closes the connection the way an HTTP/3 client normally leaves (H3_NO_ERROR) and lets the
/// endpoint flush the CONNECTION_CLOSE so the server sees the end promptly.
async fn shutdown(endpoint: &Endpoint<Client>, conn: &Connection, code: u32, reason: &[u8]) {
    conn.close(VarInt::from_u32(code), reason);
    let _ = tokio::time::timeout(Duration::from_millis(1000), endpoint.wait_idle()).await;
}

// ---------------------------------------------------------------------------------------------
// Stream helpers.

/// Deterministic content: byte `i` of every payload. 251 is prime so shifted or repeated chunks
/// of any power-of-two size do not line up by accident.
fn pattern(i: u64) -> u8 {
    ((i.wrapping_mul(131) ^ (i >> 9)) % 251) as u8
}

fn fill_pattern(buf: &mut [u8], offset: u64) {
    for (j, b) in buf.iter_mut().enumerate() {
        *b = pattern(offset + j as u64);
    }
}

/// Writes `total` pattern bytes in 64 KiB chunks, then finishes the stream.
async fn write_pattern(mut send: SendStream, total: u64) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < total {
        let n = ((total - sent) as usize).min(buf.len());
        fill_pattern(&mut buf[..n], sent);
        send.write_all(&buf[..n]).await.map_err(|e| format!("write at offset {sent}: {e}"))?;
        sent += n as u64;
    }
    send.finish().await.map_err(|e| format!("finish after {sent} bytes: {e}"))
}

struct Verified {
    received: u64,
    first_mismatch: Option<u64>,
}

/// Reads the stream to its end, comparing every byte against the pattern as it arrives.
async fn read_verify(recv: &mut RecvStream) -> Result<Verified, String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    let mut first_mismatch = None;
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                if first_mismatch.is_none() {
                    if let Some(j) = (0..n).find(|&j| buf[j] != pattern(received + j as u64)) {
                        first_mismatch = Some(received + j as u64);
                    }
                }
                received += n as u64;
            }
            Ok(None) => return Ok(Verified { received, first_mismatch }),
            Err(e) => return Err(format!("read after {received} bytes: {e}")),
        }
    }
}

async fn read_to_end(recv: &mut RecvStream, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > limit {
                    return Err(format!("stream longer than {limit} bytes"));
                }
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(format!("read after {} bytes: {e}", out.len())),
        }
    }
}

fn verdict(report: Report, bytes: u64, v: &Verified) -> Report {
    let report = report
        .with("bytes", bytes)
        .with("received", v.received)
        .with("firstMismatch", v.first_mismatch)
        .with("match", v.received == bytes && v.first_mismatch.is_none());
    report.require(v.received == bytes && v.first_mismatch.is_none(), || match v.first_mismatch {
        Some(at) => format!("echo differs at byte {at}"),
        None => format!("sent {bytes} bytes, got {} back", v.received),
    })
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

async fn bidi_echo(conn: &Connection, bytes: u64) -> Result<Report, String> {
    let started = Instant::now();
    let (send, mut recv) =
        conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?.await.map_err(|e| format!("open_bi: {e}"))?;
    // Write concurrently with reading so large payloads can't deadlock on flow control.
    let writer = tokio::spawn(write_pattern(send, bytes));
    let verified = read_verify(&mut recv).await;
    let written = writer.await.map_err(|e| format!("writer task: {e}"))?;
    let verified = verified?;
    written?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let report = verdict(Report::ok(), bytes, &verified).with("elapsedMs", ms);
    let mbps = if ms > 0.0 { bytes as f64 * 8.0 / 1000.0 / ms } else { 0.0 };
    Ok(report.with("mbitPerSec", mbps))
}

async fn uni_echo(conn: &Connection, bytes: u64) -> Result<Report, String> {
    let send =
        conn.open_uni().await.map_err(|e| format!("open_uni: {e}"))?.await.map_err(|e| format!("open_uni: {e}"))?;
    let writer = tokio::spawn(write_pattern(send, bytes));
    let mut recv = conn.accept_uni().await.map_err(|e| format!("accept_uni (server echo stream): {e}"))?;
    let verified = read_verify(&mut recv).await;
    let written = writer.await.map_err(|e| format!("writer task: {e}"))?;
    let verified = verified?;
    written?;
    Ok(verdict(Report::ok(), bytes, &verified))
}

/// Sends one command line on a fresh bidi stream and returns what the server sent back on it.
async fn command(conn: &Connection, line: &str) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) =
        conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?.await.map_err(|e| format!("open_bi: {e}"))?;
    send.write_all(line.as_bytes()).await.map_err(|e| format!("write command: {e}"))?;
    send.finish().await.map_err(|e| format!("finish command: {e}"))?;
    read_to_end(&mut recv, 1 << 20).await
}

async fn server_streams(conn: &Connection) -> Result<Report, String> {
    let reply = command(conn, "open-bidi\n").await.map_err(|e| format!("open-bidi command: {e}"))?;
    let (_send, mut recv) = conn.accept_bi().await.map_err(|e| format!("accept_bi: {e}"))?;
    let bidi = read_to_end(&mut recv, 1 << 20).await.map_err(|e| format!("server bidi: {e}"))?;
    let bidi = String::from_utf8_lossy(&bidi).into_owned();

    let reply2 = command(conn, "open-uni\n").await.map_err(|e| format!("open-uni command: {e}"))?;
    let mut recv = conn.accept_uni().await.map_err(|e| format!("accept_uni: {e}"))?;
    let uni = read_to_end(&mut recv, 1 << 20).await.map_err(|e| format!("server uni: {e}"))?;
    let uni = String::from_utf8_lossy(&uni).into_owned();

    let good = bidi == "server bidi" && uni == "server uni";
    Ok(Report::ok()
        .with("bidi", bidi.as_str())
        .with("uni", uni.as_str())
        .with("commandReplyBytes", (reply.len() + reply2.len()) as u64)
        .require(good, || format!("unexpected contents: bidi={bidi:?} uni={uni:?}")))
}

const DGRAM_LEN: usize = 64;

fn datagram_payload(i: u32) -> Vec<u8> {
    let mut p = format!("dg:{i:08}:").into_bytes();
    let start = p.len();
    p.resize(DGRAM_LEN, 0);
    fill_pattern(&mut p[start..], i as u64 * 977);
    p
}

fn datagram_index(payload: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(payload.get(3..11)?).ok()?;
    let i: u32 = s.parse().ok()?;
    (payload == datagram_payload(i).as_slice()).then_some(i)
}

async fn datagrams(conn: &Connection, count: u32) -> Result<Report, String> {
    const MAX_ROUNDS: u32 = 4; // the first send plus up to 3 resend rounds
    let received: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let stats: Arc<Mutex<(u64, u64)>> = Arc::default(); // (echoes incl. duplicates, malformed)
    let done = Arc::new(tokio::sync::Notify::new());

    let receiver = {
        let (conn, received, stats, done) = (conn.clone(), received.clone(), stats.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                let dg = match conn.receive_datagram().await {
                    Ok(dg) => dg,
                    Err(e) => return Err::<(), String>(format!("receive_datagram: {e}")),
                };
                let payload = dg.payload();
                let mut st = stats.lock().unwrap();
                st.0 += 1;
                match datagram_index(&payload) {
                    Some(i) if i < count => {
                        let mut set = received.lock().unwrap();
                        set.insert(i);
                        if set.len() as u32 == count {
                            done.notify_one();
                        }
                    }
                    _ => st.1 += 1,
                }
            }
        })
    };

    if let Some(max) = conn.max_datagram_size() {
        if max < DGRAM_LEN {
            return Err(format!("max datagram size {max} < {DGRAM_LEN}"));
        }
    } else {
        return Err("peer does not support datagrams (max_datagram_size is None)".into());
    }

    let mut sent_total = 0u64;
    let mut rounds = 0u32;
    let mut send_errors = 0u64;
    while rounds < MAX_ROUNDS {
        let missing: Vec<u32> = {
            let set = received.lock().unwrap();
            (0..count).filter(|i| !set.contains(i)).collect()
        };
        if missing.is_empty() {
            break;
        }
        rounds += 1;
        for i in missing {
            match conn.send_datagram(datagram_payload(i)) {
                Ok(()) => sent_total += 1,
                Err(e) => {
                    send_errors += 1;
                    if send_errors > count as u64 * 2 {
                        return Err(format!("send_datagram: {e}"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Give the echoes time to come back before deciding what to resend.
        let wait = Duration::from_millis(if rounds == MAX_ROUNDS { 1500 } else { 700 });
        let _ = tokio::time::timeout(wait, async {
            while (received.lock().unwrap().len() as u32) < count {
                done.notified().await;
            }
        })
        .await;
    }
    if receiver.is_finished() {
        if let Ok(Err(e)) = receiver.await {
            return Err(e);
        }
    } else {
        receiver.abort();
    }
    let (got, missing) = {
        let set = received.lock().unwrap();
        let missing: Vec<J> = (0..count).filter(|i| !set.contains(i)).take(20).map(J::from).collect();
        (set.len() as u32, missing)
    };
    let (echoes, malformed) = *stats.lock().unwrap();
    Ok(Report::ok()
        .with("count", count)
        .with("received", got)
        .with("sent", sent_total)
        .with("rounds", rounds)
        .with("echoes", echoes)
        .with("malformed", malformed)
        .with("missingFirst20", J::Arr(missing))
        .with("maxDatagramSize", conn.max_datagram_size())
        .require(got == count && malformed == 0, || {
            format!("{got} of {count} datagrams echoed after {rounds} rounds ({malformed} malformed)")
        }))
}

async fn client_close(endpoint: &Endpoint<Client>, conn: &Connection, code: u32, reason: &str) -> Report {
    // wtransport 0.7 has no way to send a CLOSE_WEBTRANSPORT_SESSION capsule: its
    // `Connection::close` closes the whole QUIC connection with an application CONNECTION_CLOSE
    // frame carrying `code` and `reason`.
    shutdown(endpoint, conn, code, reason.as_bytes()).await;
    // Brief pause so the server side observes the close before the caller inspects it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Report::ok()
        .with("code", code)
        .with("reason", reason)
        .with("method", "quic-connection-close")
        .with("closed", conn.closed().await.to_string())
}

async fn server_close(conn: &Connection, code: u32, reason: &str) -> Result<Report, String> {
    let (mut send, _recv) =
        conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?.await.map_err(|e| format!("open_bi: {e}"))?;
    send.write_all(format!("close {code} {reason}\n").as_bytes()).await.map_err(|e| format!("write command: {e}"))?;
    // finish() waits for the ack, which may race with the session close: don't wait for it here.
    tokio::spawn(async move {
        let _ = send.finish().await;
    });

    // The session's end is reported through the driver (accept_* fail with the capsule's
    // ApplicationClosed); `closed()` only reports the QUIC connection's fate.
    let session_end = loop {
        match conn.accept_bi().await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    let quic = tokio::time::timeout(Duration::from_secs(3), conn.closed()).await.ok();
    let via = match (&session_end, &quic) {
        (ConnectionError::ApplicationClosed(_), Some(ConnectionError::LocallyClosed)) => "capsule",
        (ConnectionError::ApplicationClosed(_), Some(ConnectionError::ApplicationClosed(_))) => "connection-close",
        _ => "other",
    };
    let mut report = Report::ok()
        .with("kind", conn_error_kind(&session_end))
        .with("via", via)
        .with("text", session_end.to_string())
        .with("quicClose", quic.as_ref().map(|q| q.to_string()));
    match &session_end {
        ConnectionError::ApplicationClosed(close) => {
            let got_code = u64::from(close.code());
            let got_reason = String::from_utf8_lossy(close.reason()).into_owned();
            let good = got_code == code as u64 && got_reason == reason;
            report = report
                .with("code", got_code)
                .with("reason", got_reason.as_str())
                .require(good, || format!("expected close {code} {reason:?}, got {got_code} {got_reason:?}"));
        }
        other => {
            report = report
                .with("code", J::Null)
                .with("reason", J::Null)
                .require(false, || format!("session ended without an application close: {other}"));
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Streams across a server shutdown.
//
// Every stream (both ways) starts with its index as a 4-byte big-endian number, then `bytes` bytes
// of `shutdown_pattern(index, offset)`, so a stream's content cannot pass for another's. The
// same formula is in __test__/shutdown.test.mjs.

fn shutdown_pattern(stream: u32, i: u64) -> u8 {
    ((i * 7 + u64::from(stream) * 13 + (i >> 10)) % 251) as u8
}

/// How one server-to-client stream ended, as the client saw it.
struct Download {
    index: Option<u32>,
    received: u64,
    first_mismatch: Option<u64>,
    /// `None` for a clean FIN, else the read error (a reset, the session or connection gone).
    error: Option<String>,
}

async fn read_download(mut recv: RecvStream, bytes: u64) -> Download {
    let mut head = [0u8; 4];
    if let Err(e) = recv.read_exact(&mut head).await {
        return Download { index: None, received: 0, first_mismatch: None, error: Some(format!("header: {e}")) };
    }
    let index = u32::from_be_bytes(head);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut received, mut first_mismatch) = (0u64, None);
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                if first_mismatch.is_none() {
                    if let Some(j) = (0..n).find(|&j| buf[j] != shutdown_pattern(index, received + j as u64)) {
                        first_mismatch = Some(received + j as u64);
                    }
                }
                received += n as u64;
                if received > bytes && first_mismatch.is_none() {
                    first_mismatch = Some(bytes);
                }
            }
            Ok(None) => return Download { index: Some(index), received, first_mismatch, error: None },
            Err(e) => return Download { index: Some(index), received, first_mismatch, error: Some(e.to_string()) },
        }
    }
}

/// Writes one paced upload (index header, then the pattern in 16 KiB chunks with `pace` between
/// them) and finishes it.
async fn write_upload(conn: Connection, index: u32, bytes: u64, pace: Duration) -> Result<(), String> {
    let mut send =
        conn.open_uni().await.map_err(|e| format!("open_uni: {e}"))?.await.map_err(|e| format!("open_uni: {e}"))?;
    send.write_all(&index.to_be_bytes()).await.map_err(|e| format!("upload {index} header: {e}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    while sent < bytes {
        let n = ((bytes - sent) as usize).min(buf.len());
        for (j, b) in buf[..n].iter_mut().enumerate() {
            *b = shutdown_pattern(index, sent + j as u64);
        }
        send.write_all(&buf[..n]).await.map_err(|e| format!("upload {index} at {sent}: {e}"))?;
        sent += n as u64;
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    send.finish().await.map_err(|e| format!("upload {index} finish after {sent} bytes: {e}"))
}

/// What `shutdown` does: `downloads` server-opened uni streams of `download_bytes` each are
/// expected, and `uploads` streams of `upload_bytes` are sent, paced.
struct ShutdownPlan {
    downloads: u32,
    download_bytes: u64,
    uploads: u32,
    upload_bytes: u64,
    pace: Duration,
    code: u32,
    reason: String,
}

/// The server sends while this client uploads, and the server shuts down meanwhile: every byte
/// must arrive both ways with a clean end, and the session must then close with the server's
/// code and reason.
async fn shutdown_streams(conn: &Connection, plan: ShutdownPlan) -> Result<Report, String> {
    let ShutdownPlan { downloads: streams, download_bytes: bytes, code, ref reason, .. } = plan;
    let uploads: Vec<_> =
        (0..plan.uploads).map(|i| tokio::spawn(write_upload(conn.clone(), i, plan.upload_bytes, plan.pace))).collect();
    let mut downloads = Vec::new();
    let session_end = loop {
        match conn.accept_uni().await {
            Ok(recv) => downloads.push(tokio::spawn(read_download(recv, bytes))),
            Err(e) => break e,
        }
    };
    let mut results = Vec::new();
    for task in downloads {
        results.push(task.await.map_err(|e| format!("download task: {e}"))?);
    }
    let mut upload_errors = Vec::new();
    for task in uploads {
        if let Err(e) = task.await.map_err(|e| format!("upload task: {e}"))? {
            upload_errors.push(e);
        }
    }
    let mut seen = HashSet::new();
    let mut wrong = Vec::new();
    let mut total = 0u64;
    for d in &results {
        total += d.received;
        let label = d.index.map_or("?".to_string(), |i| i.to_string());
        if let Some(i) = d.index {
            if i >= streams || !seen.insert(i) {
                wrong.push(format!("stream index {i} unexpected or repeated"));
            }
        }
        if let Some(e) = &d.error {
            wrong.push(format!("download {label} ended without FIN after {} bytes: {e}", d.received));
        } else if d.received != bytes || d.first_mismatch.is_some() {
            wrong.push(format!(
                "download {label}: {} of {bytes} bytes, first mismatch {:?}",
                d.received, d.first_mismatch
            ));
        }
    }
    if results.len() != streams as usize {
        wrong.push(format!("{} download streams arrived, expected {streams}", results.len()));
    }
    wrong.extend(upload_errors.iter().cloned());
    let (got_code, got_reason) = match &session_end {
        ConnectionError::ApplicationClosed(close) => {
            (Some(u64::from(close.code())), Some(String::from_utf8_lossy(close.reason()).into_owned()))
        }
        _ => (None, None),
    };
    if got_code != Some(u64::from(code)) || got_reason.as_deref() != Some(reason.as_str()) {
        wrong.push(format!("session ended with {session_end}, expected close {code} {reason:?}"));
    }
    let complete = results.iter().filter(|d| d.error.is_none() && d.received == bytes && d.first_mismatch.is_none());
    Ok(Report::ok()
        .with("downloads", results.len())
        .with("downloadsComplete", complete.count())
        .with("downloadBytes", total)
        .with("uploadsComplete", plan.uploads as usize - upload_errors.len())
        .with("sessionEnd", conn_error_kind(&session_end))
        .with("code", got_code)
        .with("reason", got_reason)
        .with("problems", J::Arr(wrong.iter().take(10).map(|w| J::from(w.as_str())).collect()))
        .require(wrong.is_empty(), || wrong.join("; ")))
}

// ---------------------------------------------------------------------------------------------
// A client pushing at a server that never reads.

/// For `push_for`: opens every stream the server allows (both kinds), writes into each until
/// flow control stops it, and sends datagrams back to back; then waits, without closing, until
/// the server ends the session.
async fn flood(conn: &Connection, push_for: Duration) -> Result<Report, String> {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let deadline = tokio::time::Instant::now() + push_for;
    let written = Arc::new(AtomicU64::new(0));
    let writer = |mut send: SendStream, written: Arc<AtomicU64>| async move {
        let chunk = vec![0x5au8; 64 * 1024];
        while send.write_all(&chunk).await.is_ok() {
            written.fetch_add(chunk.len() as u64, Relaxed);
        }
    };
    let (opened_bidi, opened_uni) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let bidi = {
        let (conn, opened, written) = (conn.clone(), opened_bidi.clone(), written.clone());
        tokio::spawn(async move {
            while let Ok(Some((send, _recv))) = tokio::time::timeout_at(deadline, open_bi_stream(&conn)).await {
                opened.fetch_add(1, Relaxed);
                tokio::spawn(writer(send, written.clone()));
            }
        })
    };
    let uni = {
        let (conn, opened, written) = (conn.clone(), opened_uni.clone(), written.clone());
        tokio::spawn(async move {
            while let Ok(Some(send)) = tokio::time::timeout_at(deadline, open_uni_stream(&conn)).await {
                opened.fetch_add(1, Relaxed);
                tokio::spawn(writer(send, written.clone()));
            }
        })
    };
    let mut datagrams = 0u64;
    let payload = vec![0xa5u8; 1000.min(conn.max_datagram_size().unwrap_or(0))];
    while tokio::time::Instant::now() < deadline && !payload.is_empty() {
        if conn.send_datagram(&payload).is_ok() {
            datagrams += 1;
        }
        if datagrams.is_multiple_of(32) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let _ = bidi.await;
    let _ = uni.await;
    let pushed = Report::ok()
        .with("openedBidi", opened_bidi.load(Relaxed))
        .with("openedUni", opened_uni.load(Relaxed))
        .with("bytesWritten", written.load(Relaxed))
        .with("datagramsSent", datagrams);
    println!("{}", pushed.to_json());
    let session_end = loop {
        if let Err(e) = conn.accept_bi().await {
            break e;
        }
    };
    let report = pushed.with("sessionEnd", conn_error_kind(&session_end));
    Ok(match &session_end {
        ConnectionError::ApplicationClosed(close) => report
            .with("code", u64::from(close.code()))
            .with("reason", String::from_utf8_lossy(close.reason()).into_owned()),
        other => report.with("text", other.to_string()),
    })
}

async fn open_bi_stream(conn: &Connection) -> Option<(SendStream, RecvStream)> {
    conn.open_bi().await.ok()?.await.ok()
}

async fn open_uni_stream(conn: &Connection) -> Option<SendStream> {
    conn.open_uni().await.ok()?.await.ok()
}

// ---------------------------------------------------------------------------------------------
// Stream error codes.
//
// wtransport 0.7 does NOT map WebTransport application codes: `SendStream::reset(VarInt)` and
// `RecvStream::stop(VarInt)` hand their argument to quinn unchanged (driver/streams/mod.rs,
// `varint_w2q`), and `StreamReadError::Reset` / `StreamWriteError::Stopped` carry the peer's raw
// HTTP/3 code (`varint_q2w`). So this tool maps both ways itself, as the WebTransport over HTTP/3
// draft says: an application code c (u32) travels as 0x52e4a40fa8db + c + floor(c / 0x1e), skipping
// the reserved (GREASE) codepoints 0x1f * N + 0x21.

const WT_CODE_FIRST: u64 = 0x52e4a40fa8db;
const WT_CODE_LAST: u64 = 0x52e5ac983162; // wt_to_h3(u32::MAX)

fn wt_to_h3(code: u32) -> u64 {
    WT_CODE_FIRST + code as u64 + code as u64 / 0x1e
}

/// The application code an HTTP/3 code carries; None outside the WebTransport range or on a
/// reserved codepoint.
fn h3_to_wt(h3: u64) -> Option<u32> {
    if !(WT_CODE_FIRST..=WT_CODE_LAST).contains(&h3) || (h3 - 0x21).is_multiple_of(0x1f) {
        return None;
    }
    let shifted = h3 - WT_CODE_FIRST;
    u32::try_from(shifted - shifted / 0x1f).ok()
}

fn h3_varint(code: u32) -> VarInt {
    VarInt::try_from_u64(wt_to_h3(code)).expect("WebTransport codes fit a varint")
}

/// `0,7,4294967295` → codes.
fn code_list(rest: &[String]) -> Result<Vec<u32>, String> {
    let list = rest.first().ok_or("missing <code,code,...>")?;
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<u32>().map_err(|_| format!("bad stream error code {s:?} (0..=4294967295)")))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|v| if v.is_empty() { Err("no codes given".to_string()) } else { Ok(v) })
}

/// `send-order`: two streams from the server, each starting with its tag byte, read at once to
/// their ends. Reports the tags in the order the streams finished, each one's length, and how
/// much of the other stream had arrived when each finished: with priorities, the first to finish
/// was sent (nearly) alone.
async fn send_order(conn: &Connection, mode: &str) -> Result<Report, String> {
    let mut streams = Vec::new();
    // The bidi send halves stay open until the reads are done, as a browser's would.
    let mut requests = Vec::new();
    match mode {
        "uni" => {
            for _ in 0..2 {
                streams.push(conn.accept_uni().await.map_err(|e| format!("accept_uni: {e}"))?);
            }
        }
        "bidi" => {
            for tag in ["A", "B"] {
                let (mut send, recv) = conn
                    .open_bi()
                    .await
                    .map_err(|e| format!("open_bi: {e}"))?
                    .await
                    .map_err(|e| format!("open_bi: {e}"))?;
                send.write_all(tag.as_bytes()).await.map_err(|e| format!("write tag: {e}"))?;
                streams.push(recv);
                requests.push(send);
            }
        }
        other => return Err(format!("send-order wants uni or bidi, got {other:?}")),
    }
    let progress: Arc<[std::sync::atomic::AtomicU64; 2]> = Arc::default();
    let finished: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();
    let readers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut recv)| {
            let (progress, finished) = (progress.clone(), finished.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let (mut tag, mut total) = (None, 0u64);
                loop {
                    match recv.read(&mut buf).await {
                        Ok(Some(n)) => {
                            if tag.is_none() && n > 0 {
                                tag = Some(char::from(buf[0]).to_string());
                            }
                            total += n as u64;
                            progress[i].store(total, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(None) => break,
                        Err(e) => return Err(format!("stream {i}: read after {total} bytes: {e}")),
                    }
                }
                let other = progress[1 - i].load(std::sync::atomic::Ordering::Relaxed);
                finished.lock().unwrap().push((tag.unwrap_or_default(), total, other));
                Ok(())
            })
        })
        .collect();
    for reader in readers {
        reader.await.map_err(|e| format!("reader task: {e}"))??;
    }
    for mut send in requests {
        let _ = send.finish().await;
    }
    let finished = std::mem::take(&mut *finished.lock().unwrap());
    let field = |f: fn(&(String, u64, u64)) -> J| J::Arr(finished.iter().map(f).collect());
    Ok(Report::ok()
        .with("finished", field(|f| J::Str(f.0.clone())))
        .with("bytes", field(|f| J::Num(f.1)))
        .with("otherBytesAtFinish", field(|f| J::Num(f.2))))
}

/// The WebTransport Exporter Context of draft-ietf-webtrans-http3 §4.8, written here from the
/// draft rather than shared with the server: session id (64 bits), then the label and the
/// context, each after its 8-bit length.
fn webtransport_exporter_context(session_id: u64, label: &[u8], context: &[u8]) -> Result<Vec<u8>, String> {
    let label_len = u8::try_from(label.len()).map_err(|_| "label longer than 255 bytes".to_string())?;
    let context_len = u8::try_from(context.len()).map_err(|_| "context longer than 255 bytes".to_string())?;
    let mut out = session_id.to_be_bytes().to_vec();
    out.push(label_len);
    out.extend_from_slice(label);
    out.push(context_len);
    out.extend_from_slice(context);
    Ok(out)
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or_default(), 16).map_err(|_| format!("bad hex {s:?}")))
        .collect()
}

/// One `<label-hex>,<context-hex>,<length>` of `export-keying-material`.
type ExportRequest = (Vec<u8>, Vec<u8>, usize);

fn export_requests(rest: &[String]) -> Result<Vec<ExportRequest>, String> {
    if rest.is_empty() {
        return Err("missing <label-hex>,<context-hex>,<length>".into());
    }
    rest.iter()
        .map(|arg| {
            let parts: Vec<&str> = arg.split(',').collect();
            let [label, context, length] = parts[..] else {
                return Err(format!("want <label-hex>,<context-hex>,<length>, got {arg:?}"));
            };
            let context = if context == "-" { Vec::new() } else { parse_hex(context)? };
            Ok((parse_hex(label)?, context, length.parse().map_err(|_| format!("bad length {length:?}"))?))
        })
        .collect()
}

/// `export-keying-material`: the session's keying material for each request, through
/// wtransport's plain TLS exporter with the WebTransport label and context. Then waits (bounded)
/// for the server to close the session, so that the server can export from it meanwhile.
async fn export_keying_material(conn: &Connection, requests: &[ExportRequest]) -> Result<Report, String> {
    let session_id = conn.session_id().into_u64();
    let mut materials = Vec::new();
    for (label, context, length) in requests {
        let exporter_context = webtransport_exporter_context(session_id, label, context)?;
        let mut output = vec![0u8; *length];
        conn.export_keying_material(&mut output, b"EXPORTER-WebTransport", &exporter_context)
            .map_err(|e| format!("export_keying_material: {e}"))?;
        materials.push(J::Str(hash::hex(&output)));
    }
    let closed = tokio::time::timeout(STEP, conn.closed()).await.is_ok();
    Ok(Report::ok().with("sessionId", session_id).with("materials", J::Arr(materials)).with("serverClosed", closed))
}

const STEP: Duration = Duration::from_secs(5);

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(STEP, fut).await.unwrap_or_else(|_| Err(format!("{what}: no outcome within {STEP:?}")))
}

async fn open_bi(conn: &Connection) -> Result<(SendStream, RecvStream), String> {
    conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?.await.map_err(|e| format!("open_bi: {e}"))
}

/// What a peer's reset looked like from a read: the raw HTTP/3 code and the application code in it.
fn reset_report(code: Option<u32>, outcome: &Result<Option<usize>, wtransport::error::StreamReadError>) -> J {
    use wtransport::error::StreamReadError;
    let (kind, raw) = match outcome {
        Ok(Some(_)) => ("data", None),
        Ok(None) => ("finished", None),
        Err(StreamReadError::Reset(v)) => ("Reset", Some(v.into_inner())),
        Err(StreamReadError::NotConnected) => ("NotConnected", None),
        Err(StreamReadError::QuicProto) => ("QuicProto", None),
    };
    let mut fields = Vec::new();
    if let Some(c) = code {
        fields.push(("code", J::from(c)));
    }
    fields.push(("error", J::from(kind)));
    fields.push(("raw", J::from(raw)));
    fields.push(("decoded", J::from(raw.and_then(h3_to_wt))));
    J::obj(fields)
}

/// Reads until the stream ends or fails, discarding data; returns the final outcome.
async fn read_until_end(recv: &mut RecvStream) -> Result<Option<usize>, wtransport::error::StreamReadError> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(_)) => continue,
            other => return other,
        }
    }
}

/// Opens a bidi stream and has `probe` echoed on it, so the server is reading and writing it.
async fn echoed_stream(conn: &Connection, probe: &[u8]) -> Result<(SendStream, RecvStream), String> {
    let (mut send, mut recv) = open_bi(conn).await?;
    send.write_all(probe).await.map_err(|e| format!("write probe: {e}"))?;
    let mut echoed = vec![0u8; probe.len()];
    recv.read_exact(&mut echoed).await.map_err(|e| format!("read probe echo: {e}"))?;
    if echoed != probe {
        return Err(format!("probe echo differs: {:?}", String::from_utf8_lossy(&echoed)));
    }
    Ok((send, recv))
}

/// Writes 1000-byte chunks every 20 ms until a write fails (at most 100): how many succeeded,
/// and the failure.
async fn write_until_error(send: &mut SendStream) -> (u64, Option<wtransport::error::StreamWriteError>) {
    let chunk = vec![0u8; 1000];
    for writes in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Err(e) = send.write_all(&chunk).await {
            return (writes, Some(e));
        }
    }
    (100, None)
}

/// A write failure's kind and raw HTTP/3 code, for the report.
fn write_failure(failure: Option<&wtransport::error::StreamWriteError>) -> (&'static str, Option<u64>) {
    use wtransport::error::StreamWriteError;
    match failure {
        None => ("no error", None),
        Some(StreamWriteError::Stopped(v)) => ("Stopped", Some(v.into_inner())),
        Some(StreamWriteError::NotConnected) => ("NotConnected", None),
        Some(StreamWriteError::Closed) => ("Closed", None),
        Some(StreamWriteError::QuicProto) => ("QuicProto", None),
    }
}

/// (a) The client resets its sending side with `code` after the echo server has the stream (its
/// first chunk came back): the server's read rejects with `code`. The server then aborts its own
/// side without a code; what arrives for that is reported as `serverAbortAfter`.
async fn client_reset_step(conn: &Connection, code: u32) -> Result<J, String> {
    let (mut send, mut recv) = echoed_stream(conn, b"client-reset probe\n").await?;
    send.reset(h3_varint(code)).map_err(|e| format!("reset: {e}"))?;
    let after = tokio::time::timeout(Duration::from_secs(2), read_until_end(&mut recv)).await;
    let after = match after {
        Ok(outcome) => reset_report(None, &outcome),
        Err(_) => J::from("pending"),
    };
    Ok(J::obj([("code", J::from(code)), ("rawSent", J::from(wt_to_h3(code))), ("serverAbortAfter", after)]))
}

/// (b) `reset <code>`: the server aborts its writer with `code`; the client's read must fail with it.
async fn server_reset_step(conn: &Connection, code: u32) -> Result<J, String> {
    let (mut send, mut recv) = open_bi(conn).await?;
    send.write_all(format!("reset {code}\n").as_bytes()).await.map_err(|e| format!("write command: {e}"))?;
    let outcome = read_until_end(&mut recv).await;
    Ok(reset_report(Some(code), &outcome))
}

/// (c) The client stops reading with `code` after its first chunk was echoed, then keeps sending
/// so the server has something to echo: the server's next write rejects with `code`.
async fn client_stop_step(conn: &Connection, code: u32) -> Result<J, String> {
    let (mut send, recv) = echoed_stream(conn, b"client-stop probe\n").await?;
    recv.stop(h3_varint(code));
    let mut extra_writes = 0u64;
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        if send.write_all(format!("more data {i}\n").as_bytes()).await.is_err() {
            break;
        }
        extra_writes += 1;
    }
    let _ = send.finish().await;
    Ok(J::obj([
        ("code", J::from(code)),
        ("rawSent", J::from(wt_to_h3(code))),
        ("writesAfterStop", J::from(extra_writes)),
    ]))
}

/// (d) `stop <code>`: the server cancels its reader with `code`; the client's writes must fail with it.
async fn server_stop_step(conn: &Connection, code: u32) -> Result<J, String> {
    let (mut send, _recv) = open_bi(conn).await?;
    send.write_all(format!("stop {code}\n").as_bytes()).await.map_err(|e| format!("write command: {e}"))?;
    let (writes, failure) = write_until_error(&mut send).await;
    let (kind, raw) = write_failure(failure.as_ref());
    Ok(J::obj([
        ("code", J::from(code)),
        ("error", J::from(kind)),
        ("raw", J::from(raw)),
        ("decoded", J::from(raw.and_then(h3_to_wt))),
        ("writesBeforeError", J::from(writes)),
    ]))
}

/// Against a server that pipes each bidi stream into itself (`readable.pipeTo(writable)`): the
/// pipe passes a failure on with its code. A client reset of its sending side must come back as
/// a reset of the server's sending side with the same code (the pipe aborts its destination),
/// and a client stop must come back as a stop of the client's sending side with the same code
/// (the pipe cancels its source).
async fn pipe_errors(conn: &Connection, codes: &[u32]) -> Result<Report, String> {
    let (mut resets, mut stops, mut wrong) = (vec![], vec![], vec![]);
    for &code in codes {
        let reset = bounded(&format!("pipe reset {code}"), client_reset_step(conn, code)).await?;
        let back = match &reset {
            J::Obj(fields) => fields.iter().find(|(k, _)| k == "serverAbortAfter").map(|(_, v)| decoded_of(v)),
            _ => None,
        };
        if back != Some(Some(u64::from(code))) {
            wrong.push(format!("reset {code}: the pipe's reset did not carry it"));
        }
        resets.push(reset);

        let stop = bounded(&format!("pipe stop {code}"), async {
            let (mut send, recv) = echoed_stream(conn, b"pipe-stop probe\n").await?;
            recv.stop(h3_varint(code));
            let (_, failure) = write_until_error(&mut send).await;
            let (kind, raw) = write_failure(failure.as_ref());
            Ok::<J, String>(J::obj([
                ("code", J::from(code)),
                ("error", J::from(kind)),
                ("decoded", J::from(raw.and_then(h3_to_wt))),
            ]))
        })
        .await?;
        if decoded_of(&stop) != Some(u64::from(code)) {
            wrong.push(format!("stop {code}: the pipe's stop did not carry it"));
        }
        stops.push(stop);
    }
    Ok(Report::ok()
        .with("codes", J::Arr(codes.iter().map(|&c| J::from(c)).collect()))
        .with("resets", J::Arr(resets))
        .with("stops", J::Arr(stops))
        .require(wrong.is_empty(), || wrong.join("; ")))
}

fn decoded_of(j: &J) -> Option<u64> {
    match j {
        J::Obj(fields) => fields.iter().find(|(k, _)| k == "decoded").and_then(|(_, v)| match v {
            J::Num(n) => Some(*n),
            _ => None,
        }),
        _ => None,
    }
}

async fn reset_codes(conn: &Connection, codes: &[u32]) -> Result<Report, String> {
    let (mut client_reset, mut server_reset, mut client_stop, mut server_stop) = (vec![], vec![], vec![], vec![]);
    let mut wrong = Vec::new();
    for &code in codes {
        client_reset.push(bounded(&format!("client reset {code}"), client_reset_step(conn, code)).await?);
        let sr = bounded(&format!("server reset {code}"), server_reset_step(conn, code)).await?;
        if decoded_of(&sr) != Some(code as u64) {
            wrong.push(format!("server reset {code}: read ended with {}", sr.to_json()));
        }
        server_reset.push(sr);
        client_stop.push(bounded(&format!("client stop {code}"), client_stop_step(conn, code)).await?);
        let ss = bounded(&format!("server stop {code}"), server_stop_step(conn, code)).await?;
        if decoded_of(&ss) != Some(code as u64) {
            wrong.push(format!("server stop {code}: writes ended with {}", ss.to_json()));
        }
        server_stop.push(ss);
    }
    // Let the server's last reads and writes observe the client's reset and stop before we leave.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Report::ok()
        .with("codes", J::Arr(codes.iter().map(|&c| J::from(c)).collect()))
        .with("clientReset", J::Arr(client_reset))
        .with("serverReset", J::Arr(server_reset))
        .with("clientStop", J::Arr(client_stop))
        .with("serverStop", J::Arr(server_stop))
        .require(wrong.is_empty(), || wrong.join("; ")))
}

async fn expect_refused(args: &Args, endpoint: &Endpoint<Client>) -> Report {
    match endpoint.connect(connect_options(args)).await {
        Ok(conn) => {
            shutdown(endpoint, &conn, H3_NO_ERROR, b"").await;
            Report::fail("session was accepted").with("refused", false)
        }
        Err(e) => {
            let kind = connecting_error_kind(&e);
            // SessionRejected: the server answered the CONNECT with a non-2xx status (wtransport
            // does not expose which status). A peer close after the handshake also counts as a
            // refusal; local failures (certificate, timeout, QUIC errors) do not.
            let refused = match &e {
                ConnectingError::SessionRejected => Some("session-rejected"),
                ConnectingError::ConnectionError(ConnectionError::ApplicationClosed(_))
                | ConnectingError::ConnectionError(ConnectionError::ConnectionClosed(_)) => Some("connection-closed"),
                _ => None,
            };
            let text = e.to_string();
            let report = match refused {
                Some(how) => Report::ok().with("refused", true).with("how", how),
                None => Report::fail(format!("connect failed without a refusal: {text}")).with("refused", false),
            };
            let report = report.with("kind", kind).with("text", text.as_str());
            match &e {
                ConnectingError::ConnectionError(ce) => report.with("connectionError", conn_error_kind(ce)),
                _ => report,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

async fn run(args: Args) -> Report {
    let endpoint = match make_endpoint(&args) {
        Ok(e) => e,
        Err(e) => return Report::fail(e),
    };
    if args.scenario == "expect-refused" {
        return expect_refused(&args, &endpoint).await;
    }
    // Validate scenario arguments before connecting.
    enum Plan {
        Bidi(u64),
        Uni(u64),
        ServerStreams,
        Datagrams(u32),
        Bulk(u64),
        ClientClose(u32, String),
        ServerClose(u32, String),
        ResetCodes(Vec<u32>),
        PipeErrors(Vec<u32>),
        Soak { sessions: u64, concurrency: u64, echoes: u64 },
        Shutdown(ShutdownPlan),
        Flood(u64),
        SendOrder(String),
        ExportKeyingMaterial(Vec<ExportRequest>),
    }
    let plan = match args.scenario.as_str() {
        "bidi-echo" => num_arg(&args.rest, 0, 1000, "byte count").map(Plan::Bidi),
        "uni-echo" => num_arg(&args.rest, 0, 1000, "byte count").map(Plan::Uni),
        "server-streams" => Ok(Plan::ServerStreams),
        "datagrams" => num_arg(&args.rest, 0, 100, "datagram count").and_then(|n| {
            u32::try_from(n).ok().filter(|n| *n <= 99_999_999).map(Plan::Datagrams).ok_or("too many datagrams".into())
        }),
        "bulk" => num_arg(&args.rest, 0, 10_000_000, "byte count").map(Plan::Bulk),
        "client-close" => close_args(&args.rest).map(|(c, r)| Plan::ClientClose(c, r)),
        "server-close" => close_args(&args.rest).map(|(c, r)| Plan::ServerClose(c, r)),
        "reset-codes" => code_list(&args.rest).map(Plan::ResetCodes),
        "pipe-errors" => code_list(&args.rest).map(Plan::PipeErrors),
        "soak" => (|| {
            Ok(Plan::Soak {
                sessions: num_arg(&args.rest, 0, 1000, "session count")?,
                concurrency: num_arg(&args.rest, 1, 8, "concurrency")?.max(1),
                echoes: num_arg(&args.rest, 2, 1, "echo count")?,
            })
        })(),
        "shutdown" => (|| {
            let count = |i, what| {
                num_arg(&args.rest, i, 32, what).and_then(|n| u32::try_from(n).map_err(|_| format!("too many {what}")))
            };
            let (code, reason) = close_args(args.rest.get(5..).unwrap_or_default())?;
            Ok(Plan::Shutdown(ShutdownPlan {
                downloads: count(0, "downloads")?,
                download_bytes: num_arg(&args.rest, 1, 256 * 1024, "byte count")?,
                uploads: count(2, "uploads")?,
                upload_bytes: num_arg(&args.rest, 3, 256 * 1024, "byte count")?,
                pace: Duration::from_millis(num_arg(&args.rest, 4, 0, "pace in ms")?),
                code,
                reason,
            }))
        })(),
        "flood" => num_arg(&args.rest, 0, 2000, "milliseconds").map(Plan::Flood),
        "send-order" => Ok(Plan::SendOrder(args.rest.first().cloned().unwrap_or_else(|| "uni".into()))),
        "export-keying-material" => export_requests(&args.rest).map(Plan::ExportKeyingMaterial),
        other => Err(format!("unknown scenario {other:?}\n{USAGE}")),
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return Report::fail(e),
    };

    if let Plan::Soak { sessions, concurrency, echoes } = plan {
        return soak(&args, Arc::new(endpoint), sessions, concurrency, echoes).await;
    }
    let started = Instant::now();
    let conn = match endpoint.connect(connect_options(&args)).await {
        Ok(c) => c,
        Err(e) => {
            return Report::fail(format!("connect: {e}")).with("kind", connecting_error_kind(&e));
        }
    };
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;

    let result = match plan {
        Plan::Bidi(n) | Plan::Bulk(n) => bidi_echo(&conn, n).await,
        Plan::Uni(n) => uni_echo(&conn, n).await,
        Plan::ServerStreams => server_streams(&conn).await,
        Plan::Datagrams(n) => datagrams(&conn, n).await,
        Plan::ClientClose(code, reason) => Ok(client_close(&endpoint, &conn, code, &reason).await),
        Plan::ServerClose(code, reason) => server_close(&conn, code, &reason).await,
        Plan::ResetCodes(codes) => reset_codes(&conn, &codes).await,
        Plan::PipeErrors(codes) => pipe_errors(&conn, &codes).await,
        Plan::Shutdown(plan) => shutdown_streams(&conn, plan).await,
        Plan::Flood(ms) => flood(&conn, Duration::from_millis(ms)).await,
        Plan::SendOrder(mode) => send_order(&conn, &mode).await,
        Plan::ExportKeyingMaterial(requests) => export_keying_material(&conn, &requests).await,
        Plan::Soak { .. } => Err("soak runs without a shared connection".into()),
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => Report::fail(e),
    };
    shutdown(&endpoint, &conn, H3_NO_ERROR, b"").await;
    report.with("connectMs", connect_ms)
}

/// Opens and closes `sessions` sessions, `concurrency` at a time, each on its own connection
/// with `echoes` bidi echoes (one after another), a uni echo and a datagram exchange; for leak
/// and soak tests.
async fn soak(args: &Args, endpoint: Arc<Endpoint<Client>>, sessions: u64, concurrency: u64, echoes: u64) -> Report {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, failures, endpoint, options) =
            (next.clone(), failures.clone(), endpoint.clone(), connect_options(args));
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < sessions {
                let outcome = async {
                    let conn = endpoint.connect(options.clone()).await.map_err(|e| format!("connect: {e}"))?;
                    let steps = async {
                        for _ in 0..echoes {
                            bidi_echo(&conn, 1000).await?;
                        }
                        uni_echo(&conn, 1000).await?;
                        datagrams(&conn, 1).await
                    }
                    .await;
                    conn.close(VarInt::from_u32(H3_NO_ERROR), b"");
                    steps.map(|_| ())
                }
                .await;
                if let Err(e) = outcome {
                    if let Ok(mut f) = failures.lock() {
                        f.push(e);
                    }
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(1000), endpoint.wait_idle()).await;
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    let seconds = started.elapsed().as_secs_f64();
    let report = if failures.is_empty() {
        Report::ok()
    } else {
        Report::fail(format!("{} of {sessions} sessions failed; first: {}", failures.len(), failures[0]))
    };
    report
        .with("sessions", sessions)
        .with("failed", failures.len() as u64)
        .with("seconds", seconds)
        .with("sessionsPerSecond", sessions as f64 / seconds.max(1e-9))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            println!("{}", Report::fail(e.lines().next().unwrap_or("bad arguments")).to_json());
            return ExitCode::from(1);
        }
    };
    let scenario = args.scenario.clone();
    let timeout = args.timeout;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            println!("{}", Report::fail(format!("tokio runtime: {e}")).to_json());
            return ExitCode::from(1);
        }
    };
    let report = runtime.block_on(async move {
        match tokio::time::timeout(timeout, run(args)).await {
            Ok(report) => report,
            Err(_) => Report::fail(format!("timed out after {} ms", timeout.as_millis())),
        }
    });
    let report = report.with("scenario", scenario.as_str());
    println!("{}", report.to_json());
    let code = if report.ok { 0 } else { 1 };
    // Don't wait for lingering tasks (e.g. a stream finish racing a closed session).
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webtransport_code_mapping_matches_the_draft() {
        assert_eq!(wt_to_h3(0), 0x52e4a40fa8db);
        assert_eq!(wt_to_h3(0x1d), 0x52e4a40fa8db + 0x1d);
        // The 31st codepoint (0x52e4a40fa8db + 0x1e) is reserved, so code 0x1e skips it.
        assert_eq!(wt_to_h3(0x1e), 0x52e4a40fa8db + 0x1f);
        assert_eq!(wt_to_h3(u32::MAX), WT_CODE_LAST);
        for code in [0, 1, 7, 0x1d, 0x1e, 0x1f, 255, 1 << 20, u32::MAX - 1, u32::MAX] {
            assert_eq!(h3_to_wt(wt_to_h3(code)), Some(code), "round trip of {code}");
        }
        assert_eq!(h3_to_wt(0x52e4a40fa8db + 0x1e), None, "reserved codepoint");
        assert_eq!(h3_to_wt(WT_CODE_FIRST - 1), None);
        assert_eq!(h3_to_wt(WT_CODE_LAST + 1), None);
        assert_eq!(h3_to_wt(7), None, "a bare HTTP/3 code is not a WebTransport code");
    }

    #[test]
    fn exporter_context_follows_the_draft() {
        let context = webtransport_exporter_context(4, b"ab", b"").unwrap();
        assert_eq!(context, [0, 0, 0, 0, 0, 0, 0, 4, 2, b'a', b'b', 0]);
        assert!(webtransport_exporter_context(0, &[0; 256], b"").is_err());
        let requests = export_requests(&["6869,-,32".to_string(), ",00ff,1".to_string()]).unwrap();
        assert_eq!(requests, vec![(b"hi".to_vec(), vec![], 32), (vec![], vec![0, 255], 1)]);
        assert!(export_requests(&["6869,32".to_string()]).is_err());
    }

    #[test]
    fn code_lists_parse() {
        let args = |s: &str| vec![s.to_string()];
        assert_eq!(code_list(&args("0,7,4294967295")).unwrap(), vec![0, 7, u32::MAX]);
        assert!(code_list(&args("4294967296")).is_err());
        assert!(code_list(&args(",")).is_err());
        assert!(code_list(&[]).is_err());
    }
}
