//! The application's side of a session request: the decision it makes, and the handler that
//! receives requests.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::session::Session;
use crate::core::h3::request::RequestInfo;

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
