//! One event loop: a thread with its own `mio::Poll`, its share of the connections, and its own
//! copy of the topic logs.
//!
//! Tokens: [`LISTENER`] (the shared listening socket, accepted from until `WouldBlock`),
//! [`MAILBOX`] (the broker's wake-up: events to deliver), and one per connection (slab key + 2).
//! Connections are registered for both readable and writable readiness once. mio's readiness
//! is edge-triggered, so a writable event only comes after a write hit a full buffer, and
//! keeping the interest costs nothing; re-registering on every full buffer would cost a system
//! call each time.
//!
//! Fan-out: the broker queues each published event in every loop's mailbox. The loop appends
//! the queued events to its topic logs and starts a *pass* over each touched topic's
//! subscribers: one vectored write per subscriber, straight from the shared buffers. A pass
//! visits at most [`PASS_BUDGET`] subscribers before the loop polls again, so requests (publishes
//! above all) are served while a pass over thousands of subscribers is under way; events that
//! arrive meanwhile join the same writes, so under load each write carries several events.
//! Subscribers that fell too far behind are disconnected, and a topic's log is trimmed only at
//! the end of a pass, when every subscriber has been checked.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::broker::{Mailbox, Published};
use crate::connection::{Connection, Exchange, Phase, State, Stream};
use crate::fanout::{PendingBytes, Retention, Topics};
use crate::http::HttpError;
use crate::http::body::BodyReader;
use crate::http::request::{BodyFraming, Method, RequestHead, parse_head};
use crate::http::response::Response;
use crate::metrics::LoopCounters;
use crate::routes::{Action, App, Subscription};
use crate::sys;

/// The listening socket.
pub const LISTENER: Token = Token(0);
/// The broker's wake-up.
pub const MAILBOX: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// Bytes read per `read` call into the loop's shared read buffer.
const READ_BUFFER: usize = 16 * 1024;
/// Past this much unwritten response output, pipelined requests wait.
const MAX_PIPELINED_OUTPUT: usize = 64 * 1024;
/// Subscribers a fan-out pass visits before the loop looks at its sockets again (about 1 ms of
/// writes on this machine).
pub const PASS_BUDGET: usize = 128;
/// How long a closing connection may linger to let the client read its final response.
const LINGER: Duration = Duration::from_secs(2);
/// How often the loop looks at timers when nothing happens.
const TICK: Duration = Duration::from_millis(250);
/// The comment written on idle streams.
const HEARTBEAT: &[u8] = b": keep-alive\n\n";
/// Written to connections over `--max-connections`.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 28\r\nRetry-After: 5\r\nConnection: close\r\n\r\nserver is at its connection limit\n";

/// Why a connection must close now.
struct Close;

/// One event loop.
pub struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    /// When accepting hit the open-file limit; accepting resumes at the next tick.
    accept_paused: bool,
    connections: Slab<Connection>,
    topics: Topics,
    app: Arc<App>,
    mailbox: Arc<Mailbox>,
    /// Events taken from the mailbox (capacity kept between wake-ups).
    inbox: Vec<Arc<Published>>,
    /// Topics touched by the current batch of events.
    touched: Vec<usize>,
    /// Connections to close once the current pass over subscribers is done.
    to_close: Vec<usize>,
    /// Fan-out passes under way, one per topic at most.
    passes: Vec<Pass>,
    /// Topics whose pass just completed, to trim once laggards are closed.
    to_trim: Vec<usize>,
    /// The one read buffer of this loop: requests are parsed from it, and only the unparsed
    /// rest of a request that arrived in pieces is copied to its connection.
    read_buffer: Box<[u8]>,
    counters: LoopCounters,
    max_connections: u64,
    started: Instant,
    stop: Arc<AtomicBool>,
    preamble: Arc<[u8]>,
}

