//! Live counts of the native objects handed to JS (requests, sessions, streams). JS owns them
//! and their finalizers free them after GC; with sessions ended and JS holding none, the counts
//! return to zero, which the GC test checks.

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) static REQUESTS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SESSIONS: AtomicU64 = AtomicU64::new(0);
pub(crate) static STREAMS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn created(count: &AtomicU64) {
    count.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn dropped(count: &AtomicU64) {
    count.fetch_sub(1, Ordering::Relaxed);
}

pub(crate) fn get(count: &AtomicU64) -> f64 {
    count.load(Ordering::Relaxed) as f64
}
