//! One HTTP/3 connection: its control and QPACK streams, its request streams, GOAWAY, and the
//! hand-off of what belongs to the layer above (WebTransport's streams, datagrams and CONNECT
//! requests) through [`Extension`]. Every stream gets its own task, contained so that a bug in
//! one closes only its connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::proto::{self, code, frame, stream_type, PeerSettings, SettingsError};
use super::qpack::{self, QpackError};
use super::request::{self, RequestInfo};
use super::varint;
use crate::core::counters::Counters;

/// What every connection of a server shares.
pub(crate) struct Host {
    pub(crate) tracker: TaskTracker,
    /// Cancelled when the server starts closing: connections send GOAWAY.
    pub(crate) closing: CancellationToken,
    pub(crate) counters: Arc<Counters>,
    /// Largest request header section (encoded) accepted.
    pub(crate) max_header_bytes: usize,
    /// Told of a contained fault (a panic in a connection's task).
    pub(crate) on_fault: Box<dyn Fn(&str) + Send + Sync>,
    /// The layer above HTTP/3 on the connections a server accepts (a client brings its own to
    /// each connection it opens).
    pub(crate) extension: Option<Arc<dyn Extension>>,
    /// Regular requests (everything the extension does not take but a CONNECT); without it
    /// they are answered 404.
    pub(crate) requests: Option<Arc<dyn RequestService>>,
}

/// The client of HTTP/3 that answers regular requests.
pub(crate) trait RequestService: Send + Sync + 'static {
    /// A regular request, with its stream; the returned future may end before the exchange
    /// does (the application may answer later).
    fn serve(
        self: Arc<Self>,
        connection: Arc<Connection>,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The layer above HTTP/3 (WebTransport): what it adds to every connection.
pub(crate) trait Extension: Send + Sync + 'static {
    /// Its part of one new connection.
    fn connection(self: Arc<Self>, h3: Arc<Connection>) -> Arc<dyn ConnectionExtension>;
}

/// The layer above HTTP/3 on one connection: it takes the streams and datagrams HTTP/3 does not
/// own, and the requests for its protocol.
pub(crate) trait ConnectionExtension: Send + Sync + 'static {
    /// The SETTINGS it adds to the connection's own.
    fn settings(&self) -> Vec<(u64, u64)>;
    /// A client bidirectional stream was accepted (called in stream order, before its task).
    fn request_started(&self, id: u64);
    /// That stream's task is done: it was a request that got its answer, or a stream handed on.
    fn request_done(&self, id: u64);
    /// A client bidirectional stream that began with the WebTransport signal and a session id.
    fn bidi_stream(&self, session_id: u64, send: quinn::SendStream, recv: quinn::RecvStream);
    /// A client unidirectional stream of the WebTransport type, after its session id.
    fn uni_stream(&self, session_id: u64, recv: quinn::RecvStream);
    /// An HTTP datagram for the request stream `session_id` (its payload after the quarter id).
    fn datagram(&self, session_id: u64, payload: Bytes);
    /// Whether a request is for its protocol (an extended CONNECT it speaks).
    fn takes(&self, request: &RequestInfo) -> bool;
    /// A request it [takes](Self::takes); the returned future owns the request stream until it
    /// is done with it.
    fn connect(self: Arc<Self>, request: Request) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// A request the connection hands on, with its stream: what is left of the request stream is in
/// `body` (bytes already read past the headers included).
pub(crate) struct Request {
    pub(crate) id: u64,
    pub(crate) info: RequestInfo,
    pub(crate) send: quinn::SendStream,
    pub(crate) body: FrameReader,
}

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

/// One HTTP/3 connection's own state, shared by its tasks and its extension.
pub(crate) struct Connection {
    pub(crate) conn: quinn::Connection,
    role: Role,
    host: Arc<Host>,
    settings: watch::Sender<Option<Arc<PeerSettings>>>,
    control_seen: AtomicBool,
    qpack_encoder_seen: AtomicBool,
    qpack_decoder_seen: AtomicBool,
    /// One past the highest client bidirectional stream id seen: what GOAWAY names.
    next_request_id: AtomicU64,
    /// Set once GOAWAY is sent: request streams at or above it are refused unprocessed.
    goaway_id: AtomicU64,
}

pub(crate) fn varint_code(value: u64) -> quinn::VarInt {
    quinn::VarInt::from_u64(value).unwrap_or_default()
}

