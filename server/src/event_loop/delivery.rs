//! Delivery: taking what the broker fed this loop, fan-out passes over each touched topic's
//! subscribers (`passes.rs` decides the order), streams' writes, and heartbeats on idle streams.
//!
//! The passes visit at most [`PASS_BUDGET`] subscribers before the loop polls again, so requests
//! (publishes above all) are served while a pass over thousands of subscribers is under way;
//! events that arrive meanwhile join the same writes, so under load each write carries several
//! events. Subscribers that fell too far behind are disconnected, and a topic's log is trimmed
//! only at the end of a round, when every subscriber has been checked.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use super::EventLoop;
use crate::broker::{OlderEvents, ReplayReply, ReplayRequest};
use crate::connection::{Connection, PendingStream, State, Stream};
use crate::console;
use crate::event::EncodedEvent;
use crate::fanout::{PendingBytes, Replay, Subscriber, Topics};
use crate::feed::Ticket;
use crate::metrics::{LoopCounters, Metrics};
use crate::params::Subscription;
use crate::sys;

/// Subscribers a fan-out pass visits before the loop looks at its sockets again (about 1 ms of
/// writes on this machine).
pub const PASS_BUDGET: usize = 128;

/// The comment written on idle streams.
const HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// How a stream stands after a write attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamHealth {
    /// Still open.
    Open,
    /// Fell further behind than it may: disconnect it as a slow consumer.
    Lagging,
    /// The socket failed.
    Broken,
}

impl EventLoop {
    /// Takes what the broker queued for this loop: events go into the topic logs (with a pass
    /// scheduled over each touched topic), answers go to the publishers waiting for them, and
    /// replay answers open the streams waiting for them (after the events queued before them).
    pub(super) fn take_feed(&mut self) {
        let mut inbox = std::mem::take(&mut self.inbox);
        self.feed.take_all(&mut inbox);
        if !inbox.events.is_empty() {
            self.touched.clear();
            for published in inbox.events.drain(..) {
                self.topics.append(&published, &mut self.touched);
            }
            let now = Instant::now();
            for &topic in &self.touched {
                self.passes
                    .schedule(topic, self.topics.tail_offset(topic), now);
            }
        }
        for completion in inbox.completions.drain(..) {
            self.complete_publish(completion.ticket, completion.result);
        }
        for answer in inbox.replays.drain(..) {
            self.complete_replay(answer.ticket, answer.older);
        }
        self.inbox = inbox;
        self.close_pending();
    }

    /// Turns an exchange into an event stream: response head, preamble, then events (a replay
    /// first when the client sent `Last-Event-ID`). When the loop's logs cannot vouch for that
    /// id, the broker is asked for what came before it, and the stream opens when the answer
    /// arrives ([`EventLoop::complete_replay`]). False: close the connection now.
    pub(super) fn start_stream(&mut self, key: usize, subscription: Subscription) -> bool {
        let names: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
        // Replay and live join by id: the subscriber takes only ids above the one it has, or
        // above the broker's newest, whatever this loop has received so far.
        let subscribed = self.topics.subscribe(
            key,
            &names,
            subscription.last_event_id,
            self.broker.newest_id(),
        );
        let Ok((subscriber, replay)) = subscribed else {
            // The router allows no more topics than a subscriber may have.
            return false;
        };
        let State::Exchanging(exchange) = &self.connections[key].state else {
            self.topics.unsubscribe(&subscriber);
            return true;
        };
        // Responses already queued on this connection (pipelined) go first.
        let output = exchange.output[exchange.written..].to_vec();
        if let (Replay::Gap, Some(after)) = (replay, subscription.last_event_id) {
            // The subscriber stays registered meanwhile: what arrives from now on is held for it.
            let serial = self.next_serial;
            self.next_serial += 1;
            let request = ReplayRequest {
                topics: names.iter().map(|&name| Box::from(name)).collect(),
                after,
            };
            self.connections[key].state = State::Replaying(Box::new(PendingStream {
                serial,
                subscription,
                subscriber,
                output,
            }));
            let reply = ReplayReply::to_loop(self.feed.clone(), Ticket { key, serial });
            self.broker.replay(request, reply);
            return true;
        }
        self.open_stream(key, subscription, subscriber, replay, output, &[])
    }

