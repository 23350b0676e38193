use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use napi::bindgen_prelude::{Buffer, Either3, Null, Uint8Array};
use napi::Env;
use napi_derive::napi;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::error::to_js;
use super::hub::{ready, Hub, ReadyEvent};
use crate::core::{pipe, Error, ErrorCode, PipeEnd, RecvStream, SendStream};

/// One direction's cancellation: `reset`/`stop` may come while a read or write is in flight
/// (WHATWG `cancel()` does not wait for a pending pull), so the in-flight call is interrupted and
/// applies the code itself.
#[derive(Default)]
struct Abort {
    token: CancellationToken,
    code: AtomicU32,
}

/// Both halves of a stream (either may be absent for unidirectional streams). Shared, so that a
/// native pipe can hold one stream's receive half and another's send half past the call.
#[napi]
pub struct NativeStream {
    send: Arc<Mutex<Option<SendStream>>>,
    recv: Arc<Mutex<Option<RecvStream>>>,
    send_abort: Arc<Abort>,
    recv_abort: Arc<Abort>,
    hub: Arc<Hub>,
}

/// Why a native pipe failed, and on which side: `"source"` (reading failed; the destination was
/// reset) or `"destination"` (writing failed; the source was stopped). JS errors the stream of
/// that side and aborts or cancels the other with the same error, as WHATWG `pipeTo` does.
fn pipe_failure(id: u32, side: &str, error: Error) -> ReadyEvent {
    ReadyEvent { id, side: Some(side.to_string()), message: Some(to_js(error).reason) }
}

fn local_error(code: ErrorCode, message: &str) -> napi::Error {
    to_js(Error::new(code, message))
}

/// A unidirectional stream's missing half, or a half already cancelled with `stop`.
fn no_readable_side() -> napi::Error {
    to_js(no_readable_side_error())
}

fn no_readable_side_error() -> Error {
    Error::new(ErrorCode::StreamReset, "the stream has no readable side or was cancelled")
}

/// A unidirectional stream's missing half, or a half already aborted with `reset`.
fn no_writable_side() -> napi::Error {
    to_js(no_writable_side_error())
}

fn no_writable_side_error() -> Error {
    Error::new(ErrorCode::StreamStopped, "the stream has no writable side or was aborted")
}

impl NativeStream {
    pub(crate) fn new(send: Option<SendStream>, recv: Option<RecvStream>, hub: Arc<Hub>) -> Self {
        super::live::created(&super::live::STREAMS);
        Self {
            send: Arc::new(Mutex::new(send)),
            recv: Arc::new(Mutex::new(recv)),
            send_abort: Arc::default(),
            recv_abort: Arc::default(),
            hub,
        }
    }
}

#[napi]
impl NativeStream {
    /// The next chunk, up to `max` bytes; null at the end of the stream.
    #[napi]
    pub async fn read(&self, max: u32) -> napi::Result<Option<Buffer>> {
        let mut guard = self.recv.lock().await;
        let Some(recv) = guard.as_mut() else {
            return Err(no_readable_side());
        };
        tokio::select! {
            biased;
            () = self.recv_abort.token.cancelled() => {
                recv.stop(self.recv_abort.code.load(Ordering::Relaxed));
                guard.take();
                Err(local_error(ErrorCode::StreamReset, "the read was cancelled"))
            }
            chunk = recv.read_gathered(max.max(1) as usize) => match chunk {
                Ok(Some(bytes)) => Ok(Some(Buffer::from(bytes))),
                Ok(None) => Ok(None),
                Err(e) => Err(to_js(e)),
            },
        }
    }

    /// What has arrived, without waiting: a Buffer, null at the end of the stream, or undefined
    /// when nothing is there yet (then call `read`). Saves the async round trip when data is
    /// already waiting, which it usually is.
    #[napi(catch_unwind)]
    pub fn read_now(&self, max: u32) -> napi::Result<Either3<Buffer, Null, ()>> {
        let Ok(mut guard) = self.recv.try_lock() else { return Ok(Either3::C(())) };
        let Some(recv) = guard.as_mut() else {
            return Err(no_readable_side());
        };
        match recv.read_now(max.max(1) as usize) {
            None => Ok(Either3::C(())),
            Some(Ok(Some(bytes))) => Ok(Either3::A(Buffer::from(bytes))),
            Some(Ok(None)) => Ok(Either3::B(Null)),
            Some(Err(e)) => Err(to_js(e)),
        }
    }

    /// Sends STOP_SENDING with the application code.
    #[napi(catch_unwind)]
    pub fn stop(&self, code: u32) {
        self.recv_abort.code.store(code, Ordering::Relaxed);
        if let Ok(mut guard) = self.recv.try_lock() {
            if let Some(mut recv) = guard.take() {
                recv.stop(code);
            }
        }
        self.recv_abort.token.cancel();
    }

