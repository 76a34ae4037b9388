//! The subscriber event loop: one mio `Poll` per thread holding many SSE connections.
//!
//! Each thread opens its share of the connections at its share of the connect rate, reads every
//! stream into one read buffer per thread, and feeds the bytes through the HTTP body decoder and
//! the event-stream parser of the connection. A delivery is recorded with one clock read per
//! `read` call: a histogram sample, a bit in the connection's bitmap of the phase's events, and
//! the per-event "last receipt" maximum. The controller drives phases through a command channel
//! and a mio `Waker`, and polls shared atomic counters for progress.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::{Deserialize, Serialize};

use crate::failure::FailureKind;
use crate::http::{self, BodyDecoder, BodyMode};
use crate::payload;
use crate::sse::{Dispatch, EventStreamParser};
use crate::stats::{ErrorCounts, PhaseReport, count_error};

/// The token of the waker that signals a command.
pub const WAKER: Token = Token(usize::MAX);
/// Size of the one read buffer each thread has.
const READ_BUFFER: usize = 64 * 1024;
/// Most connections one thread opens per loop turn, so reads are not starved at a high rate.
const OPENS_PER_TURN: usize = 256;

/// What every subscriber connects to and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriberTarget {
    /// The server's address.
    pub addr: SocketAddr,
    /// The complete request, sent once per connection.
    pub request: String,
    /// Local addresses to bind, used in turn; empty: let the kernel choose.
    pub source_ips: Vec<IpAddr>,
    /// Time allowed from connect to a complete response head, ms.
    pub response_timeout_ms: u64,
    /// The run id in the payloads that count.
    pub run_id: u64,
}

/// The share of a group's connections one thread opens.
#[derive(Debug, Clone, Copy)]
pub struct ThreadPlan {
    /// How many connections.
    pub connections: usize,
    /// At how many per second.
    pub rate_per_sec: f64,
    /// Global index of the first one (chooses its source address).
    pub first_index: usize,
}

/// Counters the threads update and the controller polls.
#[derive(Debug, Default)]
pub struct Progress {
    /// Connections that received a 200 event-stream head.
    pub opened: AtomicU64,
    /// Connections that failed before that.
    pub failed: AtomicU64,
    /// Events of the current phase still missing on connections that are still open.
    pub missing: AtomicU64,
    /// Deliveries in the current phase.
    pub delivered: AtomicU64,
}

/// A copy of [`Progress`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    /// See [`Progress::opened`].
    pub opened: u64,
    /// See [`Progress::failed`].
    pub failed: u64,
    /// See [`Progress::missing`].
    pub missing: u64,
    /// See [`Progress::delivered`].
    pub delivered: u64,
}

impl Progress {
    /// The counters now.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            opened: self.opened.load(Relaxed),
            failed: self.failed.load(Relaxed),
            missing: self.missing.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
        }
    }
}

impl std::ops::Add for ProgressSnapshot {
    type Output = ProgressSnapshot;
    fn add(self, o: ProgressSnapshot) -> ProgressSnapshot {
        ProgressSnapshot {
            opened: self.opened + o.opened,
            failed: self.failed + o.failed,
            missing: self.missing + o.missing,
            delivered: self.delivered + o.delivered,
        }
    }
}

/// What the controller asks of a thread.
#[derive(Debug)]
pub enum Command {
    /// Start tracking events `first_seq..first_seq + count` on every open connection.
    StartPhase {
        /// The first sequence number of the phase.
        first_seq: u64,
        /// How many events.
        count: usize,
        /// Answered once the thread tracks the phase.
        ack: Sender<()>,
    },
    /// Stop the phase: whatever has not arrived is lost. Answers with the thread's report.
    EndPhase {
        /// Where the report goes.
        reply: Sender<PhaseReport>,
    },
    /// Close every connection and return.
    Shutdown,
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    /// TCP connect in progress, or the request partly written (`written` bytes).
    Connecting { written: usize },
    /// Request sent, waiting for the response head.
    ReadingHead,
    /// 200 `text/event-stream`: events flow.
    Streaming,
    /// Closed (failed, dropped or shut down); kept for the loss count of the phase.
    Closed,
}

