//! Subscribers: many SSE connections per thread, each thread one mio `Poll`.
//!
//! Each thread opens its share of the connections at its share of the connect rate, reads every
//! stream into one read buffer per thread, and feeds the bytes through the HTTP body decoder and
//! the event-stream parser of the connection. A delivery is recorded with one clock read per
//! `read` call: a histogram sample, a bit in the connection's bitmap of the phase's events, and
//! the per-event "last receipt" maximum. The controller drives phases through a command channel
//! and a mio `Waker`, and polls shared atomic counters for progress.
//!
//! This module holds what the controller and the threads share; the rooms of the thread are:
//! - [`event_loop`]: the loop itself: poll, open on schedule, deadlines, close.
//! - `commands`: the controller's commands carried out on the thread: phases, end of the ramp.
//! - [`connect`](mod@connect): the non-blocking connect (from a source address) and writing the request.
//! - `connection`: one connection's state and what it owns.
//! - `response`: the response head, body framing and event parsing of a connection's bytes.
//! - `tracking`: which events of the phase each connection received; the phase's report.
//! - `reconnect`: `--reconnect` as `EventSource` does it: `retry` with jitter, `Last-Event-ID`,
//!   the next node.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Sender;
use std::time::{SystemTime, UNIX_EPOCH};

use mio::Token;
use serde::{Deserialize, Serialize};

use crate::stats::PhaseReport;

mod commands;
pub mod connect;
mod connection;
pub mod event_loop;
mod reconnect;
mod response;
mod tracking;

pub use connect::connect;
pub use event_loop::SubscriberLoop;

/// The token of the waker that signals a command.
pub const WAKER: Token = Token(usize::MAX);

/// One server (node) subscribers connect to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeNode {
    /// The server's address.
    pub addr: SocketAddr,
    /// The complete request, sent once per connection.
    pub request: String,
}

/// What every subscriber connects to and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriberTarget {
    /// The servers, at least one: subscriber `i` (global index) connects to node `i % n`.
    pub nodes: Vec<SubscribeNode>,
    /// Local addresses to bind, used in turn; empty: let the kernel choose.
    pub source_ips: Vec<IpAddr>,
    /// Time allowed from connect to a complete response head, ms.
    pub response_timeout_ms: u64,
    /// The run id in the payloads that count.
    pub run_id: u64,
    /// Reconnect when a stream ends (`--reconnect`), to the next node, with `Last-Event-ID`.
    #[serde(default)]
    pub reconnect: bool,
    /// The reconnection delay until the server sends `retry`, ms (`--retry`).
    #[serde(default)]
    pub default_retry_ms: u64,
}

impl SubscriberTarget {
    /// The source address of subscriber `global`: the addresses in turn over the subscribers of
    /// each node (`global / nodes`), so every node sees every source address and each
    /// (source, node) pair has its own ephemeral ports.
    pub fn source_for(&self, global: usize) -> Option<IpAddr> {
        let ips = &self.source_ips;
        (!ips.is_empty()).then(|| ips[(global / self.nodes.len().max(1)) % ips.len()])
    }
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
    /// Publishing of the phase ended after `count` events, of which those at the indices
    /// `unowed` are not owed (see `Recorder::end_publishing`): nobody waits for the rest.
    EndPublishing {
        /// Events published (numbered from the phase's first).
        count: usize,
        /// Indices of the events not owed, sorted.
        unowed: Vec<u64>,
        /// Answered once the thread took it in.
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
