//! One event loop: a thread with its own `mio::Poll`, its share of the connections, and its own
//! copy of the topic logs.
//!
//! Tokens: [`LISTENER`] (the loop's own listening socket, one of a `SO_REUSEPORT` group when the
//! server runs several loops, accepted from until `WouldBlock`),
//! [`FEED`] (the broker's wake-up: events or publish answers to take), and one per connection
//! (slab key + 2). Connections are registered for both readable and writable readiness once.
//! mio's readiness is edge-triggered, so a writable event only comes after a write hit a full
//! buffer, and keeping the interest costs nothing; re-registering on every full buffer would cost
//! a system call each time.
//!
//! Each iteration: poll; drive the ready connections; take what the broker fed this loop
//! (events into the topic logs, publish answers to their connections); continue the fan-out
//! passes for a budget of subscribers; on a tick, timers. The rooms:
//! - `accept`: accepting, the limits on sockets and streams and their `503`, pausing at the fd
//!   limit.
//! - `exchange`: the request/response driver and what the loop does with its outcomes.
//! - `opening`: subscribing, replay from the broker beyond the logs, the stream's head.
//! - `delivery`: the feed, fan-out passes, stream writes, heartbeats.
//! - `passes`: the order of fan-out visits, fair between topics; the loop's backlog.
//! - `backpressure`: publishes wait while any loop's backlog is over `--max-backlog`.
//! - `drain`: graceful shutdown.

mod accept;
pub use accept::{LINGERING_REFUSALS, SHORT_REQUEST_HEADROOM, keep_reserve_descriptor};
mod backpressure;
mod delivery;
mod drain;
pub mod exchange;
mod opening;
mod passes;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

pub use delivery::PASS_BUDGET;

use crate::broker::Broker;
use crate::connection::{Connection, State};
use crate::fanout::{Retention, Topics};
use crate::feed::{Feeds, Inbox, LoopFeed};
use crate::log::RateLimited;
use crate::metrics::{LoopCounters, Metrics};
use crate::routes::Router;
use crate::sys;

/// The listening socket.
pub const LISTENER: Token = Token(0);
/// The broker's wake-up.
pub const FEED: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// Bytes read per `read` call into the loop's shared read buffer.
const READ_BUFFER: usize = 16 * 1024;
/// How long a closing connection may linger to let the client read its final response.
const LINGER: Duration = Duration::from_secs(2);
/// How often the loop looks at timers when nothing happens.
const TICK: Duration = Duration::from_millis(250);

/// One event loop.
pub struct EventLoop {
    poll: Poll,
    /// This loop's listening socket (`None` once draining).
    listener: Option<TcpListener>,
    /// When accepting hit the open-file limit; accepting resumes at the next tick.
    accept_paused: bool,
    /// Accept failures repeat on every tick while they last: one line per interval.
    accept_warning: RateLimited,
    connections: Slab<Connection>,
    topics: Topics,
    router: Arc<Router>,
    broker: Arc<dyn Broker>,
    /// Where the broker queues this loop's events and publish answers.
    feed: Arc<LoopFeed>,
    /// What was taken from the feed (capacity kept between iterations).
    inbox: Inbox,
    /// Topics touched by the current batch of events.
    touched: Vec<usize>,
    /// Connections to close once the current pass over subscribers is done.
    to_close: Vec<usize>,
    /// Fan-out passes under way, one per topic at most, taking turns.
    passes: passes::Passes,
    /// Rounds of passes that just completed, to trim once laggards are closed.
    rounds_done: Vec<passes::RoundDone>,
    /// Every loop's feed, to see their backlogs before publishing.
    feeds: Feeds,
    /// Publishes waiting for the backlog to come down.
    parked: backpressure::Parked,
    /// The one read buffer of this loop: requests are parsed from it, and only the unparsed
    /// rest of a request that arrived in pieces is copied to its connection.
    read_buffer: Box<[u8]>,
    counters: LoopCounters,
    /// Number given to the next publish handed to the broker (see `feed::Ticket`).
    next_serial: u64,
    max_connections: u64,
    started: Instant,
    stop: Arc<AtomicBool>,
    /// `retry:` and the opening comment, written at the start of every stream.
    preamble: Arc<[u8]>,
}

