//! One regular HTTP/3 request and its response, as the application handles them: the request's
//! head, its body streamed from QUIC as DATA frames arrive, and a response written as it comes.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::Mutex;

use crate::core::error::{Error, ErrorCode};
use crate::core::h3::connection::{response_frame, varint_code, Connection, FrameReader, ReadOutcome};
use crate::core::h3::proto::{code, frame};
use crate::core::h3::request::RequestInfo;
use crate::core::h3::varint;

/// A request the application answers: its head, its body, and the response.
pub struct Exchange {
    pub info: Arc<RequestInfo>,
    pub body: RequestBody,
    pub response: ResponseWriter,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").field("info", &self.info).finish_non_exhaustive()
    }
}

/// The response side of the stream, shared by the writer and the body (which answers 413 itself
/// when the body grows past the limit).
struct Response {
    send: Option<quinn::SendStream>,
    head_sent: bool,
    /// HEAD requests and 204/304 answers carry no body: what is written is dropped.
    no_body: bool,
    /// The `content-length` the application declared, which the body must match.
    declared: Option<u64>,
    written: u64,
}

impl Response {
    async fn head(&mut self, status: u16, headers: &[(String, String)]) -> Result<(), Error> {
        let Some(send) = self.send.as_mut() else { return Err(gone()) };
        if self.head_sent {
            return Err(Error::new(ErrorCode::InvalidOption, "the response head was already sent"));
        }
        self.head_sent = true;
        send.write_all(&response_frame(status, headers)).await.map_err(|e| write_failed(&e))
    }

    /// Answers `status` with an empty body and ends the stream, if no head went out yet.
    async fn answer_empty(&mut self, status: u16) {
        if self.head_sent {
            return;
        }
        let headers = [("content-length".to_string(), "0".to_string())];
        if self.head(status, &headers).await.is_ok() {
            if let Some(mut send) = self.send.take() {
                let _ = send.finish();
            }
        }
    }

    /// Ends the stream abruptly: the client sees a reset, not a complete response.
    fn reset(&mut self, error_code: u64) {
        if let Some(mut send) = self.send.take() {
            let _ = send.reset(varint_code(error_code));
        }
    }
}

fn gone() -> Error {
    Error::new(ErrorCode::StreamStopped, "the response is already complete or the client went away")
}

fn write_failed(e: &quinn::WriteError) -> Error {
    match e {
        quinn::WriteError::ConnectionLost(e) => Error::new(ErrorCode::ConnectionLost, format!("connection lost: {e}")),
        other => Error::new(ErrorCode::StreamStopped, format!("the client stopped the response: {other}")),
    }
}

/// A request's body, read as it arrives. Ends (`Ok(None)`) at the client's FIN; fails when the
/// client resets the stream, sends a malformed frame, or goes past the body limit (then the
/// server has already answered 413 if it could).
pub struct RequestBody {
    reader: Option<FrameReader>,
    /// Bytes left of the DATA frame being read.
    data_left: u64,
    received: u64,
    max: u64,
    connection: Arc<Connection>,
    response: Arc<Mutex<Response>>,
}