    /// The broker answered a replay request: the stream opens with the broker's events when
    /// they reach further back than the loop's own (or are complete), the loop's otherwise.
    pub(super) fn complete_replay(&mut self, ticket: Ticket, older: OlderEvents) {
        let key = ticket.key;
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if !matches!(&connection.state, State::Replaying(p) if p.serial == ticket.serial) {
            return;
        }
        // Replaced at once by `open_stream` (which sets the state before anything can close it).
        let placeholder = State::Lingering {
            deadline: Instant::now(),
        };
        let State::Replaying(pending) = std::mem::replace(&mut connection.state, placeholder)
        else {
            return;
        };
        let PendingStream {
            subscription,
            mut subscriber,
            output,
            ..
        } = *pending;
        let after = subscription.last_event_id.unwrap_or_default();
        let mut events = older.events;
        events.retain(|event| event.id > after);
        let local_first = subscriber.next_id(&self.topics);
        let from_broker = older.complete
            || events
                .first()
                .is_some_and(|event| local_first.is_none_or(|id| event.id < id));
        let (replay, events) = if from_broker {
            // Log events up to the newest the broker sent are in its answer: skip them.
            let through = events.last().map_or(after, |event| event.id).max(after);
            subscriber.skip_through(through, &self.topics);
            self.metrics()
                .backplane_replays
                .fetch_add(1, Ordering::Relaxed);
            let replay = if older.complete {
                Replay::Complete
            } else {
                Replay::Gap
            };
            (replay, events)
        } else {
            (Replay::Gap, Vec::new())
        };
        if !self.open_stream(key, subscription, subscriber, replay, output, &events) {
            self.to_close.push(key);
        }
    }

    /// Opens the stream: `output` (pipelined responses), the response head, the preamble, a gap
    /// event if asked for, `older` (events from the broker), then the subscriber's log events.
    /// False: close the connection now.
    fn open_stream(
        &mut self,
        key: usize,
        subscription: Subscription,
        subscriber: Subscriber,
        replay: Replay,
        output: Vec<u8>,
        older: &[EncodedEvent],
    ) -> bool {
        let older_bytes: usize = older.iter().map(EncodedEvent::len).sum();
        let mut head = output;
        head.reserve(256 + older_bytes);
        head.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
        );
        match replay {
            Replay::Live => {}
            Replay::Complete => head.extend_from_slice(b"Sse-Replay: complete\r\n"),
            Replay::Gap => head.extend_from_slice(b"Sse-Replay: gap\r\n"),
        }
        head.extend_from_slice(subscription.cors_headers.as_bytes());
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(&self.preamble);
        if replay == Replay::Gap {
            if subscription.gap_event {
                // Told in-band when asked: a named event (`EventSource` listeners for "gap"
                // see it, `onmessage` does not), without an id, so the client's last id stays
                // its own.
                let after = subscription.last_event_id.unwrap_or_default();
                head.extend_from_slice(format!("event: gap\ndata: {after}\n\n").as_bytes());
            }
            self.metrics().replay_gaps.fetch_add(1, Ordering::Relaxed);
        }
        for event in older {
            head.extend_from_slice(&event.wire);
        }
        if self.router.config.send_buffer > 0 {
            // Bounds the kernel memory a stuck subscriber can pin (autotuning grows it to
            // `tcp_wmem`'s maximum otherwise).
            let _ = sys::set_send_buffer(
                &self.connections[key].socket,
                self.router.config.send_buffer,
            );
        }
        let now = self.now_ms();
        let watches_stats = subscription
            .topics
            .iter()
            .any(|t| t == console::STATS_TOPIC);
        // The token's expiry, moved from the wall clock to loop time once, so the tick compares
        // two integers per stream.
        let closes_at_ms = match subscription.valid_until {
            None => u64::MAX,
            Some(until) => {
                let left = until
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_millis();
                self.loop_time_ms()
                    .saturating_add(left.min(u64::MAX as u128) as u64)
            }
        };
        self.connections[key].state = State::Streaming(Stream {
            subscriber,
            prefix: PendingBytes::Owned(head.into_boxed_slice(), 0),
            last_write_ms: now,
            blocked: false,
            watches_stats,
            closes_at_ms,
        });
        self.metrics().subscribers.fetch_add(1, Ordering::Relaxed);
        if watches_stats {
            self.metrics()
                .stats_watchers
                .fetch_add(1, Ordering::Relaxed);
        }
        self.flush_stream(key)
    }

    /// Handles readiness of a streaming connection: input is discarded (a client has nothing
    /// to say on a stream; EOF means it hung up), and pending bytes are written. False: close.
    pub(super) fn drive_stream(&mut self, key: usize, writable: bool) -> bool {
        let connection = &mut self.connections[key];
        loop {
            match connection.socket.read(&mut self.read_buffer) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if writable {
            if let State::Streaming(stream) = &mut connection.state {
                stream.blocked = false;
            }
            return self.flush_stream(key);
        }
        true
    }

    /// Writes what stream `key` has pending. False: close it (a write error, or it lags).
    fn flush_stream(&mut self, key: usize) -> bool {
        let now = self.now_ms();
        let health = write_stream(
            &mut self.connections[key],
            &self.topics,
            &mut self.counters,
            now,
        );
        stays_open(health, self.metrics())
    }

    /// Continues the fan-out passes for up to `budget` subscribers; true when work remains.
    pub(super) fn advance_passes(&mut self, budget: usize) -> bool {
        if self.passes.is_empty() {
            return false;
        }
        let now = self.now_ms();
        let mut rounds = std::mem::take(&mut self.rounds_done);
        let connections = &mut self.connections;
        let topics = &self.topics;
        let counters = &mut self.counters;
        let to_close = &mut self.to_close;
        let metrics = &self.router.metrics;
        self.passes.advance(budget, topics, &mut rounds, |key| {
            let Some(connection) = connections.get_mut(key) else {
                return;
            };
            if !stays_open(write_stream(connection, topics, counters, now), metrics) {
                to_close.push(key);
            }
        });
        self.close_pending();
        // Every subscriber has been visited (and checked for lag) since these rounds began.
        for round in rounds.drain(..) {
            self.topics.trim(round.topic, round.tail);
        }
        self.rounds_done = rounds;
        !self.passes.is_empty()
    }

    /// Writes a heartbeat comment to every stream idle for `heartbeat_ms` with nothing pending.
    pub(super) fn send_heartbeats(&mut self, heartbeat_ms: u32) {
        if heartbeat_ms == 0 {
            return;
        }
        let now_ms = self.now_ms();
        for (key, connection) in self.connections.iter_mut() {
            let State::Streaming(stream) = &mut connection.state else {
                continue;
            };
            if stream.blocked
                || !stream.prefix.is_empty()
                || now_ms.wrapping_sub(stream.last_write_ms) < heartbeat_ms
                || stream.subscriber.pending_bytes(&self.topics) != 0
            {
                continue;
            }
            stream.prefix = PendingBytes::Static(HEARTBEAT, 0);
            let health = write_stream(connection, &self.topics, &mut self.counters, now_ms);
            // A heartbeat goes only to a stream with nothing pending: it cannot be lagging.
            debug_assert!(health != StreamHealth::Lagging);
            if health != StreamHealth::Open {
                self.to_close.push(key);
            }
        }
    }
}

