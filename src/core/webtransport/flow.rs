//! WebTransport flow control (draft-ietf-webtrans-http3-16 §5): per-session limits on the streams
//! a peer opens and the stream bytes it sends, carried by SETTINGS and by capsules on the CONNECT
//! stream.
//!
//! [`FlowState`] is the whole state machine with no I/O, so every rule is unit-tested here;
//! [`FlowControl`] shares it between a session's streams (which count and wait) and the session
//! driver (which sends the capsules it owes and ends the session on a violation).

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::wire::{capsule, setting};
use crate::core::config::FlowLimits;
use crate::core::h3::proto::{frame, put_frame, PeerSettings};
use crate::core::h3::varint;

/// Largest stream count a limit may carry: stream ids end at 2^62 (draft §5.6.2).
pub const MAX_STREAMS_LIMIT: u64 = 1 << 60;
/// Largest value a QUIC varint carries.
const MAX_VARINT: u64 = (1 << 62) - 1;

/// Which kind of stream a stream limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Bidi,
    Uni,
}

impl StreamKind {
    fn name(self) -> &'static str {
        match self {
            Self::Bidi => "bidirectional",
            Self::Uni => "unidirectional",
        }
    }
}

/// Whether SETTINGS declare the intent to use flow control: any non-zero initial limit (draft-16),
/// or SETTINGS_WT_MAX_SESSIONS above 1 (draft-14, which Safari 26.4+ follows).
pub fn declares_flow_control(settings: &PeerSettings) -> bool {
    settings.get(setting::WT_MAX_SESSIONS).is_some_and(|n| n > 1)
        || [setting::WT_INITIAL_MAX_DATA, setting::WT_INITIAL_MAX_STREAMS_BIDI, setting::WT_INITIAL_MAX_STREAMS_UNI]
            .iter()
            .any(|&id| settings.get(id).is_some_and(|n| n > 0))
}

/// The limits a peer's SETTINGS give every session at its start; each defaults to 0.
pub fn initial_limits(settings: &PeerSettings) -> FlowLimits {
    FlowLimits {
        max_data: settings.get(setting::WT_INITIAL_MAX_DATA).unwrap_or(0),
        max_streams_bidi: settings.get(setting::WT_INITIAL_MAX_STREAMS_BIDI).unwrap_or(0).min(MAX_STREAMS_LIMIT),
        max_streams_uni: settings.get(setting::WT_INITIAL_MAX_STREAMS_UNI).unwrap_or(0).min(MAX_STREAMS_LIMIT),
    }
}

/// A peer broke a flow-control rule; the session ends with WT_FLOW_CONTROL_ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    TooManyStreams {
        kind: StreamKind,
        limit: u64,
    },
    TooMuchData {
        limit: u64,
    },
    /// A WT_MAX_DATA or WT_MAX_STREAMS that does not raise the previous limit.
    LimitNotIncreased,
    /// A stream count above 2^60.
    StreamLimitTooLarge,
    /// WT_MAX_STREAM_DATA or WT_STREAM_DATA_BLOCKED, which HTTP/3 forbids (draft §5.4).
    ForbiddenCapsule(u64),
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooManyStreams { kind, limit } => {
                write!(f, "the client opened more {} streams than its limit of {limit}", kind.name())
            }
            Self::TooMuchData { limit } => {
                write!(f, "the client sent more stream data than its limit of {limit} bytes")
            }
            Self::LimitNotIncreased => f.write_str("the client sent a flow-control limit that does not increase"),
            Self::StreamLimitTooLarge => f.write_str("the client sent a stream limit above 2^60"),
            Self::ForbiddenCapsule(kind) => write!(f, "the client sent capsule {kind:#x}, which HTTP/3 forbids"),
        }
    }
}

/// How much of each limit is used, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Stream bytes the client may send in all (our current WT_MAX_DATA).
    pub local_max_data: u64,
    /// Stream bytes of the client's the application has read.
    pub data_received: u64,
    /// Stream bytes we may send in all (the client's WT_MAX_DATA).
    pub remote_max_data: u64,
    pub data_sent: u64,
    pub local_max_streams_bidi: u64,
    pub local_max_streams_uni: u64,
    pub streams_opened_by_peer_bidi: u64,
    pub streams_opened_by_peer_uni: u64,
    pub remote_max_streams_bidi: u64,
    pub remote_max_streams_uni: u64,
    pub streams_opened_bidi: u64,
    pub streams_opened_uni: u64,
    /// Times a write or a stream opening had to wait for the client's credit.
    pub blocked: u64,
    /// WT_MAX_DATA and WT_MAX_STREAMS capsules sent.
    pub credit_capsules_sent: u64,
}

