//! The client end of WebTransport: sessions opened to a server over this crate's own HTTP/3, with
//! the same session and stream handles, capsules, routing and flow control as the server's. The
//! HTTP/3 layer runs the connection in its client role; here are the CONNECT request, its answer,
//! and the session's driver.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::driver::drive_session;
use super::extension::ConnectionWebTransport;
use super::flow::{self, FlowControl};
use super::session::{Session, SessionShared};
use super::wire;
use crate::core::config::{CongestionControl, FlowLimits};
use crate::core::counters::Counters;
use crate::core::error::{Error, ErrorCode};
use crate::core::h3::connection::{self, close_unless_gone, varint_code, Connection, FrameReader, Host, ReadOutcome};
use crate::core::h3::proto::{code, frame, put_frame};
use crate::core::h3::qpack;
use crate::core::h3::request::RequestInfo;
use crate::core::trust::{client_crypto, Refusal, ServerTrust};

/// Requested UDP receive buffer of a client endpoint, in bytes.
const CLIENT_SOCKET_BUFFER: usize = 512 << 10;

/// How a client's sessions behave.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// WebTransport flow control's limits this client gives servers that use it.
    pub flow_control: FlowLimits,
    /// Received datagrams queued per session before the oldest are dropped.
    pub datagram_queue: usize,
    /// How long to wait for the server's SETTINGS, then for its answer to the CONNECT.
    pub timeout: Duration,
    /// Largest response header section accepted.
    pub max_header_bytes: usize,
    pub congestion_control: CongestionControl,
    /// A connection with nothing heard for this long is lost.
    pub idle_timeout: Duration,
    /// PINGs this often keep a quiet session from idling out (servers time out at 30 s by default).
    pub keep_alive_interval: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            flow_control: FlowLimits::default(),
            datagram_queue: 1024,
            timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            congestion_control: CongestionControl::Cubic,
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: Some(Duration::from_secs(10)),
        }
    }
}

impl ClientConfig {
    /// quinn's configuration for one connection that trusts servers as `trust` says (a refused
    /// certificate is explained in `refusal`), with windows as wide as the server's
    /// (`ServerConfig::quinn_config`), so that neither end is the narrower one.
    pub fn quinn_config(&self, trust: &ServerTrust, refusal: &Refusal) -> Result<quinn::ClientConfig, Error> {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto(trust, refusal)?)
            .map_err(|e| Error::new(ErrorCode::InvalidOption, format!("tls setup for quic failed: {e}")))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| Error::new(ErrorCode::InvalidOption, "idleTimeout is too large"))?;
        transport.max_idle_timeout(Some(idle));
        transport.keep_alive_interval(self.keep_alive_interval);
        transport.datagram_receive_buffer_size(Some(4 * 1024 * 1024));
        transport.congestion_controller_factory(self.congestion_control.factory());
        transport.stream_receive_window((2u32 * 1024 * 1024).into());
        transport.receive_window((16u32 * 1024 * 1024).into());
        transport.send_window(16 * 1024 * 1024);
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

/// What a session request asks for.
#[derive(Debug, Clone, Default)]
pub struct SessionRequest {
    /// `:authority`: host and port.
    pub authority: String,
    /// `:path`, query included.
    pub path: String,
    pub origin: Option<String>,
    /// Subprotocols offered in `wt-available-protocols`, in preference order.
    pub protocols: Vec<String>,
    /// Further request headers (names lower-case).
    pub headers: Vec<(String, String)>,
}

/// Opens WebTransport sessions from one quinn client endpoint; each session gets a connection of
/// its own. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    endpoint: quinn::Endpoint,
    host: Arc<Host>,
    config: ClientConfig,
    closing: CancellationToken,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn connect_error(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::ConnectionLost, message)
}

impl Client {
    /// A client on `endpoint` (a quinn client endpoint with its TLS configuration set, ALPN
    /// `h3`). Must be called inside a tokio runtime.
    pub fn new(endpoint: quinn::Endpoint, config: ClientConfig) -> Self {
        let host = Arc::new(Host {
            tracker: TaskTracker::new(),
            closing: CancellationToken::new(),
            counters: Arc::new(Counters::default()),
            max_header_bytes: config.max_header_bytes,
            on_fault: Box::new(|_| {}),
            extension: None,
            requests: None,
        });
        let closing = host.closing.clone();
        Self { endpoint, host, config, closing }
    }

