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
use std::time::Instant;

use super::EventLoop;
use crate::connection::{Connection, State};
use crate::event::EventId;
use crate::fanout::{PendingBytes, Topics};
use crate::metrics::{LoopCounters, Metrics};
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
        if inbox.lost_through != 0 {
            // Before the events queued with it: no stream may get an event past the loss.
            self.end_streams_after_loss(inbox.lost_through);
            inbox.lost_through = 0;
        }
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
            self.schedule_wanted_rounds();
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

    /// Events up to `through` will never reach this loop: the logs vouch for nothing up to it,
    /// and every stream (and every one waiting for a replay) ends now, so its client reconnects
    /// with `Last-Event-ID` and replays from the broker or is told of the gap.
    fn end_streams_after_loss(&mut self, through: EventId) {
        self.topics.vouch_only_after(through);
        let streams: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| matches!(c.state, State::Streaming(_) | State::Replaying(_)))
            .map(|(key, _)| key)
            .collect();
        for key in streams {
            self.close(key);
        }
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
    pub(super) fn flush_stream(&mut self, key: usize) -> bool {
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
        self.passes
            .advance(budget, topics, &mut rounds, |key, topic| {
                let connection = connections.get_mut(key)?;
                if !stays_open(write_stream(connection, topics, counters, now), metrics) {
                    to_close.push(key);
                    return None;
                }
                match &connection.state {
                    State::Streaming(stream) => stream.subscriber.next_seq_in(topic),
                    _ => None,
                }
            });
        self.close_pending();
        // Every subscriber has been visited (and checked for lag) since these rounds began.
        for round in rounds.drain(..) {
            self.topics.trim(round.topic, round.tail, round.owed_from);
        }
        self.rounds_done = rounds;
        self.schedule_wanted_rounds();
        !self.passes.is_empty()
    }

    /// Schedules a round over each topic the memory budget found all owed, so the next round's
    /// end says what its subscribers still need (see `fanout/memory.rs`).
    fn schedule_wanted_rounds(&mut self) {
        let mut wanted = std::mem::take(&mut self.touched);
        wanted.clear();
        self.topics.take_rounds_wanted(&mut wanted);
        if !wanted.is_empty() {
            let now = Instant::now();
            for &topic in &wanted {
                self.passes
                    .schedule(topic, self.topics.tail_offset(topic), now);
            }
        }
        self.touched = wanted;
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
        return cut_off(connection);
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
        return cut_off(connection);
    }
    StreamHealth::Open
}

/// A lagging stream is closed with a reset, so the kernel frees what its send queue holds at
/// once (a stuck client would otherwise leave it pinned in an orphaned socket for minutes).
fn cut_off(connection: &Connection) -> StreamHealth {
    let _ = sys::reset_on_close(&connection.socket);
    StreamHealth::Lagging
}