impl RequestBody {
    /// The next piece of the body, at most `max` bytes; `None` at its end.
    pub async fn read(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        loop {
            let Some(reader) = self.reader.as_mut() else { return Ok(None) };
            if self.data_left > 0 {
                let want = usize::try_from(self.data_left).unwrap_or(usize::MAX).min(max.max(1));
                let chunk = match reader.some(want).await {
                    ReadOutcome::Ok(chunk) => chunk,
                    ReadOutcome::End => return Err(self.malformed("the request stream ended inside a DATA frame")),
                    ReadOutcome::Failed => return Err(self.reset()),
                };
                self.data_left -= chunk.len() as u64;
                self.received += chunk.len() as u64;
                if self.received > self.max {
                    return Err(self.too_large().await);
                }
                return Ok(Some(chunk));
            }
            let kind = match reader.varint().await {
                ReadOutcome::Ok(kind) => kind,
                ReadOutcome::End => {
                    self.reader = None;
                    return Ok(None);
                }
                ReadOutcome::Failed => return Err(self.reset()),
            };
            let len = match reader.varint().await {
                ReadOutcome::Ok(len) => len,
                ReadOutcome::End => return Err(self.malformed("the request stream ended inside a frame header")),
                ReadOutcome::Failed => return Err(self.reset()),
            };
            match kind {
                frame::DATA => self.data_left = len,
                frame::SETTINGS
                | frame::GOAWAY
                | frame::MAX_PUSH_ID
                | frame::CANCEL_PUSH
                | frame::PUSH_PROMISE
                | frame::WEBTRANSPORT_STREAM => {
                    self.connection.fail(code::H3_FRAME_UNEXPECTED, "control frame in a request body");
                    return Err(self.malformed("a control frame in the request body"));
                }
                k if frame::is_http2_only(k) => {
                    self.connection.fail(code::H3_FRAME_UNEXPECTED, "http/2 frame in a request body");
                    return Err(self.malformed("an HTTP/2 frame in the request body"));
                }
                // Trailers (a second HEADERS) carry nothing the application sees; unknown and
                // grease frames are skipped (RFC 9114 §9).
                _ => match reader.skip(len).await {
                    ReadOutcome::Ok(()) => {}
                    ReadOutcome::End => return Err(self.malformed("the request stream ended inside a frame")),
                    ReadOutcome::Failed => return Err(self.reset()),
                },
            }
        }
    }

    /// The application wants no more of the body: the client is asked to stop sending it.
    pub fn stop(&mut self) {
        if let Some(mut reader) = self.reader.take() {
            let _ = reader.recv.stop(varint_code(code::H3_NO_ERROR));
        }
    }

    fn reset(&mut self) -> Error {
        self.reader = None;
        Error::new(ErrorCode::StreamReset, "the client reset the request (RESET_STREAM) or went away")
    }

    fn malformed(&mut self, what: &str) -> Error {
        if let Some(mut reader) = self.reader.take() {
            let _ = reader.recv.stop(varint_code(code::H3_MESSAGE_ERROR));
        }
        Error::new(ErrorCode::StreamReset, format!("malformed request body: {what}"))
    }

    /// Past the limit: the client is told to stop, and gets 413 unless the application already
    /// answered.
    async fn too_large(&mut self) -> Error {
        if let Some(mut reader) = self.reader.take() {
            let _ = reader.recv.stop(varint_code(code::H3_REQUEST_REJECTED));
        }
        self.response.lock().await.answer_empty(413).await;
        Error::new(
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than maxRequestBodySize ({} bytes)", self.max),
        )
    }
}

impl Drop for RequestBody {
    /// A body left unread is stopped with H3_NO_ERROR (RFC 9114 §4.1: the response does not need
    /// the rest); dropped as it is, quinn would stop it with code 0, which is no HTTP/3 code.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes the response: the head once, then body pieces, then the end. Dropped before the head
/// went out, it answers 500, so a lost exchange never leaves its client waiting.
pub struct ResponseWriter {
    response: Arc<Mutex<Response>>,
    head_only: bool,
    runtime: tokio::runtime::Handle,
}

impl ResponseWriter {
    /// Sends the status and headers. A `content-length` among them binds the body to that size;
    /// HEAD requests and 204/304 answers send no body whatever is written.
    pub async fn send_head(&self, status: u16, headers: Vec<(String, String)>) -> Result<(), Error> {
        if !(200..=599).contains(&status) {
            return Err(Error::new(ErrorCode::InvalidOption, format!("status must be from 200 to 599, got {status}")));
        }
        let declared = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map(|(_, value)| value.trim().parse::<u64>())
            .transpose()
            .map_err(|_| Error::new(ErrorCode::InvalidOption, "content-length must be a non-negative integer"))?;
        let mut response = self.response.lock().await;
        response.no_body = self.head_only || status == 204 || status == 304;
        response.declared = if response.no_body { None } else { declared };
        response.head(status, &headers).await
    }

