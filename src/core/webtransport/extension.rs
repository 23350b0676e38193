//! WebTransport as a client of the HTTP/3 layer: what every connection hands it (WebTransport
//! streams, datagrams, CONNECT requests) goes to the connection's router and session drivers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::driver;
use super::layer::WebTransport;
use super::routing::Router;
use super::wire;
use crate::core::h3::connection::{Connection, ConnectionExtension, Extension, Request};
use crate::core::h3::request::RequestInfo;

impl Extension for WebTransport {
    fn connection(self: Arc<Self>, h3: Arc<Connection>) -> Arc<dyn ConnectionExtension> {
        Arc::new(ConnectionWebTransport { wt: self, router: Router::new(h3) })
    }
}

/// WebTransport on one connection.
struct ConnectionWebTransport {
    wt: Arc<WebTransport>,
    router: Router,
}

impl ConnectionExtension for ConnectionWebTransport {
    fn settings(&self) -> Vec<(u64, u64)> {
        wire::server_settings(u64::from(self.wt.config.max_sessions), &self.wt.config.flow_control)
    }

    fn request_started(&self, id: u64) {
        self.router.request_started(id);
    }

    fn request_done(&self, id: u64) {
        self.router.bury(id);
    }

    fn bidi_stream(&self, session_id: u64, send: quinn::SendStream, recv: quinn::RecvStream) {
        self.router.route_bidi(session_id, send, recv);
    }

    fn uni_stream(&self, session_id: u64, recv: quinn::RecvStream) {
        self.router.route_uni(session_id, recv);
    }

    fn datagram(&self, session_id: u64, payload: Bytes) {
        self.router.route_datagram(session_id, payload);
    }

    fn takes(&self, request: &RequestInfo) -> bool {
        wire::is_session_request(request)
    }

    fn connect(self: Arc<Self>, request: Request) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move { driver::serve_connect(&self.wt, &self.router, request).await })
    }
}
