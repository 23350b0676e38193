//! WebTransport streams: quinn streams whose error codes are translated between the WebTransport
//! application range and HTTP/3, and which end when their session does.

use std::sync::atomic::{AtomicI32, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::flow::{FlowControl, StreamCredit};
use super::wire::{app_code_to_h3, code, h3_to_app_code};
use crate::core::error::{Error, ErrorCode};
use crate::core::swept::SweptList;

/// WebTransport stream halves alive in this process, across servers: with sessions gone it
/// returns to zero, which is what leak tests and operators check.
static LIVE_STREAM_HALVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Stream halves (send or receive) currently alive in this process.
pub fn live_stream_halves() -> u64 {
    LIVE_STREAM_HALVES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts one live half while it exists.
#[derive(Debug)]
struct Alive;

impl Alive {
    fn new() -> Self {
        LIVE_STREAM_HALVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        LIVE_STREAM_HALVES.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn code_of(value: quinn::VarInt) -> Option<u32> {
    h3_to_app_code(value.into_inner())
}

fn session_gone() -> Error {
    Error::new(ErrorCode::SessionClosed, "the session is closed")
}

fn connection_error(e: &quinn::ConnectionError) -> Error {
    Error::new(ErrorCode::ConnectionLost, format!("connection lost: {e}"))
}

/// A session's finished send streams whose data the peer has not acknowledged in full yet. A
/// close capsule makes the peer abandon its streams (draft §6; wtransport even closes the
/// connection), so a local close first waits, bounded, for these: data the application wrote
/// and finished before closing is delivered, not lost behind the capsule.
#[derive(Default)]
pub(crate) struct Unacknowledged {
    pending: std::sync::Mutex<UnacknowledgedList>,
}

#[derive(Default)]
struct UnacknowledgedList {
    acks: SweptList<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// The session has ended: nothing will wait for acknowledgements any more.
    released: bool,
}

impl Unacknowledged {
    fn push(&self, acked: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut list = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if list.released {
            return;
        }
        list.acks.push(Box::pin(acked), |ack| poll_once(ack.as_mut()).is_none());
    }

    /// Waits until every finished stream so far is acknowledged (or stopped, or the connection
    /// is gone), or until `deadline`.
    pub(crate) async fn wait(&self, deadline: tokio::time::Instant) {
        let acks = self.pending.lock().unwrap_or_else(|p| p.into_inner()).acks.take();
        for ack in acks {
            if tokio::time::timeout_at(deadline, ack).await.is_err() {
                return;
            }
        }
    }

    /// Drops every wait and takes no more, once the session has ended: each holds a handle to the
    /// connection, which keeps all of quinn's state for it alive.
    pub(crate) fn release(&self) {
        let mut list = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        list.released = true;
        list.acks.take();
    }
}

impl std::fmt::Debug for Unacknowledged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unacknowledged").finish_non_exhaustive()
    }
}

/// A stream's part in its session's WebTransport flow control, when the client uses it.
#[derive(Debug, Clone)]
pub(crate) struct StreamFlow {
    pub(crate) flow: std::sync::Arc<FlowControl>,
    /// For a client's stream: its place in the stream limit, shared by both halves and given
    /// back when the last is dropped.
    pub(crate) _credit: Option<std::sync::Arc<StreamCredit>>,
}

/// Maps a W3C `sendOrder` (a 64-bit integer; higher is sent first) onto quinn's stream priority,
/// an `i32` with the same sense: values beyond the `i32` range saturate at its ends. Order among
/// values inside the range is kept exactly; values past either end tie with that end.
pub fn send_order_priority(order: i64) -> i32 {
    // In range after the clamp, so the conversion cannot fail.
    i32::try_from(order.clamp(i32::MIN.into(), i32::MAX.into())).unwrap_or_default()
}

/// A send stream's wanted `sendOrder`, shared with whoever changes it: a write waiting on flow
/// control holds the stream itself, and the new order must still reach the data it has queued,
/// so the change is left here and the waiting write applies it (see [`SendStream::write`]).
#[derive(Debug, Default)]
pub struct SendOrder {
    wanted: AtomicI32,
    changed: Notify,
}

impl SendOrder {
    /// Sets the wanted order (mapped by [`send_order_priority`]) and wakes a waiting write to
    /// apply it. Without one, the stream applies it at its next write, or the caller applies it
    /// with [`SendStream::set_send_order`] when it can reach the stream.
    pub fn set(&self, order: i64) {
        self.wanted.store(send_order_priority(order), Ordering::Relaxed);
        // A permit is kept when no write waits, which at worst applies the same order again.
        self.changed.notify_one();
    }
}

/// The sending half of a WebTransport stream.
#[derive(Debug)]
pub struct SendStream {
    inner: quinn::SendStream,
    session_gone: CancellationToken,
    unacknowledged: std::sync::Arc<Unacknowledged>,
    flow: Option<StreamFlow>,
    order: std::sync::Arc<SendOrder>,
    /// The priority last given to quinn (quinn's default is 0, as is sendOrder's).
    applied_order: i32,
    _alive: Alive,
}

impl SendStream {
    pub(crate) fn new(
        inner: quinn::SendStream,
        session_gone: CancellationToken,
        unacknowledged: std::sync::Arc<Unacknowledged>,
        flow: Option<StreamFlow>,
    ) -> Self {
        Self {
            inner,
            session_gone,
            unacknowledged,
            flow,
            order: std::sync::Arc::default(),
            applied_order: 0,
            _alive: Alive::new(),
        }
    }

    /// Sets the stream's `sendOrder` now: among a connection's streams with data to send, the
    /// highest order goes first (quinn's stream priority; see [`send_order_priority`]). quinn
    /// re-sorts a stream with data queued only when it next sends from it: a lowered order
    /// applies at once, a raised one may wait behind streams already ahead of it.
    pub fn set_send_order(&mut self, order: i64) {
        self.order.set(order);
        self.apply_send_order();
    }

    /// A handle that changes the `sendOrder` while this stream is out of reach, held by a write
    /// waiting on flow control; that write applies it at once.
    pub fn send_order(&self) -> std::sync::Arc<SendOrder> {
        self.order.clone()
    }

    fn apply_send_order(&mut self) {
        let wanted = self.order.wanted.load(Ordering::Relaxed);
        if wanted != self.applied_order {
            // Fails only for a stream already finished and acknowledged, or reset: nothing of it
            // is left to order.
            let _ = self.inner.set_priority(wanted);
            self.applied_order = wanted;
        }
    }

    /// Writes all of `data`, waiting on QUIC flow control (this is the backpressure) and, when
    /// the client uses it, on WebTransport flow control.
    pub async fn write(&mut self, mut data: Bytes) -> Result<(), Error> {
        let Some(flow) = self.flow.as_ref().map(|f| f.flow.clone()) else {
            return self.write_uncounted(data).await;
        };
        while !data.is_empty() {
            let Some(granted) = flow.reserve(data.len() as u64, &self.session_gone).await else {
                self.abandon();
                return Err(session_gone());
            };
            // `granted` is at most `data.len()`, a usize.
            let part = data.split_to(granted as usize);
            self.write_uncounted(part).await?;
        }
        Ok(())
    }

    /// Writes bytes that WebTransport flow control does not count (the stream header), or that
    /// already have its credit.
    pub(crate) async fn write_uncounted(&mut self, data: Bytes) -> Result<(), Error> {
        self.apply_send_order();
        let mut rest = [data];
        loop {
            // quinn's `write_chunks` is cancel-safe (nothing is written unless it resolves), so a
            // new sendOrder can interrupt the wait and be applied to what is already queued.
            tokio::select! {
                biased;
                written = self.inner.write_chunks(&mut rest) => {
                    if written.map_err(write_error)?.chunks > 0 {
                        return Ok(());
                    }
                }
                () = self.session_gone.cancelled() => {
                    self.abandon();
                    return Err(session_gone());
                }
                () = self.order.changed.notified() => self.apply_send_order(),
            }
        }
    }

    /// Writes as much of `data` as QUIC (and WebTransport flow control) takes right now without
    /// waiting; returns how many bytes were taken (0 when flow control is exhausted). Lets a
    /// binding skip an async round trip for the common case of a write that fits the window.
    pub fn write_now(&mut self, data: &[u8]) -> Result<usize, Error> {
        if self.session_gone.is_cancelled() {
            return Err(session_gone());
        }
        self.apply_send_order();
        let flow = self.flow.as_ref().map(|f| f.flow.clone());
        let allowed = match &flow {
            Some(flow) => flow.reserve_now(data.len() as u64) as usize,
            None => data.len(),
        };
        let data = data.get(..allowed).unwrap_or(data);
        let mut written = 0;
        let mut failed = None;
        while let Some(rest) = data.get(written..).filter(|rest| !rest.is_empty()) {
            match poll_once(self.inner.write(rest)) {
                Some(Ok(0)) | None => break,
                Some(Ok(n)) => written += n,
                Some(Err(e)) => {
                    failed = Some(write_error(e));
                    break;
                }
            }
        }
        if let Some(flow) = flow {
            flow.refund((allowed - written) as u64);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// Ends the stream cleanly (FIN) after what was written. A later close of the session waits
    /// (bounded) for the peer to acknowledge this stream's data before sending its capsule.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.inner
            .finish()
            .map_err(|_| Error::new(ErrorCode::StreamStopped, "the stream is already finished or reset"))?;
        let acked = self.inner.stopped();
        self.unacknowledged.push(async move {
            let _ = acked.await;
        });
        Ok(())
    }

    /// Abandons the stream because its session has ended: RESET_STREAM with WT_SESSION_GONE, as
    /// the draft asks of a session's streams. Dropped unfinished instead, quinn would end it with
    /// a FIN, as if it were complete.
    pub fn abandon(&mut self) {
        let _ = self.inner.reset(code::WT_SESSION_GONE.try_into().unwrap_or_default());
    }

    /// Abandons the stream with RESET_STREAM carrying the application `code`.
    pub fn reset(&mut self, app_code: u32) {
        let _ = self.inner.reset(quinn::VarInt::from_u64(app_code_to_h3(app_code)).unwrap_or_default());
    }

    /// Resolves when the peer sends STOP_SENDING (with its application code, if in range) or the
    /// stream is otherwise done; `None` when it ended without a stop.
    pub async fn stopped(&mut self) -> Option<Option<u32>> {
        match self.inner.stopped().await {
            Ok(Some(code)) => Some(code_of(code)),
            _ => None,
        }
    }

    /// [`Self::stopped`] as a future that holds nothing of the stream, so that it can be awaited
    /// while writes go on: `Some(code)` on STOP_SENDING, `None` once the stream ended otherwise
    /// (finished and acknowledged, reset, or its connection gone).
    pub fn stop_signal(&self) -> impl std::future::Future<Output = Option<Option<u32>>> + Send + 'static {
        let stopped = self.inner.stopped();
        async move {
            match stopped.await {
                Ok(Some(code)) => Some(code_of(code)),
                _ => None,
            }
        }
    }

    /// The QUIC stream id.
    pub fn id(&self) -> u64 {
        u64::from(self.inner.id())
    }
}

fn write_error(e: quinn::WriteError) -> Error {
    match e {
        quinn::WriteError::Stopped(c) => {
            let mut err = Error::new(ErrorCode::StreamStopped, "the peer stopped the stream (STOP_SENDING)");
            err.stream_error_code = code_of(c);
            err
        }
        quinn::WriteError::ConnectionLost(e) => connection_error(&e),
        quinn::WriteError::ClosedStream => Error::new(ErrorCode::StreamStopped, "the stream is closed"),
        quinn::WriteError::ZeroRttRejected => Error::new(ErrorCode::ConnectionLost, "0-rtt rejected"),
    }
}

/// The receiving half of a WebTransport stream.
#[derive(Debug)]
pub struct RecvStream {
    inner: quinn::RecvStream,
    session_gone: CancellationToken,
    flow: Option<StreamFlow>,
    _alive: Alive,
}

impl RecvStream {
    pub(crate) fn new(inner: quinn::RecvStream, session_gone: CancellationToken, flow: Option<StreamFlow>) -> Self {
        Self { inner, session_gone, flow, _alive: Alive::new() }
    }

    /// Counts bytes the application takes against the client's WebTransport data limit, which
    /// also earns the client new credit. A client past its limit ends the session (its driver
    /// acts on the violation); this read fails.
    fn count(&self, n: usize) -> Result<(), Error> {
        match &self.flow {
            Some(flow) if n > 0 => flow
                .flow
                .consumed(n as u64)
                .map_err(|v| Error::new(ErrorCode::SessionClosed, format!("webtransport flow control error: {v}"))),
            _ => Ok(()),
        }
    }

    /// Reads what has arrived, at least one byte and at most `max`, into one buffer; `None` at
    /// the end of the stream. QUIC hands data over a packet at a time; gathering everything
    /// already received is what lets a binding cross into JS once per many packets.
    pub async fn read_gathered(&mut self, max: usize) -> Result<Option<Vec<u8>>, Error> {
        let Some(first) = self.read(max).await? else { return Ok(None) };
        let mut out = first.to_vec();
        while out.len() < max {
            match poll_once(self.inner.read_chunk(max - out.len(), true)) {
                Some(Ok(Some(chunk))) => {
                    // A burst: room for many packets at once, not a regrowth every few.
                    if out.len() == first.len() {
                        out.reserve(max.min(first.len() * 16).saturating_sub(out.len()));
                    }
                    self.count(chunk.bytes.len())?;
                    out.extend_from_slice(&chunk.bytes);
                }
                // Not ready, finished or failed: return what we have; the next read reports the
                // end or the error.
                _ => break,
            }
        }
        // The buffer lives on as it is, in a JS Buffer until V8 collects it or in QUIC's send
        // buffer until the pipe's write is acknowledged: room reserved for more of a burst than
        // came must not live on with it (a 1 kB message used to hold 16 kB).
        if out.capacity() > 2 * out.len() {
            out.shrink_to_fit();
        }
        Ok(Some(out))
    }

    /// [`Self::read_gathered`] without waiting: `None` when nothing has arrived yet.
    pub fn read_now(&mut self, max: usize) -> Option<Result<Option<Vec<u8>>, Error>> {
        poll_once(self.read_gathered(max))
    }

    /// Reads the next chunk of at most `max` bytes, in order; `None` at the end of the stream.
    pub async fn read(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        tokio::select! {
            biased;
            result = self.inner.read_chunk(max, true) => match result {
                Ok(Some(chunk)) => {
                    self.count(chunk.bytes.len())?;
                    Ok(Some(chunk.bytes))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(read_error(e)),
            },
            () = self.session_gone.cancelled() => {
                self.abandon();
                Err(session_gone())
            }
        }
    }

    /// Abandons the stream because its session has ended: STOP_SENDING with WT_SESSION_GONE
    /// (dropped, quinn would send code 0).
    pub fn abandon(&mut self) {
        let _ = self.inner.stop(code::WT_SESSION_GONE.try_into().unwrap_or_default());
    }

    /// Asks the peer to stop sending, with STOP_SENDING carrying the application `code`.
    pub fn stop(&mut self, app_code: u32) {
        let _ = self.inner.stop(quinn::VarInt::from_u64(app_code_to_h3(app_code)).unwrap_or_default());
    }
}

/// How [`pipe`] ended.
#[derive(Debug)]
pub enum PipeEnd {
    /// The source reached its end and the destination was finished (FIN).
    Finished,
    /// Reading the source failed (the peer reset it, or the session ended); the destination was
    /// reset with the same application code, as WHATWG `pipeTo` aborts its destination.
    SourceFailed(Error),
    /// Writing the destination failed (the peer stopped it, or the session ended); the source was
    /// stopped with the same application code, as `pipeTo` cancels its source.
    DestinationFailed(Error),
}

/// Bytes a pipe gathers per write: one write per burst of packets, not per ~1.2 kB frame, since
/// each write locks the connection and wakes its driver (per-frame writes cost ~30 % more server
/// CPU in a bulk echo).
const PIPE_BYTES: usize = 64 * 1024;

/// Copies `recv` into `send` until `recv` ends, then finishes `send`; a failure on either side
/// is passed on to the other with its application code. This is the whole of a stream relay or
/// echo, so it runs on the connection's runtime without a JS crossing per chunk.
pub async fn pipe(recv: &mut RecvStream, send: &mut SendStream) -> PipeEnd {
    loop {
        // Copied into one buffer per burst rather than written as the received frames: quinn
        // finds a sent or retransmitted range by walking its send buffer's chunks, and thousands
        // of ~1.2 kB chunks in flight made that walk 15 % of a bulk echo's CPU (perf), more than
        // the copy costs.
        match recv.read_gathered(PIPE_BYTES).await {
            Ok(Some(data)) => {
                if let Err(e) = send.write(Bytes::from(data)).await {
                    if e.code == ErrorCode::SessionClosed {
                        recv.abandon();
                    } else {
                        recv.stop(e.stream_error_code.unwrap_or(0));
                    }
                    return PipeEnd::DestinationFailed(e);
                }
            }
            Ok(None) => {
                return match send.finish() {
                    Ok(()) => PipeEnd::Finished,
                    Err(e) => PipeEnd::DestinationFailed(e),
                };
            }
            Err(e) => {
                // The session's end is no application error: the other side goes with
                // WT_SESSION_GONE too, not with application code 0.
                if e.code == ErrorCode::SessionClosed {
                    send.abandon();
                } else {
                    send.reset(e.stream_error_code.unwrap_or(0));
                }
                return PipeEnd::SourceFailed(e);
            }
        }
    }
}

/// Polls a future once without waiting. quinn keeps the waker of the last poll, and the next real
/// read polls again with a real one, so a noop waker here loses no wakeup.
fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

fn read_error(e: quinn::ReadError) -> Error {
    match e {
        quinn::ReadError::Reset(c) => {
            let mut err = Error::new(ErrorCode::StreamReset, "the peer reset the stream (RESET_STREAM)");
            err.stream_error_code = code_of(c);
            err
        }
        quinn::ReadError::ConnectionLost(e) => connection_error(&e),
        quinn::ReadError::ClosedStream => Error::new(ErrorCode::StreamReset, "the stream is closed"),
        quinn::ReadError::IllegalOrderedRead => Error::new(ErrorCode::StreamReset, "illegal ordered read"),
        quinn::ReadError::ZeroRttRejected => Error::new(ErrorCode::ConnectionLost, "0-rtt rejected"),
    }
}