/// Closes `conn` unless it has already ended. quinn's `close` replaces the connection's error
/// with `LocallyClosed` for every reader not yet woken, so closing a connection that was reset
/// or timed out (as the tasks that see its streams fail do) would report that end as "closed".
pub(crate) fn close_unless_gone(conn: &quinn::Connection, error_code: u64, reason: &[u8]) {
    if conn.close_reason().is_none() {
        conn.close(varint_code(error_code), reason);
    }
}

impl Connection {
    /// Closes the connection with an HTTP/3 error.
    pub(crate) fn fail(&self, error_code: u64, reason: &str) {
        close_unless_gone(&self.conn, error_code, reason.as_bytes());
    }

    /// The client's SETTINGS once they arrive (`None` until then).
    pub(crate) fn peer_settings(&self) -> watch::Receiver<Option<Arc<PeerSettings>>> {
        self.settings.subscribe()
    }
}

/// Resets and stops a request stream with `error_code`.
pub(crate) fn reject_bidi(mut send: quinn::SendStream, mut recv: quinn::RecvStream, error_code: u64) {
    let _ = send.reset(varint_code(error_code));
    let _ = recv.stop(varint_code(error_code));
}

/// Reads one varint without reading past it, so the rest of the stream is left intact for
/// whoever takes it over. `Ok(None)` when the stream ends first.
async fn read_varint_exact(recv: &mut quinn::RecvStream) -> Result<Option<u64>, ()> {
    let mut first = [0u8; 1];
    match recv.read(&mut first).await {
        Ok(Some(1)) => {}
        Ok(_) => return Ok(None),
        Err(_) => return Err(()),
    }
    let len = 1usize << (first[0] >> 6);
    let mut bytes = [0u8; 8];
    bytes[0] = first[0];
    if let Some(rest) = bytes.get_mut(1..len) {
        match recv.read_exact(rest).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Ok(None),
            Err(_) => return Err(()),
        }
    }
    Ok(bytes.get(..len).and_then(varint::decode_slice).map(|(v, _)| v))
}

/// Buffered frame reading for control and request streams.
pub(crate) struct FrameReader {
    pub(crate) recv: quinn::RecvStream,
    /// Bytes read from `recv` and not consumed yet.
    pub(crate) buf: BytesMut,
}

pub(crate) enum ReadOutcome<T> {
    Ok(T),
    /// The stream ended cleanly before a whole item.
    End,
    /// The stream was reset or the connection is gone.
    Failed,
}

impl FrameReader {
    async fn fill(&mut self) -> ReadOutcome<()> {
        match self.recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => {
                self.buf.extend_from_slice(&chunk.bytes);
                ReadOutcome::Ok(())
            }
            Ok(None) => ReadOutcome::End,
            Err(_) => ReadOutcome::Failed,
        }
    }

    pub(crate) async fn varint(&mut self) -> ReadOutcome<u64> {
        loop {
            if let Some((v, n)) = varint::decode_slice(&self.buf) {
                let _ = self.buf.split_to(n);
                return ReadOutcome::Ok(v);
            }
            match self.fill().await {
                ReadOutcome::Ok(()) => {}
                ReadOutcome::End => return ReadOutcome::End,
                ReadOutcome::Failed => return ReadOutcome::Failed,
            }
        }
    }

    pub(crate) async fn bytes(&mut self, len: usize) -> ReadOutcome<BytesMut> {
        while self.buf.len() < len {
            match self.fill().await {
                ReadOutcome::Ok(()) => {}
                ReadOutcome::End => return ReadOutcome::End,
                ReadOutcome::Failed => return ReadOutcome::Failed,
            }
        }
        ReadOutcome::Ok(self.buf.split_to(len))
    }

    /// Up to `max` bytes: what is buffered, else the next chunk from the stream.
    pub(crate) async fn some(&mut self, max: usize) -> ReadOutcome<Bytes> {
        if !self.buf.is_empty() {
            let take = self.buf.len().min(max.max(1));
            return ReadOutcome::Ok(self.buf.split_to(take).freeze());
        }
        match self.recv.read_chunk(max.max(1), true).await {
            Ok(Some(chunk)) => ReadOutcome::Ok(chunk.bytes),
            Ok(None) => ReadOutcome::End,
            Err(_) => ReadOutcome::Failed,
        }
    }

    pub(crate) async fn skip(&mut self, mut len: u64) -> ReadOutcome<()> {
        loop {
            let take = len.min(self.buf.len() as u64) as usize;
            let _ = self.buf.split_to(take);
            len -= take as u64;
            if len == 0 {
                return ReadOutcome::Ok(());
            }
            match self.fill().await {
                ReadOutcome::Ok(()) => {}
                ReadOutcome::End => return ReadOutcome::End,
                ReadOutcome::Failed => return ReadOutcome::Failed,
            }
        }
    }
}

