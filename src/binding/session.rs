use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Buffer, Uint8Array};
use napi::Env;
use napi_derive::napi;

use super::error::to_js;
use super::hub::{ready, Hub, ReadyEvent};
use super::request_fields::{request_fields, RequestFields};
use super::stream::{NativeStream, StreamHalves};
use crate::core::{ErrorCode, RecvStream, SendStream, Session, SessionEnd, SweptList};

/// How a session ended, for JS.
#[napi(object)]
pub struct SessionEndInfo {
    pub close_code: u32,
    pub reason: String,
    /// Set when the session ended without a close (connection lost, stream reset); then
    /// `closed` rejects with this message.
    pub aborted: Option<String>,
    /// The `WT_ERR_*` code for an aborted session: connection lost, or session closed.
    pub aborted_code: Option<String>,
}

/// Counters for `getStats()`.
#[napi(object)]
pub struct NativeStats {
    /// Milliseconds.
    pub rtt: f64,
    /// Milliseconds.
    pub min_rtt: f64,
    /// Bytes in flight allowed by congestion control.
    pub congestion_window: f64,
    pub bytes_sent: f64,
    pub bytes_received: f64,
    pub packets_sent: f64,
    pub packets_received: f64,
    pub packets_lost: f64,
    pub datagrams_sent: f64,
    pub datagrams_received: f64,
    pub datagrams_dropped_incoming: f64,
    /// WebTransport flow control, when the client uses it.
    pub flow_control: Option<NativeFlowStats>,
}

/// WebTransport flow control's limits and their use (draft-ietf-webtrans-http3 §5).
#[napi(object)]
pub struct NativeFlowStats {
    /// Stream bytes the client may send in all (our WT_MAX_DATA).
    pub local_max_data: f64,
    /// Client stream bytes the application has read.
    pub data_received: f64,
    /// Stream bytes we may send in all (the client's WT_MAX_DATA).
    pub remote_max_data: f64,
    pub data_sent: f64,
    pub local_max_streams_bidi: f64,
    pub local_max_streams_uni: f64,
    pub remote_max_streams_bidi: f64,
    pub remote_max_streams_uni: f64,
    pub streams_opened_by_peer_bidi: f64,
    pub streams_opened_by_peer_uni: f64,
    pub streams_opened_bidi: f64,
    pub streams_opened_uni: f64,
    /// Times a write or a stream opening waited for the client's credit.
    pub blocked: f64,
    /// WT_MAX_DATA and WT_MAX_STREAMS capsules sent.
    pub credit_capsules_sent: f64,
}

/// The native side of a session; `lib/session.js` gives it the W3C shape.
///
/// What JS waits for (the end, the next streams, datagrams) is a `wait*` call that settles
/// through the server's hub, then a synchronous call that takes the result. A `wait*` that is
/// already settled returns its event instead, and the hub never sees it.
#[napi]
pub struct NativeSession {
    session: Session,
    hub: Arc<Hub>,
    accepted_bidi: Arc<Mutex<Vec<(SendStream, RecvStream)>>>,
    accepted_uni: Arc<Mutex<Vec<RecvStream>>>,
    streams: Arc<HandedOut>,
}

/// The streams a session handed to JS, so that its end lets go of their halves: every read and
/// write would fail from then on, and a stream JS neither read to its end nor finished would
/// otherwise keep its halves, and through them the connection's state, until V8 collects it.
#[derive(Default)]
struct HandedOut {
    list: Mutex<SweptList<StreamHalves>>,
}

impl HandedOut {
    fn lock(&self) -> std::sync::MutexGuard<'_, SweptList<StreamHalves>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, halves: StreamHalves) {
        self.lock().push(halves, |halves| halves.held());
    }

    /// Lets go of every half still held, at the session's end.
    fn release(&self) {
        let streams = self.lock().take();
        for halves in streams {
            halves.release();
        }
    }
}

impl NativeSession {
    pub(crate) fn new(session: Session, hub: Arc<Hub>) -> Self {
        super::live::created(&super::live::SESSIONS);
        Self { session, hub, accepted_bidi: Arc::default(), accepted_uni: Arc::default(), streams: Arc::default() }
    }

    fn stream(&self, send: Option<SendStream>, recv: Option<RecvStream>) -> NativeStream {
        let stream = NativeStream::new(send, recv, self.hub.clone(), self.session.clone());
        self.streams.add(stream.halves());
        stream
    }
}

