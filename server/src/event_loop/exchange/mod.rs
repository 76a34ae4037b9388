//! The request/response exchange of one connection: read, parse, route, answer, repeat.
//!
//! [`Exchange::drive`] works the socket until it would block or a request needs the loop, and
//! says which with an [`Outcome`]: wait, hand a publish to the broker, open a stream, linger
//! after a final response, or close. It knows nothing of topics or brokers.
//!
//! - `mod.rs` (here): the exchange's state and its driver: reading, parsing, routing, acting on
//!   the router's decision, writing the output.
//! - `answer.rs`: what goes on the wire: responses, publish answers, refusals and their
//!   `408`/`413`.
//! - `loop_side.rs`: the loop's half (`impl EventLoop`): carrying the outcomes out, publish
//!   answers from the broker, request deadlines, lingering.

mod answer;
mod loop_side;

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::time::Instant;

use crate::broker::PublishRequest;
use crate::http::body::BodyReader;
use crate::http::request::{BodyFraming, Method, RequestHead, parse_head};
use crate::metrics::LoopCounters;
use crate::params::Subscription;
use crate::routes::{Action, PendingBody, Router};
use answer::body_limit;

/// Past this much unwritten response output, pipelined requests wait.
const MAX_PIPELINED_OUTPUT: usize = 64 * 1024;

/// A request/response exchange in progress.
pub struct Exchange {
    /// Bytes received but not yet parsed (only when a request arrived in pieces).
    pub input: Vec<u8>,
    /// What is being read (or awaited).
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

/// What an exchange is reading, or waiting for.
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
        pending: PendingBody,
    },
    /// A publish was handed to the broker; its answer is awaited.
    AwaitingBroker(Box<AwaitingPublish>),
}

/// What answering a publish needs once the broker has assigned its id.
pub struct AwaitingPublish {
    /// The loop's number for this publish (see [`Ticket`]).
    serial: u64,
    /// HTTP minor version of the request.
    minor_version: u8,
    /// The client asked to keep the connection open.
    keep_alive: bool,
    /// CORS header lines for the `200`.
    cors_headers: String,
}

/// What the loop must do after [`Exchange::drive`].
pub enum Outcome {
    /// Nothing now: the socket would block, or a publish awaits the broker.
    Wait,
    /// Hand this publish to the broker; the exchange awaits the answer with this serial.
    Publish(PublishRequest, u64),
    /// Open an event stream (response bytes not yet written go first).
    Stream(Subscription),
    /// A final response is written: shut the write side and linger.
    Linger,
    /// The peer hung up or the socket failed.
    Close,
}

/// What an exchange borrows from its loop while it is driven.
pub struct Context<'a> {
    /// Routing decisions.
    pub router: &'a Router,
    /// The loop's read buffer.
    pub read_buffer: &'a mut Box<[u8]>,
    /// The loop's byte counters.
    pub counters: &'a mut LoopCounters,
    /// The loop's next publish serial.
    pub next_serial: &'a mut u64,
    /// The server is shutting down: answer with `Connection: close`.
    pub stopping: bool,
    /// The client's address.
    pub peer: IpAddr,
}

/// How writing pending output went.
enum Written {
    /// Everything is written.
    All,
    /// The socket is full.
    Blocked,
    /// The socket failed.
    Failed,
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

    /// True while a publish awaits the broker's answer (the client is not the one late).
    pub fn awaits_broker(&self) -> bool {
        matches!(self.phase, Phase::AwaitingBroker(_))
    }

    /// True when nothing is under way: no input, no output, waiting for a request head.
    pub fn is_idle(&self) -> bool {
        self.output.is_empty() && self.input.is_empty() && matches!(self.phase, Phase::Head)
    }

    /// Reads, parses and answers requests until the socket has nothing more to give or a
    /// request needs the loop.
    /// `socket` is the connection's non-blocking socket (any `Read + Write`, so a fuzz target
    /// can drive an exchange with chosen read splits, short writes and `WouldBlock`).
    pub fn drive<S: Read + Write>(&mut self, socket: &mut S, cx: &mut Context<'_>) -> Outcome {
        loop {
            match self.write_output(socket, cx.counters) {
                Written::All => {}
                Written::Blocked => return Outcome::Wait,
                Written::Failed => return Outcome::Close,
            }
            if self.close_after_output {
                return Outcome::Linger;
            }
            if self.output.len() > MAX_PIPELINED_OUTPUT || self.awaits_broker() {
                return Outcome::Wait;
            }
            // Parse what is already buffered before reading more.
            if !self.input.is_empty() {
                let input = std::mem::take(&mut self.input);
                let (consumed, handoff) = self.process(&input, cx);
                self.input = input;
                self.input.drain(..consumed);
                if let Some(outcome) = handoff {
                    return outcome;
                }
                if consumed > 0 {
                    continue;
                }
            }
            let read = match socket.read(cx.read_buffer) {
                Ok(0) => return Outcome::Close,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Outcome::Close,
            };
            if !self.input.is_empty() {
                self.input.extend_from_slice(&cx.read_buffer[..read]);
                continue;
            }
            // The common case: the whole request is in this read, and is parsed from the loop's
            // buffer without copying it.
            let buffer = std::mem::take(cx.read_buffer);
            let (consumed, handoff) = self.process(&buffer[..read], cx);
            self.input.extend_from_slice(&buffer[consumed..read]);
            *cx.read_buffer = buffer;
            if let Some(outcome) = handoff {
                return outcome;
            }
        }
    }

