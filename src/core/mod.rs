//! The WebTransport server with no napi in it: HTTP/3 framing, QPACK, sessions, streams and
//! datagrams on quinn. Testable with `cargo test --no-default-features`.
//!
//! HTTP/3 is implemented here rather than taken from the `h3` crate: WebTransport needs the
//! CONNECT stream (capsules), streams routed to any session id, the client's SETTINGS awaited
//! per request, and the `webtransport-h3` token, none of which h3 0.0.8's public API allows.

// Network and user data must never panic the Node process: these lints keep unwraps, expects,
// explicit panics and unchecked indexing out of the core (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod cert;
pub mod config;
pub mod connect_stream;
mod connection;
pub mod echo;
pub mod error;
pub mod exporter;
pub mod flow;
pub mod proto;
pub mod qpack;
pub mod request;
pub mod server;
pub mod session;
pub mod stream;
pub mod swept;
pub mod tls;
pub mod varint;

pub use config::{CongestionControl, OriginPolicy, ServerConfig};
pub use error::{Error, ErrorCode};
pub use flow::{FlowLimits, FlowStats};
pub use request::RequestInfo;
pub use server::{Decision, IncomingRequest, RequestHandler, Server};
pub use session::{Session, SessionEnd};
pub use stream::{pipe, send_order_priority, PipeEnd, RecvStream, SendOrder, SendStream};
pub use swept::SweptList;
