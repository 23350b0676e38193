//! One HTTP/3 connection: its control streams, request streams, WebTransport stream and
//! datagram routing, and the sessions it carries.
//!
//! Every stream gets its own task, and routing goes through one map per connection, so a stream
//! or datagram can arrive before, during or after its session's CONNECT is decided (streams wait
//! in a bounded buffer), and a CONNECT may be on any request stream.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{oneshot, watch};

use super::config::OriginPolicy;
use super::connect_stream::{ConnectStreamError, ConnectStreamParser};
use super::flow::{self, FlowControl, Violation};
use super::proto::{self, code, frame, stream_type, Capsule, PeerSettings, SettingsError};
use super::qpack::{self, QpackError};
use super::request;
use super::server::{Decision, IncomingRequest, ServerShared};
use super::session::{Session, SessionEnd, SessionShared};
use super::varint;

/// Streams buffered per connection for sessions that are not (yet) established.
const MAX_BUFFERED_STREAMS: usize = 64;
/// Datagrams buffered per connection for sessions that are not (yet) established.
const MAX_BUFFERED_DATAGRAMS: usize = 64;
/// How long a local close waits for the client to acknowledge the data of streams the
/// application already finished, before the close capsule goes out regardless.
pub(crate) const FINISHED_DATA_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Pending {
    bidi: Vec<(quinn::SendStream, quinn::RecvStream)>,
    uni: Vec<quinn::RecvStream>,
    datagrams: Vec<Bytes>,
}

#[derive(Default)]
struct Routes {
    sessions: HashMap<u64, Arc<SessionShared>>,
    pending: HashMap<u64, Pending>,
    buffered_streams: usize,
    buffered_datagrams: usize,
    /// Client bidirectional streams whose task still runs: a CONNECT among them may still
    /// become a session. Any lower id not here and not a session never will (no per-request
    /// memory is kept for finished requests).
    live_requests: HashSet<u64>,
    /// Sessions that existed and ended: late streams for them get WT_SESSION_GONE.
    ended_sessions: HashSet<u64>,
    /// One past the highest client bidirectional stream id seen.
    next_request_id: u64,
    /// The one session a connection without WebTransport flow control may carry (draft §5.1).
    sole_session: Option<u64>,
}

/// Where a stream or datagram naming a session id goes.
enum Route {
    Session(Arc<SessionShared>),
    /// Wait for the session (its CONNECT may not be decided or even read yet).
    Buffer,
    /// The session existed and ended.
    Gone,
    /// No such session will exist, or the buffer is full.
    Refuse,
}

impl Routes {
    fn route(&self, session_id: u64, buffered: usize, limit: usize) -> Route {
        if let Some(session) = self.sessions.get(&session_id) {
            Route::Session(session.clone())
        } else if self.ended_sessions.contains(&session_id) {
            Route::Gone
        } else if (session_id < self.next_request_id && !self.live_requests.contains(&session_id)) || buffered >= limit
        {
            Route::Refuse
        } else {
            Route::Buffer
        }
    }
}

struct Conn {
    conn: quinn::Connection,
    server: Arc<ServerShared>,
    settings: watch::Sender<Option<Arc<PeerSettings>>>,
    routes: Mutex<Routes>,
    control_seen: std::sync::atomic::AtomicBool,
    qpack_encoder_seen: std::sync::atomic::AtomicBool,
    qpack_decoder_seen: std::sync::atomic::AtomicBool,
    /// Set once GOAWAY is sent: request streams at or above it are refused unprocessed.
    goaway_id: AtomicU64,
}

fn varint_code(value: u64) -> quinn::VarInt {
    quinn::VarInt::from_u64(value).unwrap_or_default()
}

