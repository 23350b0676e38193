//! What a session handle keeps once its session has ended. An application may hold one long
//! after (the addon's JS wrapper lives until V8 collects it, which under load is hundreds of
//! sessions later), so it must not keep its QUIC connection: a `quinn::Connection` handle keeps
//! all of quinn's state for the connection, tens of kB even once it is closed.
//!
//! A binary of its own: it counts what the test's thread frees through a global allocator of its
//! own, so it is built with the core alone (`cargo test --no-default-features`, as `npm test`
//! runs it); the addon's build has mimalloc as the global allocator.
#![cfg(not(feature = "node"))]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use webtransport_napi::core::{IncomingRequest, RequestHandler, Session};

/// The system allocator, counting the bytes each thread frees.
struct CountingFrees;

thread_local! {
    static FREED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call goes to the system allocator unchanged; the count touches no allocation.
unsafe impl GlobalAlloc for CountingFrees {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // A thread being torn down has no count left: its frees are not the test's.
        let _ = FREED.try_with(|freed| freed.set(freed.get() + layout.size()));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingFrees = CountingFrees;

fn freed_here() -> usize {
    FREED.with(Cell::get)
}

/// Accepts every session, echoes on it, and keeps a handle to it.
struct KeepingEcho {
    kept: Arc<Mutex<Vec<Session>>>,
}

impl RequestHandler for KeepingEcho {
    fn on_request(&self, request: IncomingRequest) {
        let kept = self.kept.clone();
        tokio::spawn(async move {
            if let Some(session) = request.accept(Vec::new(), String::new()).await {
                kept.lock().unwrap().push(session.clone());
                serve_echo(session).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_sessions_handle_does_not_keep_its_connection() {
    const SESSIONS: usize = 20;
    let kept = Arc::new(Mutex::new(Vec::new()));
    let server = start_server(Arc::new(KeepingEcho { kept: kept.clone() }), |_| {});
    for i in 0..SESSIONS {
        let conn = server.connect().await;
        let _control = send_settings(&conn, SETTINGS_WT).await;
        let (headers, _send, recv, _) = request(&conn, &connect_headers(&server.authority(), "/echo", &[])).await;
        assert_eq!(status(&headers), "200");
        let message = format!("session {i}");
        assert_eq!(bidi_echo(&conn, u64::from(recv.id()), message.as_bytes()).await, message.as_bytes());
        conn.close(0x100u32.into(), b"");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (server.server.counters().connections > 0 || server.server.counters().sessions > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((server.server.counters().connections, server.server.counters().sessions), (0, 0), "sessions ended");
    let handles = std::mem::take(&mut *kept.lock().unwrap());
    assert_eq!(handles.len(), SESSIONS);
    assert!(handles.iter().all(|session| session.end().is_some()));

    let before = freed_here();
    drop(handles);
    let per_session = (freed_here() - before) / SESSIONS;
    // What is left to free is the session's own record (request, end, queues, final stats),
    // about 2.5 kB; with its connection's state it was about 21 kB.
    assert!(per_session < 8192, "dropping an ended session's last handle freed {per_session} bytes");
    server.server.close(0, "", Duration::from_secs(1)).await;
}
