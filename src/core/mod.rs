//! The WebTransport server with no napi in it, testable with `cargo test --no-default-features`:
//! an HTTP/3 layer on quinn (`h3`), WebTransport as its client (`webtransport`), and the server
//! that joins them (`server`). `h3` never imports `webtransport`.
//!
//! HTTP/3 is implemented here rather than taken from the `h3` crate: WebTransport needs the
//! CONNECT stream (capsules), streams routed to any session id, the client's SETTINGS awaited
//! per request, and the `webtransport-h3` token, none of which h3 0.0.8's public API allows.

// Network and user data must never panic the Node process: these lints keep unwraps, expects,
// explicit panics and unchecked indexing out of the core (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod cert;
pub mod config;
pub mod counters;
pub mod endpoint;
pub mod error;
pub mod h3;
pub mod http;
pub mod server;
pub mod swept;
pub mod tls;
pub mod trust;
pub mod webtransport;

pub use config::{CongestionControl, FlowLimits, OriginPolicy, ServerConfig};
pub use counters::CounterSnapshot;
pub use error::{Error, ErrorCode};
pub use h3::request::RequestInfo;
pub use http::{Exchange, HttpHandler, RequestBody, ResponseWriter};
pub use server::Server;
pub use swept::SweptList;
pub use trust::ServerTrust;
pub use webtransport::client::{Client, ClientConfig, SessionRequest, SharedClients};
pub use webtransport::flow::FlowStats;
pub use webtransport::incoming::{Decision, IncomingRequest, RequestHandler};
pub use webtransport::session::{Session, SessionEnd};
pub use webtransport::stream::{pipe, send_order_priority, PipeEnd, RecvStream, SendOrder, SendStream};