    /// A client on a UDP socket of its own: `local` when given, else any port of every address
    /// (IPv6 and IPv4 both, where the system has IPv6). Must be called inside a tokio runtime.
    pub fn bind(local: Option<SocketAddr>, config: ClientConfig) -> Result<Self, Error> {
        let bind_error = |addr: SocketAddr, e: std::io::Error| {
            Error::new(ErrorCode::Bind, format!("cannot bind the client's udp socket to {addr}: {e}"))
        };
        let socket = match local {
            Some(addr) => std::net::UdpSocket::bind(addr).map_err(|e| bind_error(addr, e))?,
            None => dual_stack_socket().or_else(|_| {
                let any = SocketAddr::from(([0, 0, 0, 0], 0));
                std::net::UdpSocket::bind(any).map_err(|e| bind_error(any, e))
            })?,
        };
        // As the server's (ServerConfig::socket_buffer): the default 208 KiB dropped hundreds of
        // packets in a burst of 200 handshakes, each costing its session a 1 s retransmit timer.
        // Best effort: a kernel that caps the size still gives a working socket.
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(CLIENT_SOCKET_BUFFER);
        let runtime = quinn::default_runtime()
            .ok_or_else(|| Error::new(ErrorCode::Bind, "no async runtime to run the client endpoint on"))?;
        let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)
            .map_err(|e| Error::new(ErrorCode::Bind, format!("cannot use the client's udp socket: {e}")))?;
        Ok(Self::new(endpoint, config))
    }

    /// The UDP address this client sends from.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// Opens a session with the endpoint's default configuration: see [`Self::connect_with`].
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
        request: SessionRequest,
    ) -> Result<Session, Error> {
        let connecting =
            self.endpoint.connect(addr, server_name).map_err(|e| connect_error(format!("cannot connect: {e}")))?;
        self.open(connecting, request, &Refusal::default()).await
    }

    /// Opens a session: a QUIC connection to `addr` with `transport`'s settings, trusting the
    /// server as `trust` says (TLS server name `server_name`), the server's SETTINGS, then the
    /// extended CONNECT. Fails with the server's status when it answers other than 2xx, and says
    /// why when the handshake fails (an untrusted certificate among others).
    pub async fn connect_trusting(
        &self,
        transport: &ClientConfig,
        trust: &ServerTrust,
        addr: SocketAddr,
        server_name: &str,
        request: SessionRequest,
    ) -> Result<Session, Error> {
        let refusal = Refusal::default();
        let connecting = self
            .endpoint
            .connect_with(transport.quinn_config(trust, &refusal)?, addr, server_name)
            .map_err(|e| connect_error(format!("cannot connect to {addr}: {e}")))?;
        self.open(connecting, request, &refusal).await
    }

    async fn open(
        &self,
        connecting: quinn::Connecting,
        request: SessionRequest,
        refusal: &Refusal,
    ) -> Result<Session, Error> {
        let conn = tokio::time::timeout(self.config.timeout, connecting)
            .await
            .map_err(|_| Error::new(ErrorCode::HandshakeFailed, "the QUIC handshake timed out"))?
            .map_err(|e| {
                let why = refusal.take().unwrap_or_else(|| e.to_string());
                Error::new(ErrorCode::HandshakeFailed, format!("the QUIC handshake failed: {why}"))
            })?;
        let settings = wire::server_settings(1, &self.config.flow_control);
        let (h3, client) = connection::start_client(conn.clone(), self.host.clone(), |h3| {
            Arc::new(ConnectionWebTransport::client(h3, settings))
        });
        match self.open_session(&h3, &client, request).await {
            Ok(session) => Ok(session),
            Err(error) => {
                conn.close(varint_code(code::H3_NO_ERROR), b"session refused");
                Err(error)
            }
        }
    }

    async fn open_session(
        &self,
        h3: &Arc<Connection>,
        client: &Arc<ConnectionWebTransport>,
        request: SessionRequest,
    ) -> Result<Session, Error> {
        // The token and the rules of the draft the server speaks: its SETTINGS decide.
        let mut settings_rx = h3.peer_settings();
        let peer = tokio::time::timeout(self.config.timeout, settings_rx.wait_for(Option::is_some))
            .await
            .map_err(|_| connect_error("the server sent no HTTP/3 SETTINGS in time"))?
            .map_err(|_| connect_error("the connection closed before the server's SETTINGS"))?
            .clone()
            .ok_or_else(|| connect_error("the server's SETTINGS are missing"))?;
        if !wire::supports_webtransport(&peer) || !peer.supports_datagrams() {
            return Err(Error::new(ErrorCode::SessionClosed, "the server does not offer WebTransport"));
        }
        // A server that speaks the current drafts gets their token, even when it also announces
        // the old form for browsers; one that speaks only the old form gets the old token.
        let token = if wire::speaks_current_webtransport(&peer) { "webtransport-h3" } else { "webtransport" };
        let (mut send, recv) =
            h3.conn.open_bi().await.map_err(|e| connect_error(format!("cannot open the CONNECT stream: {e}")))?;
        let id = u64::from(send.id());
        client.router.request_started(id);
        let offered = request.protocols.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
        let mut fields: Vec<(&str, &str)> = vec![
            (":method", "CONNECT"),
            (":protocol", token),
            (":scheme", "https"),
            (":authority", &request.authority),
            (":path", &request.path),
        ];
        if let Some(origin) = &request.origin {
            fields.push(("origin", origin));
        }
        if !offered.is_empty() {
            fields.push(("wt-available-protocols", &offered));
        }
        fields.extend(request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let mut block = Vec::new();
        qpack::encode_field_section(&fields, &mut block);
        let mut head = BytesMut::new();
        put_frame(frame::HEADERS, &block, &mut head);
        send.write_all(&head).await.map_err(|e| connect_error(format!("cannot send the CONNECT: {e}")))?;

        let mut reader = FrameReader { recv, buf: BytesMut::new() };
        let answer =
            tokio::time::timeout(self.config.timeout, read_response(&mut reader, self.config.max_header_bytes))
                .await
                .map_err(|_| connect_error("the server did not answer the CONNECT in time"))??;
        let status = answer.iter().find(|(n, _)| n == ":status").and_then(|(_, v)| v.parse::<u16>().ok()).unwrap_or(0);
        if !(200..300).contains(&status) {
            client.router.bury(id);
            let mut error =
                Error::new(ErrorCode::SessionRefused, format!("the server refused the session with status {status}"));
            error.status = Some(status);
            return Err(error);
        }
        let protocol = answer
            .iter()
            .find(|(n, _)| n == "wt-protocol")
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .filter(|p| request.protocols.contains(p))
            .unwrap_or_default();
        let info = RequestInfo {
            method: "CONNECT".into(),
            protocol: token.into(),
            scheme: "https".into(),
            authority: request.authority.clone(),
            path: request.path.clone(),
            origin: request.origin.clone(),
            headers: answer.into_iter().filter(|(n, _)| !n.starts_with(':')).collect(),
            protocols: request.protocols.clone(),
            remote: h3.conn.remote_address(),
        };
        let flow = (flow::declares_flow_control(&peer))
            .then(|| FlowControl::new(self.config.flow_control, flow::initial_limits(&peer)));
        let (session, close_rx) =
            SessionShared::new(id, h3.conn.clone(), Arc::new(info), protocol, self.config.datagram_queue, flow);
        client.router.attach(&session);
        let closing = self.closing.clone();
        let router = client.clone();
        let driven = session.clone();
        let conn = h3.conn.clone();
        self.host.tracker.spawn(async move {
            drive_session(&closing, &router.router, &driven, send, reader, close_rx).await;
            router.router.bury(id);
            // One session per connection, as browsers do for sessions that pin certificates: its
            // end is the connection's (the driver waited for the close to be acknowledged).
            close_unless_gone(&conn, code::H3_NO_ERROR, b"");
        });
        Ok(Session { shared: session })
    }

    /// Drains every session (DRAIN_WEBTRANSPORT_SESSION), waits for their drivers, and closes the
    /// endpoint's connections.
    pub async fn close(&self) {
        self.closing.cancel();
        self.host.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.host.tracker.wait()).await;
        self.endpoint.close(varint_code(code::H3_NO_ERROR), b"client closed");
    }
}

