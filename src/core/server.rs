//! The server: a quinn endpoint, its accept loop, the registry of live sessions, and shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::ServerConfig;
use super::connection;
use super::error::{Error, ErrorCode, Result};
use super::request::RequestInfo;
use super::session::{Session, SessionShared};

/// The application's answer to a session request.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Accept, answering 200 with these extra headers and this subprotocol (empty for none).
    Accept { headers: Vec<(String, String)>, protocol: String },
    /// Refuse with a non-2xx status and headers.
    Reject { status: u16, headers: Vec<(String, String)> },
}

/// A WebTransport request waiting for the application's decision. Dropping it unanswered
/// refuses the request with 500, so a lost request never hangs its client.
pub struct IncomingRequest {
    pub info: Arc<RequestInfo>,
    pub(crate) reply: oneshot::Sender<(Decision, Option<oneshot::Sender<Session>>)>,
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest").field("info", &self.info).finish()
    }
}

impl IncomingRequest {
    /// Accepts the request; resolves with the session once the 200 response has been written,
    /// or `None` if the client went away first.
    pub async fn accept(self, headers: Vec<(String, String)>, protocol: String) -> Option<Session> {
        let (tx, rx) = oneshot::channel();
        self.reply.send((Decision::Accept { headers, protocol }, Some(tx))).ok()?;
        rx.await.ok()
    }

    /// Refuses the request with `status` (must not be 2xx; a 2xx becomes 500) and headers.
    pub fn reject(self, status: u16, headers: Vec<(String, String)>) {
        let _ = self.reply.send((Decision::Reject { status, headers }, None));
    }
}

/// Receives the requests that passed the server's own checks. Called on a tokio worker; must
/// not block.
pub trait RequestHandler: Send + Sync + 'static {
    fn on_request(&self, request: IncomingRequest);

    /// A contained internal fault (a panic in a connection's task): the connection was closed
    /// with H3_INTERNAL_ERROR and the server goes on. For logs and operators.
    fn on_fault(&self, _message: &str) {}
}

/// Live counts, for tests and operators: after sessions end these return to zero.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub sessions: AtomicU64,
    /// Contained panics since start.
    pub faults: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub connections: u64,
    pub sessions: u64,
    pub faults: u64,
    /// Tasks this server is running (accept loop, per-connection and per-stream tasks).
    pub tasks: u64,
    /// WebTransport stream halves alive in the process (all servers).
    pub stream_halves: u64,
}

/// Unregisters a session when dropped, also while a panicking task unwinds.
pub(crate) struct Registration {
    server: Arc<ServerShared>,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.server.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
        self.server.counters.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) struct ServerShared {
    pub(crate) config: ServerConfig,
    pub(crate) handler: Arc<dyn RequestHandler>,
    pub(crate) tracker: TaskTracker,
    /// Cancelled when the server starts closing.
    pub(crate) closing: CancellationToken,
    pub(crate) sessions: Mutex<HashMap<u64, Arc<SessionShared>>>,
    next_session_key: AtomicU64,
    closed: AtomicBool,
    pub(crate) counters: Counters,
}

impl ServerShared {
    /// Registers a live session until the returned guard drops, or `None` when the session
    /// limit is reached.
    pub(crate) fn register(self: &Arc<Self>, session: Arc<SessionShared>) -> Option<Registration> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= self.config.max_sessions as usize {
            return None;
        }
        let key = self.next_session_key.fetch_add(1, Ordering::Relaxed);
        sessions.insert(key, session);
        self.counters.sessions.fetch_add(1, Ordering::Relaxed);
        Some(Registration { server: self.clone(), key })
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A running server; cheap to clone.
#[derive(Clone)]
pub struct Server {
    shared: Arc<ServerShared>,
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.local_addr).finish()
    }
}

fn os_code(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    Some(match kind {
        AddrInUse => "EADDRINUSE",
        AddrNotAvailable => "EADDRNOTAVAIL",
        PermissionDenied => "EACCES",
        InvalidInput => "EINVAL",
        _ => return None,
    })
}

