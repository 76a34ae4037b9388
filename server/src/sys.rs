//! The few operating-system calls std does not offer: the open-file limit, socket options,
//! signal flags and this process's memory and file counts (read from /proc).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Raises the soft open-file limit to the hard limit; returns the soft limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(raised.rlim_cur);
        }
    }
    Ok(limit.rlim_cur)
}

fn set_option(socket: &impl AsRawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live c_int.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TCP keepalive (so dead peers are noticed even on idle streams: first probe after 60 s, then
/// every 10 s, 6 probes) and no Nagle delay (events are written whole, and latency matters).
pub fn tune_stream(socket: &impl AsRawFd) -> io::Result<()> {
    set_option(socket, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set_option(socket, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60)?;
    set_option(socket, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10)?;
    set_option(socket, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 6)?;
    set_option(socket, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
}

/// Caps a socket's send buffer (`SO_SNDBUF`; Linux doubles the value for its bookkeeping and
/// stops autotuning it).
pub fn set_send_buffer(socket: &impl AsRawFd, bytes: u64) -> io::Result<()> {
    let bytes = bytes.min(i32::MAX as u64 / 2) as i32;
    set_option(socket, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes)
}

/// Makes closing the socket reset the connection (`SO_LINGER` with a zero timeout): the kernel
/// drops what is queued to send at once. Closed normally, a socket whose peer stopped reading
/// stays behind as an orphan holding its whole send queue until the peer closes or the kernel
/// gives up probing its zero window (minutes), which for thousands of stuck subscribers is
/// gigabytes of kernel memory.
pub fn reset_on_close(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    socket2::SockRef::from(socket).set_linger(Some(std::time::Duration::ZERO))
}

/// A listening socket on `addr` with a 4096-connection backlog (std's default is small for a
/// connection storm), `SO_REUSEADDR` as std sets it, and with `reuse_port` also `SO_REUSEPORT`,
/// so several processes may listen on one address and the kernel spreads connections over them.
/// std's `TcpListener::bind` cannot set an option before `bind`, hence `socket2`.
pub fn listen(addr: std::net::SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// One listening socket per event loop on `addr`, so the kernel spreads new connections over
/// the loops (`SO_REUSEPORT` hashes each connection to one socket of the group) instead of every
/// loop waking for every connection and taking turns under a lock.
///
/// - One loop: one socket, with `SO_REUSEPORT` only when `reuse_port` asks for it (as before).
/// - Several loops: every socket has `SO_REUSEPORT`. Linux lets only processes of the same
///   effective user join such a group, so no other user can take a share of the connections.
///   Without `reuse_port` the address must still be free: a probe socket without the option is
///   bound first (it fails with "address in use" when any socket listens there, a reuse-port
///   group included) and closed before the group binds, so a second server started by mistake on
///   the same address fails as it would with one socket. With port 0 the probe picks the port.
pub fn listen_per_loop(
    addr: std::net::SocketAddr,
    loops: usize,
    reuse_port: bool,
) -> io::Result<Vec<std::net::TcpListener>> {
    if loops <= 1 {
        return Ok(vec![listen(addr, reuse_port)?]);
    }
    let addr = if reuse_port {
        addr
    } else {
        let probe = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
        let bound = probe.local_addr()?.as_socket();
        bound.ok_or_else(|| io::Error::other("the probe socket has no IP address"))?
    };
    let first = listen(addr, true)?;
    // With port 0 the first socket's port is the one every other joins.
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..loops {
        listeners.push(listen(addr, true)?);
    }
    Ok(listeners)
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TERMINATE.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag ([`terminate_requested`]) instead of killing the process.
pub fn install_signal_handlers() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic; the struct is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_terminate as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// True once SIGINT or SIGTERM has arrived (after [`install_signal_handlers`]).
pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

/// This process's resident memory in bytes, from /proc/self/statm.
pub fn resident_memory_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page_size
}

/// Number of open file descriptors of this process. Linux 6.2 and later give the count as the
/// size of /proc/self/fd in one `stat`; older kernels say 0 there, and the directory is walked
/// instead (a cost that grows with the descriptors: call it off the event loops, as
/// [`FdSampler`](crate::fd_sampler::FdSampler) does).
pub fn open_fds() -> u64 {
    match std::fs::metadata("/proc/self/fd") {
        Ok(meta) if meta.len() > 0 => meta.len(),
        _ => open_fds_by_walk(),
    }
}

/// Number of open file descriptors of this process, counted by walking /proc/self/fd (the
/// walk's own descriptor is not counted).
pub fn open_fds_by_walk() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count().saturating_sub(1) as u64)
}

/// CPU time (user plus system) this process has used, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
