//! Where a connection's WebTransport streams and datagrams go: each names its session by id, and
//! may arrive before, during or after its session's CONNECT is decided, so they wait in a bounded
//! buffer until the session exists, and are refused once it never will.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::session::SessionShared;
use super::wire::code;
use crate::core::h3::connection::{reject_bidi, varint_code, Connection};
use crate::core::h3::proto::code as h3_code;

/// Streams buffered per connection for sessions that are not (yet) established.
const MAX_BUFFERED_STREAMS: usize = 64;
/// Datagrams buffered per connection for sessions that are not (yet) established.
const MAX_BUFFERED_DATAGRAMS: usize = 64;

#[derive(Default)]
struct Pending {
    bidi: Vec<(quinn::SendStream, quinn::RecvStream)>,
    uni: Vec<quinn::RecvStream>,
    datagrams: Vec<Bytes>,
}

#[derive(Default)]
pub(crate) struct Routes {
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

/// A connection's WebTransport routing: the HTTP/3 connection hands it every WebTransport
/// stream, datagram and request-stream event.
pub(crate) struct Router {
    pub(crate) h3: Arc<Connection>,
    routes: Mutex<Routes>,
}

impl Router {
    pub(crate) fn new(h3: Arc<Connection>) -> Self {
        Self { h3, routes: Mutex::new(Routes::default()) }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn route_bidi(&self, session_id: u64, send: quinn::SendStream, recv: quinn::RecvStream) {
        if !session_id.is_multiple_of(4) {
            return self
                .h3
                .fail(h3_code::H3_ID_ERROR, "webtransport stream names a session that is not a request stream");
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

    pub(crate) fn route_uni(&self, session_id: u64, mut recv: quinn::RecvStream) {
        if !session_id.is_multiple_of(4) {
            return self
                .h3
                .fail(h3_code::H3_ID_ERROR, "webtransport stream names a session that is not a request stream");
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

    pub(crate) fn route_datagram(&self, session_id: u64, payload: Bytes) {
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
    pub(crate) fn request_started(&self, id: u64) {
        let mut routes = self.routes();
        routes.live_requests.insert(id);
        routes.next_request_id = routes.next_request_id.max(id + 4);
    }

    /// Claims the connection's one session for request `id`, for a client without flow control;
    /// `false` when another request holds it.
    pub(crate) fn claim_sole_session(&self, id: u64) -> bool {
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
    pub(crate) fn end_session(&self, id: u64) {
        let mut routes = self.routes();
        if routes.sessions.remove(&id).is_some() {
            routes.ended_sessions.insert(id);
        }
    }

    /// Makes `session` the target of its id's streams and datagrams, handing it what arrived early.
    pub(crate) fn attach(&self, session: &Arc<SessionShared>) {
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
    pub(crate) fn bury(&self, id: u64) {
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
