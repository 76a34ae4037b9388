//! One client connection: its socket and a small state machine, owned by its event loop.
//!
//! ```text
//!   accept ─► Exchanging ──(GET/POST /events)──► Streaming ──(hang-up, lag, shutdown)──► gone
//!                 │  ▲ keep-alive
//!                 └──┘ request, response, next request
//!                 │
//!                 └──(error, Connection: close)──► Lingering ──(EOF or deadline)──► gone
//! ```
//!
//! A streaming connection keeps no buffers: a [`Subscriber`] cursor, the few bytes of response
//! head or heartbeat not yet written, and two small numbers. That is the per-connection cost the
//! README reports.

use std::net::IpAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::fanout::{PendingBytes, Subscriber};
use crate::http::body::BodyReader;
use crate::http::request::RequestHead;
use crate::routes::BodyUse;

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
    /// A final response is being written; then the write side is shut and input is discarded
    /// until the client closes or `deadline`, so the client reads the response instead of a
    /// reset.
    Lingering {
        /// When to give up and close.
        deadline: Instant,
    },
}

/// A request/response exchange in progress.
pub struct Exchange {
    /// Bytes received but not yet parsed (only when a request arrived in pieces).
    pub input: Vec<u8>,
    /// What is being read.
    pub phase: Phase,
    /// Response bytes not yet written.
    pub output: Vec<u8>,
    /// How much of `output` is written.
    pub written: usize,
    /// Close (lingering) once `output` is written.
    pub close_after_output: bool,
    /// The current request must be complete by then (`408` otherwise).
    pub deadline: Instant,
    /// Requests answered on this connection (an idle keep-alive connection that times out is
    /// closed quietly instead of getting a `408`).
    pub served: u32,
}

/// What an exchange is reading.
pub enum Phase {
    /// A request head.
    Head,
    /// The body of a request whose head is `head`.
    Body {
        /// The request head (boxed: it is large, and most connections never read a body).
        head: Box<RequestHead>,
        /// The body decoder.
        reader: BodyReader,
        /// What the body is for.
        body_use: BodyUse,
    },
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
}

impl Exchange {
    /// A fresh exchange whose first request must arrive by `deadline`.
    pub fn new(deadline: Instant) -> Exchange {
        Exchange {
            input: Vec::new(),
            phase: Phase::Head,
            output: Vec::new(),
            written: 0,
            close_after_output: false,
            deadline,
            served: 0,
        }
    }
}
