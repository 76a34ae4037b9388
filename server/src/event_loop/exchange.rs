//! The request/response exchange of one connection: read, parse, route, answer, repeat.
//!
//! [`Exchange::drive`] works the socket until it would block or a request needs the loop, and
//! says which with an [`Outcome`]: wait, hand a publish to the broker, open a stream, linger
//! after a final response, or close. It knows nothing of topics or brokers; the loop's half
//! (`impl EventLoop` at the end of this file) carries the outcomes out.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::time::Instant;

use super::{EventLoop, LINGER};
use crate::broker::{PublishError, PublishRequest};
use crate::connection::State;
use crate::event::EventId;
use crate::feed::Ticket;
use crate::http::HttpError;
use crate::http::body::{BodyReader, SUBSCRIBE_BODY_LIMIT};
use crate::http::request::{BodyFraming, Method, RequestHead, parse_head};
use crate::http::response::Response;
use crate::metrics::LoopCounters;
use crate::params::{Subscription, publish_error};
use crate::routes::{Action, BodyUse, PendingBody, Router, error_response};
use sse_common::format_size;

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

    /// Answers the awaited publish with the broker's result. False when this exchange awaits
    /// no publish with that serial (the answer is stale).
    pub fn complete_publish(
        &mut self,
        serial: u64,
        result: Result<EventId, PublishError>,
        router: &Router,
        stopping: bool,
    ) -> bool {
        match &self.phase {
            Phase::AwaitingBroker(awaiting) if awaiting.serial == serial => {}
            _ => return false,
        }
        let Phase::AwaitingBroker(awaiting) = std::mem::replace(&mut self.phase, Phase::Head)
        else {
            unreachable!("matched above");
        };
        let response = match result {
            Ok(id) => {
                let mut response = Response::text(200, &id.to_string());
                response.headers.push_str(&awaiting.cors_headers);
                response
            }
            Err(error) => error_response(publish_error(error)),
        };
        let keep_alive = awaiting.keep_alive && !stopping;
        self.answer(response, awaiting.minor_version, keep_alive, false, router);
        true
    }

    /// Queues a response and gets ready for the next request (or to close after it).
    fn answer(
        &mut self,
        response: Response,
        minor_version: u8,
        keep_alive: bool,
        is_head: bool,
        router: &Router,
    ) {
        if response.status >= 400 {
            router.metrics.count_rejected(response.status);
        }
        response.write_to(&mut self.output, minor_version, keep_alive, is_head);
        self.served += 1;
        self.close_after_output = !keep_alive;
        self.deadline = Instant::now() + router.config.header_timeout;
    }

    /// Queues an error response and closes the connection after it.
    fn respond_error(&mut self, error: HttpError, minor_version: u8, router: &Router) {
        self.refuse_with(
            Response::text(error.status, error.reason),
            minor_version,
            router,
        );
    }

    /// Queues the refusal of a request body: a `413` names the limit it passed and the flag
    /// that sets it; other errors (framing) are answered as they are.
    fn respond_body_error(
        &mut self,
        error: HttpError,
        body_use: BodyUse,
        minor_version: u8,
        router: &Router,
    ) {
        if error.status == 413 {
            let response = body_too_large(body_use, router.config.max_body);
            self.refuse_with(response, minor_version, router);
        } else {
            self.respond_error(error, minor_version, router);
        }
    }

    /// Queues a refusal (a `4xx`/`5xx` response built by the loop, such as a stream over the
    /// limit) and closes the connection after it.
    pub fn refuse(&mut self, response: Response, router: &Router) {
        self.refuse_with(response, 1, router);
    }

    /// Queues `response`, counted as a refusal, and closes the connection after it.
    fn refuse_with(&mut self, response: Response, minor_version: u8, router: &Router) {
        router.metrics.count_rejected(response.status);
        response.write_to(&mut self.output, minor_version, false, false);
        self.phase = Phase::Head;
        self.close_after_output = true;
    }

    /// The request deadline passed. Returns true when the connection should just close (an
    /// idle keep-alive connection, or one already closing); otherwise a `408` is queued.
    pub fn on_deadline(&mut self, router: &Router) -> bool {
        let idle = self.served > 0 && self.input.is_empty() && matches!(self.phase, Phase::Head);
        if idle || self.close_after_output {
            return true;
        }
        self.respond_error(
            HttpError::new(408, "request not complete in time"),
            1,
            router,
        );
        false
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

/// The most body bytes a request may carry: a publish `--max-body`; a subscription says a few
/// topics, so its body is held to [`SUBSCRIBE_BODY_LIMIT`] (or `--max-body`, if lower).
fn body_limit(body_use: BodyUse, max_body: u64) -> u64 {
    match body_use {
        BodyUse::Publish => max_body,
        BodyUse::Subscribe => SUBSCRIBE_BODY_LIMIT.min(max_body),
    }
}

/// The `413` for a body over [`body_limit`], naming the limit, its size and what sets it:
/// `request body over --max-body (1 MiB)`, or for a subscription held to its own cap,
/// `subscribe body over 8 KiB (...)`.
fn body_too_large(body_use: BodyUse, max_body: u64) -> Response {
    let limit = body_limit(body_use, max_body);
    let reason = if limit < max_body {
        format!(
            "subscribe body over {} (the most a subscription of 16 topics needs; --max-body \
             does not raise it)",
            format_size(limit)
        )
    } else {
        format!("request body over --max-body ({})", format_size(limit))
    };
    Response::text(413, &reason)
}

/// The loop's half: carrying out what an exchange asks for.
impl EventLoop {
    /// Drives connection `key`'s exchange and carries out the outcome. False: close it now.
    pub(super) fn drive_exchange(&mut self, key: usize) -> bool {
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
    pub(super) fn complete_publish(
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
    pub(super) fn request_timed_out(&mut self, key: usize) {
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
    pub(super) fn drive_lingering(&mut self, key: usize) -> bool {
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
