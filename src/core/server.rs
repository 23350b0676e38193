//! The server: its quinn endpoints (one per worker) and their accept loops, the HTTP/3 layer every connection runs and
//! the WebTransport layer above it, and shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::ServerConfig;
use super::counters::{CounterSnapshot, Counters};
use super::endpoint::{self, EndpointKeys, EndpointPlan, IdLayout, Worker};
use super::error::{Error, ErrorCode, Result};
use super::h3::connection::{self, Host, RequestService};
use super::h3::proto::code;
use super::http::service::Http;
use super::http::HttpHandler;
use super::webtransport::driver::FINISHED_DATA_WAIT;
use super::webtransport::incoming::RequestHandler;
use super::webtransport::layer::WebTransport;
use super::webtransport::session::Session;
use super::webtransport::stream::live_stream_halves;

/// A running server; cheap to clone.
#[derive(Clone)]
pub struct Server {
    host: Arc<Host>,
    webtransport: Arc<WebTransport>,
    closed: Arc<AtomicBool>,
    workers: Arc<Vec<Worker>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.local_addr).finish()
    }
}

impl Server {
    /// Validates the configuration, binds the UDP socket and starts accepting. Must be called
    /// inside a tokio runtime.
    pub fn bind(config: ServerConfig, handler: Arc<dyn RequestHandler>) -> Result<Self> {
        Self::bind_serving(config, handler, None)
    }

    /// [`Self::bind`], with `http` answering regular HTTP/3 requests (without it they get 404).
    pub fn bind_serving(
        config: ServerConfig,
        handler: Arc<dyn RequestHandler>,
        http: Option<Arc<dyn HttpHandler>>,
    ) -> Result<Self> {
        let keys = EndpointKeys::new(config.secret.as_deref())?;
        let quinn_config = config.quinn_config(keys.token.clone())?;
        let plan = EndpointPlan {
            addr: config.addr,
            workers: config.workers,
            layout: IdLayout::new(config.server_id.clone())?,
            keys,
            steer: config.steer,
            socket_buffer: config.socket_buffer,
        };
        let workers = endpoint::start(&plan, quinn_config)?;
        let local_addr = workers
            .first()
            .and_then(|w| w.endpoint.local_addr().ok())
            .ok_or_else(|| Error::new(ErrorCode::Bind, "cannot read the bound address"))?;
        let closing = CancellationToken::new();
        let counters = Arc::new(Counters::default());
        let max_header_bytes = config.max_header_bytes;
        let requests: Option<Arc<dyn RequestService>> = http
            .map(|handler| Arc::new(Http { handler, max_body: config.max_request_body }) as Arc<dyn RequestService>);
        let fault_handler = handler.clone();
        let webtransport = WebTransport::new(config, handler, closing.clone(), counters.clone());
        let host = Arc::new(Host {
            tracker: TaskTracker::new(),
            closing,
            counters,
            max_header_bytes,
            on_fault: Box::new(move |message| fault_handler.on_fault(message)),
            extension: Some(webtransport.clone()),
            requests,
        });
        for worker in &workers {
            let endpoint = worker.endpoint.clone();
            let counters = worker.counters.clone();
            let host = host.clone();
            host.clone().tracker.spawn(async move {
                loop {
                    let incoming = tokio::select! {
                        incoming = endpoint.accept() => incoming,
                        () = host.closing.cancelled() => None,
                    };
                    let Some(incoming) = incoming else { break };
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    host.tracker.spawn(connection::run(incoming, host.clone()));
                }
            });
        }
        Ok(Self { host, webtransport, closed: Arc::default(), workers: Arc::new(workers), local_addr })
    }

    async fn wait_for_sessions(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.webtransport.session_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sessions currently open.
    pub fn session_count(&self) -> usize {
        self.webtransport.session_count()
    }

    /// Live connections and sessions, and contained faults.
    pub fn counters(&self) -> CounterSnapshot {
        let c = &self.host.counters;
        CounterSnapshot {
            connections: c.connections.load(Ordering::Relaxed),
            sessions: c.sessions.load(Ordering::Relaxed),
            faults: c.faults.load(Ordering::Relaxed),
            tasks: self.host.tracker.len() as u64,
            stream_halves: live_stream_halves(),
            workers: self.workers.iter().map(|w| w.counters.snapshot()).collect(),
        }
    }

    /// Drains and stops: refuses new connections, sends GOAWAY on every connection and
    /// DRAIN_WEBTRANSPORT_SESSION on every session, lets sessions end by themselves for up to
    /// `grace`, closes the rest with `code` and `reason`, then closes the endpoint and waits for
    /// every task. Idempotent: later calls wait for the same end.
    pub async fn close(&self, code: u32, reason: &str, grace: Duration) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            for worker in self.workers.iter() {
                worker.endpoint.set_server_config(None);
            }
            self.host.closing.cancel();
            self.wait_for_sessions(grace).await;
            let sessions: Vec<_> = self.webtransport.sessions().values().cloned().collect();
            for session in sessions {
                (Session { shared: session }).close(code, reason);
            }
            // Each close waits (bounded) for finished streams' data to be acknowledged, then for
            // its capsule to be written and acknowledged (close_locally: 2 s and 1 s).
            self.wait_for_sessions(FINISHED_DATA_WAIT + Duration::from_secs(3)).await;
            // An acknowledged capsule may still be unread by the client's WebTransport layer;
            // closing the connection under it turns a clean close into "connection lost" there.
            // Clients close their connections once their sessions are gone: wait a little.
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while self.host.counters.connections.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for worker in self.workers.iter() {
                worker.endpoint.close(quinn::VarInt::from_u32(code::H3_NO_ERROR as u32), b"server closed");
            }
            self.host.tracker.close();
        }
        self.host.tracker.wait().await;
        let idle = async {
            for worker in self.workers.iter() {
                worker.endpoint.wait_idle().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), idle).await;
    }
}
