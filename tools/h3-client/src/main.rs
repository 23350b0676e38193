//! `h3-client`: an independent HTTP/3 test and load client on hyperium's `h3` + `h3-quinn`.
//!
//! It shares no code with the server under test (whose HTTP/3 layer is our own, in src/core). It
//! trusts the server certificate either by its pinned SHA-256 hash (`--cert-hash`: the DER of the
//! certificate the server presents must hash to it; the TLS 1.3 handshake signature is still
//! checked against that certificate's key) or by a CA (`--ca FILE`: PEM certificates as the only
//! trust anchors, with full webpki validation of the name in `--url`). Every wait is bounded: the
//! whole run by `--timeout-ms`, each request of `load` by `--request-timeout-ms`.
//!
//! `--transport h2` runs `load` over HTTP/2 instead (hyperium's `h2` over TLS 1.3 on TCP, ALPN h2,
//! the same rustls, certificate check and tokio runtime), so that the bench's HTTP/3 vs HTTP/2
//! mode drives both protocols with the same client code: only the transport differs.
//!
//! Usage:
//!   h3-client --url https://HOST:PORT (--cert-hash <sha256 hex> | --ca FILE) [--timeout-ms N]
//!             [--threads N] [--transport h3|h2] <mode> [options]
//!
//!   request [--method M] [--path P] [--header NAME:VALUE]... [--body-bytes N] [--chunk-bytes N]
//!           [--reset-after BYTES] [--reset-code CODE] [--reset-delay-ms MS] [--after-reset-ms MS]
//!       One request. With --body-bytes, N bytes of the body pattern (below) go out as DATA frames
//!       of --chunk-bytes (64 KiB) each, written as the server's flow control admits them, while
//!       the response is read. No content-length is added: pass --header content-length:N for one.
//!       With --reset-after, that many body bytes are written, then (after --reset-delay-ms, 0)
//!       the request stream's sending side is reset (RESET_STREAM, --reset-code, default 0x10c
//!       H3_REQUEST_CANCELLED) and whatever response comes within --after-reset-ms (1000) is
//!       reported.
//!   load [--method M] [--path P] [--concurrency C] [--requests N] [--duration-ms D]
//!        [--connections K] [--request-timeout-ms T] [--expect-status S]
//!        [--expect-body-length L] [--expect-body-sha256 HEX]
//!       Bodyless requests (GET) from C workers (default 8) spread over K connections (default 1),
//!       until N requests (default 1000) have been started or D ms (default 5000) have passed,
//!       whichever comes first. Each request is timed from opening its stream to the end of the
//!       response body. With --expect-body-*, every response body is checked (its length, its
//!       SHA-256) as it is read. The only mode of --transport h2: each worker's request is a new
//!       HTTP/2 stream on one of the K TCP+TLS connections, as a request is a new QUIC stream in h3.
//!
//! Body pattern (shared with the aioquic client in __test__/clients/aioquic_client.py, so an
//! echoed body can be checked byte for byte by either): byte i is byte i % 32 of
//! SHA-256("h3-body:" + decimal(i / 32)).
//!
//! Output: exactly one JSON object on the last stdout line; exit 0 when `ok` is true, else 1 (and 2
//! for bad arguments, still with the JSON line).
//!
//! `request` fields:
//!   ok                true when a complete response was read (status, body to its end); with
//!                     --reset-after, true when the reset went out or a complete response came first
//!   mode, method, path
//!   status            the response :status, or null
//!   headers           response fields, names lower-case, repeated names joined with ", "; or null
//!   trailers          trailer fields the same way, or null
//!   bodyLength        response body bytes received
//!   bodySha256        hex SHA-256 of those bytes
//!   bodyEqualsSent    with --body-bytes: whether the response body is exactly the bytes sent (an
//!                     echo); null without a request body
//!   responseComplete  the response body ended (FIN) with no error
//!   responseResetCode the server reset the response (RESET_STREAM) with this code, or null
//!   recvError         any other error reading the response, or null
//!   sentBytes         request body bytes handed to the stream
//!   sentSha256        hex SHA-256 of those bytes
//!   requestFinished   the request body ended with FIN
//!   resetSent         the RESET_STREAM code this client sent, or null
//!   stopSendingCode   the server's STOP_SENDING code, as seen by a body write that failed; h3 does
//!                     not surface a STOP_SENDING that arrives after the body was all written
//!   sendError         any other error writing the request, or null
//!   sendAbandoned     the response completed but the body could not be written within 2 s more
//!   responseWaitTimedOut  with --reset-after: no complete response within --after-reset-ms
//!   connectMs, headersMs, totalMs   handshake time; request start to response headers / to end
//!   error             why ok is false
//!
//! `load` fields: ok (every request answered, none failed, with --expect-status all had that
//! status), mode, path, method, requested, completed, errors, firstErrors (up to 5 messages),
//! statuses ({"404": n, ...}), unexpectedStatus, unexpectedBody (responses whose body failed
//! --expect-body-*), transport ("h3" or "h2"), connections, concurrency, seconds,
//! requestsPerSecond, latencyMs {p50, p90, p99, max, mean}, connectMs, stoppedBy ("count" or
//! "duration"), clientCpuSeconds (this process's user + system CPU time, whole run).

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use h3::error::{Code, StreamError};
use ring::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tool_support::client::self_cpu_seconds;
use tool_support::hash::{self, hex, HashError};
use tool_support::json::{Report, J};