impl Conn {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, error_code: u64, reason: &str) {
        self.conn.close(varint_code(error_code), reason.as_bytes());
    }

    fn route_bidi(&self, session_id: u64, send: quinn::SendStream, recv: quinn::RecvStream) {
        if !session_id.is_multiple_of(4) {
            return self.fail(code::H3_ID_ERROR, "webtransport stream names a session that is not a request stream");
        }
        let mut routes = self.routes();
        match routes.route(session_id, routes.buffered_streams, MAX_BUFFERED_STREAMS) {
            Route::Session(session) => session.admit_bidi(send, recv),
            Route::Buffer => {
                routes.buffered_streams += 1;
                routes.pending.entry(session_id).or_default().bidi.push((send, recv));
            }
            Route::Gone => reject_bidi(send, recv, code::WT_SESSION_GONE),
            Route::Refuse => reject_bidi(send, recv, code::WT_BUFFERED_STREAM_REJECTED),
        }
    }

    fn route_uni(&self, session_id: u64, mut recv: quinn::RecvStream) {
        if !session_id.is_multiple_of(4) {
            return self.fail(code::H3_ID_ERROR, "webtransport stream names a session that is not a request stream");
        }
        let mut routes = self.routes();
        match routes.route(session_id, routes.buffered_streams, MAX_BUFFERED_STREAMS) {
            Route::Session(session) => session.admit_uni(recv),
            Route::Buffer => {
                routes.buffered_streams += 1;
                routes.pending.entry(session_id).or_default().uni.push(recv);
            }
            Route::Gone => {
                let _ = recv.stop(varint_code(code::WT_SESSION_GONE));
            }
            Route::Refuse => {
                let _ = recv.stop(varint_code(code::WT_BUFFERED_STREAM_REJECTED));
            }
        }
    }

    fn route_datagram(&self, session_id: u64, payload: Bytes) {
        let mut routes = self.routes();
        match routes.route(session_id, routes.buffered_datagrams, MAX_BUFFERED_DATAGRAMS) {
            Route::Session(session) => session.push_datagram(payload),
            Route::Buffer => {
                routes.buffered_datagrams += 1;
                routes.pending.entry(session_id).or_default().datagrams.push(payload);
            }
            // Datagrams are unreliable: ones nobody can take are dropped silently (RFC 9297).
            Route::Gone | Route::Refuse => {}
        }
    }

    /// Records a client bidirectional stream as accepted; its task will `bury` it.
    fn request_started(&self, id: u64) {
        let mut routes = self.routes();
        routes.live_requests.insert(id);
        routes.next_request_id = routes.next_request_id.max(id + 4);
    }

    /// Claims the connection's one session for request `id`, for a client without flow control;
    /// `false` when another request holds it.
    fn claim_sole_session(&self, id: u64) -> bool {
        let mut routes = self.routes();
        match routes.sole_session {
            Some(other) if other != id => false,
            _ => {
                routes.sole_session = Some(id);
                true
            }
        }
    }

    /// Marks a session as ended: later streams for it get WT_SESSION_GONE.
    fn end_session(&self, id: u64) {
        let mut routes = self.routes();
        if routes.sessions.remove(&id).is_some() {
            routes.ended_sessions.insert(id);
        }
    }

    /// Makes `session` the target of its id's streams and datagrams, handing it what arrived early.
    fn attach(&self, session: &Arc<SessionShared>) {
        let mut routes = self.routes();
        routes.sessions.insert(session.id, session.clone());
        if let Some(pending) = routes.pending.remove(&session.id) {
            routes.buffered_streams -= pending.bidi.len() + pending.uni.len();
            routes.buffered_datagrams -= pending.datagrams.len();
            for (send, recv) in pending.bidi {
                session.admit_bidi(send, recv);
            }
            for recv in pending.uni {
                session.admit_uni(recv);
            }
            for datagram in pending.datagrams {
                session.push_datagram(datagram);
            }
        }
    }

    /// Marks a client stream's task as done: a request that is not (or no longer) a session, or
    /// a WebTransport stream; refuses what waited for it.
    fn bury(&self, id: u64) {
        let pending = {
            let mut routes = self.routes();
            routes.live_requests.remove(&id);
            if routes.sole_session == Some(id) {
                routes.sole_session = None;
            }
            if routes.sessions.remove(&id).is_some() {
                routes.ended_sessions.insert(id);
            }
            let pending = routes.pending.remove(&id);
            if let Some(p) = &pending {
                routes.buffered_streams -= p.bidi.len() + p.uni.len();
                routes.buffered_datagrams -= p.datagrams.len();
            }
            pending
        };
        if let Some(pending) = pending {
            for (send, recv) in pending.bidi {
                reject_bidi(send, recv, code::WT_BUFFERED_STREAM_REJECTED);
            }
            for mut recv in pending.uni {
                let _ = recv.stop(varint_code(code::WT_BUFFERED_STREAM_REJECTED));
            }
        }
    }
}

