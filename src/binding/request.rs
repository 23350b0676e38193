use std::sync::{Arc, Mutex};

use napi_derive::napi;

use super::hub::Hub;
use super::request_fields::{pairs, request_fields, RequestFields};
use super::session::NativeSession;
use crate::core::IncomingRequest;

/// A session request waiting for JS's decision. Answering twice is a no-op; never answering
/// (the object is collected) refuses it with 500.
#[napi]
pub struct NativeRequest {
    pending: Mutex<Option<IncomingRequest>>,
    hub: Arc<Hub>,
}

impl NativeRequest {
    pub(crate) fn new(request: IncomingRequest, hub: Arc<Hub>) -> Self {
        super::live::created(&super::live::REQUESTS);
        Self { pending: Mutex::new(Some(request)), hub }
    }

    fn take(&self) -> Option<IncomingRequest> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[napi]
impl NativeRequest {
    /// The request's fields.
    #[napi(catch_unwind)]
    pub fn fields(&self) -> Option<RequestFields> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|r| request_fields(&r.info))
    }

    /// Accepts with extra response headers and a subprotocol; resolves with the session, or
    /// null if the client left first or the request was already answered.
    #[napi]
    pub async fn accept(&self, headers: Vec<String>, protocol: String) -> Option<NativeSession> {
        let request = self.take()?;
        let hub = self.hub.clone();
        request.accept(pairs(headers), protocol).await.map(|session| NativeSession::new(session, hub))
    }

    /// Refuses with a non-2xx status and headers.
    #[napi(catch_unwind)]
    pub fn reject(&self, status: u32, headers: Vec<String>) {
        if let Some(request) = self.take() {
            request.reject(u16::try_from(status).unwrap_or(500), pairs(headers));
        }
    }
}

impl Drop for NativeRequest {
    fn drop(&mut self) {
        super::live::dropped(&super::live::REQUESTS);
    }
}