const USAGE: &str = "usage: h3-client --url https://HOST:PORT (--cert-hash <sha256 hex> | --ca FILE) \
[--timeout-ms N] [--threads N] [--transport h3|h2] <mode> [options]\n\
modes: request [--method M] [--path P] [--header NAME:VALUE]... [--body-bytes N] [--chunk-bytes N] \
[--reset-after BYTES] [--reset-code CODE] [--reset-delay-ms MS] [--after-reset-ms MS] | \
load [--method M] [--path P] [--concurrency C] [--requests N] [--duration-ms D] [--connections K] \
[--request-timeout-ms T] [--expect-status S] [--expect-body-length L] [--expect-body-sha256 HEX]";

/// HTTP/3 H3_NO_ERROR: how the client leaves.
const H3_NO_ERROR: u32 = 0x100;
/// HTTP/3 H3_REQUEST_CANCELLED: what a client resets a request it abandons with (RFC 9114 §4.1.1).
const H3_REQUEST_CANCELLED: u64 = 0x10c;
/// How long a request body may still be writing once the response has completed: a server may
/// answer without reading the body (RFC 9114 §4.1) and never grant more flow-control credit.
const SEND_GRACE: Duration = Duration::from_secs(2);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// Arguments.

enum Trust {
    /// SHA-256 of the server certificate's DER.
    Pin([u8; 32]),
    /// PEM file of trust anchors.
    Ca(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    H3,
    /// HTTP/2 over TLS on TCP, `load` only.
    H2,
}

struct Common {
    host: String,
    port: u16,
    /// The URL's path, the default for `--path`.
    url_path: String,
    trust: Trust,
    timeout: Duration,
    threads: usize,
    transport: Transport,
}

struct RequestPlan {
    method: http::Method,
    path: String,
    headers: Vec<(String, String)>,
    body_bytes: Option<u64>,
    chunk: usize,
    reset_after: Option<u64>,
    reset_code: u64,
    reset_delay: Duration,
    after_reset: Duration,
}

struct LoadPlan {
    method: http::Method,
    path: String,
    concurrency: u64,
    requests: u64,
    duration: Duration,
    connections: u64,
    request_timeout: Duration,
    expect_status: Option<u16>,
    body_check: BodyCheck,
}

/// What every response body of `load` must be (nothing to check when both are None).
#[derive(Clone, Copy, Default)]
struct BodyCheck {
    length: Option<u64>,
    sha256: Option<[u8; 32]>,
}

enum Mode {
    Request(RequestPlan),
    Load(LoadPlan),
}

fn parse_hex_hash(name: &str, s: &str) -> Result<[u8; 32], String> {
    hash::parse_sha256(s).map_err(|e| match e {
        HashError::Length(_) | HashError::NotAscii => format!("{name} must be 32 bytes of hex (64 digits), got {s:?}"),
        HashError::NotHex => format!("{name} is not hex: {s:?}"),
    })
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    let parsed = match v.strip_prefix("0x") {
        // Error codes read best in hex.
        Some(h) => u64::from_str_radix(h, 16).ok().and_then(|n| n.to_string().parse().ok()),
        None => v.parse().ok(),
    };
    parsed.ok_or_else(|| format!("bad {name} {v:?}"))
}

/// `https://HOST:PORT[/path]` into host (brackets stripped), port and path.
fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad --url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("--url must be https://, got {url:?}"));
    }
    let host = uri.host().ok_or_else(|| format!("--url has no host: {url:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(443);
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).filter(|p| !p.is_empty()).unwrap_or("/".into());
    Ok((host, port, path))
}

