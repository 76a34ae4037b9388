//! Connecting: the non-blocking TCP connect (from a chosen source address when asked) and
//! writing the request once the connect completes.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::FromRawFd;

use mio::net::TcpStream;

use crate::failure::FailureKind;

/// How far writing the request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RequestWrite {
    /// The whole request is written: wait for the response head.
    Sent,
    /// The connect is still in progress, or the socket is full after `written` bytes: wait for
    /// the next writable event.
    Pending {
        /// Request bytes written so far.
        written: usize,
    },
}

/// A non-blocking connect from `src` (port chosen by the kernel at connect time) to `dst`.
pub fn connect(src: Option<IpAddr>, dst: SocketAddr) -> io::Result<TcpStream> {
    let Some(src) = src else {
        return TcpStream::connect(dst);
    };
    let domain = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket calls on a descriptor we own; `std_stream` closes it on every path.
    unsafe {
        let fd = libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let std_stream = std::net::TcpStream::from_raw_fd(fd);
        // Defer the port choice to connect(), so each source address has its own port range
        // per destination instead of one global range.
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let (addr, len) = sockaddr(SocketAddr::new(src, 0));
        if libc::bind(fd, (&addr as *const libc::sockaddr_storage).cast(), len) < 0 {
            return Err(io::Error::last_os_error());
        }
        let (addr, len) = sockaddr(dst);
        if libc::connect(fd, (&addr as *const libc::sockaddr_storage).cast(), len) < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(TcpStream::from_std(std_stream))
    }
}

/// `addr` as a C socket address.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, large enough for both address families.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Completes the connect of `stream` and writes `request` from byte `written` on.
pub(super) fn write_request(
    stream: &mut TcpStream,
    request: &[u8],
    mut written: usize,
) -> Result<RequestWrite, FailureKind> {
    if written == 0 {
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => return Err(FailureKind::from_io(&e)),
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                return Ok(RequestWrite::Pending { written });
            }
            Err(e) => return Err(FailureKind::from_io(&e)),
        }
    }
    while written < request.len() {
        match stream.write(&request[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(RequestWrite::Pending { written });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FailureKind::from_io(&e)),
        }
    }
    Ok(RequestWrite::Sent)
}
