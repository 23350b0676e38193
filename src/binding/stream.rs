use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use napi::bindgen_prelude::{Buffer, Either3, Null, Uint8Array};
use napi_derive::napi;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::error::to_js;
use crate::core::{Error, ErrorCode, RecvStream, SendStream};

/// One direction's cancellation: `reset`/`stop` may come while a read or write is in flight
/// (WHATWG `cancel()` does not wait for a pending pull), so the in-flight call is interrupted and
/// applies the code itself.
#[derive(Default)]
struct Abort {
    token: CancellationToken,
    code: AtomicU32,
}

/// Both halves of a stream (either may be absent for unidirectional streams).
#[napi]
pub struct NativeStream {
    send: Mutex<Option<SendStream>>,
    recv: Mutex<Option<RecvStream>>,
    send_abort: Abort,
    recv_abort: Abort,
}

fn local_error(code: ErrorCode, message: &str) -> napi::Error {
    to_js(Error::new(code, message))
}

/// A unidirectional stream's missing half, or a half already cancelled with `stop`.
fn no_readable_side() -> napi::Error {
    local_error(ErrorCode::StreamReset, "the stream has no readable side or was cancelled")
}

/// A unidirectional stream's missing half, or a half already aborted with `reset`.
fn no_writable_side() -> napi::Error {
    local_error(ErrorCode::StreamStopped, "the stream has no writable side or was aborted")
}

impl NativeStream {
    pub(crate) fn new(send: Option<SendStream>, recv: Option<RecvStream>) -> Self {
        super::live::created(&super::live::STREAMS);
        Self {
            send: Mutex::new(send),
            recv: Mutex::new(recv),
            send_abort: Abort::default(),
            recv_abort: Abort::default(),
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