/// An unbound-address socket that reaches IPv4 peers too (as IPv4-mapped addresses).
fn dual_stack_socket() -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
    Ok(socket.into())
}

/// The clients of one process: a client endpoint per local address, made for the first session
/// that needs it and closed when its last session ends, so that an idle process holds no socket
/// (and Node can exit). Each session still has a connection of its own.
pub struct SharedClients {
    config: ClientConfig,
    clients: Mutex<HashMap<Option<SocketAddr>, Shared>>,
}

struct Shared {
    client: Client,
    /// Sessions opening or open on it.
    users: usize,
}

impl std::fmt::Debug for SharedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedClients").field("endpoints", &self.endpoints()).finish_non_exhaustive()
    }
}

impl SharedClients {
    pub fn new(config: ClientConfig) -> Arc<Self> {
        Arc::new(Self { config, clients: Mutex::new(HashMap::new()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<SocketAddr>, Shared>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Client endpoints open now.
    pub fn endpoints(&self) -> usize {
        self.lock().len()
    }

    /// Opens a session from the endpoint of `local` (made now if there is none): see
    /// [`Client::connect_trusting`]. Must be called inside a tokio runtime.
    pub async fn connect(
        self: &Arc<Self>,
        local: Option<SocketAddr>,
        transport: &ClientConfig,
        trust: &ServerTrust,
        addr: SocketAddr,
        server_name: &str,
        request: SessionRequest,
    ) -> Result<Session, Error> {
        let client = {
            let mut clients = self.lock();
            let shared = match clients.entry(local) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(Shared { client: Client::bind(local, self.config.clone())?, users: 0 })
                }
            };
            shared.users += 1;
            shared.client.clone()
        };
        let opened = client.connect_trusting(transport, trust, addr, server_name, request).await;
        match &opened {
            Ok(session) => {
                let (pool, session) = (self.clone(), session.clone());
                tokio::spawn(async move {
                    session.closed().await;
                    pool.release(local);
                });
            }
            Err(_) => self.release(local),
        }
        opened
    }

    fn release(&self, local: Option<SocketAddr>) {
        let idle = {
            let mut clients = self.lock();
            let Some(shared) = clients.get_mut(&local) else { return };
            shared.users = shared.users.saturating_sub(1);
            if shared.users > 0 {
                return;
            }
            clients.remove(&local).map(|shared| shared.client)
        };
        if let Some(client) = idle {
            tokio::spawn(async move { client.close().await });
        }
    }
}

/// Reads the response HEADERS of a request stream (interim and unknown frames skipped).
async fn read_response(reader: &mut FrameReader, max: usize) -> Result<Vec<(String, String)>, Error> {
    let broken = || connect_error("the CONNECT stream ended without an answer");
    loop {
        let ReadOutcome::Ok(kind) = reader.varint().await else { return Err(broken()) };
        let ReadOutcome::Ok(len) = reader.varint().await else { return Err(broken()) };
        if kind != frame::HEADERS {
            let ReadOutcome::Ok(()) = reader.skip(len).await else { return Err(broken()) };
            continue;
        }
        if len > max as u64 {
            return Err(connect_error("the response header section is too large"));
        }
        let ReadOutcome::Ok(block) = reader.bytes(len as usize).await else { return Err(broken()) };
        let fields = qpack::decode_field_section(&block, max)
            .map_err(|e| connect_error(format!("cannot decode the response headers: {e:?}")))?;
        let fields: Vec<(String, String)> = fields.into_iter().map(|f| (f.name, f.value)).collect();
        // 1xx answers are interim: the final one follows.
        let interim = fields.iter().any(|(n, v)| n == ":status" && v.starts_with('1'));
        if !interim {
            return Ok(fields);
        }
    }
}
