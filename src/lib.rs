//! webtransport-napi: an HTTP/3 WebTransport server for Node.js.

pub mod core;

#[cfg(feature = "node")]
pub mod binding;