/// One subscriber connection.
struct Subscriber {
    /// The socket; `None` once closed, so the file descriptor is freed at once.
    stream: Option<TcpStream>,
    /// Where the connection is.
    state: ConnState,
    /// The response head bytes received so far (only until the head is complete).
    head: Vec<u8>,
    /// Body framing (chunked, length, close).
    body: BodyDecoder,
    /// The event-stream parser's state.
    parser: EventStreamParser,
    /// Per-phase tracking of what arrived.
    track: Tracking,
}

/// What one connection has received of the current phase.
#[derive(Default)]
struct Tracking {
    /// The connection was streaming when the phase started, so it owes every event.
    in_phase: bool,
    /// One bit per event of the phase: received.
    seen: Vec<u64>,
    /// Distinct events received.
    received: u64,
    /// Highest sequence number received, for out-of-order detection.
    highest: Option<u64>,
}

/// The current phase, as a thread knows it.
#[derive(Debug, Clone, Copy, Default)]
struct Phase {
    /// Events are being tracked.
    active: bool,
    /// First sequence number.
    first_seq: u64,
    /// Number of events.
    count: usize,
}

/// Everything a delivery updates, apart from the connection itself.
struct Recorder {
    /// The phase.
    phase: Phase,
    /// What the thread saw in the phase so far.
    report: PhaseReport,
    /// Failures since the last report (the ramp's go into the first phase's report).
    errors: ErrorCounts,
    /// Connections dropped during the current phase.
    dropped: u64,
    /// The run id that counts.
    run_id: u64,
    /// This thread's CPU time when the phase started, ns.
    phase_cpu_start_ns: u64,
    /// Shared counters.
    progress: Arc<Progress>,
}

/// Nanoseconds since the Unix epoch, the clock the publisher stamps payloads with.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// CPU time of the calling thread, ns.
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: clock_gettime writes into the struct we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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

/// One thread's event loop.
pub struct SubscriberLoop {
    /// The poller.
    poll: Poll,
    /// Connections, indexed by their token.
    conns: Vec<Subscriber>,
    /// The one read buffer of the thread.
    buf: Vec<u8>,
    /// What to connect to.
    target: Arc<SubscriberTarget>,
    /// This thread's share.
    plan: ThreadPlan,
    /// Delivery bookkeeping.
    rec: Recorder,
    /// Response deadlines in opening order (so they are sorted): `(deadline, index)`.
    deadlines: VecDeque<(Instant, usize)>,
    /// Commands from the controller.
    commands: Receiver<Command>,
}

impl SubscriberLoop {
    /// A loop for `plan`, polling with `poll` (whose registry the controller's waker uses).
    pub fn new(
        poll: Poll,
        target: Arc<SubscriberTarget>,
        plan: ThreadPlan,
        progress: Arc<Progress>,
        commands: Receiver<Command>,
    ) -> Self {
        let run_id = target.run_id;
        SubscriberLoop {
            poll,
            conns: Vec::with_capacity(plan.connections),
            buf: vec![0; READ_BUFFER],
            target,
            plan,
            rec: Recorder {
                phase: Phase::default(),
                report: PhaseReport::new(0),
                errors: ErrorCounts::new(),
                dropped: 0,
                run_id,
                phase_cpu_start_ns: 0,
                progress,
            },
            deadlines: VecDeque::new(),
            commands,
        }
    }

