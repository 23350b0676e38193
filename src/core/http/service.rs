//! Regular requests as the HTTP/3 layer hands them on: each becomes an [`Exchange`] for the
//! application's [`HttpHandler`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::exchange::Exchange;
use crate::core::h3::connection::{respond_and_end, Connection, Request, RequestService};

/// Receives regular HTTP/3 requests. Called on a tokio worker; must not block. Dropping the
/// exchange unanswered answers 500.
pub trait HttpHandler: Send + Sync + 'static {
    fn on_request(&self, exchange: Exchange);
}

/// The HTTP/3 layer's [`RequestService`] for an application that serves regular requests.
pub(crate) struct Http {
    pub(crate) handler: Arc<dyn HttpHandler>,
    /// Largest request body accepted, in bytes; larger gets 413.
    pub(crate) max_body: u64,
}

impl RequestService for Http {
    fn serve(
        self: Arc<Self>,
        connection: Arc<Connection>,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let Request { info, send, body, .. } = request;
            // A body announced larger than the limit is refused before the application sees it.
            let declared = info
                .headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .and_then(|(_, value)| value.trim().parse::<u64>().ok());
            if declared.is_some_and(|len| len > self.max_body) {
                let headers = [("content-length".to_string(), "0".to_string())];
                return respond_and_end(send, body.recv, 413, &headers).await;
            }
            self.handler.on_request(Exchange::new(connection, info, send, body, self.max_body));
        })
    }
}
