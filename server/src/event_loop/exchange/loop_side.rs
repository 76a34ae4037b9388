//! The loop's half of an exchange: carrying out the outcome of [`Exchange::drive`](super::Exchange::drive)
//! (hand a publish to the broker, open a stream, linger, close), delivering the broker's answer
//! to the waiting exchange, the request deadline, and lingering after a final response.
//!
//! Separate from the exchange itself, which knows nothing of topics, brokers or the
//! connection table: these are the places where the loop reaches into it.

use std::io::{self, Read};
use std::time::Instant;

use super::{Context, Outcome};
use crate::broker::PublishError;
use crate::connection::State;
use crate::event::EventId;
use crate::event_loop::{EventLoop, LINGER};
use crate::feed::Ticket;

/// The loop's half: carrying out what an exchange asks for.
impl EventLoop {
    /// Drives connection `key`'s exchange and carries out the outcome. False: close it now.
    pub(in crate::event_loop) fn drive_exchange(&mut self, key: usize) -> bool {
        let stopping = self.stopping();
        let connection = &mut self.connections[key];
        let State::Exchanging(exchange) = &mut connection.state else {
            return true;
        };
        let mut cx = Context {
            router: &self.router,
            read_buffer: &mut self.read_buffer,
            counters: &mut self.counters,
            next_serial: &mut self.next_serial,
            stopping,
            peer: connection.peer,
        };
        match exchange.drive(&mut connection.socket, &mut cx) {
            Outcome::Wait => true,
            Outcome::Close => false,
            Outcome::Linger => self.start_lingering(key),
            Outcome::Stream(subscription) => self.start_stream(key, subscription),
            Outcome::Publish(request, serial) => {
                self.publish(Ticket { key, serial }, request);
                true
            }
        }
    }

    /// Answers a publish whose broker answer arrived, then lets the exchange go on.
    pub(in crate::event_loop) fn complete_publish(
        &mut self,
        ticket: Ticket,
        result: Result<EventId, PublishError>,
    ) {
        let stopping = self.stopping();
        let Some(connection) = self.connections.get_mut(ticket.key) else {
            return;
        };
        let State::Exchanging(exchange) = &mut connection.state else {
            return;
        };
        if exchange.complete_publish(ticket.serial, result, &self.router, stopping)
            && !self.drive_exchange(ticket.key)
        {
            self.to_close.push(ticket.key);
        }
    }

    /// A request deadline passed: `408`, or a quiet close for an idle keep-alive connection.
    pub(in crate::event_loop) fn request_timed_out(&mut self, key: usize) {
        let State::Exchanging(exchange) = &mut self.connections[key].state else {
            return;
        };
        if exchange.on_deadline(&self.router) || !self.drive_exchange(key) {
            self.to_close.push(key);
        }
    }

    /// After a final response: shut the write side and discard input until the client closes.
    fn start_lingering(&mut self, key: usize) -> bool {
        let connection = &mut self.connections[key];
        let _ = connection.socket.shutdown(std::net::Shutdown::Write);
        connection.state = State::Lingering {
            deadline: Instant::now() + LINGER,
        };
        self.metrics()
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.drive_lingering(key)
    }

    /// Discards what a lingering connection sends. False once the client has closed.
    pub(in crate::event_loop) fn drive_lingering(&mut self, key: usize) -> bool {
        let connection = &mut self.connections[key];
        loop {
            match connection.socket.read(&mut self.read_buffer) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}
