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
use crate::core::h3::connection::{reject_bidi, Connection, ConnectionExtension, Extension, Request};
use crate::core::h3::proto::code;
use crate::core::h3::request::RequestInfo;

impl Extension for WebTransport {
    fn connection(self: Arc<Self>, h3: Arc<Connection>) -> Arc<dyn ConnectionExtension> {
        let settings = wire::server_settings(u64::from(self.config.max_sessions), &self.config.flow_control);
        Arc::new(ConnectionWebTransport { router: Router::new(h3), settings, serving: Some(self) })
    }
}

/// WebTransport on one connection, either end: its routing, the SETTINGS it adds, and on a
/// server the layer that decides its sessions' CONNECTs.
pub(crate) struct ConnectionWebTransport {
    pub(crate) router: Router,
    settings: Vec<(u64, u64)>,
    /// `None` on a connection this process opened as a client: it serves no requests.
    serving: Option<Arc<WebTransport>>,
}

impl ConnectionWebTransport {
    /// A client's connection, sending `settings`.
    pub(crate) fn client(h3: Arc<Connection>, settings: Vec<(u64, u64)>) -> Self {
        Self { router: Router::new(h3), settings, serving: None }
    }
}

impl ConnectionExtension for ConnectionWebTransport {
    fn settings(&self) -> Vec<(u64, u64)> {
        self.settings.clone()
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
        self.serving.is_some() && wire::is_session_request(request)
    }

    fn connect(self: Arc<Self>, request: Request) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            match &self.serving {
                Some(wt) => driver::serve_connect(wt, &self.router, request).await,
                // Not reached: `takes` refuses every request on a client's connection.
                None => reject_bidi(request.send, request.body.recv, code::H3_REQUEST_REJECTED),
            }
        })
    }
}
