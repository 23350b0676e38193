//! A WebTransport session: the streams and datagrams routed to it, its CONNECT stream's capsules,
//! and how it ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::exporter::{exporter_context, EXPORTER_LABEL, MAX_EXPORTER_OUTPUT};
use super::flow::{FlowControl, FlowStats, StreamCredit, StreamKind};
use super::stream::{RecvStream, SendStream, StreamFlow, Unacknowledged};
use super::wire::code;
use crate::core::error::{Error, ErrorCode};
use crate::core::h3::proto::{frame, stream_type};
use crate::core::h3::request::RequestInfo;
use crate::core::h3::varint;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Closed with CLOSE_WEBTRANSPORT_SESSION (or a FIN, which means code 0 and no reason), by
    /// either side.
    Closed { code: u32, reason: String },
    /// Ended without a close: connection lost, CONNECT stream reset, or a protocol error.
    Aborted {
        message: String,
        /// True when the QUIC connection itself is gone (idle timeout, peer closed it, network).
        connection_lost: bool,
    },
}

/// Datagram counters, for stats and for the drop policy's visibility.
#[derive(Debug, Default)]
pub struct DatagramCounters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// Received datagrams dropped because the session's queue was full (oldest first).
    pub dropped_incoming: AtomicU64,
}

pub(crate) struct SessionShared {
    pub(crate) id: u64,
    /// The QUIC connection while the session lasts. A handle to it keeps all of quinn's state for
    /// the connection alive, tens of kB even once it is closed, and the application may keep a
    /// session long after its end (a JS wrapper lives until V8 collects it, which under load can
    /// be a thousand sessions later), so the end lets it go.
    link: Mutex<Link>,
    pub(crate) info: Arc<RequestInfo>,
    pub(crate) protocol: String,
    /// Cancelled when the session ends; every stream and wait of the session listens to it.
    pub(crate) gone: CancellationToken,
    pub(crate) end: watch::Sender<Option<SessionEnd>>,
    pub(crate) draining: watch::Sender<bool>,
    /// A local close request for the driver that owns the CONNECT stream.
    pub(crate) close_request: Mutex<Option<tokio::sync::oneshot::Sender<(u32, String)>>>,
    /// A local drain request for that driver, which sends the capsule at most once per session
    /// (a server close drains too). A `Notify` keeps one permit, so a request made while the
    /// driver is busy elsewhere is not lost.
    pub(crate) drain_request: Notify,
    /// The client's streams routed to this session, until the application accepts them, each
    /// with its place in the flow-control stream limit.
    pub(crate) incoming_bidi: StreamQueue<(quinn::SendStream, quinn::RecvStream, Option<StreamCredit>)>,
    pub(crate) incoming_uni: StreamQueue<(quinn::RecvStream, Option<StreamCredit>)>,
    /// WebTransport flow control, when both ends use it.
    pub(crate) flow: Option<Arc<FlowControl>>,
    datagrams: Mutex<VecDeque<Bytes>>,
    datagram_ready: Notify,
    datagram_queue: usize,
    pub(crate) counters: DatagramCounters,
    /// The varint prefix (quarter stream id) every outgoing datagram starts with.
    datagram_prefix: Bytes,
    /// Finished send streams not yet acknowledged; a local close waits for them.
    pub(crate) unacknowledged: Arc<Unacknowledged>,
}

/// What a session holds of its connection.
enum Link {
    Open(quinn::Connection),
    /// The connection's statistics when the session ended.
    Ended(Box<quinn::ConnectionStats>),
}

impl SessionShared {
    pub(crate) fn new(
        id: u64,
        conn: quinn::Connection,
        info: Arc<RequestInfo>,
        protocol: String,
        datagram_queue: usize,
        flow: Option<Arc<FlowControl>>,
    ) -> (Arc<Self>, tokio::sync::oneshot::Receiver<(u32, String)>) {
        let (close_tx, close_rx) = tokio::sync::oneshot::channel();
        let mut prefix = BytesMut::new();
        varint::encode(id / 4, &mut prefix);
        let shared = Arc::new(Self {
            id,
            link: Mutex::new(Link::Open(conn)),
            info,
            protocol,
            gone: CancellationToken::new(),
            end: watch::channel(None).0,
            draining: watch::channel(false).0,
            close_request: Mutex::new(Some(close_tx)),
            drain_request: Notify::new(),
            incoming_bidi: StreamQueue::default(),
            incoming_uni: StreamQueue::default(),
            flow,
            datagrams: Mutex::new(VecDeque::new()),
            datagram_ready: Notify::new(),
            datagram_queue: datagram_queue.max(1),
            counters: DatagramCounters::default(),
            datagram_prefix: prefix.freeze(),
            unacknowledged: Arc::default(),
        });
        (shared, close_rx)
    }