impl EventLoop {
    /// A loop serving `listener`, fed by `mailbox` (whose waker must belong to `poll`).
    pub fn new(
        poll: Poll,
        mut listener: TcpListener,
        mailbox: Arc<Mailbox>,
        app: Arc<App>,
        max_connections: u64,
        stop: Arc<AtomicBool>,
    ) -> io::Result<EventLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let config = &app.config;
        let retention = Retention {
            history: config.history,
            history_bytes: config.history_bytes,
            max_pending: config.max_pending,
        };
        let preamble = format!("retry: {}\n: stream open\n\n", config.retry.as_millis());
        Ok(EventLoop {
            poll,
            listener: Some(listener),
            accept_paused: false,
            connections: Slab::new(),
            topics: Topics::new(retention),
            app,
            mailbox,
            inbox: Vec::new(),
            touched: Vec::new(),
            to_close: Vec::new(),
            passes: Vec::new(),
            to_trim: Vec::new(),
            read_buffer: vec![0; READ_BUFFER].into_boxed_slice(),
            counters: LoopCounters::default(),
            max_connections,
            started: Instant::now(),
            stop,
            preamble: Arc::from(preamble.into_bytes()),
        })
    }

    /// Runs until shutdown is requested and every connection is closed.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut drain: Option<Drain> = None;
        let heartbeat = self.app.config.heartbeat;
        let tick = if heartbeat.is_zero() {
            TICK
        } else {
            TICK.min(heartbeat / 2).max(Duration::from_millis(10))
        };
        let mut last_tick = Instant::now();
        let mut busy = false;
        loop {
            let timeout = if busy {
                Duration::ZERO
            } else if drain.is_some() {
                Duration::from_millis(10)
            } else {
                tick
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let mut woken = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    MAILBOX => woken = true,
                    Token(token) => {
                        let key = token - FIRST_CONNECTION;
                        if self.connections.contains(key) {
                            self.connection_ready(key, event.is_writable());
                        }
                    }
                }
            }
            if woken {
                self.deliver_published();
            }
            busy = self.advance_passes(PASS_BUDGET);
            if last_tick.elapsed() >= tick || drain.is_some() {
                last_tick = Instant::now();
                self.on_tick();
                if drain.is_none()
                    && (self.stop.load(Ordering::Relaxed) || sys::terminate_requested())
                {
                    drain = Some(self.start_drain());
                }
                if let Some(drain) = &mut drain {
                    if self.drain_step(drain) {
                        self.app.metrics.add(&mut self.counters);
                        return Ok(());
                    }
                }
            }
            self.app.metrics.add(&mut self.counters);
        }
    }

    fn now_ms(&self) -> u32 {
        self.started.elapsed().as_millis() as u32
    }

    fn accept(&mut self) {
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
            let metrics = &self.app.metrics;
            metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
            let open = metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            if open >= self.max_connections {
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
                metrics.count_rejected(503);
                self.insert(socket, peer.ip(), None);
                continue;
            }
            let _ = sys::tune_stream(&socket);
            let deadline = Instant::now() + self.app.config.header_timeout;
            self.insert(socket, peer.ip(), Some(deadline));
        }
    }

    /// Registers a new connection: an exchange, or (over capacity, `deadline` None) a lingering
    /// connection that gets the `503` answer.
    fn insert(&mut self, mut socket: TcpStream, peer: std::net::IpAddr, deadline: Option<Instant>) {
        let entry = self.connections.vacant_entry();
        let token = Token(entry.key() + FIRST_CONNECTION);
        if self
            .poll
            .registry()
            .register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            if deadline.is_some() {
                self.app
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

    fn connection_ready(&mut self, key: usize, writable: bool) {
        let result = match self.connections[key].state {
            State::Exchanging(_) => self.drive_exchange(key),
            State::Streaming(_) => self.drive_stream(key, writable),
            State::Lingering { .. } => self.drive_lingering(key),
        };
        if result.is_err() {
            self.close(key);
        }
    }

    /// Removes a connection; its socket closes when dropped (which also removes it from epoll).
    fn close(&mut self, key: usize) {
        let Some(connection) = self.connections.try_remove(key) else {
            return;
        };
        let metrics = &self.app.metrics;
        match &connection.state {
            State::Streaming(stream) => {
                self.topics.unsubscribe(&stream.subscriber);
                metrics.subscribers.fetch_sub(1, Ordering::Relaxed);
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
            State::Exchanging(_) => {
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
            State::Lingering { .. } => {}
        }
    }

    /// Reads, parses and answers requests until the socket has nothing more to give.
    fn drive_exchange(&mut self, key: usize) -> Result<(), Close> {
        loop {
            if !self.write_output(key)? {
                return Ok(());
            }
            let State::Exchanging(exchange) = &mut self.connections[key].state else {
                return Ok(());
            };
            if exchange.close_after_output {
                return self.start_lingering(key);
            }
            if exchange.output.len() > MAX_PIPELINED_OUTPUT {
                return Ok(());
            }
            // Parse what is already buffered before reading more.
            if !exchange.input.is_empty() {
                let input = std::mem::take(&mut exchange.input);
                let consumed = self.process(key, &input)?;
                if let State::Exchanging(exchange) = &mut self.connections[key].state {
                    exchange.input = input;
                    exchange.input.drain(..consumed);
                    if consumed > 0 {
                        continue;
                    }
                } else {
                    return Ok(());
                }
            }
            let connection = &mut self.connections[key];
            let read = match connection.socket.read(&mut self.read_buffer) {
                Ok(0) => return Err(Close),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Close),
            };
            let State::Exchanging(exchange) = &mut connection.state else {
                return Ok(());
            };
            if !exchange.input.is_empty() {
                exchange.input.extend_from_slice(&self.read_buffer[..read]);
                continue;
            }
            // The common case: the whole request is in this read, and is parsed from the loop's
            // buffer without copying it.
            let buffer = std::mem::take(&mut self.read_buffer);
            let result = self.process(key, &buffer[..read]);
            if let (Ok(consumed), State::Exchanging(exchange)) =
                (&result, &mut self.connections[key].state)
            {
                exchange.input.extend_from_slice(&buffer[*consumed..read]);
            }
            self.read_buffer = buffer;
            result?;
            if !matches!(self.connections[key].state, State::Exchanging(_)) {
                return Ok(());
            }
        }
    }

    /// Parses and acts on as many complete requests in `data` as there are; returns the bytes
    /// used. Stops early when the connection starts streaming or will close.
    fn process(&mut self, key: usize, data: &[u8]) -> Result<usize, Close> {
        let mut used = 0;
        loop {
            let connection = &mut self.connections[key];
            let State::Exchanging(exchange) = &mut connection.state else {
                return Ok(used);
            };
            if exchange.close_after_output || exchange.output.len() > MAX_PIPELINED_OUTPUT {
                return Ok(used);
            }
            let rest = &data[used..];
            match &mut exchange.phase {
                Phase::Head => {
                    if rest.is_empty() {
                        return Ok(used);
                    }
                    let (head, len) = match parse_head(rest) {
                        Ok(Some(parsed)) => parsed,
                        Ok(None) => return Ok(used),
                        Err(error) => {
                            self.respond_error(key, error, 1);
                            return Ok(data.len());
                        }
                    };
                    used += len;
                    let peer = connection.peer;
                    let action = self.app.route(&head, peer);
                    let body_read = head.body == BodyFraming::None;
                    self.act(key, head, action, body_read)?;
                }
                Phase::Body { reader, .. } => {
                    let taken = match reader.feed(rest) {
                        Ok(taken) => taken,
                        Err(error) => {
                            self.respond_error(key, error, 1);
                            return Ok(data.len());
                        }
                    };
                    used += taken;
                    if !reader.is_done() {
                        return Ok(used);
                    }
                    let Phase::Body {
                        head,
                        reader,
                        body_use,
                    } = std::mem::replace(&mut exchange.phase, Phase::Head)
                    else {
                        unreachable!("matched above");
                    };
                    let action = self.app.finish(&head, body_use, &reader.body);
                    self.act(key, *head, action, true)?;
                }
            }
        }
    }

    /// Carries out what the router decided for a request. `body_read`: the request's body (if
    /// any) has been read, so the connection can serve another request.
    fn act(
        &mut self,
        key: usize,
        head: RequestHead,
        action: Action,
        body_read: bool,
    ) -> Result<(), Close> {
        let State::Exchanging(exchange) = &mut self.connections[key].state else {
            return Ok(());
        };
        match action {
            Action::Respond(response) => {
                // A body we did not read leaves the connection unusable for another request.
                let keep_alive = head.keep_alive && body_read && !self.stop.load(Ordering::Relaxed);
                if response.status >= 400 {
                    self.app.metrics.count_rejected(response.status);
                }
                response.write_to(
                    &mut exchange.output,
                    head.minor_version,
                    keep_alive,
                    head.method == Method::Head,
                );
                exchange.served += 1;
                exchange.close_after_output = !keep_alive;
                exchange.deadline = Instant::now() + self.app.config.header_timeout;
                Ok(())
            }
            Action::ReadBody(body_use) => {
                let reader = match BodyReader::new(head.body, self.app.config.max_body) {
                    Ok(reader) => reader,
                    Err(error) => {
                        self.respond_error(key, error, head.minor_version);
                        return Ok(());
                    }
                };
                if reader.is_done() {
                    let action = self.app.finish(&head, body_use, &[]);
                    return self.act(key, head, action, true);
                }
                if head.expect_continue {
                    exchange
                        .output
                        .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                exchange.deadline = Instant::now() + self.app.config.header_timeout;
                exchange.phase = Phase::Body {
                    head: Box::new(head),
                    reader,
                    body_use,
                };
                Ok(())
            }
            Action::Subscribe(subscription) => self.start_stream(key, subscription),
        }
    }

    /// Queues an error response and closes the connection after it.
    fn respond_error(&mut self, key: usize, error: HttpError, minor_version: u8) {
        let State::Exchanging(exchange) = &mut self.connections[key].state else {
            return;
        };
        self.app.metrics.count_rejected(error.status);
        Response::text(error.status, error.reason).write_to(
            &mut exchange.output,
            minor_version,
            false,
            false,
        );
        exchange.phase = Phase::Head;
        exchange.close_after_output = true;
    }

    /// Writes pending response output. Returns false when the socket is full.
    fn write_output(&mut self, key: usize) -> Result<bool, Close> {
        let connection = &mut self.connections[key];
        let State::Exchanging(exchange) = &mut connection.state else {
            return Ok(true);
        };
        while exchange.written < exchange.output.len() {
            match connection
                .socket
                .write(&exchange.output[exchange.written..])
            {
                Ok(0) => return Err(Close),
                Ok(n) => {
                    exchange.written += n;
                    self.counters.bytes_written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Close),
            }
        }
        exchange.output.clear();
        exchange.written = 0;
        if exchange.output.capacity() > MAX_PIPELINED_OUTPUT {
            exchange.output = Vec::new();
        }
        Ok(true)
    }

    /// After a final response: shut the write side and discard input until the client closes.
    fn start_lingering(&mut self, key: usize) -> Result<(), Close> {
        let connection = &mut self.connections[key];
        let _ = connection.socket.shutdown(std::net::Shutdown::Write);
        connection.state = State::Lingering {
            deadline: Instant::now() + LINGER,
        };
        self.app
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        self.drive_lingering(key)
    }

    fn drive_lingering(&mut self, key: usize) -> Result<(), Close> {
        let connection = &mut self.connections[key];
        loop {
            match connection.socket.read(&mut self.read_buffer) {
                Ok(0) => return Err(Close),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Close),
            }
        }
    }

    /// Turns an exchange into an event stream: response head, preamble, then events (a replay
    /// first when the client sent `Last-Event-ID`).
    fn start_stream(&mut self, key: usize, subscription: Subscription) -> Result<(), Close> {
        // Every event published before this request arrived is already in our mailbox (the
        // broker fills all mailboxes before it answers a publisher). Taking them into the logs
        // first means the replay position is computed over all of them: an event whose id the
        // client sent as Last-Event-ID is never appended after the cursor and sent again.
        self.deliver_published();
        let State::Exchanging(exchange) = &mut self.connections[key].state else {
            return Ok(());
        };
        let mut head = Vec::with_capacity(256);
        // Responses already queued on this connection (pipelined) go first.
        head.extend_from_slice(&exchange.output[exchange.written..]);
        head.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
        );
        head.extend_from_slice(subscription.cors_headers.as_bytes());
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(&self.preamble);
        let names: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
        let subscriber = self
            .topics
            .subscribe(key, &names, subscription.last_event_id);
        let now = self.now_ms();
        self.connections[key].state = State::Streaming(Stream {
            subscriber,
            prefix: PendingBytes::Owned(head.into_boxed_slice(), 0),
            last_write_ms: now,
            blocked: false,
        });
        self.app.metrics.subscribers.fetch_add(1, Ordering::Relaxed);
        self.flush_stream(key)
    }

    /// Handles readiness of a streaming connection: input is discarded (a client has nothing
    /// to say on a stream; EOF means it hung up), and pending bytes are written.
    fn drive_stream(&mut self, key: usize, writable: bool) -> Result<(), Close> {
        let connection = &mut self.connections[key];
        loop {
            match connection.socket.read(&mut self.read_buffer) {
                Ok(0) => return Err(Close),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Close),
            }
        }
        if writable {
            if let State::Streaming(stream) = &mut connection.state {
                stream.blocked = false;
            }
            self.flush_stream(key)?;
        }
        Ok(())
    }

    /// Writes what a stream has pending; closes it on a write error or when it lags.
    fn flush_stream(&mut self, key: usize) -> Result<(), Close> {
        let now = self.now_ms();
        flush_stream(
            &mut self.connections[key],
            &self.topics,
            &mut self.counters,
            now,
        )
        .map_err(|lagging| {
            if lagging {
                self.app
                    .metrics
                    .slow_consumer_disconnects
                    .fetch_add(1, Ordering::Relaxed);
            }
            Close
        })
    }

    /// Takes the mailbox's events into the topic logs and schedules a pass over the
    /// subscribers of each touched topic.
    fn deliver_published(&mut self) {
        self.mailbox.take_all(&mut self.inbox);
        if self.inbox.is_empty() {
            return;
        }
        self.touched.clear();
        for published in self.inbox.drain(..) {
            self.topics.append(&published, &mut self.touched);
        }
        for &topic in &self.touched {
            match self.passes.iter_mut().find(|pass| pass.topic == topic) {
                // Subscribers already visited in this pass must be visited again.
                Some(pass) => pass.again |= pass.next_slot > 0,
                None => self.passes.push(Pass {
                    topic,
                    next_slot: 0,
                    again: false,
                }),
            }
        }
    }

    /// Continues the fan-out passes for up to `budget` subscribers; true when work remains.
    fn advance_passes(&mut self, mut budget: usize) -> bool {
        if self.passes.is_empty() {
            return false;
        }
        let now = self.now_ms();
        let mut index = 0;
        while index < self.passes.len() && budget > 0 {
            let pass = &mut self.passes[index];
            let end = self.topics.slot_end(pass.topic);
            while pass.next_slot < end && budget > 0 {
                let slot = pass.next_slot;
                pass.next_slot += 1;
                let Some(key) = self.topics.subscriber_at(pass.topic, slot) else {
                    continue;
                };
                budget -= 1;
                let Some(connection) = self.connections.get_mut(key) else {
                    continue;
                };
                if let Err(lagging) =
                    flush_stream(connection, &self.topics, &mut self.counters, now)
                {
                    if lagging {
                        self.app
                            .metrics
                            .slow_consumer_disconnects
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    self.to_close.push(key);
                }
            }
            if pass.next_slot < end {
                break;
            }
            // Every subscriber has been visited (and checked for lag) since the pass began.
            self.to_trim.push(pass.topic);
            if pass.again {
                pass.again = false;
                pass.next_slot = 0;
                index += 1;
            } else {
                self.passes.swap_remove(index);
            }
        }
        self.close_pending();
        for topic in self.to_trim.drain(..) {
            self.topics.trim(topic);
        }
        !self.passes.is_empty()
    }

    fn close_pending(&mut self) {
        let mut to_close = std::mem::take(&mut self.to_close);
        to_close.sort_unstable();
        to_close.dedup();
        for key in to_close.drain(..) {
            self.close(key);
        }
        self.to_close = to_close;
    }

    /// Timers: request deadlines, lingering deadlines, heartbeats, paused accepts.
    fn on_tick(&mut self) {
        if self.accept_paused {
            self.accept_paused = false;
            self.accept();
        }
        let now = Instant::now();
        let now_ms = self.now_ms();
        let heartbeat_ms = self.app.config.heartbeat.as_millis().min(u32::MAX as u128) as u32;
        let mut timed_out = Vec::new();
        for (key, connection) in self.connections.iter_mut() {
            match &mut connection.state {
                State::Exchanging(exchange) if now >= exchange.deadline => {
                    timed_out.push(key);
                }
                State::Lingering { deadline } if now >= *deadline => self.to_close.push(key),
                State::Streaming(stream)
                    if heartbeat_ms > 0
                        && !stream.blocked
                        && stream.prefix.is_empty()
                        && now_ms.wrapping_sub(stream.last_write_ms) >= heartbeat_ms
                        && stream.subscriber.pending_bytes(&self.topics) == 0 =>
                {
                    stream.prefix = PendingBytes::Static(HEARTBEAT, 0);
                    if let Err(lagging) =
                        flush_stream(connection, &self.topics, &mut self.counters, now_ms)
                    {
                        debug_assert!(!lagging);
                        self.to_close.push(key);
                    }
                }
                _ => {}
            }
        }
        for key in timed_out {
            self.request_timed_out(key);
        }
        self.close_pending();
    }

    /// `408` for a request not complete in time; an idle keep-alive connection just closes.
    fn request_timed_out(&mut self, key: usize) {
        let State::Exchanging(exchange) = &mut self.connections[key].state else {
            return;
        };
        let idle = exchange.served > 0
            && exchange.input.is_empty()
            && matches!(exchange.phase, Phase::Head);
        if idle || exchange.close_after_output {
            self.to_close.push(key);
            return;
        }
        self.respond_error(key, HttpError::new(408, "request not complete in time"), 1);
        if self.drive_exchange(key).is_err() {
            self.to_close.push(key);
        }
    }

    /// Stops accepting and plans the spread-out closing of this loop's streams.
    fn start_drain(&mut self) -> Drain {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let streams: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| matches!(c.state, State::Streaming(_)))
            .map(|(key, _)| key)
            .collect();
        Drain {
            started: Instant::now(),
            period: self.app.config.drain,
            total: streams.len(),
            streams,
        }
    }

    /// Closes the share of streams due by now, and idle exchanges; true when all are closed.
    fn drain_step(&mut self, drain: &mut Drain) -> bool {
        let elapsed = drain.started.elapsed();
        let due = if elapsed >= drain.period || drain.period.is_zero() {
            drain.total
        } else {
            (drain.total as f64 * elapsed.as_secs_f64() / drain.period.as_secs_f64()).ceil()
                as usize
        };
        while drain.total - drain.streams.len() < due {
            let Some(key) = drain.streams.pop() else {
                break;
            };
            self.close(key);
        }
        let idle: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| match &c.state {
                State::Exchanging(e) => {
                    e.output.is_empty() && e.input.is_empty() && matches!(e.phase, Phase::Head)
                }
                State::Streaming(_) => false,
                State::Lingering { .. } => true,
            })
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close(key);
        }
        if elapsed >= drain.period + LINGER {
            let all: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
            for key in all {
                self.close(key);
            }
        }
        self.connections.is_empty()
    }
}

