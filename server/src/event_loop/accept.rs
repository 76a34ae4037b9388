//! Accepting: new connections from the loop's listening socket, the connection limits (and their
//! `503`), and answering even when the process is out of file descriptors.
//!
//! `--max-connections` bounds event streams, so a server full of subscribers still serves the
//! short requests that keep it useful: publishes, `/healthz`, `/metrics`, the console page. Two
//! counts decide:
//! - **Sockets**, lingering ones included (a socket that got its final response still holds a
//!   descriptor): at most `--max-connections` + [`SHORT_REQUEST_HEADROOM`]. Over that, a
//!   connection gets `503` with `Retry-After` and lingers so the client reads it; past
//!   [`LINGERING_REFUSALS`] such refusals it is answered and closed at once. So the process never
//!   holds more than `--max-connections` + 128 client sockets, and its default cap leaves those
//!   128 (and its own files) inside the open-file limit.
//! - **Streams** (`sse_subscribers`): a request that would open one more than
//!   `--max-connections` gets `503` with `Retry-After` instead ([`EventLoop::take_stream_slot`]),
//!   and its connection lingers, counted as a socket as above.
//!
//! If the process still runs out of descriptors (`EMFILE`: other files, a tight `ulimit`), the
//! loop lets go of the one descriptor the process keeps in reserve, accepts with it, answers
//! `503`, closes, and takes the reserve back: clients never wait in the backlog with no answer.
//! The reserve is one per process (the limit is the process's), and every accept happens under
//! its lock, so no other loop's accept can take the descriptor the reserve just freed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::exchange::Exchange;
use super::{EventLoop, FIRST_CONNECTION, LINGER};
use crate::connection::{Connection, State};
use crate::http::HttpError;
use crate::routes::error_response;
use crate::sys;

/// The process's reserve descriptor (`/dev/null`), and the lock every accept is made under.
static RESERVE: Mutex<Option<File>> = Mutex::new(None);

/// Takes the reserve descriptor now (at start-up), so it is there before it is needed.
pub fn keep_reserve_descriptor() {
    let mut reserve = RESERVE.lock().unwrap_or_else(|e| e.into_inner());
    if reserve.is_none() {
        *reserve = File::open("/dev/null").ok();
    }
}

/// Connections beyond `--max-connections` kept for short requests (publish, health, metrics,
/// the console page): with every stream slot taken, this many more sockets may still be open.
pub const SHORT_REQUEST_HEADROOM: u64 = 64;

/// Refused connections allowed to linger (so the client surely reads the `503`) beyond
/// `--max-connections` + [`SHORT_REQUEST_HEADROOM`]; past these, a refused connection is
/// answered and closed at once.
pub const LINGERING_REFUSALS: u64 = 64;

/// Written to connections over `--max-connections` + [`SHORT_REQUEST_HEADROOM`].
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 34\r\nRetry-After: 5\r\nConnection: close\r\n\r\nserver is at its connection limit\n";

/// The reason a stream over `--max-connections` is refused with.
const OVER_STREAM_LIMIT: HttpError = HttpError::new(
    503,
    "server is at its limit of event streams (--max-connections); retry later",
);

