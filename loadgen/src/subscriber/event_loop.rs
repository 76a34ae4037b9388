//! One thread's event loop: poll, open connections on their schedule, enforce response
//! deadlines, take the controller's commands (carried out in `commands`), and close
//! connections, counting why.
//!
//! A connection's readiness is handled in two steps, each in its own room: writing the
//! request (`connect`), then reading and handing the bytes to `response`. Only this loop
//! closes connections.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::commands::Next;
use super::connect::{RequestWrite, connect, write_request};
use super::connection::{ConnState, Subscriber};
use super::reconnect::{Due, retries};
use super::response::process;
use super::tracking::Recorder;
use super::{Command, Progress, SubscriberTarget, ThreadPlan, unix_now_ns};
use crate::failure::FailureKind;
use crate::stats::count_error;

/// Size of the one read buffer each thread has.
const READ_BUFFER: usize = 64 * 1024;
/// Most connections one thread opens per loop turn, so reads are not starved at a high rate.
const OPENS_PER_TURN: usize = 256;

/// One thread's event loop.
pub struct SubscriberLoop {
    /// The poller.
    pub(super) poll: Poll,
    /// Connections, indexed by their token.
    pub(super) conns: Vec<Subscriber>,
    /// The one read buffer of the thread.
    pub(super) buf: Vec<u8>,
    /// What to connect to.
    pub(super) target: Arc<SubscriberTarget>,
    /// This thread's share.
    pub(super) plan: ThreadPlan,
    /// Delivery bookkeeping.
    pub(super) rec: Recorder,
    /// Response deadlines in opening order (so they are sorted): `(deadline, index, attempt)`;
    /// one for an older attempt than the connection's is stale.
    pub(super) deadlines: VecDeque<(Instant, usize, u32)>,
    /// `--reconnect`: when each waiting connection tries again, earliest first.
    pub(super) timers: BinaryHeap<Reverse<Due>>,
    /// Commands from the controller.
    pub(super) commands: Receiver<Command>,
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
            rec: Recorder::new(run_id, progress),
            deadlines: VecDeque::new(),
            timers: BinaryHeap::new(),
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
            if let Some(&(deadline, _, _)) = self.deadlines.front() {
                timeout = timeout.min(deadline.saturating_duration_since(now));
            }
            if let Some(Reverse(due)) = self.timers.peek() {
                timeout = timeout.min(due.due.saturating_duration_since(now));
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
            if self.take_commands() == Next::Stop {
                return Ok(());
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
            self.expire_deadlines(now);
            self.fire_timers(now, now + response_timeout);
        }
    }

    /// Closes the connections still without a response head at their deadline.
    fn expire_deadlines(&mut self, now: Instant) {
        while let Some(&(deadline, i, attempt)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let conn = &self.conns[i];
            if conn.state.is_opening() && conn.reconnection.attempt == attempt {
                self.close(i, FailureKind::ResponseTimeout);
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
        let src = self.target.source_for(global);
        let mut sub = Subscriber::unconnected();
        sub.node = global % self.target.nodes.len();
        match connect(src, self.target.nodes[sub.node].addr) {
            Ok(mut stream) => {
                match self.poll.registry().register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    Ok(()) => {
                        sub.stream = Some(stream);
                        sub.state = ConnState::Connecting { written: 0 };
                        self.deadlines.push_back((deadline, i, 0));
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
                Ok(RequestWrite::Sent) => {}
                Ok(RequestWrite::Pending { .. }) => return,
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

    /// Writes (the rest of) the request of connection `i`; once it is all sent, the connection
    /// waits for its response head with readable interest only.
    fn send_request(&mut self, i: usize, written: usize) -> Result<RequestWrite, FailureKind> {
        let conn = &mut self.conns[i];
        let Some(stream) = conn.stream.as_mut() else {
            return Ok(RequestWrite::Pending { written });
        };
        let request = match &conn.reconnection.request {
            Some(r) => r.as_bytes(),
            None => self.target.nodes[conn.node].request.as_bytes(),
        };
        let progress = write_request(stream, request, written)?;
        match progress {
            RequestWrite::Pending { written } => conn.state = ConnState::Connecting { written },
            RequestWrite::Sent => {
                // Nothing more to write: only readable interest from now on.
                self.poll
                    .registry()
                    .reregister(stream, Token(i), Interest::READABLE)
                    .map_err(|e| FailureKind::from_io(&e))?;
                conn.state = ConnState::ReadingHead;
            }
        }
        Ok(progress)
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

    /// Closes connection `i`, counting why; with `--reconnect`, a stream that ended or a
    /// reconnection that failed waits to try again instead.
    pub(super) fn close(&mut self, i: usize, kind: FailureKind) {
        let conn = &mut self.conns[i];
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        let was_open = conn.state == ConnState::Streaming || conn.is_reconnecting();
        if self.target.reconnect
            && was_open
            && retries(kind)
            && !matches!(conn.state, ConnState::Closed | ConnState::Waiting)
        {
            self.wait_to_reconnect(i, kind);
            return;
        }
        match conn.state {
            ConnState::Closed => return,
            ConnState::Streaming | ConnState::Waiting => {}
            ConnState::Connecting { .. } | ConnState::ReadingHead => {
                // A reconnection that is refused gives up; the connection had opened, so it
                // is dropped, not failed.
                if !conn.is_reconnecting() {
                    self.rec.progress.failed.fetch_add(1, Relaxed);
                }
            }
        }
        conn.reconnection.since_ns = None;
        conn.state = ConnState::Closed;
        conn.head = Vec::new();
        count_error(&mut self.rec.errors, kind, 1);
        self.rec.closed(&conn.track);
    }
}
