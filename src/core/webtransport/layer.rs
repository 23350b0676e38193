//! The WebTransport layer of a server: its configuration, the application's handler, and the
//! registry of live sessions that a server close drains.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::incoming::RequestHandler;
use super::session::SessionShared;
use crate::core::config::ServerConfig;
use crate::core::counters::Counters;

/// A server's WebTransport state, shared by its connections.
pub(crate) struct WebTransport {
    pub(crate) config: ServerConfig,
    pub(crate) handler: Arc<dyn RequestHandler>,
    /// Cancelled when the server starts closing: sessions are drained, new requests get 503.
    pub(crate) closing: CancellationToken,
    pub(crate) counters: Arc<Counters>,
    pub(crate) sessions: Mutex<HashMap<u64, Arc<SessionShared>>>,
    next_session_key: AtomicU64,
}

/// Unregisters a session when dropped, also while a panicking task unwinds.
pub(crate) struct Registration {
    wt: Arc<WebTransport>,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.wt.sessions().remove(&self.key);
        self.wt.counters.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WebTransport {
    pub(crate) fn new(
        config: ServerConfig,
        handler: Arc<dyn RequestHandler>,
        closing: CancellationToken,
        counters: Arc<Counters>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            handler,
            closing,
            counters,
            sessions: Mutex::new(HashMap::new()),
            next_session_key: AtomicU64::new(0),
        })
    }

    pub(crate) fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionShared>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a live session until the returned guard drops, or `None` when the session
    /// limit is reached.
    pub(crate) fn register(self: &Arc<Self>, session: Arc<SessionShared>) -> Option<Registration> {
        let mut sessions = self.sessions();
        if sessions.len() >= self.config.max_sessions as usize {
            return None;
        }
        let key = self.next_session_key.fetch_add(1, Ordering::Relaxed);
        sessions.insert(key, session);
        self.counters.sessions.fetch_add(1, Ordering::Relaxed);
        Some(Registration { wt: self.clone(), key })
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions().len()
    }
}