    /// Writes a piece of the body, waiting on QUIC flow control (the backpressure).
    pub async fn write(&self, data: Bytes) -> Result<(), Error> {
        let mut response = self.response.lock().await;
        if !response.head_sent {
            return Err(Error::new(ErrorCode::InvalidOption, "the response head must be sent before its body"));
        }
        if response.no_body || data.is_empty() {
            return Ok(());
        }
        response.written += data.len() as u64;
        if response.declared.is_some_and(|declared| response.written > declared) {
            response.reset(code::H3_MESSAGE_ERROR);
            return Err(mismatch());
        }
        // The frame header and the payload go as two chunks: the payload is not copied.
        let mut header = BytesMut::with_capacity(16);
        varint::encode(frame::DATA, &mut header);
        varint::encode(data.len() as u64, &mut header);
        let Some(send) = response.send.as_mut() else { return Err(gone()) };
        let mut chunks = [header.freeze(), data];
        let mut rest = &mut chunks[..];
        while !rest.is_empty() {
            let written = send.write_chunks(rest).await.map_err(|e| write_failed(&e))?;
            rest = rest.get_mut(written.chunks..).unwrap_or_default();
        }
        Ok(())
    }

    /// Ends the response. A body shorter than its declared `content-length` resets the stream
    /// instead: the client must not take a cut body for a whole one.
    pub async fn finish(&self) -> Result<(), Error> {
        let mut response = self.response.lock().await;
        if !response.head_sent {
            return Err(Error::new(ErrorCode::InvalidOption, "the response head must be sent before it ends"));
        }
        if response.declared.is_some_and(|declared| response.written != declared) {
            response.reset(code::H3_MESSAGE_ERROR);
            return Err(mismatch());
        }
        let Some(mut send) = response.send.take() else { return Err(gone()) };
        send.finish().map_err(|_| gone())
    }

    /// Answers with `status` and an empty body if nothing was sent yet (the application failed
    /// before answering); resets the stream if the response had begun.
    pub async fn fail(&self, status: u16) {
        fail_response(&self.response, status).await;
    }

    /// Resolves `true` when the client stops the response (STOP_SENDING) or the connection is
    /// lost before the response is done, `false` once it is done.
    pub fn cancelled(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let response = self.response.clone();
        async move {
            let stopped = {
                let response = response.lock().await;
                match response.send.as_ref() {
                    Some(send) => send.stopped(),
                    None => return false,
                }
            };
            !matches!(stopped.await, Ok(None))
        }
    }
}

impl Drop for ResponseWriter {
    fn drop(&mut self) {
        let response = self.response.clone();
        // Dropped on whatever thread let go of it (a JS object's collection): the answer goes
        // out on the server's runtime, and does nothing for a response already complete.
        self.runtime.spawn(async move { fail_response(&response, 500).await });
    }
}

/// What a response the application failed or let go of gets: `status` with an empty body if
/// nothing was sent yet, a reset if the response had begun (quinn would FIN a dropped stream, and
/// the client must not take a cut response for a whole one), nothing once it is complete.
async fn fail_response(response: &Mutex<Response>, status: u16) {
    let mut response = response.lock().await;
    if response.send.is_none() {
        return;
    }
    if response.head_sent {
        return response.reset(code::H3_INTERNAL_ERROR);
    }
    response.answer_empty(status).await;
}

fn mismatch() -> Error {
    Error::new(ErrorCode::ContentLengthMismatch, "the response body does not match its content-length")
}

impl Exchange {
    pub(crate) fn new(
        connection: Arc<Connection>,
        info: RequestInfo,
        send: quinn::SendStream,
        body: FrameReader,
        max_body: u64,
    ) -> Self {
        let head_only = info.method == "HEAD";
        let response = Arc::new(Mutex::new(Response {
            send: Some(send),
            head_sent: false,
            no_body: head_only,
            declared: None,
            written: 0,
        }));
        Self {
            info: Arc::new(info),
            body: RequestBody {
                reader: Some(body),
                data_left: 0,
                received: 0,
                max: max_body,
                connection,
                response: response.clone(),
            },
            response: ResponseWriter { response, head_only, runtime: tokio::runtime::Handle::current() },
        }
    }
}