    /// Takes a client's bidirectional stream into the session, counted against its stream limit.
    /// A stream beyond the limit is refused with WT_FLOW_CONTROL_ERROR, and the violation ends
    /// the session (its driver acts on it).
    pub(crate) fn admit_bidi(&self, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        match self.count_peer_stream(StreamKind::Bidi) {
            Ok(credit) => self.incoming_bidi.push((send, recv, credit)),
            Err(()) => {
                let _ = send.reset(flow_error_code());
                let _ = recv.stop(flow_error_code());
            }
        }
    }

    /// [`Self::admit_bidi`] for a unidirectional stream.
    pub(crate) fn admit_uni(&self, mut recv: quinn::RecvStream) {
        match self.count_peer_stream(StreamKind::Uni) {
            Ok(credit) => self.incoming_uni.push((recv, credit)),
            Err(()) => {
                let _ = recv.stop(flow_error_code());
            }
        }
    }

    fn count_peer_stream(&self, kind: StreamKind) -> Result<Option<StreamCredit>, ()> {
        match &self.flow {
            Some(flow) => flow.peer_opened(kind).map(Some).map_err(|_| ()),
            None => Ok(None),
        }
    }

    /// The flow-control part of one stream's halves.
    fn stream_flow(&self, credit: Option<StreamCredit>) -> Option<StreamFlow> {
        let flow = self.flow.as_ref()?;
        Some(StreamFlow { flow: flow.clone(), _credit: credit.map(Arc::new) })
    }

    /// Queues a received datagram payload, dropping the oldest when the queue is full: a reader
    /// that falls behind wants the newest data, and memory must stay bounded.
    pub(crate) fn push_datagram(&self, payload: Bytes) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let mut queue = self.datagrams.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= self.datagram_queue {
            queue.pop_front();
            self.counters.dropped_incoming.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back(payload);
        drop(queue);
        self.datagram_ready.notify_one();
    }

