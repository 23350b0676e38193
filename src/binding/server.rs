use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use super::error::{invalid_option, to_js};
use super::exchange::NativeExchange;
use super::hub::{Hub, ReadyCallback};
use super::request::NativeRequest;
use crate::core::{Exchange, HttpHandler, IncomingRequest, OriginPolicy, RequestHandler, Server, ServerConfig};

/// Options as the JS layer passes them, already type-checked there; ranges are checked here.
#[napi(object)]
pub struct NativeServerOptions {
    pub host: String,
    pub port: u32,
    pub cert: Buffer,
    pub key: Buffer,
    /// True when JS supplies `checkOrigin`, which then replaces the built-in origin rule.
    pub custom_origin_check: bool,
    pub max_sessions: Option<u32>,
    pub max_incoming_bidi_streams: Option<u32>,
    pub max_incoming_uni_streams: Option<u32>,
    /// Milliseconds.
    pub idle_timeout: Option<u32>,
    /// Milliseconds; 0 disables.
    pub keep_alive_interval: Option<u32>,
    /// Milliseconds the core waits for JS to answer a request (a safety net behind JS's own
    /// callback timeout).
    pub decision_timeout: Option<u32>,
    pub datagram_queue: Option<u32>,
    pub outgoing_datagram_queue: Option<u32>,
    /// 'cubic' | 'bbr' | 'newreno'.
    pub congestion_control: Option<String>,
    /// Write TLS secrets to the file named by SSLKEYLOGFILE (for Wireshark); off unless asked.
    pub key_log: Option<bool>,
    /// WebTransport flow control's per-session data window, in bytes (a safe integer).
    pub flow_max_data: Option<f64>,
    /// WebTransport flow control's per-session stream windows.
    pub flow_max_streams_bidi: Option<u32>,
    pub flow_max_streams_uni: Option<u32>,
    /// Largest regular request body accepted, in bytes (a safe integer); larger gets 413.
    pub max_request_body_size: Option<f64>,
    /// Endpoints sharing the address, steered by connection ID (Linux; elsewhere 1).
    pub workers: Option<u32>,
    /// Bytes written into every connection ID for a QUIC-LB-aware balancer.
    pub server_id: Option<Buffer>,
    /// Derives the stateless-reset and address-token keys (at least 32 bytes).
    pub secret: Option<Buffer>,
}

type RequestCallback = ThreadsafeFunction<NativeRequest, (), NativeRequest, Status, false>;
type HttpCallback = ThreadsafeFunction<NativeExchange, (), NativeExchange, Status, false>;
/// Weak: a fault report must never be what keeps the process alive (the request callback does
/// that while the server runs).
type FaultCallback = ThreadsafeFunction<String, (), String, Status, false, true>;

/// Hands requests and contained faults to JS. Holding the request callback keeps Node's event
/// loop alive while the server runs; `release` drops both callbacks so the process can exit
/// after close.
struct JsRequestHandler {
    callback: Mutex<Option<Arc<RequestCallback>>>,
    /// JS's `fetch`, when it has one.
    http: Mutex<Option<Arc<HttpCallback>>>,
    hub: Arc<Hub>,
    fault: Mutex<Option<Arc<FaultCallback>>>,
}

