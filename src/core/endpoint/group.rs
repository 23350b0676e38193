//! The UDP sockets of one server: one, or on Linux K sharing one address through SO_REUSEPORT with
//! a classic-BPF program that picks the socket for each datagram from the worker byte of its
//! destination connection ID (the way nginx's `quic_bpf` and Envoy steer QUIC to their workers).
//! Without the program the kernel picks by a hash of the 4-tuple, which sends a connection's
//! packets to another endpoint as soon as a NAT gives the client a new port; that endpoint has
//! never heard of the connection and answers with a stateless reset.

use std::net::{SocketAddr, UdpSocket};

use super::ids::IdLayout;
use crate::core::error::{Error, ErrorCode, Result};

pub(super) fn bind_error(addr: SocketAddr, e: &std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    let mut err = Error::new(ErrorCode::Bind, format!("cannot bind udp {addr}: {e}"));
    err.os_code = Some(match e.kind() {
        AddrInUse => "EADDRINUSE",
        AddrNotAvailable => "EADDRNOTAVAIL",
        PermissionDenied => "EACCES",
        InvalidInput => "EINVAL",
        _ => return err,
    });
    err
}

/// Binds `workers` sockets on `addr` (one where SO_REUSEPORT steering is not available: not
/// Linux); with more than one, steers by connection ID when `steer`.
pub fn bind(addr: SocketAddr, workers: usize, layout: &IdLayout, steer: bool, buffer: usize) -> Result<Vec<UdpSocket>> {
    let sockets = if workers <= 1 {
        vec![UdpSocket::bind(addr).map_err(|e| bind_error(addr, &e))?]
    } else {
        reuseport::bind_group(addr, workers, layout, steer)?
    };
    for socket in &sockets {
        // Best effort: a kernel that refuses or caps the size still gives a working socket.
        if buffer > 0 {
            let _ = socket2::SockRef::from(socket).set_recv_buffer_size(buffer);
        }
    }
    Ok(sockets)
}

#[cfg(target_os = "linux")]
mod reuseport {
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    use socket2::{Domain, Protocol, Socket, Type};

    use super::{bind_error, IdLayout};
    use crate::core::error::{Error, ErrorCode, Result};

    // Classic BPF opcodes (linux/filter.h); the kernel's ABI, stable since 2.x.
    const LD_B_ABS: u16 = 0x30;
    const JMP_JSET_K: u16 = 0x45;
    const JMP_JA: u16 = 0x05;
    const ALU_MOD_K: u16 = 0x94;
    const RET_A: u16 = 0x16;

    fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }

    /// The program the kernel runs on each datagram's UDP payload: the worker byte, modulo the
    /// group's size, is the index of the socket (sockets are numbered in the order they joined).
    /// Short headers carry the destination ID from offset 1, long headers from offset 6 (after
    /// the version and the ID length). A client's first Initial carries an ID it made up, so its
    /// "worker byte" is random: the connection lands on any worker, whose own IDs then keep it
    /// there; retransmitted Initials carry the same bytes and land on the same worker. A
    /// datagram too short to hold the byte makes the load fail, which returns 0: socket 0.
    fn program(layout: &IdLayout, workers: u32) -> [libc::sock_filter; 7] {
        let worker = layout.worker_offset() as u32;
        [
            op(LD_B_ABS, 0, 0, 0),
            op(JMP_JSET_K, 0, 2, 0x80),
            op(LD_B_ABS, 0, 0, 6 + worker),
            op(JMP_JA, 0, 0, 1),
            op(LD_B_ABS, 0, 0, 1 + worker),
            op(ALU_MOD_K, 0, 0, workers),
            op(RET_A, 0, 0, 0),
        ]
    }

    fn reuseport_socket(addr: SocketAddr) -> Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .and_then(|s| s.set_reuse_port(true).map(|()| s))
            .map_err(|e| bind_error(addr, &e))?;
        socket.bind(&addr.into()).map_err(|e| bind_error(addr, &e))?;
        Ok(socket.into())
    }

    pub(super) fn bind_group(
        addr: SocketAddr,
        workers: usize,
        layout: &IdLayout,
        steer: bool,
    ) -> Result<Vec<UdpSocket>> {
        // SO_REUSEPORT would let us join a group another process of the same user already
        // holds and silently take part of its traffic. A plain bind fails on any port in use.
        if addr.port() != 0 {
            drop(UdpSocket::bind(addr).map_err(|e| bind_error(addr, &e))?);
        }
        let first = reuseport_socket(addr)?;
        let addr = first.local_addr().map_err(|e| bind_error(addr, &e))?;
        let mut sockets = vec![first];
        for _ in 1..workers {
            sockets.push(reuseport_socket(addr)?);
        }
        if steer {
            let filter = program(layout, workers as u32);
            let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
            let fd = sockets.first().map(|s| s.as_raw_fd()).unwrap_or(-1);
            // SAFETY: `prog` points at `filter`, both alive for the call; the kernel copies them.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ATTACH_REUSEPORT_CBPF,
                    std::ptr::addr_of!(prog).cast(),
                    std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                return Err(Error::new(
                    ErrorCode::Bind,
                    format!("cannot attach the steering program on udp {addr}: {e}"),
                ));
            }
        }
        Ok(sockets)
    }
}

/// Elsewhere one socket, whatever was asked.
#[cfg(not(target_os = "linux"))]
mod reuseport {
    use std::net::{SocketAddr, UdpSocket};

    use super::{bind_error, IdLayout};
    use crate::core::error::Result;

    pub(super) fn bind_group(addr: SocketAddr, _: usize, _: &IdLayout, _: bool) -> Result<Vec<UdpSocket>> {
        Ok(vec![UdpSocket::bind(addr).map_err(|e| bind_error(addr, &e))?])
    }
}