    /// Runs until `Command::Shutdown` (or the controller goes away).
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let start = Instant::now();
        let response_timeout = Duration::from_millis(self.target.response_timeout_ms);
        loop {
            let now = Instant::now();
            let mut timeout = Duration::from_millis(100);
            if self.conns.len() < self.plan.connections {
                let due = start + self.open_offset(self.conns.len());
                timeout = timeout.min(due.saturating_duration_since(now));
            }
            if let Some(&(deadline, _)) = self.deadlines.front() {
                timeout = timeout.min(deadline.saturating_duration_since(now));
            }
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                let i = event.token().0;
                if i < self.conns.len() {
                    self.handle(i, event.is_read_closed() || event.is_error());
                }
                // Unknown tokens and the waker need nothing here; commands are checked below.
            }
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        return Ok(());
                    }
                    Ok(cmd) => self.command(cmd),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            let mut opened = 0;
            while self.conns.len() < self.plan.connections
                && start + self.open_offset(self.conns.len()) <= now
                && opened < OPENS_PER_TURN
            {
                self.open(now + response_timeout);
                opened += 1;
            }
            while let Some(&(deadline, i)) = self.deadlines.front() {
                if deadline > now {
                    break;
                }
                self.deadlines.pop_front();
                if matches!(
                    self.conns[i].state,
                    ConnState::Connecting { .. } | ConnState::ReadingHead
                ) {
                    self.close(i, FailureKind::ResponseTimeout);
                }
            }
        }
    }

    /// When connection `n` of this thread is due, after the loop's start.
    fn open_offset(&self, n: usize) -> Duration {
        Duration::from_secs_f64(n as f64 / self.plan.rate_per_sec)
    }

    /// Opens the next connection.
    fn open(&mut self, deadline: Instant) {
        let i = self.conns.len();
        let global = self.plan.first_index + i;
        let src = (!self.target.source_ips.is_empty())
            .then(|| self.target.source_ips[global % self.target.source_ips.len()]);
        let mut sub = Subscriber {
            stream: None,
            state: ConnState::Closed,
            head: Vec::new(),
            body: BodyDecoder::new(BodyMode::Close),
            parser: EventStreamParser::new(),
            track: Tracking::default(),
        };
        match connect(src, self.target.addr) {
            Ok(mut stream) => {
                match self.poll.registry().register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    Ok(()) => {
                        sub.stream = Some(stream);
                        sub.state = ConnState::Connecting { written: 0 };
                        self.deadlines.push_back((deadline, i));
                    }
                    Err(e) => self.fail_open(FailureKind::from_io(&e)),
                }
            }
            Err(e) => self.fail_open(FailureKind::from_io(&e)),
        }
        self.conns.push(sub);
    }

    /// Counts a connection that failed before it was registered.
    fn fail_open(&mut self, kind: FailureKind) {
        count_error(&mut self.rec.errors, kind, 1);
        self.rec.progress.failed.fetch_add(1, Relaxed);
    }

    /// Handles readiness of connection `i`; `closing` when the event reported a hang-up or an
    /// error.
    fn handle(&mut self, i: usize, closing: bool) {
        if let ConnState::Connecting { written } = self.conns[i].state {
            match self.send_request(i, written) {
                Ok(true) => {}
                Ok(false) => return,
                Err(kind) => {
                    self.close(i, kind);
                    return;
                }
            }
        }
        if matches!(
            self.conns[i].state,
            ConnState::ReadingHead | ConnState::Streaming
        ) && let Err(kind) = self.read(i, closing)
        {
            self.close(i, kind);
        }
    }

    /// Completes the connect and writes the request. `Ok(true)` once the request is sent.
    fn send_request(&mut self, i: usize, mut written: usize) -> Result<bool, FailureKind> {
        let conn = &mut self.conns[i];
        let Some(stream) = conn.stream.as_mut() else {
            return Ok(false);
        };
        if written == 0 {
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => return Err(FailureKind::from_io(&e)),
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
                Err(e) => return Err(FailureKind::from_io(&e)),
            }
        }
        let request = self.target.request.as_bytes();
        while written < request.len() {
            match stream.write(&request[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.state = ConnState::Connecting { written };
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FailureKind::from_io(&e)),
            }
        }
        // Nothing more to write: only readable interest from now on.
        self.poll
            .registry()
            .reregister(stream, Token(i), Interest::READABLE)
            .map_err(|e| FailureKind::from_io(&e))?;
        conn.state = ConnState::ReadingHead;
        Ok(true)
    }

    /// Reads connection `i` until `WouldBlock`, or until a read returns less than the buffer.
    ///
    /// The short-read shortcut saves one `read` per event and connection, a third of the
    /// receive path's syscalls. It is sound with edge-triggered epoll: a short read emptied the
    /// socket, and data or a FIN arriving later is a new edge, hence a new event. A FIN that
    /// arrived before this event sets `closing` (EPOLLRDHUP), and then we read on until EOF so
    /// a dropped connection is never missed.
    fn read(&mut self, i: usize, closing: bool) -> Result<(), FailureKind> {
        let conn = &mut self.conns[i];
        let rec = &mut self.rec;
        let mut delivered = 0u64;
        let result = loop {
            let Some(stream) = conn.stream.as_mut() else {
                break Ok(());
            };
            match stream.read(&mut self.buf) {
                Ok(0) => {
                    break Err(if conn.state == ConnState::Streaming {
                        FailureKind::ClosedByServer
                    } else {
                        FailureKind::ClosedBeforeResponse
                    });
                }
                Ok(n) => {
                    let now_ns = unix_now_ns();
                    if let Err(kind) = process(conn, &self.buf[..n], rec, now_ns, &mut delivered) {
                        break Err(kind);
                    }
                    if n < self.buf.len() && !closing {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(FailureKind::from_io(&e)),
            }
        };
        if delivered > 0 {
            rec.progress.missing.fetch_sub(delivered, Relaxed);
            rec.progress.delivered.fetch_add(delivered, Relaxed);
        }
        result
    }

    /// Closes connection `i`, counting why.
    fn close(&mut self, i: usize, kind: FailureKind) {
        let conn = &mut self.conns[i];
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        match conn.state {
            ConnState::Closed => return,
            ConnState::Streaming => {}
            ConnState::Connecting { .. } | ConnState::ReadingHead => {
                self.rec.progress.failed.fetch_add(1, Relaxed);
            }
        }
        conn.state = ConnState::Closed;
        conn.head = Vec::new();
        count_error(&mut self.rec.errors, kind, 1);
        if conn.track.in_phase && self.rec.phase.active {
            self.rec.dropped += 1;
            let owed = self.rec.phase.count as u64 - conn.track.received;
            self.rec.progress.missing.fetch_sub(owed, Relaxed);
        }
    }

    /// Carries out a controller command.
    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::StartPhase {
                first_seq,
                count,
                ack,
            } => {
                // The ramp is over, finished or not: connections not open now never count.
                let never_opened = self.plan.connections - self.conns.len();
                if never_opened > 0 {
                    count_error(
                        &mut self.rec.errors,
                        FailureKind::RampTimeout,
                        never_opened as u64,
                    );
                    self.rec
                        .progress
                        .failed
                        .fetch_add(never_opened as u64, Relaxed);
                    self.plan.connections = self.conns.len();
                }
                for i in 0..self.conns.len() {
                    if matches!(
                        self.conns[i].state,
                        ConnState::Connecting { .. } | ConnState::ReadingHead
                    ) {
                        self.close(i, FailureKind::RampTimeout);
                    }
                }
                self.deadlines.clear();
                let words = count.div_ceil(64);
                let mut streaming = 0u64;
                for conn in &mut self.conns {
                    let t = &mut conn.track;
                    t.in_phase = conn.state == ConnState::Streaming;
                    t.received = 0;
                    t.highest = None;
                    t.seen.clear();
                    if t.in_phase {
                        t.seen.resize(words, 0);
                        streaming += 1;
                    }
                }
                self.rec.report = PhaseReport::new(count);
                self.rec.report.connections = streaming;
                self.rec.dropped = 0;
                self.rec.phase_cpu_start_ns = thread_cpu_ns();
                self.rec.phase = Phase {
                    active: true,
                    first_seq,
                    count,
                };
                self.rec.progress.delivered.store(0, Relaxed);
                self.rec
                    .progress
                    .missing
                    .fetch_add(streaming * count as u64, Relaxed);
                let _ = ack.send(());
            }
            Command::EndPhase { reply } => {
                let mut report = std::mem::replace(&mut self.rec.report, PhaseReport::new(0));
                for conn in &mut self.conns {
                    if conn.track.in_phase {
                        let missed = self.rec.phase.count as u64 - conn.track.received;
                        report.lost += missed;
                        report.connections_with_loss += u64::from(missed > 0);
                        let owed = if conn.state == ConnState::Closed {
                            0
                        } else {
                            self.rec.phase.count as u64 - conn.track.received
                        };
                        self.rec.progress.missing.fetch_sub(owed, Relaxed);
                    }
                    conn.track = Tracking::default();
                }
                report.dropped = self.rec.dropped;
                report.subscriber_cpu_ns =
                    thread_cpu_ns().saturating_sub(self.rec.phase_cpu_start_ns);
                for (k, v) in std::mem::take(&mut self.rec.errors) {
                    count_error(&mut report.errors, k, v);
                }
                self.rec.phase.active = false;
                let _ = reply.send(report);
            }
            Command::Shutdown => {}
        }
    }
}

