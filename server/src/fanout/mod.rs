//! Fan-out: each loop's topic logs and its subscribers' cursors into them.
//!
//! Every event loop keeps a [`TopicLog`] per topic (`log.rs`): a queue of
//! [`EncodedEvent`](crate::event::EncodedEvent)s
//! (shared wire bytes, never copied) with running byte offsets. A [`Subscriber`]
//! (`subscriber.rs`) holds only a cursor per topic (the sequence number of its next event there)
//! and how much of its first pending event it has written. Delivering is a vectored write
//! straight from the shared buffers, starting at the cursor; nothing is copied or allocated per
//! subscriber.
//!
//! The same log serves replay: it keeps the last `history` events (and at most `history_bytes`),
//! and a subscriber that reconnects with `Last-Event-ID` starts its cursor just after that id.
//! When events after that id are no longer retained, the subscription says so ([`Replay::Gap`]),
//! and the loop asks the broker for what it may hold beyond the logs (a backplane's store)
//! before the stream opens.
//!
//! Replay and live delivery join by an id rule: a subscriber takes only ids above the newest one
//! it has (its `Last-Event-ID`, or the broker's newest id when it connected without one). Events
//! that reach a loop late (a backplane delivers after it answered the publisher) are appended
//! behind the cursor of a subscriber that already has them, and skipped: no duplicate, no gap.
//!
//! Slow consumers: a subscriber whose socket is full and which is more than `max_pending` bytes
//! behind the newest event published since it connected is *lagging*: the loop disconnects it.
//! A log keeps events outside the history window only while they are within `max_pending` of
//! the tail as it was when the last pass over the subscribers began, so a subscriber that keeps
//! up is never cut off for the time a pass takes. A slow subscriber costs no memory of its own,
//! and a stuck one never holds up the others: they write from the same buffers.
//!
//! Bounds over all topics: every retained event counts against `memory` (past it, the oldest
//! events no subscriber is still owed go first, from the least recently published or subscribed
//! topics; `memory.rs`), and a topic that has had neither events nor subscribers for
//! `topic_ttl_ms` is forgotten with its history ([`Topics::sweep`]).

mod log;
mod memory;
mod subscriber;

use std::collections::HashMap;

use slab::Slab;

use log::NO_TOPIC;
pub use log::{Replay, TopicLog};
use subscriber::Cursor;
pub use subscriber::{Flushed, PendingBytes, Subscriber};

use crate::broker::Published;
use crate::event::EventId;

/// Most topics one subscription may name.
pub const MAX_TOPICS_PER_SUBSCRIBER: usize = 16;

/// What a retained event costs beyond its wire bytes: its log entry and the shared buffer's
/// header (counted against the memory budget, so the budget is what the process really holds).
const ENTRY_OVERHEAD: u64 = 48;

/// Topic slots looked at per [`Topics::sweep`] call, so forgetting idle topics never stalls a
/// loop however many topics it knows.
const SWEEP_SLOTS: usize = 4096;

/// How long a log is kept, and how far a subscriber may fall behind.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events kept per topic for replay.
    pub history: usize,
    /// Bytes kept per topic for replay.
    pub history_bytes: u64,
    /// Bytes a subscriber may fall behind the newest event before it is disconnected.
    pub max_pending: u64,
    /// Bytes of retained events over all topics (wire bytes plus bookkeeping).
    pub memory: u64,
    /// A topic with neither events nor subscribers for this long is forgotten (ms).
    pub topic_ttl_ms: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            history: 1024,
            history_bytes: 1 << 20,
            max_pending: 1 << 20,
            memory: 256 << 20,
            topic_ttl_ms: 600_000,
        }
    }
}

/// A subscription names more topics than [`MAX_TOPICS_PER_SUBSCRIBER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at most 16 topics per subscription")]
pub struct TooManyTopics;

/// All topic logs of one event loop.
#[derive(Debug)]
pub struct Topics {
    logs: Slab<TopicLog>,
    by_name: HashMap<Box<str>, usize>,
    retention: Retention,
    /// Bytes of retained events, counted as for [`Retention::memory`].
    retained_bytes: u64,
    /// Topics holding events that may be evicted, least recently used first (keys into
    /// `logs`; `memory.rs`).
    lru_head: u32,
    lru_tail: u32,
    /// What this loop cannot vouch for: ids up to this one may belong to events it never saw
    /// (from before it started) or has forgotten with their topic. A new log starts with this
    /// as its floor.
    unknown_through: EventId,
    /// The loop's clock (ms), set by the loop; stamps appends and departures for the TTL.
    now_ms: u64,
    /// Where the next [`Topics::sweep`] looks.
    sweep_cursor: usize,
    /// Events dropped to keep within the memory budget.
    evicted: u64,
    /// Topics forgotten after the TTL.
    expired: u64,
    /// Topics whose events were all owed when eviction reached them: a round of their pass
    /// tells which are still owed ([`Topics::take_rounds_wanted`]).
    rounds_wanted: Vec<usize>,
}