/// A fan-out pass over one topic's subscribers.
struct Pass {
    /// The topic.
    topic: usize,
    /// The next subscriber slot to visit.
    next_slot: usize,
    /// Events arrived after the pass began: visit everyone again once it ends.
    again: bool,
}

/// Progress of a graceful shutdown in one loop.
struct Drain {
    started: Instant,
    period: Duration,
    total: usize,
    streams: Vec<usize>,
}

/// Writes a stream's pending bytes. `Err(true)`: it lags and must be disconnected (slow
/// consumer); `Err(false)`: the socket failed. A free function so the loop can call it while it
/// iterates a topic's subscribers (disjoint borrows of the loop's fields).
fn flush_stream(
    connection: &mut Connection,
    topics: &Topics,
    counters: &mut LoopCounters,
    now_ms: u32,
) -> Result<(), bool> {
    let State::Streaming(stream) = &mut connection.state else {
        return Ok(());
    };
    // Checked before writing too: a lagging subscriber's cursor may point at an event already
    // trimmed from the log, and nothing may be written from such a cursor.
    if stream.subscriber.is_lagging(topics) {
        return Err(true);
    }
    if !stream.blocked {
        let socket = &mut connection.socket;
        let flushed = stream
            .subscriber
            .flush(topics, &mut stream.prefix, |slices| {
                socket.write_vectored(slices)
            })
            .map_err(|_| false)?;
        counters.deliveries += flushed.events;
        counters.bytes_written += flushed.bytes;
        if flushed.bytes > 0 {
            stream.last_write_ms = now_ms;
        }
        stream.blocked = flushed.blocked;
    }
    if stream.subscriber.is_lagging(topics) {
        return Err(true);
    }
    Ok(())
}