fn end_info(end: SessionEnd) -> SessionEndInfo {
    match end {
        SessionEnd::Closed { code, reason } => {
            SessionEndInfo { close_code: code, reason, aborted: None, aborted_code: None }
        }
        SessionEnd::Aborted { message, connection_lost } => SessionEndInfo {
            close_code: 0,
            reason: String::new(),
            aborted: Some(message),
            aborted_code: Some(
                if connection_lost { ErrorCode::ConnectionLost } else { ErrorCode::SessionClosed }.as_str().to_string(),
            ),
        },
    }
}

#[napi]
impl NativeSession {
    #[napi(catch_unwind)]
    pub fn request(&self) -> RequestFields {
        request_fields(self.session.request())
    }

    #[napi(catch_unwind)]
    pub fn protocol(&self) -> String {
        self.session.protocol().to_string()
    }

    /// Settles `id` once client-opened bidirectional streams are waiting (up to `max`, taken
    /// with `takeBidi`), or the session ended (then `takeBidi` is empty).
    #[napi(catch_unwind)]
    pub fn wait_bidi(&self, env: &Env, id: u32, max: u32) -> Option<ReadyEvent> {
        let (session, slot) = (self.session.clone(), self.accepted_bidi.clone());
        self.hub.now_or_begin(env, id, async move {
            let batch = session.accept_bi_batch(max as usize).await;
            slot.lock().unwrap_or_else(|p| p.into_inner()).extend(batch);
            ready(id)
        })
    }

    /// The bidirectional streams `waitBidi` found; empty once the session ended.
    #[napi(catch_unwind)]
    pub fn take_bidi(&self) -> Vec<NativeStream> {
        let batch = std::mem::take(&mut *self.accepted_bidi.lock().unwrap_or_else(|p| p.into_inner()));
        batch.into_iter().map(|(send, recv)| self.stream(Some(send), Some(recv))).collect()
    }

    /// As `waitBidi`, for unidirectional streams (`takeUni`).
    #[napi(catch_unwind)]
    pub fn wait_uni(&self, env: &Env, id: u32, max: u32) -> Option<ReadyEvent> {
        let (session, slot) = (self.session.clone(), self.accepted_uni.clone());
        self.hub.now_or_begin(env, id, async move {
            let batch = session.accept_uni_batch(max as usize).await;
            slot.lock().unwrap_or_else(|p| p.into_inner()).extend(batch);
            ready(id)
        })
    }

    /// The unidirectional streams `waitUni` found; empty once the session ended.
    #[napi(catch_unwind)]
    pub fn take_uni(&self) -> Vec<NativeStream> {
        let batch = std::mem::take(&mut *self.accepted_uni.lock().unwrap_or_else(|p| p.into_inner()));
        batch.into_iter().map(|recv| self.stream(None, Some(recv))).collect()
    }

    /// Settles `id` once a datagram is queued (take them with `takeDatagrams`) or the session
    /// ended.
    #[napi(catch_unwind)]
    pub fn wait_datagrams(&self, env: &Env, id: u32) -> Option<ReadyEvent> {
        let session = self.session.clone();
        self.hub.now_or_begin(env, id, async move {
            session.datagrams_ready().await;
            ready(id)
        })
    }

    /// Settles `id` when the session has ended; `end` then says how.
    #[napi(catch_unwind)]
    pub fn wait_closed(&self, env: &Env, id: u32) -> Option<ReadyEvent> {
        let (session, streams) = (self.session.clone(), self.streams.clone());
        self.hub.now_or_begin(env, id, async move {
            session.closed().await;
            // The JS session starts this wait when it is made (lib/session.js), so this is where
            // a session's end lets go of its streams.
            streams.release();
            ready(id)
        })
    }

    /// How the session ended; null while it is open.
    #[napi(catch_unwind)]
    pub fn end(&self) -> Option<SessionEndInfo> {
        self.session.end().map(end_info)
    }

    /// Queued datagrams without waiting (empty when none); `readDatagrams` waits for some.
    #[napi(catch_unwind)]
    pub fn take_datagrams(&self, max: u32) -> Vec<Buffer> {
        self.session.take_datagrams(max as usize).into_iter().map(|b| Buffer::from(b.to_vec())).collect()
    }

