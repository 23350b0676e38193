use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use napi::bindgen_prelude::{Buffer, Either3, Null, Uint8Array};
use napi::Env;
use napi_derive::napi;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::error::to_js;
use super::hub::{ready, Hub, ReadyEvent};
use crate::core::{pipe, Error, ErrorCode, PipeEnd, RecvStream, SendOrder, SendStream, Session, SessionEnd};

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
    // A half is dropped as soon as it is over: read to its end, finished, failed, cancelled, or
    // its session ended (`StreamHalves`). A half holds a QUIC stream handle, and with it the whole
    // connection's state; left to this object, it would go only when V8 collects it, which in a
    // process that has gone quiet may be never (Node 24's V8 runs no idle-time GC).
    send: Arc<Mutex<Option<SendStream>>>,
    recv: Arc<Mutex<Option<RecvStream>>>,
    send_abort: Arc<Abort>,
    recv_abort: Arc<Abort>,
    hub: Arc<Hub>,
    /// To tell a half let go with its session from one the stream never had.
    session: Session,
    /// The send half's `sendOrder`, reachable while a write holds the half.
    send_order: Option<Arc<SendOrder>>,
    /// The peer's STOP_SENDING, once `waitStopped` saw one: its code, if in the WebTransport range.
    stopped: Arc<std::sync::Mutex<Option<Option<u32>>>>,
}

/// Whether and how the peer stopped a stream's writable side.
#[napi(object)]
pub struct StopInfo {
    pub stopped: bool,
    pub code: Option<u32>,
}

/// Weak handles on a stream's halves, for its session to let go of at its end.
pub(crate) struct StreamHalves {
    send: Weak<Mutex<Option<SendStream>>>,
    recv: Weak<Mutex<Option<RecvStream>>>,
}

impl StreamHalves {
    /// Abandons and drops the halves still there, for a session that has ended. A half in use
    /// by a read, write or pipe is left to it: that call ends with the session's error and drops
    /// the half itself.
    pub(crate) fn release(&self) {
        if let Some(send) = self.send.upgrade() {
            if let Some(mut send) = send.try_lock().ok().and_then(|mut half| half.take()) {
                send.abandon();
            }
        }
        if let Some(recv) = self.recv.upgrade() {
            if let Some(mut recv) = recv.try_lock().ok().and_then(|mut half| half.take()) {
                recv.abandon();
            }
        }
    }

    /// Whether a half may still be there (false once both are dropped, or their stream is).
    pub(crate) fn held(&self) -> bool {
        fn held<T>(half: &Weak<Mutex<Option<T>>>) -> bool {
            half.upgrade().is_some_and(|half| half.try_lock().map_or(true, |half| half.is_some()))
        }
        held(&self.send) || held(&self.recv)
    }
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

/// For a half let go with its session: what a read or write would have failed with, had it been
/// kept (the core's stream fails with the lost connection, or else with the session's end).
fn session_ended_error(session: &Session) -> Option<Error> {
    match session.end()? {
        SessionEnd::Aborted { message, connection_lost: true } => Some(Error::new(ErrorCode::ConnectionLost, message)),
        _ => Some(Error::new(ErrorCode::SessionClosed, "the session is closed")),
    }
}

/// A half let go with its session, a unidirectional stream's missing half, or a half already
/// cancelled with `stop`.
fn no_readable_side_error(session: &Session) -> Error {
    session_ended_error(session)
        .unwrap_or_else(|| Error::new(ErrorCode::StreamReset, "the stream has no readable side or was cancelled"))
}

/// A half let go with its session, a unidirectional stream's missing half, or a half already
/// aborted with `reset`.
fn no_writable_side_error(session: &Session) -> Error {
    session_ended_error(session)
        .unwrap_or_else(|| Error::new(ErrorCode::StreamStopped, "the stream has no writable side or was aborted"))
}

/// Ends a send half that nothing will write to any more (FIN) and lets it go: its data is still
/// delivered, since quinn keeps a stream's state in the connection, and a session close still
/// waits for it (`SendStream::finish`).
fn finish(mut send: SendStream) -> napi::Result<()> {
    send.finish().map_err(to_js)
}

/// Drops a receive half once a read found the end of the stream, or failed (reset, session gone,
/// cancelled): nothing can be read from it any more (see `NativeStream` for why not later).
fn release_when_over<T>(half: &mut Option<RecvStream>, read: &napi::Result<Option<T>>) {
    if !matches!(read, Ok(Some(_))) {
        half.take();
    }
}

/// Drops a send half whose write failed (stopped by the peer, reset, session gone): as
/// [`release_when_over`], nothing can be written to it any more.
fn release_when_failed<T>(half: &mut Option<SendStream>, written: &napi::Result<T>) {
    if written.is_err() {
        half.take();
    }
}

impl NativeStream {
    pub(crate) fn new(send: Option<SendStream>, recv: Option<RecvStream>, hub: Arc<Hub>, session: Session) -> Self {
        super::live::created(&super::live::STREAMS);
        let send_order = send.as_ref().map(SendStream::send_order);
        Self {
            send_order,
            send: Arc::new(Mutex::new(send)),
            recv: Arc::new(Mutex::new(recv)),
            send_abort: Arc::default(),
            recv_abort: Arc::default(),
            hub,
            session,
            stopped: Arc::default(),
        }
    }

