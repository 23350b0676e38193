//! Server options after validation, and the QUIC transport settings derived from them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::error::{Error, ErrorCode, Result};
use super::tls;

/// Who decides whether a request's origin may open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginPolicy {
    /// The built-in rule: no `Origin`, or an `Origin` whose host equals the request's host.
    SameHost,
    /// The embedder decides (a JS `checkOrigin`), through the request handler.
    Application,
}

/// The congestion controller QUIC uses for every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionControl {
    Cubic,
    Bbr,
    NewReno,
}

impl std::str::FromStr for CongestionControl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cubic" => Ok(Self::Cubic),
            "bbr" => Ok(Self::Bbr),
            "newreno" => Ok(Self::NewReno),
            other => Err(Error::new(
                ErrorCode::InvalidOption,
                format!("congestionControl must be 'cubic', 'bbr' or 'newreno', got {other:?}"),
            )),
        }
    }
}

/// Whether the server advertises QUIC's `reset_stream_at` transport parameter
/// (draft-ietf-quic-reliable-stream-reset), which WebTransport over HTTP/3 asks of both ends so a
/// reset stream still delivers its WebTransport header. Off: quinn 0.11 implements neither the
/// parameter nor the RESET_STREAM_AT frame (quinn-rs/quinn#2676). Browsers do not require it;
/// webtransport-go from v0.12 refuses a server without it (README, "How it is built";
/// __test__/webtransport-go.test.mjs asserts the refusal). Turning it on is this constant, the
/// quinn setting in [`ServerConfig::quinn_config`], and then resetting our WebTransport streams with
/// RESET_STREAM_AT at their header's length.
pub const ADVERTISE_RESET_STREAM_AT: bool = false;

/// Per-session limits this server gives each client, and the credit it replenishes as the
/// application consumes: at most `max_data` unread stream bytes and `max_streams_*` streams not
/// yet done, per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    pub max_data: u64,
    pub max_streams_bidi: u64,
    pub max_streams_uni: u64,
}

impl Default for FlowLimits {
    /// Wide enough that a browser is never held back in practice: the QUIC connection's own
    /// receive window is 16 MiB and its concurrent stream limits are 100 of each kind, so these
    /// match what one session could use of the connection anyway.
    fn default() -> Self {
        Self { max_data: 16 * 1024 * 1024, max_streams_bidi: 100, max_streams_uni: 100 }
    }
}

impl CongestionControl {
    /// quinn's controller for this choice, for servers and clients alike.
    pub fn factory(self) -> Arc<dyn quinn::congestion::ControllerFactory + Send + Sync> {
        match self {
            Self::Cubic => Arc::new(quinn::congestion::CubicConfig::default()),
            Self::Bbr => Arc::new(quinn::congestion::BbrConfig::default()),
            Self::NewReno => Arc::new(quinn::congestion::NewRenoConfig::default()),
        }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub origin_policy: OriginPolicy,
    /// Sessions open at once across the server; requests beyond it get 429.
    pub max_sessions: u32,
    /// Concurrent incoming bidirectional streams per connection (QUIC MAX_STREAMS).
    pub max_incoming_bidi_streams: u32,
    /// Concurrent incoming unidirectional streams per connection; HTTP/3 itself uses three.
    pub max_incoming_uni_streams: u32,
    pub idle_timeout: Duration,
    pub keep_alive_interval: Option<Duration>,
    /// How long a request may wait for the application's decision before it is refused (503).
    pub decision_timeout: Duration,
    /// How long a WebTransport request waits for the client's SETTINGS.
    pub settings_timeout: Duration,
    /// Received datagrams queued per session before the oldest are dropped.
    pub datagram_queue: usize,
    /// Datagrams QUIC may hold for sending (counted at 1500 bytes each) before it drops the oldest.
    pub outgoing_datagram_queue: usize,
    pub congestion_control: CongestionControl,
    /// Largest request header section (encoded) accepted.
    pub max_header_bytes: usize,
    /// Honour SSLKEYLOGFILE (TLS secrets for packet captures). Off by default: key material is
    /// never written anywhere unless the application opts in.
    pub key_log: bool,
    /// Requested UDP receive buffer of the server socket, in bytes (Linux doubles it for its
    /// bookkeeping and caps it at net.core.rmem_max); 0 keeps the system default. The 208 KiB
    /// default drops a burst of 200 handshakes' Initial packets, each costing its client a 1 s
    /// probe timeout; 512 KiB keeps them. Larger is not better: on loopback 4 MiB cost 10-20 %
    /// of bulk echo throughput (packets wait longer in the socket before quinn sees them).
    pub socket_buffer: usize,
    /// WebTransport flow control's per-session limits (draft-14 to -16), for clients that use it.
    pub flow_control: FlowLimits,
    /// Largest regular request body accepted, in bytes; larger gets 413.
    pub max_request_body: u64,
    /// Endpoints (sockets and quinn endpoint tasks) sharing the address, at most
    /// [`MAX_WORKERS`](super::endpoint::MAX_WORKERS). Linux only (SO_REUSEPORT and a classic-BPF
    /// program steering by connection ID); elsewhere always 1. Default: the runtime's workers.
    pub workers: usize,
    /// Written into every connection ID after its first octet (QUIC-LB plaintext layout) for a
    /// balancer that routes by it, such as AWS NLB's QUIC listeners (8 bytes there); at most
    /// [`MAX_SERVER_ID`](super::endpoint::ids::MAX_SERVER_ID) bytes, empty for none. Packets
    /// whose ID lacks it are dropped, not answered with a stateless reset.
    pub server_id: Vec<u8>,
    /// At least 32 bytes from which the stateless-reset key and the address-token key are
    /// derived, shared by every instance of a fleet and kept across restarts; `None`: random
    /// keys, which only this process knows.
    pub secret: Option<Vec<u8>>,
    /// Whether the workers' sockets are steered by connection ID. Off, the kernel picks by a hash
    /// of the 4-tuple, which loses connections whose client changes port: there only to show
    /// that (the tests' negative control) and to compare.
    pub steer: bool,
}

impl ServerConfig {
    /// Defaults for everything but the address and the certificate.
    pub fn new(addr: SocketAddr, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        Self {
            addr,
            cert_pem,
            key_pem,
            origin_policy: OriginPolicy::SameHost,
            max_sessions: 10_000,
            max_incoming_bidi_streams: 100,
            max_incoming_uni_streams: 100,
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: None,
            decision_timeout: Duration::from_secs(10),
            settings_timeout: Duration::from_secs(5),
            datagram_queue: 1024,
            outgoing_datagram_queue: 1024,
            congestion_control: CongestionControl::Cubic,
            max_header_bytes: 16 * 1024,
            key_log: false,
            socket_buffer: 512 << 10,
            flow_control: FlowLimits::default(),
            max_request_body: 64 * 1024 * 1024,
            workers: runtime_workers(),
            server_id: Vec::new(),
            secret: None,
            steer: true,
        }
    }