macro_rules! or_return {
    ($e:expr) => {
        match $e {
            ReadOutcome::Ok(v) => v,
            _ => return,
        }
    };
}

/// Runs `task` as its own tokio task so that a panic in it (a bug, never expected) is contained:
/// the one connection is closed with H3_INTERNAL_ERROR, the fault is counted and reported, and
/// the server goes on. Node's process never sees the panic.
///
/// The panic is caught at the poll, and the connection is closed before the task's state is
/// dropped: dropping it first would finish the streams it held (quinn sends FIN on drop), and a
/// client could see a request stream end without an answer before the close arrives.
async fn contained(
    server: Arc<Host>,
    conn: quinn::Connection,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let closing = conn.clone();
    let counting = server.clone();
    let guarded = async move {
        let mut task = std::pin::pin!(task);
        let outcome = std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.as_mut().poll(cx))) {
                Ok(poll) => poll.map(Ok),
                Err(payload) => std::task::Poll::Ready(Err(payload)),
            }
        })
        .await;
        if outcome.is_err() {
            // Counted before the close: a client that sees the close may read the counter.
            counting.counters.faults.fetch_add(1, Ordering::Relaxed);
            closing.close(varint_code(code::H3_INTERNAL_ERROR), b"internal error");
        }
        outcome
    };
    let payload = match tokio::spawn(guarded).await {
        Ok(Ok(())) => return,
        Ok(Err(payload)) => payload,
        // A panic while the task's state was being dropped.
        Err(error) if error.is_panic() => {
            server.counters.faults.fetch_add(1, Ordering::Relaxed);
            error.into_panic()
        }
        Err(_) => return,
    };
    close_unless_gone(&conn, code::H3_INTERNAL_ERROR, b"internal error");
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    (server.on_fault)(&format!(
        "a connection task panicked ({what}); the connection from {} was closed with H3_INTERNAL_ERROR",
        conn.remote_address()
    ));
}

/// Runs a connection from handshake to close.
pub(crate) async fn run(incoming: quinn::Incoming, server: Arc<Host>) {
    let Ok(conn) = incoming.await else { return };
    server.counters.connections.fetch_add(1, Ordering::Relaxed);
    contained(server.clone(), conn.clone(), drive(conn, server.clone())).await;
    server.counters.connections.fetch_sub(1, Ordering::Relaxed);
}

impl Connection {
    fn new(conn: quinn::Connection, host: Arc<Host>, role: Role) -> Arc<Self> {
        Arc::new(Self {
            conn,
            role,
            host,
            settings: watch::channel(None).0,
            control_seen: AtomicBool::new(false),
            qpack_encoder_seen: AtomicBool::new(false),
            qpack_decoder_seen: AtomicBool::new(false),
            next_request_id: AtomicU64::new(0),
            goaway_id: AtomicU64::new(u64::MAX),
        })
    }
}

/// Runs the client end of an established connection on `host`'s tracker until it closes, with
/// the extension `attach` makes for it; returns both for the caller to send its requests.
pub(crate) fn start_client<E: ConnectionExtension>(
    conn: quinn::Connection,
    host: Arc<Host>,
    attach: impl FnOnce(Arc<Connection>) -> Arc<E>,
) -> (Arc<Connection>, Arc<E>) {
    let state = Connection::new(conn.clone(), host.clone(), Role::Client);
    let extension = attach(state.clone());
    let dyn_extension: Arc<dyn ConnectionExtension> = extension.clone();
    let counted = host.clone();
    let driven = serve(state.clone(), dyn_extension);
    host.tracker.spawn(async move {
        counted.counters.connections.fetch_add(1, Ordering::Relaxed);
        contained(counted.clone(), conn, driven).await;
        counted.counters.connections.fetch_sub(1, Ordering::Relaxed);
    });
    (state, extension)
}

async fn drive(conn: quinn::Connection, server: Arc<Host>) {
    let Some(extension) = server.extension.clone() else { return };
    let state = Connection::new(conn, server.clone(), Role::Server);
    let extension = extension.connection(state.clone());
    serve(state, extension).await;
}