    /// Records how the session ended (the first report wins) and releases everything waiting on it.
    pub(crate) fn finish(&self, end: SessionEnd) {
        self.end.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(end);
                true
            } else {
                false
            }
        });
        self.gone.cancel();
        self.abandon_queued_streams();
        self.datagram_ready.notify_waiters();
        let mut link = self.link();
        if let Link::Open(conn) = &*link {
            *link = Link::Ended(Box::new(conn.stats()));
        }
        drop(link);
        self.unacknowledged.release();
    }

    /// The client's streams nobody accepted yet end with the session (draft §6: reset and stop
    /// with WT_SESSION_GONE). Left queued, they would wait for the session's last handle to go
    /// (a JS wrapper's collection) and quinn would then end them with a FIN and STOP_SENDING 0,
    /// which reads as a complete stream.
    fn abandon_queued_streams(&self) {
        let gone = quinn::VarInt::from_u64(code::WT_SESSION_GONE).unwrap_or_default();
        for (mut send, mut recv, _credit) in self.incoming_bidi.take_all() {
            let _ = send.reset(gone);
            let _ = recv.stop(gone);
        }
        for (mut recv, _credit) in self.incoming_uni.take_all() {
            let _ = recv.stop(gone);
        }
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` on the connection, or `None` once the session has ended. Runs under the lock rather
    /// than on a clone: cloning a `quinn::Connection` takes quinn's connection lock.
    fn with_conn<R>(&self, f: impl FnOnce(&quinn::Connection) -> R) -> Option<R> {
        match &*self.link() {
            Link::Open(conn) => Some(f(conn)),
            Link::Ended(_) => None,
        }
    }
}

/// A WebTransport session handle; clones share the session.
#[derive(Clone)]
pub struct Session {
    pub(crate) shared: Arc<SessionShared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.shared.id).finish()
    }
}

/// A session's queue of client-opened streams. A mutex-guarded deque and a `Notify` rather than
/// a tokio channel: a channel allocates a block of 32 slots up front (3.6 kB for a bidirectional
/// stream's pair of handles), twice per session, which was a tenth of an idle session's memory.
pub(crate) struct StreamQueue<T> {
    items: Mutex<VecDeque<T>>,
    ready: Notify,
}

impl<T> Default for StreamQueue<T> {
    fn default() -> Self {
        Self { items: Mutex::new(VecDeque::new()), ready: Notify::new() }
    }
}

impl<T> StreamQueue<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, item: T) {
        self.lock().push_back(item);
        self.ready.notify_one();
    }

    fn take_all(&self) -> VecDeque<T> {
        std::mem::take(&mut *self.lock())
    }

    /// Waits for one item, then takes whatever else is queued, up to `max`. Empty once `gone` is
    /// cancelled (the session's end takes what was queued).
    /// Cancel-safe: nothing is taken until it is returned.
    async fn recv_batch(&self, gone: &CancellationToken, max: usize) -> Vec<T> {
        loop {
            // Registered before looking, so a push between the look and the wait still wakes it.
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut items = self.lock();
                if !items.is_empty() {
                    let take = items.len().min(max.max(1));
                    let batch: Vec<T> = items.drain(..take).collect();
                    // Another waiter may be parked behind this one: leave it the wake-up.
                    if !items.is_empty() {
                        self.ready.notify_one();
                    }
                    return batch;
                }
            }
            if gone.is_cancelled() {
                return Vec::new();
            }
            tokio::select! {
                () = &mut notified => {}
                () = gone.cancelled() => {}
            }
        }
    }
}

fn flow_error_code() -> quinn::VarInt {
    quinn::VarInt::from_u64(code::WT_FLOW_CONTROL_ERROR).unwrap_or_default()
}

fn closed_error() -> Error {
    Error::new(ErrorCode::SessionClosed, "the session is closed")
}

impl Session {
    /// The session id: the QUIC stream id of its CONNECT request.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The request that opened the session.
    pub fn request(&self) -> &RequestInfo {
        &self.shared.info
    }

    /// The negotiated subprotocol, empty when none.
    pub fn protocol(&self) -> &str {
        &self.shared.protocol
    }

    /// The next bidirectional stream the client opened; `None` once the session has ended.
    /// Cancel-safe: a stream is never lost if this future is dropped.
    pub async fn accept_bi(&self) -> Option<(SendStream, RecvStream)> {
        self.accept_bi_batch(1).await.pop()
    }

    /// Every bidirectional stream already waiting (at least one: waits for the first), so a
    /// binding can hand many to JS per crossing. Empty once the session has ended.
    pub async fn accept_bi_batch(&self, max: usize) -> Vec<(SendStream, RecvStream)> {
        let gone = &self.shared.gone;
        self.shared
            .incoming_bidi
            .recv_batch(gone, max)
            .await
            .into_iter()
            .map(|(s, r, credit)| {
                let flow = self.shared.stream_flow(credit);
                (self.send_stream(s, flow.clone()), RecvStream::new(r, gone.clone(), flow))
            })
            .collect()
    }

    /// Every unidirectional stream already waiting (at least one); empty once the session ended.
    pub async fn accept_uni_batch(&self, max: usize) -> Vec<RecvStream> {
        let gone = &self.shared.gone;
        self.shared
            .incoming_uni
            .recv_batch(gone, max)
            .await
            .into_iter()
            .map(|(r, credit)| RecvStream::new(r, gone.clone(), self.shared.stream_flow(credit)))
            .collect()
    }

    /// Takes up to `max` queued datagrams without waiting (empty when none are queued).
    pub fn take_datagrams(&self, max: usize) -> Vec<Bytes> {
        let mut queue = self.shared.datagrams.lock().unwrap_or_else(|p| p.into_inner());
        let take = queue.len().min(max);
        queue.drain(..take).collect()
    }

    /// The next unidirectional stream the client opened; `None` once the session has ended.
    pub async fn accept_uni(&self) -> Option<RecvStream> {
        self.accept_uni_batch(1).await.pop()
    }

    /// Waits until the client's WebTransport stream limit (when it uses flow control) lets us
    /// open one more stream of `kind`.
    async fn stream_credit(&self, kind: StreamKind) -> Result<(), Error> {
        match &self.shared.flow {
            Some(flow) if !flow.open(kind, &self.shared.gone).await => Err(closed_error()),
            _ => Ok(()),
        }
    }

    /// Opens a bidirectional stream to the client; waits for the client's stream credit when
    /// it uses flow control.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), Error> {
        self.stream_credit(StreamKind::Bidi).await?;
        let conn = self.shared.with_conn(quinn::Connection::clone).ok_or_else(closed_error)?;
        let opened = tokio::select! {
            opened = conn.open_bi() => opened,
            () = self.shared.gone.cancelled() => return Err(closed_error()),
        };
        let (send, recv) =
            opened.map_err(|e| Error::new(ErrorCode::ConnectionLost, format!("connection lost: {e}")))?;
        let flow = self.shared.stream_flow(None);
        let mut send = self.send_stream(send, flow.clone());
        send.write_uncounted(self.stream_header(frame::WEBTRANSPORT_STREAM)).await?;
        Ok((send, RecvStream::new(recv, self.shared.gone.clone(), flow)))
    }

    /// Opens a unidirectional stream to the client; waits for the client's stream credit when
    /// it uses flow control.
    pub async fn open_uni(&self) -> Result<SendStream, Error> {
        self.stream_credit(StreamKind::Uni).await?;
        let conn = self.shared.with_conn(quinn::Connection::clone).ok_or_else(closed_error)?;
        let opened = tokio::select! {
            opened = conn.open_uni() => opened,
            () = self.shared.gone.cancelled() => return Err(closed_error()),
        };
        let send = opened.map_err(|e| Error::new(ErrorCode::ConnectionLost, format!("connection lost: {e}")))?;
        let mut send = self.send_stream(send, self.shared.stream_flow(None));
        send.write_uncounted(self.stream_header(stream_type::WEBTRANSPORT)).await?;
        Ok(send)
    }

    fn send_stream(&self, send: quinn::SendStream, flow: Option<StreamFlow>) -> SendStream {
        SendStream::new(send, self.shared.gone.clone(), self.shared.unacknowledged.clone(), flow)
    }

    /// WebTransport flow control's limits and use, when the client uses it.
    pub fn flow_stats(&self) -> Option<FlowStats> {
        self.shared.flow.as_ref().map(|f| f.stats())
    }

    fn stream_header(&self, kind: u64) -> Bytes {
        let mut header = BytesMut::with_capacity(10);
        varint::encode(kind, &mut header);
        varint::encode(self.shared.id, &mut header);
        header.freeze()
    }

    /// Largest datagram payload that fits in one QUIC packet now; `None` when the peer does not
    /// accept datagrams, or the session has ended.
    pub fn max_datagram_size(&self) -> Option<usize> {
        let max = self.shared.with_conn(quinn::Connection::max_datagram_size).flatten()?;
        Some(max.saturating_sub(self.shared.datagram_prefix.len()))
    }

    /// Sends one datagram. Unreliable by nature: when QUIC's send buffer is full the oldest
    /// queued datagram is dropped.
    pub fn send_datagram(&self, payload: &[u8]) -> Result<(), Error> {
        if self.shared.gone.is_cancelled() {
            return Err(closed_error());
        }
        let mut datagram = BytesMut::with_capacity(self.shared.datagram_prefix.len() + payload.len());
        datagram.put_slice(&self.shared.datagram_prefix);
        datagram.put_slice(payload);
        let sent = self.shared.with_conn(|conn| conn.send_datagram(datagram.freeze())).ok_or_else(closed_error)?;
        match sent {
            Ok(()) => {
                self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(quinn::SendDatagramError::TooLarge) => Err(Error::new(
                ErrorCode::DatagramTooLarge,
                format!(
                    "datagram of {} bytes exceeds maxDatagramSize ({})",
                    payload.len(),
                    self.max_datagram_size().unwrap_or(0)
                ),
            )),
            Err(quinn::SendDatagramError::UnsupportedByPeer | quinn::SendDatagramError::Disabled) => {
                Err(Error::new(ErrorCode::DatagramsUnsupported, "the peer does not accept datagrams"))
            }
            Err(quinn::SendDatagramError::ConnectionLost(e)) => {
                Err(Error::new(ErrorCode::ConnectionLost, format!("connection lost: {e}")))
            }
        }
    }

    /// Waits for received datagrams and takes up to `max` of them at once, so that a binding can
    /// hand over many per crossing. `None` once the session has ended and the queue is empty.
    pub async fn read_datagrams(&self, max: usize) -> Option<Vec<Bytes>> {
        loop {
            let notified = self.shared.datagram_ready.notified();
            {
                let mut queue = self.shared.datagrams.lock().unwrap_or_else(|p| p.into_inner());
                if !queue.is_empty() {
                    let take = queue.len().min(max.max(1));
                    return Some(queue.drain(..take).collect());
                }
            }
            if self.shared.gone.is_cancelled() {
                return None;
            }
            tokio::select! {
                () = notified => {}
                () = self.shared.gone.cancelled() => {}
            }
        }
    }

    /// Resolves once a received datagram is queued or the session has ended; takes nothing, so
    /// that a binding can wait here and then take them with [`Self::take_datagrams`].
    pub async fn datagrams_ready(&self) {
        loop {
            let notified = self.shared.datagram_ready.notified();
            if !self.shared.datagrams.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
                || self.shared.gone.is_cancelled()
            {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = self.shared.gone.cancelled() => {}
            }
        }
    }

    /// Closes the session: sends CLOSE_WEBTRANSPORT_SESSION with `code` and `reason` (cut to 1024
    /// bytes) and ends its streams. Does nothing if the session already ended or is closing.
    pub fn close(&self, code: u32, reason: &str) {
        let request = self.shared.close_request.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = request {
            let _ = tx.send((code, reason.to_string()));
        }
    }

    /// Starts draining the session: sends DRAIN_WEBTRANSPORT_SESSION, asking the client to end
    /// it soon, and resolves [`Self::draining`] here too. Streams and datagrams keep working
    /// until one side closes. Sent once per session, whether by this call or by a server close,
    /// and not at all once a close is under way; after the session has ended this does nothing,
    /// like [`Self::close`].
    pub fn drain(&self) {
        if self.shared.gone.is_cancelled() {
            return;
        }
        self.shared.draining.send_replace(true);
        self.shared.drain_request.notify_one();
    }

    /// Resolves with how the session ended.
    pub async fn closed(&self) -> SessionEnd {
        let mut rx = self.shared.end.subscribe();
        loop {
            if let Some(end) = rx.borrow_and_update().clone() {
                return end;
            }
            if rx.changed().await.is_err() {
                return SessionEnd::Aborted { message: "the session was dropped".into(), connection_lost: false };
            }
        }
    }

    /// Resolves when the peer or the server starts draining the session ([`Self::drain`], a
    /// server close, or the client's DRAIN_WEBTRANSPORT_SESSION), or when it ends (as
    /// the W3C API resolves `draining` on cleanup). Never pending past the session's end: a
    /// pending call would keep Node's event loop alive.
    pub async fn draining(&self) {
        let mut rx = self.shared.draining.subscribe();
        tokio::select! {
            _ = rx.wait_for(|d| *d) => {}
            () = self.shared.gone.cancelled() => {}
        }
    }

    /// How the session ended, if it has.
    pub fn end(&self) -> Option<SessionEnd> {
        self.shared.end.borrow().clone()
    }

    /// Datagram counters.
    pub fn datagram_counters(&self) -> (u64, u64, u64) {
        let c = &self.shared.counters;
        (c.sent.load(Ordering::Relaxed), c.received.load(Ordering::Relaxed), c.dropped_incoming.load(Ordering::Relaxed))
    }

    /// The QUIC connection's statistics; once the session has ended, as they were at its end.
    pub fn connection_stats(&self) -> quinn::ConnectionStats {
        match &*self.shared.link() {
            Link::Open(conn) => conn.stats(),
            Link::Ended(stats) => **stats,
        }
    }

    /// Keying material for this session from the connection's TLS exporter, as
    /// draft-ietf-webtrans-http3 §4.8 defines it: the TLS exporter label is
    /// "EXPORTER-WebTransport" and its context the WebTransport Exporter Context (this session's
    /// id, then the application's `label` and `context`, each after its one-byte length), so
    /// that two sessions on one connection get different material. `label` and `context` are at
    /// most [`MAX_EXPORTER_INPUT`](super::exporter::MAX_EXPORTER_INPUT) bytes (the one-byte lengths), `length` from 1 to
    /// [`MAX_EXPORTER_OUTPUT`].
    pub fn export_keying_material(&self, label: &[u8], context: &[u8], length: usize) -> Result<Vec<u8>, Error> {
        if !(1..=MAX_EXPORTER_OUTPUT).contains(&length) {
            return Err(Error::new(
                ErrorCode::InvalidOption,
                format!("length must be from 1 to {MAX_EXPORTER_OUTPUT} bytes, got {length}"),
            ));
        }
        let exporter_context = exporter_context(self.shared.id, label, context)?;
        let mut output = vec![0u8; length];
        let exported = self
            .shared
            .with_conn(|conn| conn.export_keying_material(&mut output, EXPORTER_LABEL, &exporter_context))
            .ok_or_else(closed_error)?;
        // rustls refuses only lengths beyond 255 hash outputs (8160 bytes with SHA-256), which the
        // bound above keeps out of reach.
        exported.map_err(|_| {
            Error::new(ErrorCode::InvalidOption, format!("length must be at most what TLS can export, got {length}"))
        })?;
        Ok(output)
    }

    /// Current smoothed round-trip time; once the session has ended, the last one.
    pub fn rtt(&self) -> std::time::Duration {
        match &*self.shared.link() {
            Link::Open(conn) => conn.rtt(),
            Link::Ended(stats) => stats.path.rtt,
        }
    }
}