impl EventLoop {
    /// Accepts until the backlog is empty (or the process is out of descriptors and its
    /// reserve too).
    pub(super) fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let accepted = {
                let mut reserve = RESERVE.lock().unwrap_or_else(|e| e.into_inner());
                if reserve.is_none() {
                    *reserve = File::open("/dev/null").ok();
                }
                match listener.accept() {
                    Err(e) if is_out_of_descriptors(&e) => {
                        self.accept_warning.warn(&format!(
                            "out of file descriptors ({e}): answering new connections with 503"
                        ));
                        if refuse_with_reserve(listener, &mut reserve, &mut self.read_buffer) {
                            self.router.metrics.count_rejected(503);
                            self.router
                                .metrics
                                .connections_accepted
                                .fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        // Not even the reserve: leave the rest in the backlog until the next
                        // tick, when some descriptors may have been freed.
                        self.accept_paused = true;
                        return;
                    }
                    other => other,
                }
            };
            match accepted {
                Ok((socket, peer)) => self.admit(socket, peer.ip()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    self.accept_warning.warn(&format!(
                        "accept failed, pausing accepts until the next tick: {e}"
                    ));
                    self.accept_paused = true;
                    return;
                }
            }
        }
    }

    /// Counts a new connection against the socket limit (`--max-connections` plus the headroom
    /// for short requests) and registers it, or refuses it with `503`.
    fn admit(&mut self, mut socket: TcpStream, peer: IpAddr) {
        let metrics = &self.router.metrics;
        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let sockets = metrics.sockets_open.fetch_add(1, Ordering::Relaxed);
        let socket_limit = self.max_connections + SHORT_REQUEST_HEADROOM;
        if sockets >= socket_limit {
            metrics.count_rejected(503);
            if sockets >= socket_limit + LINGERING_REFUSALS {
                refuse(&mut socket, &mut self.read_buffer);
                metrics.sockets_open.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            self.insert(socket, peer, None);
            return;
        }
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        let _ = sys::tune_stream(&socket);
        let deadline = Instant::now() + self.router.config.header_timeout;
        self.insert(socket, peer, Some(deadline));
    }

    /// Takes one of the `--max-connections` stream slots for a connection about to stream
    /// (counted in `sse_subscribers`, which [`EventLoop::close`] gives back); false when every
    /// slot is taken. The check and the count are one atomic step, so loops racing for the last
    /// slot never both get it.
    pub(super) fn take_stream_slot(&self) -> bool {
        let limit = self.max_connections;
        self.router
            .metrics
            .subscribers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |streams| {
                (streams < limit).then_some(streams + 1)
            })
            .is_ok()
    }

    /// Gives back a slot taken by [`EventLoop::take_stream_slot`] for a stream that did not
    /// open after all.
    pub(super) fn release_stream_slot(&self) {
        self.router
            .metrics
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Answers a request for a stream over `--max-connections` with `503` + `Retry-After` (and
    /// its CORS headers, so a page can read why), then lets the connection linger. False: close
    /// it now.
    pub(super) fn refuse_stream(&mut self, key: usize, cors_headers: &str) -> bool {
        let State::Exchanging(exchange) = &mut self.connections[key].state else {
            return true;
        };
        let mut response = error_response(OVER_STREAM_LIMIT);
        response.headers.push_str(cors_headers);
        exchange.refuse(response, &self.router);
        self.drive_exchange(key)
    }

    /// Accepting paused at the open-file limit resumes (called every tick).
    pub(super) fn resume_accepting(&mut self) {
        if self.accept_paused {
            self.accept_paused = false;
            self.accept();
        }
    }

    /// Registers a new connection: an exchange, or (over capacity, `deadline` None) a lingering
    /// connection that gets the `503` answer.
    fn insert(&mut self, mut socket: TcpStream, peer: IpAddr, deadline: Option<Instant>) {
        let entry = self.connections.vacant_entry();
        let token = Token(entry.key() + FIRST_CONNECTION);
        if self
            .poll
            .registry()
            .register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            let metrics = &self.router.metrics;
            metrics.sockets_open.fetch_sub(1, Ordering::Relaxed);
            if deadline.is_some() {
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
            return;
        }
        let state = match deadline {
            Some(deadline) => State::Exchanging(Box::new(Exchange::new(deadline))),
            None => {
                let _ = socket.write(OVER_CAPACITY);
                let _ = socket.shutdown(std::net::Shutdown::Write);
                State::Lingering {
                    deadline: Instant::now() + LINGER,
                }
            }
        };
        entry.insert(Connection {
            socket,
            peer,
            state,
        });
    }
}

/// Answers `503` and closes at once (no descriptor to spare for lingering). What the client
/// already sent is read first: closing a socket with unread input makes the kernel reset the
/// connection, and the client would see a reset instead of the answer.
fn refuse(socket: &mut TcpStream, scratch: &mut [u8]) {
    discard_input(socket, scratch);
    let _ = socket.write(OVER_CAPACITY);
    let _ = socket.shutdown(std::net::Shutdown::Write);
    discard_input(socket, scratch);
}

/// Reads and drops what has arrived (a few reads at most).
fn discard_input(socket: &mut TcpStream, scratch: &mut [u8]) {
    for _ in 0..4 {
        match socket.read(scratch) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// At `EMFILE`: frees the reserve descriptor, accepts one connection with it, answers it `503`
/// and closes it, then takes the reserve back. False when there was no reserve or nothing was
/// accepted with it (accepting must pause); the caller holds the reserve's lock throughout.
fn refuse_with_reserve(
    listener: &mio::net::TcpListener,
    reserve: &mut Option<File>,
    scratch: &mut [u8],
) -> bool {
    if reserve.take().is_none() {
        return false;
    }
    let refused = match listener.accept() {
        Ok((mut socket, _)) => {
            refuse(&mut socket, scratch);
            true
        }
        Err(_) => false,
    };
    *reserve = File::open("/dev/null").ok();
    refused && reserve.is_some()
}

/// `EMFILE` (this process) or `ENFILE` (the whole system).
fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE)
    )
}