impl Server {
    /// Validates the configuration, binds the UDP socket and starts accepting. Must be called
    /// inside a tokio runtime.
    pub fn bind(config: ServerConfig, handler: Arc<dyn RequestHandler>) -> Result<Self> {
        let quinn_config = config.quinn_config()?;
        let socket = std::net::UdpSocket::bind(config.addr).map_err(|e| {
            let mut err = Error::new(ErrorCode::Bind, format!("cannot bind udp {}: {e}", config.addr));
            err.os_code = os_code(e.kind());
            err
        })?;
        // Best effort: a kernel that refuses or caps the size still gives a working socket.
        let sock = socket2::SockRef::from(&socket);
        if config.socket_buffer > 0 {
            let _ = sock.set_recv_buffer_size(config.socket_buffer);
        }
        let runtime = quinn::default_runtime()
            .ok_or_else(|| Error::new(ErrorCode::Bind, "no async runtime to run the endpoint on"))?;
        let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(quinn_config), socket, runtime)
            .map_err(|e| {
                let mut err = Error::new(ErrorCode::Bind, format!("cannot use udp {}: {e}", config.addr));
                err.os_code = os_code(e.kind());
                err
            })?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|e| Error::new(ErrorCode::Bind, format!("cannot read the bound address: {e}")))?;
        let shared = Arc::new(ServerShared {
            config,
            handler,
            tracker: TaskTracker::new(),
            closing: CancellationToken::new(),
            sessions: Mutex::new(HashMap::new()),
            next_session_key: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let accept_endpoint = endpoint.clone();
        let accept_shared = shared.clone();
        shared.tracker.spawn(async move {
            loop {
                let incoming = tokio::select! {
                    incoming = accept_endpoint.accept() => incoming,
                    () = accept_shared.closing.cancelled() => None,
                };
                let Some(incoming) = incoming else { break };
                let conn_shared = accept_shared.clone();
                accept_shared.tracker.spawn(connection::run(incoming, conn_shared));
            }
        });
        Ok(Self { shared, endpoint, local_addr })
    }

    async fn wait_for_sessions(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.shared.session_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sessions currently open.
    pub fn session_count(&self) -> usize {
        self.shared.session_count()
    }

    /// Live connections and sessions, and contained faults.
    pub fn counters(&self) -> CounterSnapshot {
        let c = &self.shared.counters;
        CounterSnapshot {
            connections: c.connections.load(Ordering::Relaxed),
            sessions: c.sessions.load(Ordering::Relaxed),
            faults: c.faults.load(Ordering::Relaxed),
            tasks: self.shared.tracker.len() as u64,
            stream_halves: super::stream::live_stream_halves(),
        }
    }

    /// Drains and stops: refuses new connections, sends GOAWAY on every connection and
    /// DRAIN_WEBTRANSPORT_SESSION on every session, lets sessions end by themselves for up to
    /// `grace`, closes the rest with `code` and `reason`, then closes the endpoint and waits for
    /// every task. Idempotent: later calls wait for the same end.
    pub async fn close(&self, code: u32, reason: &str, grace: Duration) {
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            self.endpoint.set_server_config(None);
            self.shared.closing.cancel();
            self.wait_for_sessions(grace).await;
            let sessions: Vec<_> =
                self.shared.sessions.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
            for session in sessions {
                (Session { shared: session }).close(code, reason);
            }
            // Each close waits (bounded) for finished streams' data to be acknowledged, then for
            // its capsule to be written and acknowledged (close_locally: 2 s and 1 s).
            self.wait_for_sessions(connection::FINISHED_DATA_WAIT + Duration::from_secs(3)).await;
            // An acknowledged capsule may still be unread by the client's WebTransport layer;
            // closing the connection under it turns a clean close into "connection lost" there.
            // Clients close their connections once their sessions are gone: wait a little.
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while self.shared.counters.connections.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.endpoint.close(quinn::VarInt::from_u32(super::proto::code::H3_NO_ERROR as u32), b"server closed");
            self.shared.tracker.close();
        }
        self.shared.tracker.wait().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}