    /// Writes what QUIC takes now without waiting and returns the number of bytes taken; the
    /// rest (if any) goes through `write`. 0 while another write is in flight.
    #[napi(catch_unwind)]
    pub fn write_now(&self, chunk: Uint8Array) -> napi::Result<u32> {
        let Ok(mut guard) = self.send.try_lock() else { return Ok(0) };
        let Some(send) = guard.as_mut() else {
            return Err(no_writable_side());
        };
        send.write_now(&chunk).map(|n| n as u32).map_err(to_js)
    }

    /// Ends the writable side (FIN) without waiting; false when a write is still in flight (then
    /// call `finish`).
    #[napi(catch_unwind)]
    pub fn finish_now(&self) -> napi::Result<bool> {
        let Ok(mut guard) = self.send.try_lock() else { return Ok(false) };
        match guard.as_mut() {
            Some(send) => send.finish().map(|()| true).map_err(to_js),
            None => Err(no_writable_side()),
        }
    }

    /// Writes the whole chunk; resolves when QUIC flow control has taken it.
    #[napi]
    pub async fn write(&self, chunk: Uint8Array) -> napi::Result<()> {
        let data = Bytes::copy_from_slice(&chunk);
        let mut guard = self.send.lock().await;
        let Some(send) = guard.as_mut() else {
            return Err(no_writable_side());
        };
        tokio::select! {
            biased;
            () = self.send_abort.token.cancelled() => {
                send.reset(self.send_abort.code.load(Ordering::Relaxed));
                guard.take();
                Err(local_error(ErrorCode::StreamStopped, "the write was aborted"))
            }
            written = send.write(data) => written.map_err(to_js),
        }
    }

    /// Ends the writable side cleanly (FIN).
    #[napi]
    pub async fn finish(&self) -> napi::Result<()> {
        let mut guard = self.send.lock().await;
        match guard.as_mut() {
            Some(send) => send.finish().map_err(to_js),
            None => Err(no_writable_side()),
        }
    }

    /// Copies this stream's readable side into `dest`'s writable side on the connection's
    /// runtime until the source ends, then finishes `dest`: one crossing for the whole stream
    /// instead of several per chunk. Returns its event when it is done at once (all the data and
    /// the FIN had arrived and fit), else settles `id` through the hub; with the failure's side and
    /// message when it failed (the other side has then been reset or stopped with the same
    /// code). The JS layer stops reading and writing both streams first (it locks them while the
    /// pipe runs), so nothing else touches them meanwhile.
    #[napi(catch_unwind)]
    pub fn pipe_to(&self, env: &Env, dest: &NativeStream, id: u32) -> Option<ReadyEvent> {
        let (recv, recv_abort) = (self.recv.clone(), self.recv_abort.clone());
        let (send, send_abort) = (dest.send.clone(), dest.send_abort.clone());
        self.hub.now_or_begin(env, id, async move {
            let mut recv_guard = recv.lock().await;
            let mut send_guard = send.lock().await;
            let Some(r) = recv_guard.as_mut() else {
                return pipe_failure(id, "source", no_readable_side_error());
            };
            let Some(s) = send_guard.as_mut() else {
                return pipe_failure(id, "destination", no_writable_side_error());
            };
            // The JS streams are locked, but a teardown may still cancel either side.
            let end = tokio::select! {
                biased;
                () = recv_abort.token.cancelled() => {
                    let code = recv_abort.code.load(Ordering::Relaxed);
                    r.stop(code);
                    s.reset(code);
                    PipeEnd::SourceFailed(Error::new(ErrorCode::StreamReset, "the read was cancelled"))
                }
                () = send_abort.token.cancelled() => {
                    let code = send_abort.code.load(Ordering::Relaxed);
                    s.reset(code);
                    r.stop(code);
                    PipeEnd::DestinationFailed(Error::new(ErrorCode::StreamStopped, "the write was aborted"))
                }
                end = pipe(r, s) => end,
            };
            let (side, error) = match end {
                PipeEnd::Finished => return ready(id),
                PipeEnd::SourceFailed(e) => ("source", e),
                PipeEnd::DestinationFailed(e) => ("destination", e),
            };
            recv_guard.take();
            send_guard.take();
            pipe_failure(id, side, error)
        })
    }

    /// Sends RESET_STREAM with the application code.
    #[napi(catch_unwind)]
    pub fn reset(&self, code: u32) {
        self.send_abort.code.store(code, Ordering::Relaxed);
        if let Ok(mut guard) = self.send.try_lock() {
            if let Some(mut send) = guard.take() {
                send.reset(code);
            }
        }
        self.send_abort.token.cancel();
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        super::live::dropped(&super::live::STREAMS);
    }
}