/// One kind's stream accounting, both directions.
#[derive(Debug, Clone, Copy, Default)]
struct Streams {
    /// The credit we replenish to: at most this many of the client's streams not yet done.
    window: u64,
    /// Cumulative limit we gave the client: how many streams of this kind it may ever open.
    recv_limit: u64,
    recv_opened: u64,
    /// Client streams the application is done with; new credit follows these.
    recv_done: u64,
    /// The client's cumulative limit on us.
    send_limit: u64,
    send_opened: u64,
    owe_max_streams: bool,
    /// A WT_STREAMS_BLOCKED to send (the limit it names), and the last one sent: one per limit.
    owe_blocked: Option<u64>,
    blocked_sent: Option<u64>,
}

/// The flow-control state of one session, both directions.
#[derive(Debug)]
pub struct FlowState {
    data_window: u64,
    // What the client may send: our limit.
    recv_max_data: u64,
    recv_consumed: u64,
    // What we may send: the client's limit.
    send_max_data: u64,
    sent: u64,
    bidi: Streams,
    uni: Streams,
    owe_max_data: bool,
    /// A WT_DATA_BLOCKED to send (the limit it names), and the last one sent: one per limit.
    owe_data_blocked: Option<u64>,
    data_blocked_sent: Option<u64>,
    violation: Option<Violation>,
    blocked: u64,
    credit_capsules_sent: u64,
}

impl FlowState {
    /// `window` is what we give (and replenish to); `peer` is what the client's SETTINGS gave us.
    pub fn new(window: FlowLimits, peer: FlowLimits) -> Self {
        let streams =
            |window: u64, peer: u64| Streams { window, recv_limit: window, send_limit: peer, ..Streams::default() };
        Self {
            data_window: window.max_data,
            recv_max_data: window.max_data,
            recv_consumed: 0,
            send_max_data: peer.max_data,
            sent: 0,
            bidi: streams(window.max_streams_bidi, peer.max_streams_bidi),
            uni: streams(window.max_streams_uni, peer.max_streams_uni),
            owe_max_data: false,
            owe_data_blocked: None,
            data_blocked_sent: None,
            violation: None,
            blocked: 0,
            credit_capsules_sent: 0,
        }
    }

    fn streams(&mut self, kind: StreamKind) -> &mut Streams {
        match kind {
            StreamKind::Bidi => &mut self.bidi,
            StreamKind::Uni => &mut self.uni,
        }
    }

    fn violate(&mut self, violation: Violation) -> Result<(), Violation> {
        self.violation.get_or_insert(violation.clone());
        Err(violation)
    }

    /// The client opened a stream of the session.
    pub fn peer_opened(&mut self, kind: StreamKind) -> Result<(), Violation> {
        let streams = self.streams(kind);
        if streams.recv_opened >= streams.recv_limit {
            let limit = streams.recv_limit;
            return self.violate(Violation::TooManyStreams { kind, limit });
        }
        streams.recv_opened += 1;
        Ok(())
    }

    /// The application is done with a client stream; credit for another follows, in batches of
    /// half the window so a capsule does not go out per stream.
    pub fn peer_stream_done(&mut self, kind: StreamKind) {
        let streams = self.streams(kind);
        streams.recv_done += 1;
        let target = (streams.recv_done + streams.window).min(MAX_STREAMS_LIMIT);
        if target > streams.recv_limit && target - streams.recv_limit >= (streams.window / 2).max(1) {
            streams.recv_limit = target;
            streams.owe_max_streams = true;
        }
    }

    /// The application read `n` bytes of the client's stream data. Reads come in order, so what
    /// was read is what arrived: more than the limit is the client's violation.
    pub fn consumed(&mut self, n: u64) -> Result<(), Violation> {
        self.recv_consumed = self.recv_consumed.saturating_add(n);
        if self.recv_consumed > self.recv_max_data {
            let limit = self.recv_max_data;
            return self.violate(Violation::TooMuchData { limit });
        }
        if self.recv_max_data - self.recv_consumed <= self.data_window / 2 {
            self.recv_max_data = self.recv_consumed.saturating_add(self.data_window).min(MAX_VARINT);
            self.owe_max_data = true;
        }
        Ok(())
    }