impl EventLoop {
    /// A loop serving `listener`, fed through `feed` (whose waker must belong to `poll`),
    /// publishing through `broker`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        mut listener: TcpListener,
        feed: Arc<LoopFeed>,
        feeds: Feeds,
        router: Arc<Router>,
        broker: Arc<dyn Broker>,
        max_connections: u64,
        stop: Arc<AtomicBool>,
    ) -> io::Result<EventLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let config = &router.config;
        let retention = Retention {
            history: config.history,
            history_bytes: config.history_bytes,
            max_pending: config.max_pending,
            memory: config.history_memory,
            topic_ttl_ms: config.topic_ttl.as_millis().min(u64::MAX as u128) as u64,
        };
        let preamble = format!("retry: {}\n: stream open\n\n", config.retry.as_millis());
        Ok(EventLoop {
            poll,
            listener: Some(listener),
            accept_paused: false,
            accept_warning: RateLimited::default(),
            connections: Slab::new(),
            topics: Topics::new(retention, broker.known_from()),
            router,
            broker,
            feed,
            inbox: Inbox::default(),
            touched: Vec::new(),
            to_close: Vec::new(),
            passes: passes::Passes::default(),
            rounds_done: Vec::new(),
            feeds,
            parked: backpressure::Parked::default(),
            read_buffer: vec![0; READ_BUFFER].into_boxed_slice(),
            counters: LoopCounters::default(),
            next_serial: 0,
            max_connections,
            started: Instant::now(),
            stop,
            preamble: Arc::from(preamble.into_bytes()),
        })
    }

    /// Runs until shutdown is requested and every connection is closed.
    pub fn run(mut self) -> io::Result<()> {
        self.feed.enter_loop_thread();
        let mut events = Events::with_capacity(1024);
        let mut drain: Option<drain::Drain> = None;
        let heartbeat = self.router.config.heartbeat;
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
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    // The feed is taken every iteration; the wake-up only ended the poll.
                    FEED => {}
                    Token(token) => {
                        let key = token - FIRST_CONNECTION;
                        if self.connections.contains(key) {
                            self.connection_ready(key, event.is_writable());
                        }
                    }
                }
            }
            self.topics
                .set_now(self.started.elapsed().as_millis() as u64);
            // Publishes answered on this thread queue their answers (and, from the in-process
            // broker, their events) in this loop's own feed without a wake-up.
            self.take_feed();
            busy = self.advance_passes(PASS_BUDGET);
            self.report_backlog();
            self.feed.stats.report_topics(&self.topics);
            self.feed.stats.set_connections(self.connections.len());
            self.release_parked();
            busy |= self.feed.has_pending();
            if last_tick.elapsed() >= tick || drain.is_some() {
                last_tick = Instant::now();
                self.on_tick();
                if drain.is_none() && self.stopping() {
                    drain = Some(self.start_drain());
                }
                if let Some(drain) = &mut drain {
                    if self.drain_step(drain) {
                        self.router.metrics.add(&mut self.counters);
                        return Ok(());
                    }
                }
            }
            self.router.metrics.add(&mut self.counters);
        }
    }

    fn metrics(&self) -> &Metrics {
        &self.router.metrics
    }

    /// True once shutdown was asked for (by the handle or a signal).
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || sys::terminate_requested()
    }

    /// Loop time in ms, wrapping after 49 days (compared with `wrapping_sub` only).
    fn now_ms(&self) -> u32 {
        self.started.elapsed().as_millis() as u32
    }

    /// Loop time in ms, not wrapping (for deadlines that may lie years ahead).
    fn loop_time_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn connection_ready(&mut self, key: usize, writable: bool) {
        let keep = match self.connections[key].state {
            State::Exchanging(_) => self.drive_exchange(key),
            State::Streaming(_) => self.drive_stream(key, writable),
            // Waiting for the broker's replay: input is discarded as on a stream.
            State::Lingering { .. } | State::Replaying(_) => self.drive_lingering(key),
        };
        if !keep {
            self.close(key);
        }
    }

    /// Removes a connection; its socket closes when dropped (which also removes it from epoll).
    fn close(&mut self, key: usize) {
        let Some(connection) = self.connections.try_remove(key) else {
            return;
        };
        let metrics = &self.router.metrics;
        metrics.sockets_open.fetch_sub(1, Ordering::Relaxed);
        match &connection.state {
            State::Streaming(stream) => {
                self.topics.unsubscribe(&stream.subscriber);
                metrics.subscribers.fetch_sub(1, Ordering::Relaxed);
                if stream.watches_stats {
                    metrics.stats_watchers.fetch_sub(1, Ordering::Relaxed);
                }
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
            State::Exchanging(_) => {
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
            State::Replaying(pending) => {
                self.topics.unsubscribe(&pending.subscriber);
                // Its stream slot was taken when it asked for the replay.
                metrics.subscribers.fetch_sub(1, Ordering::Relaxed);
                metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            }
            State::Lingering { .. } => {}
        }
    }

    /// Closes the connections queued for closing (each once).
    fn close_pending(&mut self) {
        if self.to_close.is_empty() {
            return;
        }
        let mut to_close = std::mem::take(&mut self.to_close);
        to_close.sort_unstable();
        to_close.dedup();
        for key in to_close.drain(..) {
            self.close(key);
        }
        self.to_close = to_close;
    }

    /// Timers: request deadlines, lingering deadlines, streams whose token expired or whose
    /// lifetime is over, heartbeats, paused accepts, publishes parked too long, idle topics.
    fn on_tick(&mut self) {
        self.resume_accepting();
        self.expire_parked();
        self.topics.sweep();
        let now = Instant::now();
        let now_ms = self.loop_time_ms();
        let mut timed_out = Vec::new();
        let (mut expired, mut lived) = (0, 0);
        for (key, connection) in self.connections.iter() {
            match &connection.state {
                // A publish waiting for the broker is not the client's delay.
                State::Exchanging(exchange)
                    if now >= exchange.deadline && !exchange.awaits_broker() =>
                {
                    timed_out.push(key);
                }
                State::Lingering { deadline } if now >= *deadline => self.to_close.push(key),
                // The client must come back (with a fresh token, if that is why).
                State::Streaming(stream) if now_ms >= stream.closes_at_ms => {
                    self.to_close.push(key);
                    if stream.token_expires {
                        expired += 1;
                    } else {
                        lived += 1;
                    }
                }
                _ => {}
            }
        }
        let metrics = &self.router.metrics;
        metrics
            .token_expiry_closes
            .fetch_add(expired, Ordering::Relaxed);
        metrics.lifetime_closes.fetch_add(lived, Ordering::Relaxed);
        let heartbeat_ms = self
            .router
            .config
            .heartbeat
            .as_millis()
            .min(u32::MAX as u128) as u32;
        self.send_heartbeats(heartbeat_ms);
        for key in timed_out {
            self.request_timed_out(key);
        }
        self.close_pending();
    }
}
