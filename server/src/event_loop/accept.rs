//! Accepting: new connections from the shared listening socket, the connection limit (and its
//! `503`), and pausing when the process is out of file descriptors.

use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::exchange::Exchange;
use super::{EventLoop, FIRST_CONNECTION, LINGER};
use crate::connection::{Connection, State};
use crate::sys;

/// Written to connections over `--max-connections`.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 28\r\nRetry-After: 5\r\nConnection: close\r\n\r\nserver is at its connection limit\n";

impl EventLoop {
    /// Accepts until the backlog is empty (or the process is out of descriptors).
    pub(super) fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // Out of file descriptors (or similar): leave the rest in the backlog and
                    // try again at the next tick, when some may have been freed.
                    if !self.accept_paused {
                        eprintln!("sse-server: accept failed, pausing accepts: {e}");
                    }
                    self.accept_paused = true;
                    return;
                }
            };
            let metrics = &self.router.metrics;
            metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
            let open = metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            if open >= self.max_connections {
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
                metrics.count_rejected(503);
                self.insert(socket, peer.ip(), None);
                continue;
            }
            let _ = sys::tune_stream(&socket);
            let deadline = Instant::now() + self.router.config.header_timeout;
            self.insert(socket, peer.ip(), Some(deadline));
        }
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
            if deadline.is_some() {
                self.router
                    .metrics
                    .connections_open
                    .fetch_sub(1, Ordering::Relaxed);
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