    /// Parses and acts on as many complete requests in `data` as there are; returns the bytes
    /// used, and what the loop must do when a request needs it (processing stops there).
    fn process(&mut self, data: &[u8], cx: &mut Context<'_>) -> (usize, Option<Outcome>) {
        let mut used = 0;
        loop {
            if self.close_after_output || self.output.len() > MAX_PIPELINED_OUTPUT {
                return (used, None);
            }
            let rest = &data[used..];
            match &mut self.phase {
                Phase::Head => {
                    if rest.is_empty() {
                        return (used, None);
                    }
                    let (head, len) = match parse_head(rest) {
                        Ok(Some(parsed)) => parsed,
                        Ok(None) => return (used, None),
                        Err(error) => {
                            self.respond_error(error, 1, cx.router);
                            return (data.len(), None);
                        }
                    };
                    used += len;
                    let action = cx.router.route(&head, cx.peer);
                    let body_read = head.body == BodyFraming::None;
                    if let Some(outcome) = self.act(head, action, body_read, cx) {
                        return (used, Some(outcome));
                    }
                }
                Phase::Body {
                    reader, pending, ..
                } => {
                    let taken = match reader.feed(rest) {
                        Ok(taken) => taken,
                        Err(error) => {
                            let body_use = pending.body_use;
                            self.respond_body_error(error, body_use, 1, cx.router);
                            return (data.len(), None);
                        }
                    };
                    used += taken;
                    if !reader.is_done() {
                        return (used, None);
                    }
                    let Phase::Body {
                        head,
                        reader,
                        pending,
                    } = std::mem::replace(&mut self.phase, Phase::Head)
                    else {
                        unreachable!("matched above");
                    };
                    let action = cx.router.finish(&head, pending, &reader.body);
                    if let Some(outcome) = self.act(*head, action, true, cx) {
                        return (used, Some(outcome));
                    }
                }
                Phase::AwaitingBroker(_) => return (used, None),
            }
        }
    }

    /// Carries out the router's decision as far as the exchange can; returns what needs the
    /// loop. `body_read`: the request's body (if any) has been read, so the connection can
    /// serve another request.
    fn act(
        &mut self,
        head: RequestHead,
        action: Action,
        body_read: bool,
        cx: &mut Context<'_>,
    ) -> Option<Outcome> {
        match action {
            Action::Respond(response) => {
                // A body we did not read leaves the connection unusable for another request.
                let keep_alive = head.keep_alive && body_read && !cx.stopping;
                let is_head = head.method == Method::Head;
                self.answer(response, head.minor_version, keep_alive, is_head, cx.router);
                None
            }
            Action::ReadBody(pending) => {
                let limit = body_limit(pending.body_use, cx.router.config.max_body);
                let reader = match BodyReader::new(head.body, limit) {
                    Ok(reader) => reader,
                    Err(error) => {
                        let body_use = pending.body_use;
                        self.respond_body_error(error, body_use, head.minor_version, cx.router);
                        return None;
                    }
                };
                if reader.is_done() {
                    let action = cx.router.finish(&head, pending, &[]);
                    return self.act(head, action, true, cx);
                }
                if head.expect_continue {
                    self.output
                        .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                self.deadline = Instant::now() + cx.router.config.header_timeout;
                self.phase = Phase::Body {
                    head: Box::new(head),
                    reader,
                    pending,
                };
                None
            }
            Action::Subscribe(subscription) => Some(Outcome::Stream(subscription)),
            Action::Publish(publish) => {
                let serial = *cx.next_serial;
                *cx.next_serial += 1;
                self.phase = Phase::AwaitingBroker(Box::new(AwaitingPublish {
                    serial,
                    minor_version: head.minor_version,
                    keep_alive: head.keep_alive,
                    cors_headers: publish.cors_headers,
                }));
                Some(Outcome::Publish(publish.request, serial))
            }
        }
    }

    /// Writes pending response output.
    fn write_output<S: Write>(&mut self, socket: &mut S, counters: &mut LoopCounters) -> Written {
        while self.written < self.output.len() {
            match socket.write(&self.output[self.written..]) {
                Ok(0) => return Written::Failed,
                Ok(n) => {
                    self.written += n;
                    counters.bytes_written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Written::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Written::Failed,
            }
        }
        self.output.clear();
        self.written = 0;
        if self.output.capacity() > MAX_PIPELINED_OUTPUT {
            self.output = Vec::new();
        }
        Written::All
    }
}