    /// Builds quinn's server configuration, its address tokens sealed with `token_key`; fails on
    /// a bad certificate, key or limit.
    pub fn quinn_config(&self, token_key: Arc<ring::hkdf::Prk>) -> Result<quinn::ServerConfig> {
        let mut crypto = tls::server_crypto(&self.cert_pem, &self.key_pem)?;
        if self.key_log {
            crypto.key_log = Arc::new(rustls::KeyLogFile::new());
        }
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)
            .map_err(|e| Error::new(ErrorCode::InvalidCert, format!("tls setup for quic failed: {e}")))?;
        let mut server = quinn::ServerConfig::new(Arc::new(crypto), token_key);
        let mut transport = quinn::TransportConfig::default();
        // The session's own CONNECT request is a client bidirectional stream too; without a slot
        // for it a session would get one stream fewer than configured.
        transport.max_concurrent_bidi_streams(self.max_incoming_bidi_streams.saturating_add(1).into());
        // HTTP/3 needs three uni streams of its own (control, QPACK encoder and decoder).
        transport.max_concurrent_uni_streams((self.max_incoming_uni_streams.saturating_add(3)).into());
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| Error::new(ErrorCode::InvalidOption, "idleTimeout is too large"))?;
        transport.max_idle_timeout(Some(idle));
        transport.keep_alive_interval(self.keep_alive_interval);
        // Advertising max_datagram_frame_size is what lets browsers send datagrams at all.
        transport.datagram_receive_buffer_size(Some(4 * 1024 * 1024));
        transport.datagram_send_buffer_size(self.outgoing_datagram_queue.max(1).saturating_mul(1500));
        transport.congestion_controller_factory(self.congestion_control.factory());
        transport.stream_receive_window((2u32 * 1024 * 1024).into());
        transport.receive_window((16u32 * 1024 * 1024).into());
        transport.send_window(16 * 1024 * 1024);
        // Where reset_stream_at will be advertised: see ADVERTISE_RESET_STREAM_AT. quinn 0.11 has
        // no setting to call here, so this stops a build that turns the constant on alone.
        const { assert!(!ADVERTISE_RESET_STREAM_AT, "quinn 0.11 cannot advertise reset_stream_at (quinn-rs/quinn#2676)") };
        server.transport_config(Arc::new(transport));
        Ok(server)
    }
}

/// Worker threads for the tokio runtime a server runs on: one per core but one, which the
/// application's own thread keeps busy (Node's, in the addon). On this 2-core machine one worker
/// against two cut the addon's CPU per request/response stream by ~12 % and the core echo's per
/// bulk byte by ~18 %: with two, a stream's task and its connection's driver ran on different
/// threads and woke each other across them (bench/README.md, profile 5).
pub fn runtime_workers() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    cores.saturating_sub(1).clamp(1, 8)
}
