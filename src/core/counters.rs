//! Live counts of a server, for tests and operators: after sessions end these return to zero.

use std::sync::atomic::AtomicU64;

pub use super::endpoint::WorkerCounts;

/// Live counts of one server.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub sessions: AtomicU64,
    /// Contained panics since start.
    pub faults: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub connections: u64,
    pub sessions: u64,
    pub faults: u64,
    /// Tasks this server is running (accept loop, per-connection and per-stream tasks).
    pub tasks: u64,
    /// WebTransport stream halves alive in the process (all servers).
    pub stream_halves: u64,
    /// Each worker's endpoint, in the order of its socket in the group.
    pub workers: Vec<WorkerCounts>,
}