    /// A WT_MAX_DATA from the client.
    pub fn peer_max_data(&mut self, limit: u64) -> Result<(), Violation> {
        if limit <= self.send_max_data {
            return self.violate(Violation::LimitNotIncreased);
        }
        self.send_max_data = limit;
        // A blocked signal not sent yet is stale now: the client already gave more.
        self.owe_data_blocked = None;
        Ok(())
    }

    /// A WT_MAX_STREAMS from the client.
    pub fn peer_max_streams(&mut self, kind: StreamKind, limit: u64) -> Result<(), Violation> {
        if limit > MAX_STREAMS_LIMIT {
            return self.violate(Violation::StreamLimitTooLarge);
        }
        let streams = self.streams(kind);
        if limit <= streams.send_limit {
            return self.violate(Violation::LimitNotIncreased);
        }
        streams.send_limit = limit;
        streams.owe_blocked = None;
        Ok(())
    }

    /// A WT_STREAMS_BLOCKED from the client names a limit too; above 2^60 it is a violation.
    pub fn peer_streams_blocked(&mut self, limit: u64) -> Result<(), Violation> {
        if limit > MAX_STREAMS_LIMIT {
            return self.violate(Violation::StreamLimitTooLarge);
        }
        Ok(())
    }

    /// A capsule HTTP/3 forbids (WT_MAX_STREAM_DATA, WT_STREAM_DATA_BLOCKED).
    pub fn forbidden_capsule(&mut self, kind: u64) -> Result<(), Violation> {
        self.violate(Violation::ForbiddenCapsule(kind))
    }

    /// Takes up to `want` bytes of the client's credit for sending; 0 when there is none, which
    /// owes the client a WT_DATA_BLOCKED (once per limit).
    pub fn reserve(&mut self, want: u64) -> u64 {
        let granted = want.min(self.send_max_data.saturating_sub(self.sent));
        self.sent += granted;
        if granted == 0 && want > 0 {
            self.blocked += 1;
            if self.data_blocked_sent != Some(self.send_max_data) {
                self.owe_data_blocked = Some(self.send_max_data);
            }
        }
        granted
    }

    /// Gives back reserved credit that was not written.
    pub fn refund(&mut self, n: u64) {
        self.sent = self.sent.saturating_sub(n);
    }

    /// Counts a stream we open against the client's limit; `false` (and a WT_STREAMS_BLOCKED
    /// owed, once per limit) when the limit is reached.
    pub fn try_open(&mut self, kind: StreamKind) -> bool {
        let streams = self.streams(kind);
        if streams.send_opened < streams.send_limit {
            streams.send_opened += 1;
            return true;
        }
        if streams.blocked_sent != Some(streams.send_limit) {
            streams.owe_blocked = Some(streams.send_limit);
        }
        self.blocked += 1;
        false
    }

    /// Whether capsules are owed or a violation waits to be acted on.
    pub fn has_signal(&self) -> bool {
        self.owe_max_data
            || self.owe_data_blocked.is_some()
            || [&self.bidi, &self.uni].iter().any(|s| s.owe_max_streams || s.owe_blocked.is_some())
            || self.violation.is_some()
    }

    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Every capsule owed, in one DATA frame for the CONNECT stream (empty when none).
    pub fn take_capsules(&mut self) -> Bytes {
        let mut capsules = BytesMut::new();
        if std::mem::take(&mut self.owe_max_data) {
            put_capsule(capsule::WT_MAX_DATA, self.recv_max_data, &mut capsules);
            self.credit_capsules_sent += 1;
        }
        for (kind, streams) in
            [(capsule::WT_MAX_STREAMS_BIDI, &mut self.bidi), (capsule::WT_MAX_STREAMS_UNI, &mut self.uni)]
        {
            if std::mem::take(&mut streams.owe_max_streams) {
                put_capsule(kind, streams.recv_limit, &mut capsules);
                self.credit_capsules_sent += 1;
            }
        }
        if let Some(limit) = self.owe_data_blocked.take() {
            put_capsule(capsule::WT_DATA_BLOCKED, limit, &mut capsules);
            self.data_blocked_sent = Some(limit);
        }
        for (kind, streams) in
            [(capsule::WT_STREAMS_BLOCKED_BIDI, &mut self.bidi), (capsule::WT_STREAMS_BLOCKED_UNI, &mut self.uni)]
        {
            if let Some(limit) = streams.owe_blocked.take() {
                put_capsule(kind, limit, &mut capsules);
                streams.blocked_sent = Some(limit);
            }
        }
        if capsules.is_empty() {
            return Bytes::new();
        }
        let mut out = BytesMut::with_capacity(capsules.len() + 8);
        put_frame(frame::DATA, &capsules, &mut out);
        out.freeze()
    }