/// Feeds bytes read from `conn` through head parsing, body decoding and event parsing.
fn process(
    conn: &mut Subscriber,
    bytes: &[u8],
    rec: &mut Recorder,
    now_ns: u64,
    delivered: &mut u64,
) -> Result<(), FailureKind> {
    let mut bytes = bytes;
    if conn.state == ConnState::ReadingHead {
        conn.head.extend_from_slice(bytes);
        let (head, len) = match http::parse_head(&conn.head) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.kind()),
        };
        if head.status != 200 {
            return Err(FailureKind::status(head.status));
        }
        if !head.is_event_stream() {
            return Err(FailureKind::BadContentType);
        }
        conn.state = ConnState::Streaming;
        conn.body = BodyDecoder::new(head.body);
        rec.progress.opened.fetch_add(1, Relaxed);
        let rest = std::mem::take(&mut conn.head);
        return process_body(conn, &rest[len..], rec, now_ns, delivered);
    }
    if conn.state == ConnState::Streaming {
        process_body(conn, std::mem::take(&mut bytes), rec, now_ns, delivered)?;
    }
    Ok(())
}

/// Decodes body bytes and parses the events in them.
fn process_body(
    conn: &mut Subscriber,
    bytes: &[u8],
    rec: &mut Recorder,
    now_ns: u64,
    delivered: &mut u64,
) -> Result<(), FailureKind> {
    let Subscriber {
        body,
        parser,
        track,
        ..
    } = conn;
    body.feed(bytes, &mut |chunk| {
        parser.feed(chunk, &mut |d| {
            if let Dispatch::Event(e) = d {
                *delivered += record(track, rec, e.data, now_ns);
            }
        })
    })
    .map_err(|e| e.kind())?;
    if body.is_done() {
        return Err(FailureKind::ClosedByServer);
    }
    Ok(())
}

