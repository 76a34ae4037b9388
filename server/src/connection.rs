//! One client connection: its socket and a small state machine, owned by its event loop.
//!
//! ```text
//!   accept ─► Exchanging ──(GET/POST /events)──► Streaming ──(hang-up, lag, shutdown)──► gone
//!              │  ▲  │                               ▲
//!              │  │  │                               │ the broker's answer
//!              │  │  └──(Last-Event-ID older ──► Replaying
//!              │  │      than the logs vouch for)
//!              └──┘ keep-alive: request, response, next request (a publish waits for the broker)
//!              │
//!              └──(error, Connection: close)──► Lingering ──(EOF or deadline)──► gone
//! ```
//!
//! The exchange's driver (reading, parsing, answering) is in `event_loop::exchange`; the
//! stream's (fan-out writes, heartbeats) in `event_loop::delivery`.
//!
//! A streaming connection keeps no buffers: a [`Subscriber`] cursor, the few bytes of response
//! head or heartbeat not yet written, and two small numbers. That is the per-connection cost the
//! README reports.

use std::net::IpAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::event_loop::exchange::Exchange;
use crate::fanout::{PendingBytes, Subscriber};
use crate::params::Subscription;

/// A client connection.
pub struct Connection {
    /// The socket.
    pub socket: TcpStream,
    /// The peer's address, for the loopback-only publish rule.
    pub peer: IpAddr,
    /// Where the connection is in its life.
    pub state: State,
}

/// The states of a connection.
pub enum State {
    /// Reading requests and writing responses (boxed: streaming connections do not pay for it).
    Exchanging(Box<Exchange>),
    /// An open event stream.
    Streaming(Stream),
    /// A stream waiting for the broker's replay of events older than the loop's logs hold
    /// (boxed: rare, and streams do not pay for it).
    Replaying(Box<PendingStream>),
    /// A final response is being written; then the write side is shut and input is discarded
    /// until the client closes or `deadline`, so the client reads the response instead of a
    /// reset.
    Lingering {
        /// When to give up and close.
        deadline: Instant,
    },
}

/// A stream whose subscriber is registered in the topic logs (so what arrives from now on is
/// held for it) while the broker looks for the events before (`broker::replay`).
pub struct PendingStream {
    /// The loop's number for the replay request (see `feed::Ticket`).
    pub serial: u64,
    /// What the client asked for.
    pub subscription: Subscription,
    /// Cursors into the topic logs, at the loop's own replay start.
    pub subscriber: Subscriber,
    /// Responses to earlier pipelined requests not yet written: they go before the stream.
    pub output: Vec<u8>,
}

/// An open event stream.
pub struct Stream {
    /// Cursors into the topic logs.
    pub subscriber: Subscriber,
    /// Response head, preamble or heartbeat bytes still to write before events.
    pub prefix: PendingBytes,
    /// Loop time (ms) of the last write, for heartbeats on idle streams.
    pub last_write_ms: u32,
    /// The socket refused bytes; wait for a writable event before writing again.
    pub blocked: bool,
    /// The stream subscribes to the console's `$stats` topic: counted in
    /// `Metrics::stats_watchers` while open, so the figures are produced only while watched.
    pub watches_stats: bool,
    /// Loop time (ms, not wrapping) at which the stream is closed, because its token expires
    /// or its `--stream-lifetime` is over; `u64::MAX`: never.
    pub closes_at_ms: u64,
    /// The close at `closes_at_ms` is the token's expiry (counted apart from lifetime closes).
    pub token_expires: bool,
}