fn parse_args() -> Result<(Common, Mode), String> {
    let mut url = None;
    let mut trust = None;
    let mut timeout = Duration::from_millis(20_000);
    let mut threads = 1usize;
    let mut transport = Transport::H3;
    let mut mode_name = None;
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Err(USAGE.to_string());
        }
        if !arg.starts_with("--") {
            if mode_name.is_some() {
                return Err(format!("unexpected argument {arg:?}\n{USAGE}"));
            }
            mode_name = Some(arg);
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--url" => url = Some(parse_url(&value)?),
            "--cert-hash" => trust = Some(Trust::Pin(parse_hex_hash(&arg, &value)?)),
            "--ca" => trust = Some(Trust::Ca(value)),
            "--timeout-ms" => timeout = Duration::from_millis(parse_num::<u64>(&arg, &value)?.max(1)),
            "--threads" => threads = parse_num::<usize>(&arg, &value)?.max(1),
            "--transport" => {
                transport = match value.as_str() {
                    "h3" => Transport::H3,
                    "h2" => Transport::H2,
                    other => return Err(format!("--transport is h3 or h2, got {other:?}")),
                }
            }
            _ => opts.push((arg, value)),
        }
    }
    let (host, port, url_path) = url.ok_or_else(|| format!("--url is required\n{USAGE}"))?;
    let trust = trust.ok_or_else(|| format!("--cert-hash or --ca is required\n{USAGE}"))?;
    let common = Common { host, port, url_path, trust, timeout, threads, transport };
    let mode = mode_name.ok_or_else(|| format!("no mode given\n{USAGE}"))?;
    let known: &[&str] = match mode.as_str() {
        "request" => &[
            "--method",
            "--path",
            "--header",
            "--body-bytes",
            "--chunk-bytes",
            "--reset-after",
            "--reset-code",
            "--reset-delay-ms",
            "--after-reset-ms",
        ],
        "load" => &[
            "--method",
            "--path",
            "--concurrency",
            "--requests",
            "--duration-ms",
            "--connections",
            "--request-timeout-ms",
            "--expect-status",
            "--expect-body-length",
            "--expect-body-sha256",
        ],
        other => return Err(format!("unknown mode {other:?}\n{USAGE}")),
    };
    if let Some((name, _)) = opts.iter().find(|(name, _)| !known.contains(&name.as_str())) {
        return Err(format!("{name} is not an option of {mode}\n{USAGE}"));
    }
    let last = |name: &str| opts.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let method = match last("--method") {
        Some(m) => {
            http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| format!("bad --method {m:?}"))?
        }
        None => http::Method::GET,
    };
    let path = last("--path").map(str::to_string).unwrap_or_else(|| common.url_path.clone());
    if !path.starts_with('/') {
        return Err(format!("--path must start with '/', got {path:?}"));
    }
    let num =
        |name: &str, default: u64| -> Result<u64, String> { last(name).map_or(Ok(default), |v| parse_num(name, v)) };
    if mode == "request" && transport == Transport::H2 {
        return Err("--transport h2 has the load mode only".to_string());
    }
    let mode = if mode == "request" {
        let headers = opts
            .iter()
            .filter(|(n, _)| n == "--header")
            .map(|(_, v)| {
                let (k, val) = v
                    .split_once(':')
                    .or_else(|| v.split_once('='))
                    .ok_or_else(|| format!("--header wants NAME:VALUE, got {v:?}"))?;
                Ok((k.trim().to_ascii_lowercase(), val.trim().to_string()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let reset_after = last("--reset-after").map(|v| parse_num::<u64>("--reset-after", v)).transpose()?;
        let body_bytes = last("--body-bytes").map(|v| parse_num::<u64>("--body-bytes", v)).transpose()?;
        if let (Some(r), Some(b)) = (reset_after, body_bytes) {
            if r > b {
                return Err(format!("--reset-after {r} is beyond --body-bytes {b}"));
            }
        }
        Mode::Request(RequestPlan {
            method,
            path,
            headers,
            // A reset needs a body to interrupt: without --body-bytes it is the reset point.
            body_bytes: body_bytes.or(reset_after),
            chunk: num("--chunk-bytes", 64 * 1024)?.clamp(1, 16 << 20) as usize,
            reset_after,
            reset_code: num("--reset-code", H3_REQUEST_CANCELLED)?,
            reset_delay: Duration::from_millis(num("--reset-delay-ms", 0)?),
            after_reset: Duration::from_millis(num("--after-reset-ms", 1000)?),
        })
    } else {
        Mode::Load(LoadPlan {
            method,
            path,
            concurrency: num("--concurrency", 8)?.max(1),
            requests: num("--requests", 1000)?,
            duration: Duration::from_millis(num("--duration-ms", 5000)?),
            connections: num("--connections", 1)?.max(1),
            request_timeout: Duration::from_millis(num("--request-timeout-ms", 10_000)?.max(1)),
            expect_status: last("--expect-status").map(|v| parse_num::<u16>("--expect-status", v)).transpose()?,
            body_check: BodyCheck {
                length: last("--expect-body-length")
                    .map(|v| parse_num::<u64>("--expect-body-length", v))
                    .transpose()?,
                sha256: last("--expect-body-sha256").map(|v| parse_hex_hash("--expect-body-sha256", v)).transpose()?,
            },
        })
    };
    Ok((common, mode))
}

// ---------------------------------------------------------------------------------------------
// TLS.

/// Accepts exactly the certificate whose DER hashes to `hash` (what a WebTransport client's
/// serverCertificateHashes does), and still checks the handshake signature against its key so a
/// peer without the private key cannot pass.
#[derive(Debug)]
struct PinnedCert {
    hash: [u8; 32],
    provider: Arc<CryptoProvider>,
    /// The hash the server presented, for the report when it does not match.
    presented: Arc<Mutex<Option<String>>>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = digest::digest(&digest::SHA256, end_entity.as_ref());
        if let Ok(mut presented) = self.presented.lock() {
            *presented = Some(hex(got.as_ref()));
        }
        if got.as_ref() == self.hash {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// How connections are made: QUIC for h3, TLS over TCP for h2.
enum Dialer {
    Quic(quinn::Endpoint),
    Tls(tokio_rustls::TlsConnector),
}

struct Client {
    dialer: Dialer,
    addr: SocketAddr,
    server_name: String,
    presented: Arc<Mutex<Option<String>>>,
}

fn make_client(common: &Common) -> Result<Client, String> {
    let addr = (common.host.as_str(), common.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", common.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", common.host))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("tls: {e}"))?;
    let presented = Arc::new(Mutex::new(None));
    let mut tls = match &common.trust {
        Trust::Pin(hash) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                hash: *hash,
                provider,
                presented: presented.clone(),
            }))
            .with_no_client_auth(),
        Trust::Ca(file) => {
            let pem = std::fs::read(file).map_err(|e| format!("--ca {file}: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("--ca {file}: {e}"))?;
                roots.add(cert).map_err(|e| format!("--ca {file}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("--ca {file} holds no certificate"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    // The server's name, for SNI and the CA check: the URL's host (an IP literal is checked
    // against the IP SANs).
    let server_name = match common.host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => common.host.clone(),
    };
    if common.transport == Transport::H2 {
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let dialer = Dialer::Tls(tokio_rustls::TlsConnector::from(Arc::new(tls)));
        return Ok(Client { dialer, addr, server_name, presented });
    }
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| format!("quic tls: {e}"))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(Duration::from_secs(10)).map_err(|e| format!("idle timeout: {e}"))?;
    transport.max_idle_timeout(Some(idle)).keep_alive_interval(Some(Duration::from_secs(2)));
    config.transport_config(Arc::new(transport));
    let bind: SocketAddr = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().map_err(|_| "bind address")?;
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| format!("client endpoint: {e}"))?;
    endpoint.set_default_client_config(config);
    Ok(Client { dialer: Dialer::Quic(endpoint), addr, server_name, presented })
}

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// One HTTP/3 connection: the QUIC connection, the h3 driver task, the request opener.
struct H3Conn {
    quic: quinn::Connection,
    driver: tokio::task::JoinHandle<()>,
    send_request: SendRequest,
}

/// A failed connect, with the certificate hash the server presented if the handshake got that far.
fn connect_error(client: &Client, e: impl std::fmt::Display) -> String {
    let presented = client.presented.lock().ok().and_then(|p| p.clone());
    match presented {
        Some(hash) => format!("connect: {e} (server certificate SHA-256 {hash})"),
        None => format!("connect: {e}"),
    }
}

async fn connect(client: &Client) -> Result<H3Conn, String> {
    let Dialer::Quic(endpoint) = &client.dialer else {
        return Err("connect: not an h3 client".to_string());
    };
    let connecting = endpoint.connect(client.addr, &client.server_name).map_err(|e| format!("connect: {e}"))?;
    let quic = connecting.await.map_err(|e| connect_error(client, e))?;
    let (mut driver, send_request) =
        h3::client::new(h3_quinn::Connection::new(quic.clone())).await.map_err(|e| format!("h3 setup: {e}"))?;
    // The driver runs the control and QPACK streams; it ends when the connection does.
    let driver = tokio::spawn(async move {
        let _ = poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(H3Conn { quic, driver, send_request })
}

/// Leaves the way an HTTP/3 client normally does (H3_NO_ERROR) and lets the endpoint flush the
/// CONNECTION_CLOSE so the server sees the end promptly.
async fn close(client: &Client, conns: Vec<H3Conn>) {
    for conn in conns {
        conn.quic.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"");
        drop(conn.send_request);
        conn.driver.abort();
    }
    if let Dialer::Quic(endpoint) = &client.dialer {
        let _ = tokio::time::timeout(Duration::from_millis(1000), endpoint.wait_idle()).await;
    }
}

/// One HTTP/2 connection: the h2 connection task and the request opener.
struct H2Conn {
    driver: tokio::task::JoinHandle<()>,
    send_request: h2::client::SendRequest<Bytes>,
}

async fn connect_h2(client: &Client) -> Result<H2Conn, String> {
    let Dialer::Tls(tls) = &client.dialer else {
        return Err("connect: not an h2 client".to_string());
    };
    let tcp = tokio::net::TcpStream::connect(client.addr).await.map_err(|e| format!("connect: {e}"))?;
    // Small requests on one connection: Nagle would hold a request back behind an unacknowledged
    // one (QUIC has no such delay), so it is off, as in browsers and curl.
    tcp.set_nodelay(true).map_err(|e| format!("connect: nodelay: {e}"))?;
    let name = ServerName::try_from(client.server_name.clone()).map_err(|e| format!("connect: server name: {e}"))?;
    let stream = tls.connect(name, tcp).await.map_err(|e| connect_error(client, e))?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("connect: the server did not select ALPN h2".to_string());
    }
    let (send_request, connection) = h2::client::handshake(stream).await.map_err(|e| format!("h2 setup: {e}"))?;
    // The connection task reads and writes the socket; it ends when the connection does.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(H2Conn { driver, send_request })
}

/// Leaves with GOAWAY (h2 sends it once every request opener is dropped), briefly waiting for it.
async fn close_h2(conns: Vec<H2Conn>) {
    for conn in conns {
        drop(conn.send_request);
        let abort = conn.driver.abort_handle();
        if tokio::time::timeout(Duration::from_millis(1000), conn.driver).await.is_err() {
            abort.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Body pattern.

/// Appends bytes [offset, offset + len) of the body pattern (see the module docs) to `out`.
fn pattern_into(out: &mut Vec<u8>, offset: u64, len: usize) {
    let end = offset + len as u64;
    let mut i = offset;
    while i < end {
        let block = digest::digest(&digest::SHA256, format!("h3-body:{}", i / 32).as_bytes());
        let start = (i % 32) as usize;
        let take = (32 - start).min((end - i) as usize);
        out.extend_from_slice(&block.as_ref()[start..start + take]);
        i += take as u64;
    }
}

/// Compares a byte stream against the pattern as it arrives.
struct PatternCheck {
    offset: u64,
    first_mismatch: Option<u64>,
    expected: Vec<u8>,
}

impl PatternCheck {
    fn new() -> Self {
        PatternCheck { offset: 0, first_mismatch: None, expected: Vec::new() }
    }
    fn update(&mut self, chunk: &[u8]) {
        if self.first_mismatch.is_none() {
            self.expected.clear();
            pattern_into(&mut self.expected, self.offset, chunk.len());
            if let Some(j) = chunk.iter().zip(&self.expected).position(|(a, b)| a != b) {
                self.first_mismatch = Some(self.offset + j as u64);
            }
        }
        self.offset += chunk.len() as u64;
    }
    /// Whether everything seen is exactly the first `len` bytes of the pattern.
    fn equals(&self, len: u64) -> bool {
        self.first_mismatch.is_none() && self.offset == len
    }
}

// ---------------------------------------------------------------------------------------------
// request

/// What a stream error says, and the peer's code when it is a reset or a stop.
fn describe(e: &StreamError) -> (String, Option<u64>) {
    match e {
        StreamError::RemoteTerminate { code, .. } => {
            (format!("stream terminated by the server: {e}"), Some(code.value()))
        }
        _ => (e.to_string(), None),
    }
}

fn fields_json(map: &http::HeaderMap) -> J {
    let mut out: Vec<(String, J)> = Vec::new();
    for (name, value) in map {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match out.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, J::Str(existing))) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => out.push((name.as_str().to_string(), J::Str(value))),
        }
    }
    J::Obj(out)
}

#[derive(Default)]
struct SendState {
    sent: u64,
    finished: bool,
    reset_sent: Option<u64>,
    stop_sending: Option<u64>,
    error: Option<String>,
    abandoned: bool,
}

struct RecvState {
    status: Option<u16>,
    headers: Option<J>,
    trailers: Option<J>,
    headers_at: Option<Duration>,
    length: u64,
    sha: digest::Context,
    check: PatternCheck,
    complete: bool,
    reset_code: Option<u64>,
    error: Option<String>,
    wait_timed_out: bool,
}

async fn send_body(
    send: &mut h3::client::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>,
    plan: &RequestPlan,
    state: &mut SendState,
    sha: &mut digest::Context,
    reset_tx: tokio::sync::oneshot::Sender<()>,
) {
    let total = plan.body_bytes.unwrap_or(0);
    let until = plan.reset_after.unwrap_or(total);
    let mut chunk = Vec::with_capacity(plan.chunk);
    while state.sent < until {
        chunk.clear();
        pattern_into(&mut chunk, state.sent, plan.chunk.min((until - state.sent) as usize));
        sha.update(&chunk);
        let n = chunk.len() as u64;
        if let Err(e) = send.send_data(Bytes::copy_from_slice(&chunk)).await {
            let (message, code) = describe(&e);
            match code {
                Some(code) => state.stop_sending = Some(code),
                None => state.error = Some(format!("body write at offset {}: {message}", state.sent)),
            }
            return;
        }
        state.sent += n;
    }
    if plan.reset_after.is_some() {
        tokio::time::sleep(plan.reset_delay).await;
        send.stop_stream(Code::from(plan.reset_code));
        state.reset_sent = Some(plan.reset_code);
        let _ = reset_tx.send(());
        return;
    }
    match send.finish().await {
        Ok(()) => state.finished = true,
        Err(e) => {
            let (message, code) = describe(&e);
            match code {
                Some(code) => state.stop_sending = Some(code),
                None => state.error = Some(format!("finish after {} bytes: {message}", state.sent)),
            }
        }
    }
}

async fn recv_response(
    mut recv: h3::client::RequestStream<h3_quinn::RecvStream, Bytes>,
    started: Instant,
    state: &mut RecvState,
) {
    let fail = |state: &mut RecvState, what: &str, e: &StreamError| {
        let (message, code) = describe(e);
        match code {
            Some(code) => state.reset_code = Some(code),
            None => state.error = Some(format!("{what}: {message}")),
        }
    };
    let response = match recv.recv_response().await {
        Ok(r) => r,
        Err(e) => return fail(state, "response headers", &e),
    };
    state.headers_at = Some(started.elapsed());
    state.status = Some(response.status().as_u16());
    state.headers = Some(fields_json(response.headers()));
    loop {
        match recv.recv_data().await {
            Ok(Some(mut buf)) => {
                while buf.has_remaining() {
                    let chunk = buf.chunk();
                    state.sha.update(chunk);
                    state.check.update(chunk);
                    state.length += chunk.len() as u64;
                    let n = chunk.len();
                    buf.advance(n);
                }
            }
            Ok(None) => break,
            Err(e) => return fail(state, &format!("response body after {} bytes", state.length), &e),
        }
    }
    match recv.recv_trailers().await {
        Ok(trailers) => state.trailers = trailers.as_ref().map(fields_json),
        Err(e) => return fail(state, "trailers", &e),
    }
    state.complete = true;
}

async fn run_request(client: &Client, plan: RequestPlan) -> Report {
    let started = Instant::now();
    let mut conn = match connect(client).await {
        Ok(c) => c,
        Err(e) => return Report::fail(e),
    };
    let connect_ms = ms(started.elapsed());
    let uri = format!("https://{}{}", authority(&client.server_name, client.addr.port()), plan.path);
    let mut request = http::Request::builder().method(plan.method.clone()).uri(&uri);
    for (k, v) in &plan.headers {
        request = request.header(k, v);
    }
    let request = match request.body(()) {
        Ok(r) => r,
        Err(e) => return Report::fail(format!("request {uri}: {e}")),
    };
    let started = Instant::now();
    let stream = match conn.send_request.send_request(request).await {
        Ok(s) => s,
        Err(e) => {
            close(client, vec![conn]).await;
            return Report::fail(format!("send_request: {e}"));
        }
    };
    let (mut send, recv) = stream.split();
    let mut sstate = SendState::default();
    let mut sent_sha = digest::Context::new(&digest::SHA256);
    let mut rstate = RecvState {
        status: None,
        headers: None,
        trailers: None,
        headers_at: None,
        length: 0,
        sha: digest::Context::new(&digest::SHA256),
        check: PatternCheck::new(),
        complete: false,
        reset_code: None,
        error: None,
        wait_timed_out: false,
    };
    let (reset_tx, reset_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let sending = async {
        // Once the response is over, the body gets SEND_GRACE more; a server may have answered
        // without reading it and never give more credit.
        let finished = tokio::select! {
            () = send_body(&mut send, &plan, &mut sstate, &mut sent_sha, reset_tx) => true,
            () = async { let _ = done_rx.await; tokio::time::sleep(SEND_GRACE).await } => false,
        };
        sstate.abandoned = !finished;
    };
    let receiving = async {
        // After a reset, the answer (if any) has --after-reset-ms to complete.
        let complete = tokio::select! {
            () = recv_response(recv, started, &mut rstate) => true,
            () = async {
                match reset_rx.await {
                    Ok(()) => tokio::time::sleep(plan.after_reset).await,
                    Err(_) => std::future::pending::<()>().await,
                }
            } => false,
        };
        rstate.wait_timed_out = !complete;
        let _ = done_tx.send(());
    };
    tokio::join!(sending, receiving);
    if sstate.abandoned {
        // Dropped as it is, quinn would finish the stream: a truncated body would look whole.
        send.stop_stream(Code::H3_REQUEST_CANCELLED);
    }
    let total_ms = ms(started.elapsed());
    close(client, vec![conn]).await;

    let ok;
    let mut error = None;
    if plan.reset_after.is_some() {
        ok = sstate.reset_sent.is_some() || rstate.complete;
        if !ok {
            error = Some(sstate.error.clone().or(rstate.error.clone()).unwrap_or_else(|| {
                format!("the body stopped at {} bytes without a reset or a complete response", sstate.sent)
            }));
        }
    } else {
        ok = rstate.complete;
        if !ok {
            error = Some(match (&rstate.error, rstate.reset_code) {
                (Some(e), _) => e.clone(),
                (None, Some(code)) => format!("the server reset the response with code {code:#x}"),
                (None, None) => "no complete response".to_string(),
            });
        }
    }
    let body_sha = hex(rstate.sha.finish().as_ref());
    let sent_sha = hex(sent_sha.finish().as_ref());
    let mut report = Report::new(ok);
    if let Some(e) = error {
        report = report.with("error", e);
    }
    report
        .with("method", plan.method.as_str())
        .with("path", plan.path.as_str())
        .with("status", rstate.status)
        .with("headers", rstate.headers)
        .with("trailers", rstate.trailers)
        .with("bodyLength", rstate.length)
        .with("bodySha256", body_sha)
        .with("bodyEqualsSent", plan.body_bytes.map(|_| rstate.check.equals(sstate.sent) && sstate.finished))
        .with("responseComplete", rstate.complete)
        .with("responseResetCode", rstate.reset_code)
        .with("recvError", rstate.error)
        .with("sentBytes", sstate.sent)
        .with("sentSha256", sent_sha)
        .with("requestFinished", sstate.finished)
        .with("resetSent", sstate.reset_sent)
        .with("stopSendingCode", sstate.stop_sending)
        .with("sendError", sstate.error)
        .with("sendAbandoned", sstate.abandoned)
        .with("responseWaitTimedOut", rstate.wait_timed_out)
        .with("connectMs", connect_ms)
        .with("headersMs", rstate.headers_at.map(ms))
        .with("totalMs", total_ms)
}

/// The :authority for a host and port (IPv6 literals in brackets).
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---------------------------------------------------------------------------------------------
// load

/// A response body as it is read, against `--expect-body-*` (hashed only when a hash is expected).
struct BodyReader {
    length: u64,
    sha: Option<digest::Context>,
}

impl BodyReader {
    fn new(check: &BodyCheck) -> Self {
        BodyReader { length: 0, sha: check.sha256.map(|_| digest::Context::new(&digest::SHA256)) }
    }
    fn update(&mut self, chunk: &[u8]) {
        self.length += chunk.len() as u64;
        if let Some(sha) = &mut self.sha {
            sha.update(chunk);
        }
    }
    /// Whether the whole body was what `check` expects.
    fn matches(self, check: &BodyCheck) -> bool {
        check.length.is_none_or(|l| l == self.length)
            && match (check.sha256, self.sha) {
                (Some(want), Some(sha)) => sha.finish().as_ref() == want,
                _ => true,
            }
    }
}

/// A connection's request opener, either protocol.
#[derive(Clone)]
enum Opener {
    H3(SendRequest),
    H2(h2::client::SendRequest<Bytes>),
}

/// One bodyless request, read to its end; its status and whether its body passed `check`.
async fn one_request(
    opener: &mut Opener,
    method: &http::Method,
    uri: &str,
    check: &BodyCheck,
) -> Result<(u16, bool), String> {
    let request = http::Request::builder().method(method.clone()).uri(uri).body(()).map_err(|e| e.to_string())?;
    let mut body = BodyReader::new(check);
    let status = match opener {
        Opener::H3(send_request) => {
            let mut stream = send_request.send_request(request).await.map_err(|e| format!("send_request: {e}"))?;
            stream.finish().await.map_err(|e| format!("finish: {e}"))?;
            let response = stream.recv_response().await.map_err(|e| format!("response: {e}"))?;
            while let Some(mut buf) = stream.recv_data().await.map_err(|e| format!("body: {e}"))? {
                while buf.has_remaining() {
                    let chunk = buf.chunk();
                    body.update(chunk);
                    let n = chunk.len();
                    buf.advance(n);
                }
            }
            response.status().as_u16()
        }
        Opener::H2(send_request) => {
            // Waits for a stream slot under the server's SETTINGS_MAX_CONCURRENT_STREAMS.
            poll_fn(|cx| send_request.poll_ready(cx)).await.map_err(|e| format!("send_request: {e}"))?;
            // end_of_stream: the HEADERS frame ends the request, as h3's finish() does.
            let (response, _) = send_request.send_request(request, true).map_err(|e| format!("send_request: {e}"))?;
            let response = response.await.map_err(|e| format!("response: {e}"))?;
            let status = response.status().as_u16();
            let mut recv = response.into_body();
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.map_err(|e| format!("body: {e}"))?;
                body.update(&chunk);
                // Gives the bytes back to the stream's and the connection's flow-control windows.
                let _ = recv.flow_control().release_capacity(chunk.len());
            }
            status
        }
    };
    Ok((status, body.matches(check)))
}

#[derive(Default)]
struct WorkerStats {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    bad_bodies: u64,
    errors: u64,
    first_errors: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(ms(sorted[rank - 1]))
}

async fn run_load(client: &Client, plan: LoadPlan) -> Report {
    let started = Instant::now();
    let mut conns = Vec::new();
    let mut h2_conns = Vec::new();
    for _ in 0..plan.connections {
        let connected = match client.dialer {
            Dialer::Quic(_) => connect(client).await.map(|c| conns.push(c)),
            Dialer::Tls(_) => connect_h2(client).await.map(|c| h2_conns.push(c)),
        };
        if let Err(e) = connected {
            close(client, conns).await;
            close_h2(h2_conns).await;
            return Report::fail(e);
        }
    }
    let openers: Vec<Opener> = conns
        .iter()
        .map(|c| Opener::H3(c.send_request.clone()))
        .chain(h2_conns.iter().map(|c| Opener::H2(c.send_request.clone())))
        .collect();
    let connect_ms = ms(started.elapsed());
    let uri = Arc::new(format!("https://{}{}", authority(&client.server_name, client.addr.port()), plan.path));
    let method = Arc::new(plan.method.clone());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut workers = Vec::new();
    for w in 0..plan.concurrency {
        let mut opener = openers[(w % plan.connections) as usize].clone();
        let (uri, method, next) = (uri.clone(), method.clone(), next.clone());
        let (count, per_request, check) = (plan.requests, plan.request_timeout, plan.body_check);
        workers.push(tokio::spawn(async move {
            let mut stats = WorkerStats::default();
            while Instant::now() < deadline && next.fetch_add(1, Ordering::Relaxed) < count {
                let t = Instant::now();
                let outcome = tokio::time::timeout(per_request, one_request(&mut opener, &method, &uri, &check))
                    .await
                    .unwrap_or_else(|_| Err(format!("no complete response within {} ms", per_request.as_millis())));
                match outcome {
                    Ok((status, body_ok)) => {
                        stats.latencies.push(t.elapsed());
                        *stats.statuses.entry(status).or_default() += 1;
                        stats.bad_bodies += u64::from(!body_ok);
                    }
                    Err(e) => {
                        stats.errors += 1;
                        if stats.first_errors.len() < 5 {
                            stats.first_errors.push(e);
                        }
                    }
                }
            }
            stats
        }));
    }
    let mut all = WorkerStats::default();
    for worker in workers {
        match worker.await {
            Ok(stats) => {
                all.latencies.extend(stats.latencies);
                for (status, n) in stats.statuses {
                    *all.statuses.entry(status).or_default() += n;
                }
                all.errors += stats.errors;
                all.bad_bodies += stats.bad_bodies;
                all.first_errors.extend(stats.first_errors);
            }
            Err(e) => {
                all.errors += 1;
                all.first_errors.push(format!("worker task: {e}"));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(openers);
    close(client, conns).await;
    close_h2(h2_conns).await;

    all.latencies.sort();
    all.first_errors.truncate(5);
    let completed = all.latencies.len() as u64;
    let unexpected = match plan.expect_status {
        Some(s) => all.statuses.iter().filter(|(status, _)| **status != s).map(|(_, n)| n).sum(),
        None => 0,
    };
    let stopped_by = if next.load(Ordering::Relaxed) >= plan.requests { "count" } else { "duration" };
    let mean =
        (!all.latencies.is_empty()).then(|| ms(all.latencies.iter().sum::<Duration>()) / all.latencies.len() as f64);
    let latency = J::Obj(vec![
        ("p50".into(), percentile(&all.latencies, 0.50).into()),
        ("p90".into(), percentile(&all.latencies, 0.90).into()),
        ("p99".into(), percentile(&all.latencies, 0.99).into()),
        ("max".into(), all.latencies.last().map(|d| ms(*d)).into()),
        ("mean".into(), mean.into()),
    ]);
    let statuses = J::Obj(all.statuses.iter().map(|(s, n)| (s.to_string(), J::Num(*n))).collect());
    let ok = all.errors == 0 && completed > 0 && unexpected == 0 && all.bad_bodies == 0;
    let mut report = Report::new(ok);
    if !ok {
        let error = if all.errors > 0 {
            format!("{} of {} requests failed; first: {}", all.errors, all.errors + completed, all.first_errors[0])
        } else if completed == 0 {
            "no request completed".to_string()
        } else if unexpected > 0 {
            format!("{unexpected} responses had a status other than {}", plan.expect_status.unwrap_or(0))
        } else {
            format!("{} response bodies were not the expected one", all.bad_bodies)
        };
        report = report.with("error", error);
    }
    report
        .with("method", plan.method.as_str())
        .with("path", plan.path.as_str())
        .with("requested", plan.requests)
        .with("completed", completed)
        .with("errors", all.errors)
        .with("firstErrors", J::Arr(all.first_errors.into_iter().map(J::Str).collect()))
        .with("statuses", statuses)
        .with("unexpectedStatus", unexpected)
        .with("unexpectedBody", all.bad_bodies)
        .with("transport", if matches!(client.dialer, Dialer::Tls(_)) { "h2" } else { "h3" })
        .with("connections", plan.connections)
        .with("concurrency", plan.concurrency)
        .with("seconds", seconds)
        .with("requestsPerSecond", completed as f64 / seconds.max(1e-9))
        .with("latencyMs", latency)
        .with("connectMs", connect_ms)
        .with("stoppedBy", stopped_by)
        .with("clientCpuSeconds", self_cpu_seconds())
}

// ---------------------------------------------------------------------------------------------

async fn run(common: Common, mode: Mode) -> Report {
    let client = match make_client(&common) {
        Ok(c) => c,
        Err(e) => return Report::fail(e),
    };
    match mode {
        Mode::Request(plan) => run_request(&client, plan).await,
        Mode::Load(plan) => run_load(&client, plan).await,
    }
}

fn main() -> ExitCode {
    let (common, mode) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            println!("{}", Report::fail(e.lines().next().unwrap_or("bad arguments")).to_json());
            return ExitCode::from(2);
        }
    };
    let mode_name = match mode {
        Mode::Request(_) => "request",
        Mode::Load(_) => "load",
    };
    let timeout = common.timeout;
    let runtime = if common.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(common.threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            println!("{}", Report::fail(format!("tokio runtime: {e}")).with("mode", mode_name).to_json());
            return ExitCode::from(1);
        }
    };
    let report = runtime.block_on(async move {
        match tokio::time::timeout(timeout, run(common, mode)).await {
            Ok(report) => report,
            Err(_) => Report::fail(format!("timed out after {} ms", timeout.as_millis())),
        }
    });
    let report = report.with("mode", mode_name);
    println!("{}", report.to_json());
    // Don't wait for lingering tasks (a driver or a stream racing the closed connection).
    std::process::exit(if report.ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_sha256_blocks() {
        let mut whole = Vec::new();
        pattern_into(&mut whole, 0, 100);
        assert_eq!(&whole[..32], digest::digest(&digest::SHA256, b"h3-body:0").as_ref());
        assert_eq!(&whole[32..64], digest::digest(&digest::SHA256, b"h3-body:1").as_ref());
        // Any split gives the same bytes.
        let mut parts = Vec::new();
        pattern_into(&mut parts, 0, 7);
        pattern_into(&mut parts, 7, 40);
        pattern_into(&mut parts, 47, 53);
        assert_eq!(parts, whole);
        let mut check = PatternCheck::new();
        check.update(&whole[..50]);
        check.update(&whole[50..]);
        assert!(check.equals(100));
        assert!(!check.equals(99));
        let mut bad = whole.clone();
        bad[70] ^= 1;
        let mut check = PatternCheck::new();
        check.update(&bad);
        assert_eq!(check.first_mismatch, Some(70));
    }

    #[test]
    fn urls_and_numbers_parse() {
        assert_eq!(parse_url("https://127.0.0.1:4433").unwrap(), ("127.0.0.1".into(), 4433, "/".into()));
        assert_eq!(parse_url("https://[::1]:8443/a?b=1").unwrap(), ("::1".into(), 8443, "/a?b=1".into()));
        assert!(parse_url("http://127.0.0.1:1/").is_err());
        assert_eq!(parse_num::<u64>("x", "0x10c").unwrap(), 0x10c);
        assert_eq!(parse_num::<u64>("x", "12").unwrap(), 12);
        assert!(parse_num::<u16>("x", "70000").is_err());
        assert_eq!(authority("::1", 1), "[::1]:1");
    }
}