async fn serve(state: Arc<Connection>, extension: Arc<dyn ConnectionExtension>) {
    let server = state.host.clone();
    let conn = state.conn.clone();
    let settings = proto::server_settings(server.max_header_bytes as u64, &extension.settings());
    // The control stream must stay open for the connection's life: dropping it would finish it,
    // which the peer must treat as H3_CLOSED_CRITICAL_STREAM.
    let control = async {
        let mut send = conn.open_uni().await.ok()?;
        send.write_all(&proto::control_stream_preamble(&settings)).await.ok()?;
        Some(send)
    };
    let Some(mut control) = control.await else { return };

    let uni_state = state.clone();
    let uni_extension = extension.clone();
    let uni_loop = async move {
        while let Ok(recv) = uni_state.conn.accept_uni().await {
            let handled = handle_uni(uni_state.clone(), uni_extension.clone(), recv);
            let task = contained(uni_state.host.clone(), uni_state.conn.clone(), handled);
            uni_state.host.tracker.spawn(task);
        }
    };
    let bidi_state = state.clone();
    let bidi_extension = extension.clone();
    let bidi_loop = async move {
        while let Ok((send, recv)) = bidi_state.conn.accept_bi().await {
            // Recorded here, in stream order, not in the stream's task: tasks may start in any
            // order, and a WebTransport stream whose task ran before its CONNECT's would find the
            // session id below the highest id seen and not live, and be refused.
            let id = u64::from(recv.id());
            if bidi_state.role == Role::Server {
                bidi_state.next_request_id.fetch_max(id + 4, Ordering::SeqCst);
                bidi_extension.request_started(id);
            }
            let handled = handle_bidi(bidi_state.clone(), bidi_extension.clone(), send, recv);
            let task = contained(bidi_state.host.clone(), bidi_state.conn.clone(), handled);
            bidi_state.host.tracker.spawn(task);
        }
    };
    let dgram_state = state.clone();
    let dgram_extension = extension.clone();
    let datagram_loop = async move {
        while let Ok(datagram) = dgram_state.conn.read_datagram().await {
            let Some((quarter_id, prefix)) = varint::decode_slice(&datagram) else {
                dgram_state.fail(code::H3_DATAGRAM_ERROR, "datagram without a quarter stream id");
                break;
            };
            // Quarter stream ids stop at 2^60: stream ids are below 2^62 (RFC 9297 §2.1).
            if quarter_id >= 1 << 60 {
                dgram_state.fail(code::H3_DATAGRAM_ERROR, "datagram quarter stream id out of range");
                break;
            }
            let session_id = quarter_id * 4;
            dgram_extension.datagram(session_id, datagram.slice(prefix..));
        }
    };
    // On server close: GOAWAY names the first request stream this connection will not serve,
    // so the client knows which requests to retry elsewhere (RFC 9114 §5.2).
    let goaway_state = state.clone();
    let goaway = async move {
        if goaway_state.role == Role::Client {
            // A client has no requests of the server's to refuse; the control stream stays open.
            goaway_state.conn.closed().await;
            return;
        }
        tokio::select! {
            () = goaway_state.host.closing.cancelled() => {}
            _ = goaway_state.conn.closed() => return,
        }
        let id = goaway_state.next_request_id.load(Ordering::SeqCst);
        goaway_state.goaway_id.store(id, Ordering::SeqCst);
        let mut payload = BytesMut::new();
        varint::encode(id, &mut payload);
        let mut frame_bytes = BytesMut::new();
        proto::put_frame(frame::GOAWAY, &payload, &mut frame_bytes);
        let _ = tokio::time::timeout(Duration::from_secs(1), control.write_all(&frame_bytes)).await;
        // Keep the control stream open until the connection ends.
        goaway_state.conn.closed().await;
    };
    tokio::join!(uni_loop, bidi_loop, datagram_loop, goaway);
    // Sessions end with their CONNECT streams, whose reads fail once the connection is gone.
}

