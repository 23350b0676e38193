//! One persistent crossing per server for everything JS waits on (a session's end, its next
//! streams or datagrams, a native pipe's end). An awaited `#[napi] async fn` costs 5-10 us and
//! creates a threadsafe function of its own each time; a session kept four of them pending. Here
//! a wait is polled once on the JS thread, then parked until woken and finished as a tokio task,
//! which queues the wait's id; the first id queued since JS last drained schedules one call of
//! the server's threadsafe function, which drains every id queued by then. JS keeps the id's
//! resolver and fetches the result with a synchronous call (0.1 us).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

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

/// Weak: a hub never keeps Node alive by itself; `Hub::now_or_begin` refs it while waits are
/// pending.
pub(crate) type ReadyCallback = ThreadsafeFunction<Drain, (), Drain, Status, false, true>;

pub struct Hub {
    /// Never released before the hub itself: JS may still wait on sessions ending after the
    /// server closed, and a weak function does not hold Node by itself.
    callback: ReadyCallback,
    queue: Mutex<Vec<ReadyEvent>>,
    /// A call is on its way to JS: later events join its drain instead of making another.
    scheduled: AtomicBool,
    /// Waits begun and not yet delivered. Touched on the JS thread only (now_or_begin, drain), which is
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

    /// Polls `wait` once here, on the JS thread. When it is already done (the streams were
    /// queued; the data, FIN and room for a pipe were all there) its event is returned at once
    /// and nothing is delivered later. Otherwise the wait is parked until whatever it waits on
    /// wakes it, and only then moved onto the runtime as a task, which finishes it and delivers
    /// its event (or a bare one, if it panics or is dropped) to JS under `id`. Spawning it from
    /// here instead would wake a parked runtime thread just to poll it into waiting again: a
    /// context switch on each side per wait. Keeps Node alive while the wait is pending, as the
    /// awaited call it replaces did. On the JS thread only.
    pub(crate) fn now_or_begin<F>(self: &Arc<Self>, env: &Env, id: u32, wait: F) -> Option<ReadyEvent>
    where
        F: Future<Output = ReadyEvent> + Send + 'static,
    {
        let parked = Arc::new(Parked { woken: AtomicBool::new(false), wait: Mutex::new(None) });
        let waker = Waker::from(parked.clone());
        let mut wait: Pin<Box<dyn Future<Output = ReadyEvent> + Send>> = Box::pin(wait);
        if let Poll::Ready(event) = wait.as_mut().poll(&mut Context::from_waker(&waker)) {
            return Some(event);
        }
        self.adjust_pending(env, 1);
        let delivery = Delivery { hub: self.clone(), id, event: None };
        *parked.lock() = Some((wait, delivery));
        // A wake that came between the poll and the line above found nothing to spawn.
        if parked.woken.load(Ordering::SeqCst) {
            parked.spawn();
        }
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
        // SAFETY: on the JS thread with its env (now_or_begin and the drain run nowhere else); the
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

type ParkedWait = (Pin<Box<dyn Future<Output = ReadyEvent> + Send>>, Delivery);

/// A pending wait between its first poll (on the JS thread) and its first wake. It is its own
/// waker: the wake moves it onto the runtime. It is only ever referenced by the wakers that what
/// it waits on keeps, so a wait that is never woken is never polled again (everything it waits
/// on wakes it when it ends: the session, the stream).
struct Parked {
    woken: AtomicBool,
    wait: Mutex<Option<ParkedWait>>,
}

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ParkedWait>> {
        self.wait.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the wait onto the runtime, once: later wakes find it gone (the task polls it with a
    /// waker of its own).
    fn spawn(&self) {
        let taken = self.lock().take();
        if let Some((wait, delivery)) = taken {
            napi::bindgen_prelude::spawn(async move {
                let mut delivery = delivery;
                delivery.event = Some(wait.await);
            });
        }
    }
}

impl Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.spawn();
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