/// Records one event's data; returns 1 for a new delivery of the phase, else 0.
fn record(track: &mut Tracking, rec: &mut Recorder, data: &[u8], now_ns: u64) -> u64 {
    let Some(stamp) = payload::decode(data) else {
        return 0; // someone else's event
    };
    if stamp.run != rec.run_id {
        return 0; // an earlier run's event
    }
    let phase = rec.phase;
    let report = &mut rec.report;
    if !phase.active || !track.in_phase {
        report.late += 1;
        return 0;
    }
    let Some(i) = stamp
        .seq
        .checked_sub(phase.first_seq)
        .filter(|&i| i < phase.count as u64)
    else {
        report.late += 1;
        return 0;
    };
    let i = i as usize;
    let (word, bit) = (i / 64, 1u64 << (i % 64));
    if track.seen[word] & bit != 0 {
        report.duplicated += 1;
        return 0;
    }
    track.seen[word] |= bit;
    track.received += 1;
    match track.highest {
        Some(h) if h > stamp.seq => report.out_of_order += 1,
        _ => track.highest = Some(stamp.seq),
    }
    let latency_ns = now_ns.saturating_sub(stamp.scheduled_ns);
    report.latency.saturating_record(latency_ns / 1000);
    report.deliveries += 1;
    let last = &mut report.last_receipt_ns[i];
    *last = (*last).max(latency_ns.max(1));
    report.last_delivery_unix_ns = report.last_delivery_unix_ns.max(now_ns);
    1
}