    pub(crate) fn halves(&self) -> StreamHalves {
        StreamHalves { send: Arc::downgrade(&self.send), recv: Arc::downgrade(&self.recv) }
    }

    fn no_readable_side(&self) -> napi::Error {
        to_js(no_readable_side_error(&self.session))
    }

    fn no_writable_side(&self) -> napi::Error {
        to_js(no_writable_side_error(&self.session))
    }
}

#[napi]
impl NativeStream {
    /// The next chunk, up to `max` bytes; null at the end of the stream.
    #[napi]
    pub async fn read(&self, max: u32) -> napi::Result<Option<Buffer>> {
        let mut guard = self.recv.lock().await;
        let Some(recv) = guard.as_mut() else {
            return Err(self.no_readable_side());
        };
        let chunk = tokio::select! {
            biased;
            () = self.recv_abort.token.cancelled() => {
                recv.stop(self.recv_abort.code.load(Ordering::Relaxed));
                Err(local_error(ErrorCode::StreamReset, "the read was cancelled"))
            }
            chunk = recv.read_gathered(max.max(1) as usize) => chunk.map_err(to_js),
        };
        release_when_over(&mut guard, &chunk);
        chunk.map(|bytes| bytes.map(Buffer::from))
    }

    /// What has arrived, without waiting: a Buffer, null at the end of the stream, or undefined
    /// when nothing is there yet (then call `read`). Saves the async round trip when data is
    /// already waiting, which it usually is.
    #[napi(catch_unwind)]
    pub fn read_now(&self, max: u32) -> napi::Result<Either3<Buffer, Null, ()>> {
        let Ok(mut guard) = self.recv.try_lock() else { return Ok(Either3::C(())) };
        let Some(recv) = guard.as_mut() else {
            return Err(self.no_readable_side());
        };
        let Some(chunk) = recv.read_now(max.max(1) as usize) else { return Ok(Either3::C(())) };
        let chunk = chunk.map_err(to_js);
        release_when_over(&mut guard, &chunk);
        match chunk? {
            Some(bytes) => Ok(Either3::A(Buffer::from(bytes))),
            None => Ok(Either3::B(Null)),
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

    /// Settles `id` when the peer stops the writable side (STOP_SENDING; `stoppedCode` then says
    /// with what), or once that side is over otherwise, so that JS can error its writable at
    /// once, as the W3C API does, instead of at the next write. Settled at once without a
    /// writable side, or while a write holds it (that write sees the stop itself).
    #[napi(catch_unwind)]
    pub fn wait_stopped(&self, env: &Env, id: u32) -> Option<ReadyEvent> {
        let signal = match self.send.try_lock() {
            Ok(guard) => guard.as_ref().map(SendStream::stop_signal),
            Err(_) => None,
        };
        let Some(signal) = signal else { return Some(ready(id)) };
        let stopped = self.stopped.clone();
        self.hub.now_or_begin(env, id, async move {
            if let Some(code) = signal.await {
                *stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
            }
            ready(id)
        })
    }

    /// After `waitStopped` settled: whether the peer sent STOP_SENDING (`stopped`) and its code
    /// (null outside the WebTransport range).
    #[napi(catch_unwind)]
    pub fn stopped_code(&self) -> StopInfo {
        match *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(code) => StopInfo { stopped: true, code },
            None => StopInfo { stopped: false, code: None },
        }
    }

    /// Writes what QUIC takes now without waiting and returns the number of bytes taken; the
    /// rest (if any) goes through `write`. 0 while another write is in flight.
    #[napi(catch_unwind)]
    pub fn write_now(&self, chunk: Uint8Array) -> napi::Result<u32> {
        let Ok(mut guard) = self.send.try_lock() else { return Ok(0) };
        let Some(send) = guard.as_mut() else {
            return Err(self.no_writable_side());
        };
        let written = send.write_now(&chunk).map(|n| n as u32).map_err(to_js);
        release_when_failed(&mut guard, &written);
        written
    }

    /// Ends the writable side (FIN) without waiting; false when a write is still in flight (then
    /// call `finish`).
    #[napi(catch_unwind)]
    pub fn finish_now(&self) -> napi::Result<bool> {
        let Ok(mut guard) = self.send.try_lock() else { return Ok(false) };
        // Finished or not, nothing more can be written: the half goes now, not with this object.
        let send = guard.take().ok_or_else(|| self.no_writable_side())?;
        finish(send).map(|()| true)
    }

    /// Writes the whole chunk; resolves when QUIC flow control has taken it.
    #[napi]
    pub async fn write(&self, chunk: Uint8Array) -> napi::Result<()> {
        let data = Bytes::copy_from_slice(&chunk);
        let mut guard = self.send.lock().await;
        let Some(send) = guard.as_mut() else {
            return Err(self.no_writable_side());
        };
        let written = tokio::select! {
            biased;
            () = self.send_abort.token.cancelled() => {
                send.reset(self.send_abort.code.load(Ordering::Relaxed));
                Err(local_error(ErrorCode::StreamStopped, "the write was aborted"))
            }
            written = send.write(data) => written.map_err(to_js),
        };
        release_when_failed(&mut guard, &written);
        written
    }

    /// Ends the writable side cleanly (FIN).
    #[napi]
    pub async fn finish(&self) -> napi::Result<()> {
        let send = self.send.lock().await.take().ok_or_else(|| self.no_writable_side())?;
        finish(send)
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
        let (recv, recv_abort, source_session) = (self.recv.clone(), self.recv_abort.clone(), self.session.clone());
        let (send, send_abort, dest_session) = (dest.send.clone(), dest.send_abort.clone(), dest.session.clone());
        self.hub.now_or_begin(env, id, async move {
            let mut recv_guard = recv.lock().await;
            let mut send_guard = send.lock().await;
            let Some(r) = recv_guard.as_mut() else {
                return pipe_failure(id, "source", no_readable_side_error(&source_session));
            };
            let Some(s) = send_guard.as_mut() else {
                return pipe_failure(id, "destination", no_writable_side_error(&dest_session));
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
            // However it ended, both halves are over (the source read to its end or stopped, the
            // destination finished or reset).
            recv_guard.take();
            send_guard.take();
            match end {
                PipeEnd::Finished => ready(id),
                PipeEnd::SourceFailed(e) => pipe_failure(id, "source", e),
                PipeEnd::DestinationFailed(e) => pipe_failure(id, "destination", e),
            }
        })
    }

    /// Sets the writable side's `sendOrder` (higher is sent first; the JS layer has checked it is
    /// an integer; values beyond i32 saturate). Applied at once, also to data already queued
    /// and to a write waiting on flow control; does nothing once the side is finished or gone.
    #[napi(catch_unwind)]
    pub fn set_send_order(&self, order: f64) {
        let Some(send_order) = &self.send_order else { return };
        // A float-to-int `as` saturates, as the mapping onto quinn's i32 priority does anyway.
        let order = order as i64;
        match self.send.try_lock() {
            Ok(mut guard) => {
                if let Some(send) = guard.as_mut() {
                    send.set_send_order(order);
                }
            }
            // A write or pipe holds the half: it applies the order itself.
            Err(_) => send_order.set(order),
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
