//! A UDP socket that counts what reaches its endpoint, so an operator (and the tests) can see how
//! the kernel spread the traffic over the workers and whether any packet reached the wrong one.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

use super::ids::IdLayout;

/// What one worker's endpoint has seen since the server started.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// UDP datagrams received (each segment of a coalesced receive counted).
    pub packets: AtomicU64,
    /// Short-header datagrams whose connection ID names another worker: with steering, none.
    pub misrouted: AtomicU64,
    /// Connections this worker accepted.
    pub connections: AtomicU64,
}

/// A snapshot of [`WorkerCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerCounts {
    pub packets: u64,
    pub misrouted: u64,
    pub connections: u64,
}

impl WorkerCounters {
    pub fn snapshot(&self) -> WorkerCounts {
        WorkerCounts {
            packets: self.packets.load(Ordering::Relaxed),
            misrouted: self.misrouted.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }
}

pub struct CountedSocket {
    pub inner: Arc<dyn AsyncUdpSocket>,
    pub counters: Arc<WorkerCounters>,
    pub layout: IdLayout,
    pub worker: u8,
}

impl fmt::Debug for CountedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountedSocket").field("worker", &self.worker).finish_non_exhaustive()
    }
}

impl CountedSocket {
    fn count(&self, datagram: &[u8]) {
        self.counters.packets.fetch_add(1, Ordering::Relaxed);
        if self.layout.worker_of_short_packet(datagram).is_some_and(|w| w != self.worker) {
            self.counters.misrouted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl AsyncUdpSocket for CountedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(received)) = &polled {
            for (buf, meta) in bufs.iter().zip(meta.iter()).take(*received) {
                let data = buf.get(..meta.len).unwrap_or(buf);
                for datagram in data.chunks(meta.stride.max(1)) {
                    self.count(datagram);
                }
            }
        }
        polled
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