    pub fn stats(&self) -> FlowStats {
        FlowStats {
            local_max_data: self.recv_max_data,
            data_received: self.recv_consumed,
            remote_max_data: self.send_max_data,
            data_sent: self.sent,
            local_max_streams_bidi: self.bidi.recv_limit,
            local_max_streams_uni: self.uni.recv_limit,
            streams_opened_by_peer_bidi: self.bidi.recv_opened,
            streams_opened_by_peer_uni: self.uni.recv_opened,
            remote_max_streams_bidi: self.bidi.send_limit,
            remote_max_streams_uni: self.uni.send_limit,
            streams_opened_bidi: self.bidi.send_opened,
            streams_opened_uni: self.uni.send_opened,
            blocked: self.blocked,
            credit_capsules_sent: self.credit_capsules_sent,
        }
    }
}

/// A capsule whose body is one varint: every flow-control capsule.
fn put_capsule(kind: u64, value: u64, out: &mut BytesMut) {
    varint::encode(kind, out);
    varint::encode(varint::size(value) as u64, out);
    varint::encode(value, out);
}

/// A session's [`FlowState`], shared by its streams and its driver.
#[derive(Debug)]
pub struct FlowControl {
    state: Mutex<FlowState>,
    /// Wakes the session driver: capsules are owed or a violation happened.
    signal: Notify,
    /// Wakes writers and stream openers waiting for the client's credit.
    credit: Notify,
}

impl FlowControl {
    pub fn new(window: FlowLimits, peer: FlowLimits) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(FlowState::new(window, peer)), signal: Notify::new(), credit: Notify::new() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FlowState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state and wakes the driver if it now owes something.
    fn update<R>(&self, f: impl FnOnce(&mut FlowState) -> R) -> R {
        let mut state = self.state();
        let result = f(&mut state);
        let signal = state.has_signal();
        drop(state);
        if signal {
            self.signal.notify_one();
        }
        result
    }

    /// Counts a client stream routed to the session; the guard gives its credit back when the
    /// application is done with it (dropped).
    pub fn peer_opened(self: &Arc<Self>, kind: StreamKind) -> Result<StreamCredit, Violation> {
        self.update(|s| s.peer_opened(kind))?;
        Ok(StreamCredit { flow: self.clone(), kind })
    }

    /// Counts `n` bytes the application read.
    pub fn consumed(&self, n: u64) -> Result<(), Violation> {
        self.update(|s| s.consumed(n))
    }

    /// Applies a flow-control capsule from the client; other capsule types are ignored.
    pub fn apply_capsule(&self, kind: u64, value: u64) -> Result<(), Violation> {
        let applied = self.update(|s| match kind {
            capsule::WT_MAX_DATA => s.peer_max_data(value),
            capsule::WT_MAX_STREAMS_BIDI => s.peer_max_streams(StreamKind::Bidi, value),
            capsule::WT_MAX_STREAMS_UNI => s.peer_max_streams(StreamKind::Uni, value),
            capsule::WT_STREAMS_BLOCKED_BIDI | capsule::WT_STREAMS_BLOCKED_UNI => s.peer_streams_blocked(value),
            capsule::WT_MAX_STREAM_DATA | capsule::WT_STREAM_DATA_BLOCKED => s.forbidden_capsule(kind),
            _ => Ok(()),
        });
        if applied.is_ok() {
            self.credit.notify_waiters();
        }
        applied
    }