async fn handle_uni(state: Arc<Connection>, extension: Arc<dyn ConnectionExtension>, mut recv: quinn::RecvStream) {
    let Ok(Some(kind)) = read_varint_exact(&mut recv).await else { return };
    match kind {
        stream_type::CONTROL => {
            if state.control_seen.swap(true, Ordering::SeqCst) {
                return state.fail(code::H3_STREAM_CREATION_ERROR, "second control stream");
            }
            read_control(&state, FrameReader { recv, buf: BytesMut::new() }).await;
        }
        stream_type::WEBTRANSPORT => {
            let Ok(Some(session_id)) = read_varint_exact(&mut recv).await else { return };
            extension.uni_stream(session_id, recv);
        }
        // With a zero-capacity dynamic table there is nothing to learn from these streams; they
        // are drained so the peer's flow control never stalls on them. Each is a critical stream
        // that may exist once (RFC 9204 §4.2).
        stream_type::QPACK_ENCODER | stream_type::QPACK_DECODER => {
            let seen =
                if kind == stream_type::QPACK_ENCODER { &state.qpack_encoder_seen } else { &state.qpack_decoder_seen };
            if seen.swap(true, Ordering::SeqCst) {
                return state.fail(code::H3_STREAM_CREATION_ERROR, "second qpack stream of one type");
            }
            loop {
                match recv.read_chunk(4096, true).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return state.fail(code::H3_CLOSED_CRITICAL_STREAM, "qpack stream closed"),
                    Err(quinn::ReadError::ConnectionLost(_)) => return,
                    Err(_) => return state.fail(code::H3_CLOSED_CRITICAL_STREAM, "qpack stream reset"),
                }
            }
        }
        stream_type::PUSH => state.fail(code::H3_STREAM_CREATION_ERROR, "clients must not push"),
        _ => {
            let _ = recv.stop(varint_code(code::H3_STREAM_CREATION_ERROR));
        }
    }
}

async fn read_control(state: &Connection, mut reader: FrameReader) {
    // The control stream must never end: cleanly, mid-frame or by reset (RFC 9114 §6.2.1).
    macro_rules! or_critical {
        ($e:expr) => {
            match $e {
                ReadOutcome::Ok(v) => v,
                _ => return state.fail(code::H3_CLOSED_CRITICAL_STREAM, "control stream closed"),
            }
        };
    }
    let mut first = true;
    loop {
        let kind = or_critical!(reader.varint().await);
        let len = or_critical!(reader.varint().await);
        if first && kind != frame::SETTINGS {
            return state.fail(code::H3_MISSING_SETTINGS, "first control frame is not SETTINGS");
        }
        match kind {
            frame::SETTINGS if first => {
                if len > 16 * 1024 {
                    return state.fail(code::H3_EXCESSIVE_LOAD, "settings frame too large");
                }
                let payload = or_critical!(reader.bytes(len as usize).await);
                match PeerSettings::parse(&payload) {
                    Ok(parsed) => {
                        state.settings.send_replace(Some(Arc::new(parsed)));
                    }
                    // A payload that ends inside a setting is a malformed frame (RFC 9114 §7.1).
                    Err(SettingsError::Truncated) => {
                        return state.fail(code::H3_FRAME_ERROR, "truncated settings frame")
                    }
                    Err(_) => return state.fail(code::H3_SETTINGS_ERROR, "malformed settings"),
                }
                first = false;
            }
            frame::SETTINGS | frame::DATA | frame::HEADERS | frame::PUSH_PROMISE | frame::WEBTRANSPORT_STREAM => {
                return state.fail(code::H3_FRAME_UNEXPECTED, "unexpected frame on the control stream");
            }
            k if frame::is_http2_only(k) => {
                return state.fail(code::H3_FRAME_UNEXPECTED, "http/2 frame on the control stream");
            }
            // GOAWAY, MAX_PUSH_ID, CANCEL_PUSH from a client need no action from a server that
            // never pushes; unknown frames are skipped.
            _ => or_critical!(reader.skip(len).await),
        }
    }
}

