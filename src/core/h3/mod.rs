//! HTTP/3 (RFC 9114) on quinn: frames, SETTINGS, QPACK (RFC 9204), request parsing, and the
//! connection driver with its control, QPACK and request streams. It knows nothing of the layers
//! above it: WebTransport (and any other client of it) plugs in through
//! [`connection::Extension`].

pub mod connection;
pub mod proto;
pub mod qpack;
pub mod request;
pub mod varint;
