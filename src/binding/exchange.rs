//! A regular HTTP/3 request as JS handles it: `lib/fetch.js` builds a WHATWG `Request` over it
//! and writes the handler's `Response` back through it.

use std::sync::Arc;

use bytes::Bytes;
use napi::bindgen_prelude::{Buffer, Uint8Array};
use napi_derive::napi;

use super::error::to_js;
use super::request_fields::{pairs, request_fields, RequestFields};
use crate::core::{Exchange, RequestBody, ResponseWriter};

/// Largest body piece handed to JS per read.
const READ_BYTES: usize = 64 * 1024;

/// The native side of one request and its response.
#[napi]
pub struct NativeExchange {
    fields: Option<RequestFields>,
    body: tokio::sync::Mutex<RequestBody>,
    response: Arc<ResponseWriter>,
}

impl NativeExchange {
    pub(crate) fn new(exchange: Exchange) -> Self {
        let Exchange { info, body, response } = exchange;
        Self { fields: Some(request_fields(&info)), body: tokio::sync::Mutex::new(body), response: Arc::new(response) }
    }
}

#[napi]
impl NativeExchange {
    /// The request's fields (taken once: JS keeps them).
    #[napi(catch_unwind)]
    pub fn take_fields(&mut self) -> Option<RequestFields> {
        self.fields.take()
    }

    /// The next piece of the request body; `null` at its end.
    #[napi]
    pub async fn read(&self) -> napi::Result<Option<Buffer>> {
        let mut body = self.body.lock().await;
        let chunk = body.read(READ_BYTES).await.map_err(to_js)?;
        Ok(chunk.map(|c| Buffer::from(c.to_vec())))
    }

    /// JS wants no more of the body (the stream was cancelled).
    #[napi]
    pub async fn stop_body(&self) {
        self.body.lock().await.stop();
    }

    /// Sends the status and the headers (flattened `[name, value, ...]`).
    #[napi]
    pub async fn respond(&self, status: u32, headers: Vec<String>) -> napi::Result<()> {
        let status = u16::try_from(status).unwrap_or(0);
        self.response.send_head(status, pairs(headers)).await.map_err(to_js)
    }

    /// Writes a piece of the response body; resolves when QUIC has taken it.
    #[napi]
    pub async fn write(&self, chunk: Uint8Array) -> napi::Result<()> {
        self.response.write(Bytes::copy_from_slice(&chunk)).await.map_err(to_js)
    }

    /// Ends the response.
    #[napi]
    pub async fn finish(&self) -> napi::Result<()> {
        self.response.finish().await.map_err(to_js)
    }

    /// The handler failed: `status` with an empty body if nothing was sent, else a reset.
    #[napi]
    pub async fn fail(&self, status: u32) {
        self.response.fail(u16::try_from(status).unwrap_or(500)).await;
    }

    /// Resolves `true` when the client stops the response or goes away before it is done,
    /// `false` once it is done.
    #[napi]
    pub async fn cancelled(&self) -> bool {
        self.response.cancelled().await
    }
}