/// A response HEADERS frame: `:status` and `headers`.
pub(crate) fn response_frame(status: u16, headers: &[(String, String)]) -> Bytes {
    let status = status.to_string();
    let mut fields: Vec<(&str, &str)> = vec![(":status", status.as_str())];
    fields.extend(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let mut block = Vec::new();
    qpack::encode_field_section(&fields, &mut block);
    let mut out = BytesMut::new();
    proto::put_frame(frame::HEADERS, &block, &mut out);
    out.freeze()
}

/// Writes a final response and ends the stream in both directions.
pub(crate) async fn respond_and_end(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    status: u16,
    headers: &[(String, String)],
) {
    let _ = tokio::time::timeout(Duration::from_secs(5), send.write_all(&response_frame(status, headers))).await;
    let _ = send.finish();
    // The answer is complete; RFC 9114 §4.1 lets the server ask for the rest of the request to stop.
    let _ = recv.stop(varint_code(code::H3_NO_ERROR));
    let _ = send.stopped().await;
}

async fn handle_bidi(
    state: Arc<Connection>,
    extension: Arc<dyn ConnectionExtension>,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let id = u64::from(recv.id());
    let server = state.role == Role::Server;
    let Ok(Some(first)) = read_varint_exact(&mut recv).await else {
        if server {
            extension.request_done(id);
        }
        return;
    };
    if first == frame::WEBTRANSPORT_STREAM {
        let session_id = read_varint_exact(&mut recv).await;
        if server {
            extension.request_done(id);
        }
        let Ok(Some(session_id)) = session_id else { return };
        return extension.bidi_stream(session_id, send, recv);
    }
    if !server {
        // A server opens no request streams (RFC 9114 §6.1).
        return state.fail(code::H3_STREAM_CREATION_ERROR, "server-initiated bidirectional stream");
    }
    if id >= state.goaway_id.load(Ordering::SeqCst) {
        extension.request_done(id);
        return reject_bidi(send, recv, code::H3_REQUEST_REJECTED);
    }
    handle_request(&state, &extension, id, first, send, recv).await;
    extension.request_done(id);
}

async fn handle_request(
    state: &Arc<Connection>,
    extension: &Arc<dyn ConnectionExtension>,
    id: u64,
    first_kind: u64,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
) {
    let mut reader = FrameReader { recv, buf: BytesMut::new() };
    // A stream that ends inside a frame is a connection error (RFC 9114 §7.1); a reset just
    // ends this request.
    macro_rules! or_truncated {
        ($e:expr) => {
            match $e {
                ReadOutcome::Ok(v) => v,
                ReadOutcome::End => return state.fail(code::H3_FRAME_ERROR, "request stream ended inside a frame"),
                ReadOutcome::Failed => return,
            }
        };
    }
    let mut kind = first_kind;
    let header_len = loop {
        let len = or_truncated!(reader.varint().await);
        match kind {
            frame::HEADERS => break len,
            frame::DATA
            | frame::SETTINGS
            | frame::GOAWAY
            | frame::MAX_PUSH_ID
            | frame::CANCEL_PUSH
            | frame::PUSH_PROMISE => {
                return state.fail(code::H3_FRAME_UNEXPECTED, "unexpected frame before request headers");
            }
            // The WebTransport stream signal is only valid as a stream's first bytes.
            frame::WEBTRANSPORT_STREAM => {
                return state.fail(code::H3_FRAME_ERROR, "webtransport stream signal after other frames");
            }
            k if frame::is_http2_only(k) => {
                return state.fail(code::H3_FRAME_UNEXPECTED, "http/2 frame on a request stream")
            }
            _ => or_truncated!(reader.skip(len).await),
        }
        kind = or_return!(reader.varint().await);
    };
    let max = state.host.max_header_bytes;
    if header_len > max as u64 {
        return respond_and_end(send, reader.recv, 431, &[]).await;
    }
    let block = or_truncated!(reader.bytes(header_len as usize).await);
    let fields = match qpack::decode_field_section(&block, max) {
        Ok(fields) => fields,
        Err(QpackError::TooLarge) => return respond_and_end(send, reader.recv, 431, &[]).await,
        Err(QpackError::InvalidName | QpackError::InvalidValue) => {
            return reject_bidi(send, reader.recv, code::H3_MESSAGE_ERROR);
        }
        Err(_) => return state.fail(code::QPACK_DECOMPRESSION_FAILED, "cannot decode the request headers"),
    };
    let info = match request::parse_request(fields, state.conn.remote_address()) {
        Ok(info) => info,
        Err(_) => return reject_bidi(send, reader.recv, code::H3_MESSAGE_ERROR),
    };
    #[cfg(feature = "fault-injection")]
    #[allow(clippy::panic)]
    if info.path == "/.fault-injection/panic" {
        panic!("fault injection: a bug in a connection task");
    }
    if extension.takes(&info) {
        return extension.clone().connect(Request { id, info, send, body: reader }).await;
    }
    if info.method != "CONNECT" {
        if let Some(requests) = &state.host.requests {
            return requests.clone().serve(state.clone(), Request { id, info, send, body: reader }).await;
        }
    }
    // Extended CONNECT with a protocol we do not speak, or a proxy CONNECT: not implemented.
    let status = if info.method == "CONNECT" { 501 } else { 404 };
    let headers = vec![("content-length".to_string(), "0".to_string())];
    respond_and_end(send, reader.recv, status, &headers).await
}