    /// Waits for the client's credit and takes up to `want` bytes of it (at least 1); `None` if
    /// `gone` is cancelled first.
    pub async fn reserve(&self, want: u64, gone: &CancellationToken) -> Option<u64> {
        loop {
            let notified = self.credit.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let granted = self.update(|s| s.reserve(want));
            if granted > 0 || want == 0 {
                return Some(granted);
            }
            tokio::select! {
                () = notified => {}
                () = gone.cancelled() => return None,
            }
        }
    }

    /// Takes up to `want` bytes of credit without waiting (0 when there is none).
    pub fn reserve_now(&self, want: u64) -> u64 {
        self.update(|s| s.reserve(want))
    }

    pub fn refund(&self, n: u64) {
        if n > 0 {
            self.state().refund(n);
            self.credit.notify_waiters();
        }
    }

    /// Waits until the client's limit lets us open a stream of `kind`, and counts it; `false`
    /// if `gone` is cancelled first.
    pub async fn open(&self, kind: StreamKind, gone: &CancellationToken) -> bool {
        loop {
            let notified = self.credit.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.update(|s| s.try_open(kind)) {
                return true;
            }
            tokio::select! {
                () = notified => {}
                () = gone.cancelled() => return false,
            }
        }
    }

    /// Resolves when the driver has capsules to send or a violation to act on.
    pub async fn signalled(&self) {
        self.signal.notified().await;
    }

    /// What the driver must do now: capsules to write, and the violation that ends the session.
    pub fn take_signal(&self) -> (Bytes, Option<Violation>) {
        let mut state = self.state();
        (state.take_capsules(), state.violation().cloned())
    }

    pub fn stats(&self) -> FlowStats {
        self.state().stats()
    }
}

/// A client stream's place in the session's stream limit, given back when dropped.
#[derive(Debug)]
pub struct StreamCredit {
    flow: Arc<FlowControl>,
    kind: StreamKind,
}