/// True when a stream stays open after a write; a lagging one is counted as a slow-consumer
/// disconnect.
fn stays_open(health: StreamHealth, metrics: &Metrics) -> bool {
    if health == StreamHealth::Lagging {
        metrics
            .slow_consumer_disconnects
            .fetch_add(1, Ordering::Relaxed);
    }
    health == StreamHealth::Open
}

/// Writes a stream's pending bytes. A free function so the loop can call it while it iterates a
/// topic's subscribers (disjoint borrows of the loop's fields).
fn write_stream(
    connection: &mut Connection,
    topics: &Topics,
    counters: &mut LoopCounters,
    now_ms: u32,
) -> StreamHealth {
    let State::Streaming(stream) = &mut connection.state else {
        return StreamHealth::Open;
    };
    // Checked before writing: a cursor may point at an event already dropped from the log, and
    // nothing may be written from such a cursor.
    if stream.subscriber.has_lost_events(topics) {
        return StreamHealth::Lagging;
    }
    if !stream.blocked {
        let socket = &mut connection.socket;
        let flushed = stream
            .subscriber
            .flush(topics, &mut stream.prefix, |slices| {
                socket.write_vectored(slices)
            });
        let Ok(flushed) = flushed else {
            return StreamHealth::Broken;
        };
        counters.deliveries += flushed.events;
        counters.bytes_written += flushed.bytes;
        if flushed.bytes > 0 {
            stream.last_write_ms = now_ms;
        }
        stream.blocked = flushed.blocked;
    }
    // Lag counts only while the socket is full: a subscriber whose kernel buffer still takes
    // bytes is not slow, however much a burst left it to write.
    if stream.subscriber.is_lagging(topics, stream.blocked) {
        return StreamHealth::Lagging;
    }
    StreamHealth::Open
}
