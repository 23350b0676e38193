//! One persistent crossing per server for everything JS waits on (a session's end, its next
//! streams or datagrams, a native pipe's end). An awaited `#[napi] async fn` costs 5-10 us and
//! creates a threadsafe function of its own each time; a session kept four of them pending. Here
//! a wait is a tokio task that, when done, queues the wait's id; the first
//! id queued since JS last drained schedules one call of the server's threadsafe function, which
//! drains every id queued by then. JS keeps the id's resolver and fetches the result with a
//! synchronous call (0.1 us).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::ToNapiValue;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, Status};
use napi_derive::napi;

/// A finished wait, as JS receives it.
#[napi(object)]
pub struct ReadyEvent {
    pub id: u32,
    /// For a pipe that failed: `"source"` or `"destination"` (see `NativeStream.pipeTo`).
    pub side: Option<String>,
    /// For a pipe that failed: the tagged error message.
    pub message: Option<String>,
}

/// What the threadsafe function carries: nothing but the hub, drained on the JS thread when the
/// call is made there, so one call delivers every event queued until then.
pub struct Drain(Arc<Hub>);

/// Weak: a hub never keeps Node alive by itself; `Hub::begin` refs it while waits are pending.
pub(crate) type ReadyCallback = ThreadsafeFunction<Drain, (), Drain, Status, false, true>;

pub struct Hub {
    /// Never released before the hub itself: JS may still wait on sessions ending after the
    /// server closed, and a weak function does not hold Node by itself.
    callback: ReadyCallback,
    queue: Mutex<Vec<ReadyEvent>>,
    /// A call is on its way to JS: later events join its drain instead of making another.
    scheduled: AtomicBool,
    /// Waits begun and not yet delivered. Touched on the JS thread only (begin, drain), which is
    /// also where ref/unref must happen.
    pending: Mutex<u64>,
}

impl Hub {
    pub(crate) fn new(callback: ReadyCallback) -> Arc<Self> {
        Arc::new(Self {
            callback,
            queue: Mutex::new(Vec::new()),
            scheduled: AtomicBool::new(false),
            pending: Mutex::new(0),
        })
    }

    /// Runs `wait` on the runtime; when it finishes (or panics, or is dropped) the event it
    /// produced, or a bare one, is delivered to JS under `id`. Keeps Node alive meanwhile, as the
    /// awaited call it replaces did. On the JS thread only.
    fn begin<F>(self: &Arc<Self>, env: &Env, id: u32, wait: F)
    where
        F: Future<Output = ReadyEvent> + Send + 'static,
    {
        self.adjust_pending(env, 1);
        let delivery = Delivery { hub: self.clone(), id, event: None };
        napi::bindgen_prelude::spawn(async move {
            let mut delivery = delivery;
            delivery.event = Some(wait.await);
        });
    }

    /// As [`Self::begin`], but polls `wait` once here first: when it is already done (the streams
    /// were queued, the data, FIN and room for a pipe were all there) its event is returned at
    /// once and nothing is spawned or delivered later. Saves a task, a wake of the runtime and a
    /// delivery in the common case.
    pub(crate) fn now_or_begin<F>(self: &Arc<Self>, env: &Env, id: u32, wait: F) -> Option<ReadyEvent>
    where
        F: Future<Output = ReadyEvent> + Send + 'static,
    {
        let mut wait = Box::pin(wait);
        // A noop waker loses nothing: every future polled here keeps the waker of its last poll,
        // and the task polls it again with a real one.
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(event) = wait.as_mut().poll(&mut context) {
            return Some(event);
        }
        self.begin(env, id, wait);
        None
    }

    fn push(self: &Arc<Self>, event: ReadyEvent) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(event);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.callback.call(Drain(self.clone()), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// On the JS thread: refs the threadsafe function while any wait is pending, so that Node
    /// stays alive for what JS awaits, and unrefs it when none is.
    fn adjust_pending(&self, env: &Env, delta: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let before = *pending;
        *pending = before.saturating_add_signed(delta);
        // SAFETY: on the JS thread with its env (begin and the drain run nowhere else); the
        // threadsafe function is alive while we hold it.
        unsafe {
            if before == 0 && *pending > 0 {
                sys::napi_ref_threadsafe_function(env.raw(), self.callback.raw());
            } else if before > 0 && *pending == 0 {
                sys::napi_unref_threadsafe_function(env.raw(), self.callback.raw());
            }
        }
    }
}

/// Delivers its wait's event when dropped, so a wait that panics or is cancelled still settles
/// in JS (with a bare event) instead of leaving a promise pending and Node held forever.
struct Delivery {
    hub: Arc<Hub>,
    id: u32,
    event: Option<ReadyEvent>,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let event = self.event.take().unwrap_or(ReadyEvent { id: self.id, side: None, message: None });
        self.hub.push(event);
    }
}

/// A bare event: the wait is over; JS fetches what it waited for synchronously.
pub(crate) fn ready(id: u32) -> ReadyEvent {
    ReadyEvent { id, side: None, message: None }
}

impl ToNapiValue for Drain {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        let hub = value.0;
        // Cleared before draining: an event queued after this point schedules its own call.
        hub.scheduled.store(false, Ordering::Release);
        let events = std::mem::take(&mut *hub.queue.lock().unwrap_or_else(|p| p.into_inner()));
        hub.adjust_pending(&Env::from_raw(env), -(events.len() as i64));
        unsafe { Vec::<ReadyEvent>::to_napi_value(env, events) }
    }
}