impl RequestHandler for JsRequestHandler {
    fn on_request(&self, request: IncomingRequest) {
        let callback = self.callback.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(callback) = callback {
            // On failure (queue closing) the request is dropped, which refuses it with 500.
            callback.call(NativeRequest::new(request, self.hub.clone()), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn on_fault(&self, message: &str) {
        let fault = self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(fault) = fault {
            fault.call(message.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

impl HttpHandler for JsRequestHandler {
    fn on_request(&self, exchange: Exchange) {
        let callback = self.http.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(callback) = callback {
            // On failure (queue closing) the exchange is dropped, which answers 500.
            callback.call(NativeExchange::new(exchange), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

impl JsRequestHandler {
    fn release(&self) {
        self.callback.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.http.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn ms(value: Option<u32>, name: &str, min: u32) -> napi::Result<Option<Duration>> {
    match value {
        Some(v) if v < min => Err(invalid_option(format!("{name} must be at least {min}"))),
        Some(v) => Ok(Some(Duration::from_millis(u64::from(v)))),
        None => Ok(None),
    }
}

/// The native server; `lib/server.js` wraps it in an EventEmitter.
#[napi]
pub struct NativeServer {
    server: Server,
    handler: Arc<JsRequestHandler>,
}

#[napi]
impl NativeServer {
    /// Validates, binds and starts serving; `on_request` receives each session request and
    /// `on_fault` the message of each contained internal fault, and `on_ready` every batch of
    /// finished waits of the server's sessions and streams (see `hub.rs`).
    #[napi(constructor, catch_unwind)]
    pub fn new(
        options: NativeServerOptions,
        on_request: RequestCallback,
        on_fault: FaultCallback,
        on_ready: ReadyCallback,
        on_http: Option<HttpCallback>,
    ) -> napi::Result<Self> {
        let ip: IpAddr = options
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| invalid_option(format!("host must be an IP address, got {:?}", options.host)))?;
        let port = u16::try_from(options.port).map_err(|_| invalid_option("port must be 0 to 65535"))?;
        let mut config = ServerConfig::new(SocketAddr::new(ip, port), options.cert.to_vec(), options.key.to_vec());
        if options.custom_origin_check {
            config.origin_policy = OriginPolicy::Application;
        }
        if let Some(v) = options.max_sessions {
            if v == 0 {
                return Err(invalid_option("maxSessions must be at least 1"));
            }
            config.max_sessions = v;
        }
        if let Some(v) = options.max_incoming_bidi_streams {
            config.max_incoming_bidi_streams = v;
        }
        if let Some(v) = options.max_incoming_uni_streams {
            config.max_incoming_uni_streams = v;
        }
        if let Some(v) = ms(options.idle_timeout, "idleTimeout", 1)? {
            config.idle_timeout = v;
        }
        config.keep_alive_interval = ms(options.keep_alive_interval, "keepAliveInterval", 0)?.filter(|d| !d.is_zero());
        if let Some(v) = ms(options.decision_timeout, "decisionTimeout", 1)? {
            config.decision_timeout = v;
        }
        if let Some(v) = options.datagram_queue {
            config.datagram_queue = v.max(1) as usize;
        }
        if let Some(v) = options.outgoing_datagram_queue {
            config.outgoing_datagram_queue = v.max(1) as usize;
        }
        config.key_log = options.key_log.unwrap_or(false);
        if let Some(v) = options.flow_max_data {
            if !(v.fract() == 0.0 && (1.0..=9_007_199_254_740_991.0).contains(&v)) {
                return Err(invalid_option("flowControl.maxData must be an integer from 1 to 2^53-1"));
            }
            config.flow_control.max_data = v as u64;
        }
        for (value, slot, name) in [
            (options.flow_max_streams_bidi, &mut config.flow_control.max_streams_bidi, "maxStreamsBidi"),
            (options.flow_max_streams_uni, &mut config.flow_control.max_streams_uni, "maxStreamsUni"),
        ] {
            if let Some(v) = value {
                if v == 0 {
                    return Err(invalid_option(format!("flowControl.{name} must be at least 1")));
                }
                *slot = u64::from(v);
            }
        }
        if let Some(v) = options.max_request_body_size {
            if !(v.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&v)) {
                return Err(invalid_option("maxRequestBodySize must be an integer from 0 to 2^53-1"));
            }
            config.max_request_body = v as u64;
        }
        if let Some(name) = options.congestion_control.as_deref() {
            config.congestion_control = name.parse().map_err(to_js)?;
        }
        if let Some(v) = options.workers {
            config.workers = v as usize;
        }
        if let Some(v) = options.server_id {
            config.server_id = v.to_vec();
        }
        config.secret = options.secret.map(|v| v.to_vec());
        let serves_http = on_http.is_some();
        let handler = Arc::new(JsRequestHandler {
            callback: Mutex::new(Some(Arc::new(on_request))),
            http: Mutex::new(on_http.map(Arc::new)),
            fault: Mutex::new(Some(Arc::new(on_fault))),
            hub: Hub::new(on_ready),
        });
        let core_handler: Arc<dyn RequestHandler> = handler.clone();
        let http_handler = serves_http.then(|| handler.clone() as Arc<dyn HttpHandler>);
        let server = napi::bindgen_prelude::within_runtime_if_available(|| {
            Server::bind_serving(config, core_handler, http_handler)
        })
        .map_err(to_js)?;
        Ok(Self { server, handler })
    }

    /// The bound address.
    #[napi(catch_unwind)]
    pub fn address(&self) -> BoundAddress {
        let addr = self.server.local_addr();
        BoundAddress {
            address: addr.ip().to_string(),
            family: if addr.is_ipv4() { "IPv4".into() } else { "IPv6".into() },
            port: u32::from(addr.port()),
        }
    }

    /// Live connections and sessions, and contained internal faults.
    #[napi(catch_unwind)]
    pub fn counters(&self) -> ServerCounters {
        let c = self.server.counters();
        ServerCounters {
            connections: c.connections as f64,
            sessions: c.sessions as f64,
            faults: c.faults as f64,
            tasks: c.tasks as f64,
            stream_halves: c.stream_halves as f64,
            native_requests: super::live::get(&super::live::REQUESTS),
            native_sessions: super::live::get(&super::live::SESSIONS),
            native_streams: super::live::get(&super::live::STREAMS),
            workers: c
                .workers
                .iter()
                .map(|w| WorkerCounters {
                    packets: w.packets as f64,
                    misrouted: w.misrouted as f64,
                    connections: w.connections as f64,
                })
                .collect(),
        }
    }

    /// Closes every session with the code and reason, waits up to `grace_ms` for them, then
    /// closes the endpoint and releases the event loop.
    #[napi]
    pub async fn close(&self, code: u32, reason: String, grace_ms: u32) {
        self.server.close(code, &reason, Duration::from_millis(u64::from(grace_ms))).await;
        self.handler.release();
    }
}

/// Live counts for tests and operators.
#[napi(object)]
pub struct ServerCounters {
    pub connections: f64,
    pub sessions: f64,
    /// Internal faults contained (each closed one connection with H3_INTERNAL_ERROR).
    pub faults: f64,
    /// Native tasks running for this server.
    pub tasks: f64,
    /// WebTransport stream halves alive in the process (send and receive sides counted apart).
    pub stream_halves: f64,
    /// Native objects JS holds, process-wide: requests, sessions, streams (freed by their
    /// finalizers after GC).
    pub native_requests: f64,
    pub native_sessions: f64,
    pub native_streams: f64,
    /// Each endpoint ("worker") of the server, in the order of its socket.
    pub workers: Vec<WorkerCounters>,
}

/// What one endpoint has seen since the server started.
#[napi(object)]
pub struct WorkerCounters {
    /// UDP datagrams received.
    pub packets: f64,
    /// Short-header datagrams whose connection ID names another worker (0 while steering works).
    pub misrouted: f64,
    /// Connections accepted.
    pub connections: f64,
}

/// Like Node's `server.address()`.
#[napi(object)]
pub struct BoundAddress {
    pub address: String,
    pub family: String,
    pub port: u32,
}