impl Drop for StreamCredit {
    fn drop(&mut self) {
        let kind = self.kind;
        self.flow.update(|s| s.peer_stream_done(kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::h3::proto::setting::H3_DATAGRAM;
    use crate::core::webtransport::wire::{take_capsule, Capsule};

    const WINDOW: FlowLimits = FlowLimits { max_data: 1000, max_streams_bidi: 4, max_streams_uni: 2 };
    const NONE: FlowLimits = FlowLimits { max_data: 0, max_streams_bidi: 0, max_streams_uni: 0 };

    /// The capsules in a frame produced by `take_capsules`.
    fn capsules(frame: Bytes) -> Vec<Capsule> {
        if frame.is_empty() {
            return Vec::new();
        }
        let mut buf = BytesMut::from(&frame[..]);
        assert_eq!(varint::decode(&mut buf), Some(frame::DATA));
        let len = varint::decode(&mut buf).unwrap() as usize;
        assert_eq!(len, buf.len());
        let mut out = Vec::new();
        while let Some(c) = take_capsule(&mut buf, 4096).unwrap() {
            out.push(c);
        }
        assert!(buf.is_empty());
        out
    }

    fn settings(values: &[(u64, u64)]) -> PeerSettings {
        let mut payload = BytesMut::new();
        for &(id, v) in values {
            varint::encode(id, &mut payload);
            varint::encode(v, &mut payload);
        }
        PeerSettings::parse(&payload).unwrap()
    }

    #[test]
    fn intent_follows_draft_14_and_16() {
        assert!(!declares_flow_control(&settings(&[(H3_DATAGRAM, 1), (setting::WT_ENABLED, 1)])));
        assert!(!declares_flow_control(&settings(&[(setting::WT_MAX_SESSIONS, 1)])));
        assert!(declares_flow_control(&settings(&[(setting::WT_MAX_SESSIONS, 2)])));
        assert!(declares_flow_control(&settings(&[(setting::WT_INITIAL_MAX_STREAMS_UNI, 1)])));
        assert!(!declares_flow_control(&settings(&[(setting::WT_INITIAL_MAX_DATA, 0)])));
        let limits = initial_limits(&settings(&[(setting::WT_INITIAL_MAX_DATA, 7)]));
        assert_eq!(limits, FlowLimits { max_data: 7, max_streams_bidi: 0, max_streams_uni: 0 });
    }

    #[test]
    fn credit_given_then_consumed_then_replenished_by_capsule() {
        let mut s = FlowState::new(WINDOW, NONE);
        // The initial limits travel in SETTINGS: nothing is owed at first.
        assert!(!s.has_signal());
        assert!(s.take_capsules().is_empty());
        s.consumed(400).unwrap();
        assert!(!s.has_signal(), "600 left of 1000 is more than half the window");
        s.consumed(100).unwrap();
        assert!(s.has_signal());
        assert_eq!(capsules(s.take_capsules()), vec![Capsule::Flow { kind: capsule::WT_MAX_DATA, value: 1500 }]);
        assert!(!s.has_signal(), "a capsule is sent once");
        s.consumed(1000).unwrap();
        assert_eq!(capsules(s.take_capsules()), vec![Capsule::Flow { kind: capsule::WT_MAX_DATA, value: 2500 }]);
        assert_eq!(s.stats().data_received, 1500);
    }

    #[test]
    fn data_beyond_the_limit_is_a_violation() {
        let mut s = FlowState::new(WINDOW, NONE);
        s.consumed(499).unwrap();
        assert_eq!(s.consumed(502), Err(Violation::TooMuchData { limit: 1000 }));
        assert!(s.has_signal());
        assert_eq!(s.violation(), Some(&Violation::TooMuchData { limit: 1000 }));
    }

    #[test]
    fn streams_beyond_the_limit_are_a_violation_and_done_streams_give_credit() {
        let mut s = FlowState::new(WINDOW, NONE);
        for _ in 0..4 {
            s.peer_opened(StreamKind::Bidi).unwrap();
        }
        assert_eq!(
            s.peer_opened(StreamKind::Bidi),
            Err(Violation::TooManyStreams { kind: StreamKind::Bidi, limit: 4 })
        );

        let mut s = FlowState::new(WINDOW, NONE);
        for _ in 0..4 {
            s.peer_opened(StreamKind::Bidi).unwrap();
        }
        s.peer_stream_done(StreamKind::Bidi);
        assert!(!s.has_signal(), "credit is batched by half the window");
        s.peer_stream_done(StreamKind::Bidi);
        assert_eq!(capsules(s.take_capsules()), vec![Capsule::Flow { kind: capsule::WT_MAX_STREAMS_BIDI, value: 6 }]);
        s.peer_opened(StreamKind::Bidi).unwrap();
        s.peer_opened(StreamKind::Bidi).unwrap();
        assert!(s.peer_opened(StreamKind::Bidi).is_err());
        // A window of 1 still replenishes per stream.
        let mut s = FlowState::new(FlowLimits { max_data: 10, max_streams_bidi: 1, max_streams_uni: 1 }, NONE);
        s.peer_opened(StreamKind::Uni).unwrap();
        s.peer_stream_done(StreamKind::Uni);
        assert_eq!(capsules(s.take_capsules()), vec![Capsule::Flow { kind: capsule::WT_MAX_STREAMS_UNI, value: 2 }]);
    }

    #[test]
    fn sends_wait_for_the_clients_credit_and_say_they_are_blocked_once() {
        let mut s = FlowState::new(WINDOW, FlowLimits { max_data: 10, max_streams_bidi: 1, max_streams_uni: 0 });
        assert_eq!(s.reserve(8), 8);
        assert_eq!(s.reserve(8), 2);
        assert!(!s.has_signal());
        assert_eq!(s.reserve(8), 0);
        assert_eq!(s.reserve(8), 0);
        assert_eq!(capsules(s.take_capsules()), vec![Capsule::Flow { kind: capsule::WT_DATA_BLOCKED, value: 10 }]);
        assert_eq!(s.reserve(1), 0);
        assert!(s.take_capsules().is_empty(), "blocked at the same limit is said once");
        s.peer_max_data(20).unwrap();
        assert_eq!(s.reserve(30), 10);
        s.refund(4);
        assert_eq!(s.stats().data_sent, 16);

        assert!(s.try_open(StreamKind::Bidi));
        assert!(!s.try_open(StreamKind::Bidi));
        assert!(!s.try_open(StreamKind::Uni));
        assert_eq!(
            capsules(s.take_capsules()),
            vec![
                Capsule::Flow { kind: capsule::WT_STREAMS_BLOCKED_BIDI, value: 1 },
                Capsule::Flow { kind: capsule::WT_STREAMS_BLOCKED_UNI, value: 0 },
            ]
        );
        s.peer_max_streams(StreamKind::Bidi, 2).unwrap();
        assert!(s.try_open(StreamKind::Bidi));
    }

    #[test]
    fn a_blocked_signal_overtaken_by_the_clients_credit_is_not_sent() {
        let mut s = FlowState::new(WINDOW, NONE);
        assert_eq!(s.reserve(5), 0);
        assert!(!s.try_open(StreamKind::Uni));
        s.peer_max_data(10).unwrap();
        s.peer_max_streams(StreamKind::Uni, 1).unwrap();
        assert!(s.take_capsules().is_empty());
    }

    #[test]
    fn limits_that_do_not_increase_or_exceed_2_60_are_violations() {
        let mut s = FlowState::new(WINDOW, FlowLimits { max_data: 10, max_streams_bidi: 3, max_streams_uni: 0 });
        assert_eq!(s.peer_max_data(10), Err(Violation::LimitNotIncreased));
        let mut s = FlowState::new(WINDOW, FlowLimits { max_data: 10, max_streams_bidi: 3, max_streams_uni: 0 });
        assert_eq!(s.peer_max_streams(StreamKind::Bidi, 2), Err(Violation::LimitNotIncreased));
        let mut s = FlowState::new(WINDOW, NONE);
        assert_eq!(s.peer_max_streams(StreamKind::Uni, MAX_STREAMS_LIMIT + 1), Err(Violation::StreamLimitTooLarge));
        let mut s = FlowState::new(WINDOW, NONE);
        assert_eq!(s.peer_streams_blocked(MAX_STREAMS_LIMIT + 1), Err(Violation::StreamLimitTooLarge));
        let mut s = FlowState::new(WINDOW, NONE);
        assert!(s.forbidden_capsule(capsule::WT_MAX_STREAM_DATA).is_err());
    }

    #[tokio::test]
    async fn a_blocked_writer_wakes_when_the_clients_capsule_arrives() {
        let flow = FlowControl::new(WINDOW, FlowLimits { max_data: 4, max_streams_bidi: 0, max_streams_uni: 0 });
        let gone = CancellationToken::new();
        assert_eq!(flow.reserve(10, &gone).await, Some(4));
        let waiting = {
            let flow = flow.clone();
            let gone = gone.clone();
            tokio::spawn(async move { flow.reserve(10, &gone).await })
        };
        let opening = {
            let flow = flow.clone();
            let gone = gone.clone();
            tokio::spawn(async move { flow.open(StreamKind::Uni, &gone).await })
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), flow.signalled()).await.unwrap();
        let (frame, violation) = flow.take_signal();
        assert!(violation.is_none());
        assert!(capsules(frame).contains(&Capsule::Flow { kind: capsule::WT_DATA_BLOCKED, value: 4 }));
        assert!(!waiting.is_finished() && !opening.is_finished());
        flow.apply_capsule(capsule::WT_MAX_DATA, 9).unwrap();
        flow.apply_capsule(capsule::WT_MAX_STREAMS_UNI, 1).unwrap();
        assert_eq!(waiting.await.unwrap(), Some(5));
        assert!(opening.await.unwrap());
        // An ended session releases whoever still waits.
        let waiting = {
            let flow = flow.clone();
            let gone = gone.clone();
            tokio::spawn(async move { flow.reserve(1, &gone).await })
        };
        gone.cancel();
        assert_eq!(waiting.await.unwrap(), None);
    }

    #[test]
    fn a_dropped_stream_credit_replenishes() {
        let flow = FlowControl::new(FlowLimits { max_data: 10, max_streams_bidi: 2, max_streams_uni: 2 }, NONE);
        let a = flow.peer_opened(StreamKind::Bidi).unwrap();
        let _b = flow.peer_opened(StreamKind::Bidi).unwrap();
        assert!(flow.peer_opened(StreamKind::Bidi).is_err());
        drop(a);
        let (frame, violation) = flow.take_signal();
        assert_eq!(capsules(frame), vec![Capsule::Flow { kind: capsule::WT_MAX_STREAMS_BIDI, value: 3 }]);
        assert!(violation.is_some(), "the earlier excess stays recorded for the driver");
    }
}