    #[napi]
    pub async fn open_bidi(&self) -> napi::Result<NativeStream> {
        let (send, recv) = self.session.open_bi().await.map_err(to_js)?;
        Ok(self.stream(Some(send), Some(recv)))
    }

    #[napi]
    pub async fn open_uni(&self) -> napi::Result<NativeStream> {
        let send = self.session.open_uni().await.map_err(to_js)?;
        Ok(self.stream(Some(send), None))
    }

    #[napi(catch_unwind)]
    pub fn send_datagram(&self, payload: Uint8Array) -> napi::Result<()> {
        self.session.send_datagram(&payload).map_err(to_js)
    }

    /// Sends a batch in one crossing: each send from the JS thread wakes the connection's task
    /// on another thread, and in a batch only the first wake costs a syscall (8 us per
    /// datagram measured one at a time at 60,000/s, most of the JS thread's time). Stops at the
    /// first failure.
    #[napi(catch_unwind)]
    pub fn send_datagrams(&self, payloads: Vec<Uint8Array>) -> napi::Result<()> {
        payloads.iter().try_for_each(|p| self.session.send_datagram(p)).map_err(to_js)
    }

    /// Largest datagram payload now; 0 when the peer takes none.
    #[napi(catch_unwind)]
    pub fn max_datagram_size(&self) -> u32 {
        self.session.max_datagram_size().unwrap_or(0) as u32
    }

    /// Keying material from the TLS exporter for this session (draft-ietf-webtrans-http3 §4.8):
    /// `label` and `context` at most 255 bytes, `length` 1 to 4096.
    #[napi(catch_unwind)]
    pub fn export_keying_material(
        &self,
        label: Uint8Array,
        context: Uint8Array,
        length: u32,
    ) -> napi::Result<Uint8Array> {
        let material = self.session.export_keying_material(&label, &context, length as usize).map_err(to_js)?;
        Ok(Uint8Array::from(material))
    }

    #[napi(catch_unwind)]
    pub fn close(&self, code: u32, reason: String) {
        self.session.close(code, &reason);
    }

    /// Sends DRAIN_WEBTRANSPORT_SESSION once; nothing after the session ended.
    #[napi(catch_unwind)]
    pub fn drain(&self) {
        self.session.drain();
    }

    #[napi]
    pub async fn draining(&self) {
        self.session.draining().await;
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> NativeStats {
        let stats = self.session.connection_stats();
        let (sent, received, dropped) = self.session.datagram_counters();
        NativeStats {
            rtt: stats.path.rtt.as_secs_f64() * 1000.0,
            min_rtt: stats.path.min_rtt.as_secs_f64() * 1000.0,
            congestion_window: stats.path.cwnd as f64,
            bytes_sent: stats.udp_tx.bytes as f64,
            bytes_received: stats.udp_rx.bytes as f64,
            packets_sent: stats.path.sent_packets as f64,
            packets_received: stats.udp_rx.datagrams as f64,
            packets_lost: stats.path.lost_packets as f64,
            datagrams_sent: sent as f64,
            datagrams_received: received as f64,
            datagrams_dropped_incoming: dropped as f64,
            flow_control: self.session.flow_stats().map(|f| NativeFlowStats {
                local_max_data: f.local_max_data as f64,
                data_received: f.data_received as f64,
                remote_max_data: f.remote_max_data as f64,
                data_sent: f.data_sent as f64,
                local_max_streams_bidi: f.local_max_streams_bidi as f64,
                local_max_streams_uni: f.local_max_streams_uni as f64,
                remote_max_streams_bidi: f.remote_max_streams_bidi as f64,
                remote_max_streams_uni: f.remote_max_streams_uni as f64,
                streams_opened_by_peer_bidi: f.streams_opened_by_peer_bidi as f64,
                streams_opened_by_peer_uni: f.streams_opened_by_peer_uni as f64,
                streams_opened_bidi: f.streams_opened_bidi as f64,
                streams_opened_uni: f.streams_opened_uni as f64,
                blocked: f.blocked as f64,
                credit_capsules_sent: f.credit_capsules_sent as f64,
            }),
        }
    }
}

impl Drop for NativeSession {
    fn drop(&mut self) {
        super::live::dropped(&super::live::SESSIONS);
    }
}
