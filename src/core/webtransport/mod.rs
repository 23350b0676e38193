//! WebTransport over HTTP/3 (draft-ietf-webtrans-http3, draft-02 to -16): a client of the
//! HTTP/3 layer that takes the extended CONNECTs, streams and datagrams of its sessions. Its
//! wire format (SETTINGS, capsules, error codes), the routing of streams and datagrams to
//! sessions, each session's driver on its CONNECT stream, flow control, and the session and
//! stream handles the application uses.

pub mod client;
pub mod connect_stream;
pub(crate) mod driver;
pub mod echo;
pub mod exporter;
pub(crate) mod extension;
pub mod flow;
pub mod incoming;
pub(crate) mod layer;
pub(crate) mod routing;
pub mod session;
pub mod stream;
pub mod wire;