impl Topics {
    /// Empty logs that keep events as `retention` says. `known_from`: ids up to this one were
    /// assigned before this loop existed (the broker's newest id at start).
    pub fn new(retention: Retention, known_from: EventId) -> Topics {
        Topics {
            logs: Slab::new(),
            by_name: HashMap::new(),
            retention,
            retained_bytes: 0,
            lru_head: NO_TOPIC,
            lru_tail: NO_TOPIC,
            unknown_through: known_from,
            now_ms: 0,
            sweep_cursor: 0,
            evicted: 0,
            expired: 0,
            rounds_wanted: Vec::new(),
        }
    }

    /// Number of topics this loop knows.
    pub fn len(&self) -> usize {
        self.logs.len()
    }

    /// True when this loop knows no topic.
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Bytes of retained events (wire bytes plus bookkeeping).
    pub fn retained_bytes(&self) -> u64 {
        self.retained_bytes
    }

    /// Events dropped to stay within the memory budget, and topics forgotten after the TTL.
    pub fn evicted_and_expired(&self) -> (u64, u64) {
        (self.evicted, self.expired)
    }

    /// Sets the loop's clock (ms since the loop started).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    fn topic_key(&mut self, name: &str) -> usize {
        if let Some(&key) = self.by_name.get(name) {
            return key;
        }
        let log = TopicLog::new(name.into(), self.unknown_through, self.now_ms);
        let key = self.logs.insert(log);
        self.by_name.insert(name.into(), key);
        key
    }

    /// Appends a published event to each of its topics, noting each topic in `touched` once;
    /// then keeps within the memory budget.
    pub fn append(&mut self, published: &Published, touched: &mut Vec<usize>) {
        let cost = published.event.len() as u64 + ENTRY_OVERHEAD;
        for name in &published.topics {
            let key = self.topic_key(name);
            self.logs[key].append(&published.event, self.now_ms);
            self.retained_bytes += cost;
            self.lru_touch(key);
            if !touched.contains(&key) {
                touched.push(key);
            }
        }
        self.evict_to_budget();
    }

    /// Moves into `out` the topics that want a round of their pass: eviction found all their
    /// events owed, and only a round over their subscribers can tell which still are.
    pub fn take_rounds_wanted(&mut self, out: &mut Vec<usize>) {
        out.append(&mut self.rounds_wanted);
    }

    /// Connection keys subscribed to topic `key`.
    pub fn subscribers(&self, key: usize) -> impl Iterator<Item = usize> + '_ {
        self.logs[key].subscribers.iter().map(|(_, &conn)| conn)
    }

    /// One past the largest subscriber slot of topic `key` (0 if there is no such topic), for
    /// passes that visit subscribers a few at a time with [`Topics::subscriber_at`].
    pub fn slot_end(&self, key: usize) -> usize {
        self.logs
            .get(key)
            .map_or(0, |log| log.subscribers.capacity())
    }

    /// The connection in subscriber slot `slot` of topic `key`, if any.
    pub fn subscriber_at(&self, key: usize, slot: usize) -> Option<usize> {
        self.logs.get(key)?.subscribers.get(slot).copied()
    }

    /// Topic `key`'s tail offset now (0 if there is no such topic): a pass records it when it
    /// begins, and trims against it when it ends.
    pub fn tail_offset(&self, key: usize) -> u64 {
        self.logs.get(key).map_or(0, |log| log.tail_offset)
    }

    /// The end of a round that visited every subscriber of topic `key`: drops what the topic no
    /// longer needs (events outside the history window that are more than `max_pending` behind
    /// `pass_tail`, the tail when the round began; see the module docs), and notes that no
    /// subscriber is owed an event before `owed_from` (the lowest cursor the round saw) any more,
    /// so the memory budget may evict those.
    pub fn trim(&mut self, key: usize, pass_tail: u64, owed_from: u64) {
        let retention = self.retention;
        while self
            .logs
            .get(key)
            .is_some_and(|log| log.oldest_is_droppable(&retention, pass_tail))
        {
            self.drop_oldest(key);
        }
        if self.logs.contains(key) {
            self.round_done(key, owed_from);
        }
    }

    /// Subscribes connection `conn` to `names`. With `last_event_id`, the subscriber starts with
    /// every retained event of those topics whose id is larger (and is told whether that is all
    /// of them); without it, at the next event. Either way it takes only events with ids above
    /// `last_event_id` (or above `newest_id`, the broker's newest acknowledged id, when there is
    /// none or it is larger: a client's id from the future must not silence the stream).
    pub fn subscribe(
        &mut self,
        conn: usize,
        names: &[&str],
        last_event_id: Option<EventId>,
        newest_id: EventId,
    ) -> Result<(Subscriber, Replay), TooManyTopics> {
        if names.len() > MAX_TOPICS_PER_SUBSCRIBER {
            return Err(TooManyTopics);
        }
        let retention = self.retention;
        let mut replay = if last_event_id.is_some() {
            Replay::Complete
        } else {
            Replay::Live
        };
        let cursors = names
            .iter()
            .map(|name| {
                let topic = self.topic_key(name);
                let log = &mut self.logs[topic];
                let next_seq = match last_event_id {
                    Some(id) => {
                        let (start, topic_replay) = log.replay_from(id, &retention);
                        if topic_replay == Replay::Gap {
                            replay = Replay::Gap;
                        }
                        start
                    }
                    None => log.end_seq(),
                };
                let slot = log.subscribers.insert(conn);
                log.owe_from(next_seq);
                let cursor = Cursor {
                    topic: topic as u32,
                    slot: slot as u32,
                    next_seq,
                    live_from: log.tail_offset,
                };
                // A subscription is a use of the topic: its history is kept longer.
                self.lru_touch(topic);
                cursor
            })
            .collect();
        let skip_through = last_event_id.map_or(newest_id, |id| id.min(newest_id));
        Ok((Subscriber::new(cursors, skip_through, self), replay))
    }

    /// Vouches for nothing up to `id` any more (events up to it were lost on their way to this
    /// loop): replay from before it is told as a gap in every topic, known or new.
    pub fn vouch_only_after(&mut self, id: EventId) {
        self.unknown_through = self.unknown_through.max(id);
        for (_, log) in self.logs.iter_mut() {
            log.floor_id = log.floor_id.max(id);
        }
    }

    /// Removes a subscriber, and any topic left with neither subscribers nor events.
    pub fn unsubscribe(&mut self, subscriber: &Subscriber) {
        for cursor in subscriber.cursors.iter() {
            let key = cursor.topic as usize;
            let log = &mut self.logs[key];
            log.subscribers.remove(cursor.slot as usize);
            log.idle_since_ms = self.now_ms;
            if log.subscribers.is_empty() {
                if log.entries.is_empty() {
                    self.forget(key);
                } else {
                    // Nobody is owed its events any more: all of them may be evicted.
                    self.lru_relink(key);
                }
            }
        }
    }

    /// Forgets topic `key` and its events; ids up to its newest can no longer be vouched for.
    fn forget(&mut self, key: usize) {
        while !self.logs[key].entries.is_empty() {
            self.drop_oldest(key);
        }
        let log = self.logs.remove(key);
        self.unknown_through = self.unknown_through.max(log.last_id());
        self.by_name.remove(&log.name);
        // Give memory back after a wave of topics has gone (a map only ever grows otherwise).
        if self.by_name.capacity() > 64 && self.by_name.len() < self.by_name.capacity() / 4 {
            self.by_name.shrink_to_fit();
        }
    }

    /// Forgets topics that have had neither events nor subscribers for the topic TTL, looking
    /// at a bounded number of topic slots per call (call it every tick).
    pub fn sweep(&mut self) {
        let slots = self.logs.capacity();
        if slots == 0 {
            return;
        }
        let ttl = self.retention.topic_ttl_ms;
        for _ in 0..SWEEP_SLOTS.min(slots) {
            let key = self.sweep_cursor % slots;
            self.sweep_cursor = key + 1;
            let expired = self.logs.get(key).is_some_and(|log| {
                log.subscribers.is_empty() && self.now_ms.saturating_sub(log.idle_since_ms) >= ttl
            });
            if expired {
                self.forget(key);
                self.expired += 1;
            }
        }
        if self.logs.is_empty() && self.logs.capacity() > 1024 {
            // Every topic is gone: return the slab's memory too.
            self.logs = Slab::new();
            self.sweep_cursor = 0;
        }
    }
}

#[cfg(test)]
mod tests;