fn reject_bidi(mut send: quinn::SendStream, mut recv: quinn::RecvStream, error_code: u64) {
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
struct FrameReader {
    recv: quinn::RecvStream,
    buf: BytesMut,
}

enum ReadOutcome<T> {
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

    async fn varint(&mut self) -> ReadOutcome<u64> {
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

    async fn bytes(&mut self, len: usize) -> ReadOutcome<BytesMut> {
        while self.buf.len() < len {
            match self.fill().await {
                ReadOutcome::Ok(()) => {}
                ReadOutcome::End => return ReadOutcome::End,
                ReadOutcome::Failed => return ReadOutcome::Failed,
            }
        }
        ReadOutcome::Ok(self.buf.split_to(len))
    }

    async fn skip(&mut self, mut len: u64) -> ReadOutcome<()> {
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
    server: Arc<ServerShared>,
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
    conn.close(varint_code(code::H3_INTERNAL_ERROR), b"internal error");
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    server.handler.on_fault(&format!(
        "a connection task panicked ({what}); the connection from {} was closed with H3_INTERNAL_ERROR",
        conn.remote_address()
    ));
}

/// Runs a connection from handshake to close.
pub(crate) async fn run(incoming: quinn::Incoming, server: Arc<ServerShared>) {
    let Ok(conn) = incoming.await else { return };
    server.counters.connections.fetch_add(1, Ordering::Relaxed);
    contained(server.clone(), conn.clone(), drive(conn, server.clone())).await;
    server.counters.connections.fetch_sub(1, Ordering::Relaxed);
}

async fn drive(conn: quinn::Connection, server: Arc<ServerShared>) {
    let state = Arc::new(Conn {
        conn: conn.clone(),
        server: server.clone(),
        settings: watch::channel(None).0,
        routes: Mutex::new(Routes::default()),
        control_seen: std::sync::atomic::AtomicBool::new(false),
        qpack_encoder_seen: std::sync::atomic::AtomicBool::new(false),
        qpack_decoder_seen: std::sync::atomic::AtomicBool::new(false),
        goaway_id: AtomicU64::new(u64::MAX),
    });
    let settings = proto::server_settings(
        u64::from(server.config.max_sessions),
        server.config.max_header_bytes as u64,
        flow::settings_for(&server.config.flow_control),
    );
    // The control stream must stay open for the connection's life: dropping it would finish it,
    // which the peer must treat as H3_CLOSED_CRITICAL_STREAM.
    let control = async {
        let mut send = conn.open_uni().await.ok()?;
        send.write_all(&proto::control_stream_preamble(&settings)).await.ok()?;
        Some(send)
    };
    let Some(mut control) = control.await else { return };

    let uni_state = state.clone();
    let uni_loop = async move {
        while let Ok(recv) = uni_state.conn.accept_uni().await {
            let task = contained(uni_state.server.clone(), uni_state.conn.clone(), handle_uni(uni_state.clone(), recv));
            uni_state.server.tracker.spawn(task);
        }
    };
    let bidi_state = state.clone();
    let bidi_loop = async move {
        while let Ok((send, recv)) = bidi_state.conn.accept_bi().await {
            // Recorded here, in stream order, not in the stream's task: tasks may start in any
            // order, and a WebTransport stream whose task ran before its CONNECT's would find the
            // session id below the highest id seen and not live, and be refused.
            bidi_state.request_started(u64::from(recv.id()));
            let task = contained(
                bidi_state.server.clone(),
                bidi_state.conn.clone(),
                handle_bidi(bidi_state.clone(), send, recv),
            );
            bidi_state.server.tracker.spawn(task);
        }
    };
    let dgram_state = state.clone();
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
            dgram_state.route_datagram(session_id, datagram.slice(prefix..));
        }
    };
    // On server close: GOAWAY names the first request stream this connection will not serve,
    // so the client knows which requests to retry elsewhere (RFC 9114 §5.2).
    let goaway_state = state.clone();
    let goaway = async move {
        tokio::select! {
            () = goaway_state.server.closing.cancelled() => {}
            _ = goaway_state.conn.closed() => return,
        }
        let id = goaway_state.routes().next_request_id;
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

async fn handle_uni(state: Arc<Conn>, mut recv: quinn::RecvStream) {
    let Ok(Some(kind)) = read_varint_exact(&mut recv).await else { return };
    match kind {
        stream_type::CONTROL => {
            if state.control_seen.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return state.fail(code::H3_STREAM_CREATION_ERROR, "second control stream");
            }
            read_control(&state, FrameReader { recv, buf: BytesMut::new() }).await;
        }
        stream_type::WEBTRANSPORT => {
            let Ok(Some(session_id)) = read_varint_exact(&mut recv).await else { return };
            state.route_uni(session_id, recv);
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

async fn read_control(state: &Conn, mut reader: FrameReader) {
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

fn response_frame(status: u16, headers: &[(String, String)]) -> Bytes {
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
async fn respond_and_end(
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

async fn handle_bidi(state: Arc<Conn>, send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let id = u64::from(recv.id());
    let Ok(Some(first)) = read_varint_exact(&mut recv).await else {
        return state.bury(id);
    };
    if first == frame::WEBTRANSPORT_STREAM {
        let session_id = read_varint_exact(&mut recv).await;
        state.bury(id);
        let Ok(Some(session_id)) = session_id else { return };
        return state.route_bidi(session_id, send, recv);
    }
    if id >= state.goaway_id.load(Ordering::SeqCst) {
        state.bury(id);
        return reject_bidi(send, recv, code::H3_REQUEST_REJECTED);
    }
    handle_request(&state, id, first, send, recv).await;
    state.bury(id);
}

async fn handle_request(
    state: &Arc<Conn>,
    id: u64,
    first_kind: u64,
    mut send: quinn::SendStream,
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
    let max = state.server.config.max_header_bytes;
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
    if !info.is_webtransport() {
        // Extended CONNECT with a protocol we do not speak, or a proxy CONNECT: not implemented.
        let status = if info.method == "CONNECT" { 501 } else { 404 };
        let headers = vec![("content-length".to_string(), "0".to_string())];
        return respond_and_end(send, reader.recv, status, &headers).await;
    }
    if state.server.closing.is_cancelled() {
        return respond_and_end(send, reader.recv, 503, &[]).await;
    }
    // A client's SETTINGS may trail its first request; the decision needs them.
    let mut settings_rx = state.settings.subscribe();
    let settings = tokio::select! {
        s = tokio::time::timeout(state.server.config.settings_timeout, settings_rx.wait_for(Option::is_some)) => {
            match s { Ok(Ok(s)) => s.clone(), _ => None }
        }
        _ = send.stopped() => return,
    };
    let Some(settings) = settings else {
        return respond_and_end(send, reader.recv, 400, &[("wt-error".into(), "settings-timeout".into())]).await;
    };
    if !settings.supports_webtransport() || !settings.supports_datagrams() {
        let headers = vec![("wt-error".to_string(), "webtransport-not-enabled".to_string())];
        return respond_and_end(send, reader.recv, 400, &headers).await;
    }
    // This server always declares flow control (it sends non-zero initial limits), so the
    // client's SETTINGS decide.
    let flow_enabled = flow::declares_flow_control(&settings);
    // Without flow control nothing bounds what one session takes of a shared connection, so the
    // draft allows one session per connection; the draft-02/-07 browsers (Chromium, Firefox)
    // predate that rule and pool sessions, and keep working as they always have.
    if !flow_enabled && !settings.speaks_legacy_webtransport() && !state.claim_sole_session(id) {
        return reject_bidi(send, reader.recv, code::H3_REQUEST_REJECTED);
    }
    if state.server.session_count() >= state.server.config.max_sessions as usize {
        return respond_and_end(send, reader.recv, 429, &[]).await;
    }
    if state.server.config.origin_policy == OriginPolicy::SameHost && !request::same_host_origin(&info) {
        return respond_and_end(send, reader.recv, 403, &[]).await;
    }

    let info = Arc::new(info);
    let (reply_tx, reply_rx) = oneshot::channel();
    state.server.handler.on_request(IncomingRequest { info: info.clone(), reply: reply_tx });
    let answer = tokio::select! {
        answer = tokio::time::timeout(state.server.config.decision_timeout, reply_rx) => answer,
        _ = send.stopped() => return,
    };
    let (decision, session_tx) = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => return respond_and_end(send, reader.recv, 500, &[]).await,
        Err(_) => return respond_and_end(send, reader.recv, 503, &[]).await,
    };
    let (mut headers, protocol) = match decision {
        Decision::Reject { status, headers } => {
            let status = if (200..300).contains(&status) || !(100..=999).contains(&status) { 500 } else { status };
            let (status, headers) = info.refusal(status, headers);
            return respond_and_end(send, reader.recv, status, &headers).await;
        }
        Decision::Accept { headers, protocol } => (headers, protocol),
    };
    let flow =
        flow_enabled.then(|| FlowControl::new(state.server.config.flow_control, flow::initial_limits(&settings)));
    let (session, close_rx) =
        SessionShared::new(id, state.conn.clone(), info, protocol.clone(), state.server.config.datagram_queue, flow);
    let Some(registration) = state.server.register(session.clone()) else {
        return respond_and_end(send, reader.recv, 429, &[]).await;
    };
    headers.push(("sec-webtransport-http3-draft".into(), "draft02".into()));
    if !protocol.is_empty() {
        headers.push(("wt-protocol".into(), sf_string(&protocol)));
    }
    state.attach(&session);
    let written = send.write_all(&response_frame(200, &headers)).await.is_ok();
    if let Some(tx) = session_tx {
        let _ = tx.send(Session { shared: session.clone() });
    }
    if written {
        drive_session(state, &session, send, reader, close_rx).await;
    } else {
        session.finish(SessionEnd::Aborted {
            message: "the client went away before the session opened".into(),
            connection_lost: false,
        });
    }
    drop(registration);
}

/// A structured-field String (RFC 8941 §3.3.3): quoted, with `"` and `\` escaped.
fn sf_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Owns the CONNECT stream of an open session until the session ends.
async fn drive_session(
    state: &Arc<Conn>,
    session: &Arc<SessionShared>,
    mut send: quinn::SendStream,
    reader: FrameReader,
    mut close_rx: oneshot::Receiver<(u32, String)>,
) {
    let FrameReader { mut recv, buf } = reader;
    let mut parser = ConnectStreamParser::default();
    let mut pending_bytes = Some(buf);
    let mut drain_sent = false;
    // After the client's close capsule, the stream must end with nothing more (draft §6).
    let mut expect_fin_after_close = false;
    let end = loop {
        let chunk = match pending_bytes.take() {
            Some(early) => Ok(Some(early.freeze())),
            None => tokio::select! {
                chunk = recv.read_chunk(16 * 1024, true) => chunk.map(|c| c.map(|c| c.bytes)),
                request = &mut close_rx => {
                    let (error_code, reason) = request.unwrap_or((0, String::new()));
                    // The capsule makes the client abandon every stream of the session, so what
                    // the application wrote and finished before closing must be delivered first.
                    session.unacknowledged.wait(tokio::time::Instant::now() + FINISHED_DATA_WAIT).await;
                    close_locally(&mut send, &mut recv, error_code, &reason).await;
                    break SessionEnd::Closed { code: error_code, reason };
                }
                () = flow_signalled(session.flow.as_deref()) => {
                    let Some(flow) = &session.flow else { continue };
                    let (capsules, violation) = flow.take_signal();
                    if let Some(violation) = violation {
                        break flow_error(&mut send, &mut recv, &violation);
                    }
                    // Capsules are a few bytes; a client that stops granting QUIC credit on its
                    // own session's stream is cut off rather than holding the driver.
                    let written = tokio::time::timeout(Duration::from_secs(5), send.write_all(&capsules)).await;
                    if !matches!(written, Ok(Ok(()))) {
                        let _ = send.reset(varint_code(code::WT_SESSION_GONE));
                        break aborted("the client stopped reading the session stream");
                    }
                    continue;
                }
                () = state.server.closing.cancelled(), if !drain_sent => {
                    drain_sent = true;
                    session.draining.send_replace(true);
                    let _ = tokio::time::timeout(Duration::from_secs(1), send.write_all(&proto::drain_capsule_frame())).await;
                    continue;
                }
                // Session::drain: the same capsule for this one session.
                () = session.drain_request.notified(), if !drain_sent => {
                    drain_sent = true;
                    let _ = tokio::time::timeout(Duration::from_secs(1), send.write_all(&proto::drain_capsule_frame())).await;
                    continue;
                }
            },
        };
        match chunk {
            Ok(Some(bytes)) => match parser.push(&bytes) {
                Ok(capsules) => {
                    let mut capsules = capsules.into_iter();
                    let end = match apply_capsules(session, &mut capsules) {
                        Some(Stop::FlowError(violation)) => break flow_error(&mut send, &mut recv, &violation),
                        Some(Stop::Closed(end)) => Some(end),
                        None => None,
                    };
                    if let Some(end) = end {
                        if capsules.next().is_some() || !parser.at_frame_boundary() || !parser.at_capsule_boundary() {
                            reject_bidi(send, recv, code::H3_MESSAGE_ERROR);
                            state.end_session(session.id);
                            return session.finish(end);
                        }
                        expect_fin_after_close = true;
                        state.end_session(session.id);
                        session.finish(end.clone());
                        break end;
                    }
                }
                Err(ConnectStreamError::Capsule(_)) => break protocol_error(&mut send, &mut recv),
                Err(ConnectStreamError::UnexpectedFrame(_)) => {
                    state.fail(code::H3_FRAME_UNEXPECTED, "control frame on a session's CONNECT stream");
                    break aborted("the client sent a control frame on the session stream");
                }
                Err(ConnectStreamError::MisplacedStreamSignal) => {
                    state.fail(code::H3_FRAME_ERROR, "webtransport stream signal inside a CONNECT stream");
                    break aborted("the client sent a misplaced stream signal on the session stream");
                }
            },
            // A FIN without a close capsule is a close with code 0 and no reason, if the stream
            // did not end inside a frame or a capsule.
            Ok(None) => {
                if !parser.at_frame_boundary() {
                    state.fail(code::H3_FRAME_ERROR, "CONNECT stream ended inside a frame");
                    break aborted("the session stream ended inside a frame");
                }
                if !parser.at_capsule_boundary() {
                    break protocol_error(&mut send, &mut recv);
                }
                let _ = send.finish();
                break SessionEnd::Closed { code: 0, reason: String::new() };
            }
            // A peer that closes its whole connection with H3_NO_ERROR closed cleanly, if
            // without a capsule: the same as a FIN.
            Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(close)))
                if close.error_code.into_inner() == code::H3_NO_ERROR =>
            {
                break SessionEnd::Closed { code: 0, reason: String::new() };
            }
            Err(e) => {
                let _ = send.reset(varint_code(code::WT_SESSION_GONE));
                let (detail, connection_lost) = match e {
                    quinn::ReadError::ConnectionLost(lost) => (format!("connection lost: {lost}"), true),
                    other => (other.to_string(), false),
                };
                break SessionEnd::Aborted {
                    message: format!("the session ended without a close: {detail}"),
                    connection_lost,
                };
            }
        }
    };
    state.end_session(session.id);
    session.finish(end);
    if expect_fin_after_close {
        // The session is over for the application; what is left is checking that the client
        // ends its side cleanly, bounded so a silent client cannot hold the task.
        match tokio::time::timeout(Duration::from_secs(1), recv.read_chunk(1, true)).await {
            Ok(Ok(None)) => {
                let _ = send.finish();
            }
            Ok(Ok(Some(_))) => reject_bidi(send, recv, code::H3_MESSAGE_ERROR),
            Ok(Err(_)) => {}
            Err(_) => {
                let _ = send.finish();
                let _ = recv.stop(varint_code(code::WT_SESSION_GONE));
            }
        }
    }
}

/// Sends our close capsule and ends our side of the CONNECT stream.
async fn close_locally(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, error_code: u32, reason: &str) {
    let capsule = proto::close_capsule_frame(error_code, reason);
    // A peer that stopped granting flow control must not hold the close forever.
    let sent = tokio::time::timeout(Duration::from_secs(2), send.write_all(&capsule)).await;
    if matches!(sent, Ok(Ok(()))) {
        let _ = send.finish();
        // Until the capsule is acknowledged the connection must not be closed under it, or the
        // client sees a lost connection instead of this close.
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
    } else {
        let _ = send.reset(varint_code(code::WT_SESSION_GONE));
    }
    let _ = recv.stop(varint_code(code::WT_SESSION_GONE));
}

fn aborted(message: &str) -> SessionEnd {
    SessionEnd::Aborted { message: message.to_string(), connection_lost: false }
}

/// Why capsules stopped a session.
enum Stop {
    Closed(SessionEnd),
    FlowError(Violation),
}

/// Applies capsules in order up to a close or a flow-control violation, which it returns; the
/// iterator keeps what follows.
fn apply_capsules(session: &SessionShared, capsules: &mut impl Iterator<Item = Capsule>) -> Option<Stop> {
    for capsule in capsules.by_ref() {
        match capsule {
            Capsule::Close { code, reason } => return Some(Stop::Closed(SessionEnd::Closed { code, reason })),
            Capsule::Drain => {
                session.draining.send_replace(true);
            }
            // Without flow control these are ignored: the client may have sent them before it
            // saw our SETTINGS (draft §5.1).
            Capsule::Flow { kind, value } => {
                if let Some(Err(violation)) = session.flow.as_ref().map(|f| f.apply_capsule(kind, value)) {
                    return Some(Stop::FlowError(violation));
                }
            }
            Capsule::Unknown(_) => {}
        }
    }
    None
}

/// Resolves when the session's flow control owes capsules or met a violation; never without it.
async fn flow_signalled(flow: Option<&FlowControl>) {
    match flow {
        Some(flow) => flow.signalled().await,
        None => std::future::pending().await,
    }
}

/// Ends a session whose client broke flow control: its CONNECT stream is reset both ways with
/// WT_FLOW_CONTROL_ERROR (a session error, draft §5).
fn flow_error(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, violation: &Violation) -> SessionEnd {
    let _ = send.reset(varint_code(code::WT_FLOW_CONTROL_ERROR));
    let _ = recv.stop(varint_code(code::WT_FLOW_CONTROL_ERROR));
    SessionEnd::Aborted { message: format!("webtransport flow control error: {violation}"), connection_lost: false }
}

fn protocol_error(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream) -> SessionEnd {
    let _ = send.reset(varint_code(code::H3_MESSAGE_ERROR));
    let _ = recv.stop(varint_code(code::H3_MESSAGE_ERROR));
    SessionEnd::Aborted {
        message: "the client sent a malformed capsule or frame on the session stream".into(),
        connection_lost: false,
    }
}
