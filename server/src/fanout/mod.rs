//! Fan-out: each loop's topic logs and its subscribers' cursors into them.
//!
//! Every event loop keeps a [`TopicLog`] per topic: a queue of [`EncodedEvent`]s (shared wire
//! bytes, never copied) with running byte offsets. A [`Subscriber`] holds only a cursor per topic
//! (the sequence number of its next event there) and how much of its first pending event it has
//! written. Delivering is a vectored write straight from the shared buffers, starting at the
//! cursor; nothing is copied or allocated per subscriber.
//!
//! The same log serves replay: it keeps the last `history` events (and at most `history_bytes`),
//! and a subscriber that reconnects with `Last-Event-ID` starts its cursor just after that id.
//!
//! Replay and live delivery join by an id rule: a subscriber takes only ids above the newest one
//! it has (its `Last-Event-ID`, or the broker's newest id when it connected without one). Events
//! that reach a loop late (a backplane delivers after it answered the publisher) are appended
//! behind the cursor of a subscriber that already has them, and skipped: no duplicate, no gap.
//!
//! Slow consumers: a log also keeps older events while some subscriber still needs them, but only
//! up to `max_pending` bytes behind the newest event. A subscriber whose next event is older than
//! both the history window and `max_pending` is *lagging*: the loop disconnects it, and that
//! event may then be dropped from the log. So a slow subscriber costs no memory of its own, and a
//! stuck one never holds up the others: they write from the same buffers at their own cursors.

mod subscriber;

use std::collections::{HashMap, VecDeque};

use slab::Slab;

use subscriber::Cursor;
pub use subscriber::{Flushed, PendingBytes, Subscriber};

use crate::broker::Published;
use crate::event::{EncodedEvent, EventId};

/// Most topics one subscription may name.
pub const MAX_TOPICS_PER_SUBSCRIBER: usize = 16;

/// How long a log is kept, and how far a subscriber may fall behind.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events kept per topic for replay.
    pub history: usize,
    /// Bytes kept per topic for replay.
    pub history_bytes: u64,
    /// Bytes a subscriber may fall behind the newest event (beyond the history window).
    pub max_pending: u64,
}

/// One event in a topic log.
#[derive(Debug)]
struct LogEntry {
    event: EncodedEvent,
    /// Bytes of the topic's stream up to and including this event.
    end_offset: u64,
}

impl LogEntry {
    fn start_offset(&self) -> u64 {
        self.end_offset - self.event.len() as u64
    }
}

/// One topic's events, as seen by one event loop, and who subscribes to it there.
#[derive(Debug)]
pub struct TopicLog {
    name: Box<str>,
    entries: VecDeque<LogEntry>,
    /// Sequence number of `entries[0]`; sequence numbers count every event ever appended.
    first_seq: u64,
    /// Bytes of every event ever appended to this topic (the stream's end offset).
    tail_offset: u64,
    /// Connection keys of this loop's subscribers, so an event wakes exactly them.
    subscribers: Slab<usize>,
}

impl TopicLog {
    fn new(name: Box<str>) -> TopicLog {
        TopicLog {
            name,
            entries: VecDeque::new(),
            first_seq: 0,
            tail_offset: 0,
            subscribers: Slab::new(),
        }
    }

    /// Sequence number the next appended event will get.
    fn end_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    fn get(&self, seq: u64) -> Option<&LogEntry> {
        let index = seq.checked_sub(self.first_seq)?;
        self.entries.get(index as usize)
    }

    /// Byte offset in the stream where event `seq` starts (the tail for the next event).
    fn start_offset(&self, seq: u64) -> u64 {
        self.get(seq)
            .map_or(self.tail_offset, LogEntry::start_offset)
    }

    fn append(&mut self, event: &EncodedEvent) {
        self.tail_offset += event.len() as u64;
        self.entries.push_back(LogEntry {
            event: event.clone(),
            end_offset: self.tail_offset,
        });
    }

    /// Whether event `seq` may be dropped: it is outside the history window and more than
    /// `max_pending` bytes behind the newest event.
    fn is_droppable(&self, seq: u64, retention: &Retention) -> bool {
        let Some(entry) = self.get(seq) else {
            // Already dropped (or not yet appended, which never counts as behind).
            return seq < self.first_seq;
        };
        let newer_events = self.end_seq() - seq;
        let outside_history = newer_events > retention.history as u64
            || self.tail_offset - entry.start_offset() > retention.history_bytes;
        outside_history && entry.end_offset + retention.max_pending <= self.tail_offset
    }

    /// Drops the events no subscriber may still need (see the module docs).
    fn trim(&mut self, retention: &Retention) {
        while !self.entries.is_empty() && self.is_droppable(self.first_seq, retention) {
            self.entries.pop_front();
            self.first_seq += 1;
        }
    }

    /// First sequence number of the history window: the last `history` events, at most
    /// `history_bytes` of them. (The log may hold older events for lagging subscribers; those
    /// are not replayed.)
    fn history_start(&self, retention: &Retention) -> u64 {
        let by_count = self.end_seq() - (self.entries.len() as u64).min(retention.history as u64);
        let oldest_offset = self.tail_offset.saturating_sub(retention.history_bytes);
        let by_bytes = self.first_seq
            + self
                .entries
                .partition_point(|e| e.start_offset() < oldest_offset) as u64;
        by_count.max(by_bytes)
    }

    /// First sequence number, within the history window, whose event id is larger than `id`.
    fn replay_start(&self, id: EventId, retention: &Retention) -> u64 {
        let after = self.first_seq + self.entries.partition_point(|e| e.event.id <= id) as u64;
        after.max(self.history_start(retention))
    }
}

/// All topic logs of one event loop.
#[derive(Debug)]
pub struct Topics {
    logs: Slab<TopicLog>,
    by_name: HashMap<Box<str>, usize>,
    retention: Retention,
}

impl Topics {
    /// Empty logs that keep events as `retention` says.
    pub fn new(retention: Retention) -> Topics {
        Topics {
            logs: Slab::new(),
            by_name: HashMap::new(),
            retention,
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

    fn topic_key(&mut self, name: &str) -> usize {
        if let Some(&key) = self.by_name.get(name) {
            return key;
        }
        let key = self.logs.insert(TopicLog::new(name.into()));
        self.by_name.insert(name.into(), key);
        key
    }

    /// Appends a published event to each of its topics, noting each topic in `touched` once.
    pub fn append(&mut self, published: &Published, touched: &mut Vec<usize>) {
        for name in &published.topics {
            let key = self.topic_key(name);
            self.logs[key].append(&published.event);
            if !touched.contains(&key) {
                touched.push(key);
            }
        }
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

    /// Drops what topic `key` no longer needs. Call once every subscriber has been checked for
    /// lag against the log's tail (see the module docs); a subscriber left behind is lagging.
    pub fn trim(&mut self, key: usize) {
        let retention = self.retention;
        if let Some(log) = self.logs.get_mut(key) {
            log.trim(&retention);
        }
    }

    /// Subscribes connection `conn` to `names`. With `last_event_id`, the subscriber starts with
    /// every retained event of those topics whose id is larger; without it, at the next event.
    /// Either way it takes only events with ids above `last_event_id` (or above `newest_id`, the
    /// broker's newest acknowledged id, when there is none or it is larger: a client's id from
    /// the future must not silence the stream).
    pub fn subscribe(
        &mut self,
        conn: usize,
        names: &[&str],
        last_event_id: Option<EventId>,
        newest_id: EventId,
    ) -> Subscriber {
        let retention = self.retention;
        let cursors = names
            .iter()
            .map(|name| {
                let topic = self.topic_key(name);
                let log = &mut self.logs[topic];
                let next_seq = match last_event_id {
                    Some(id) => log.replay_start(id, &retention),
                    None => log.end_seq(),
                };
                let slot = log.subscribers.insert(conn);
                Cursor {
                    topic: topic as u32,
                    slot: slot as u32,
                    next_seq,
                }
            })
            .collect();
        let delivered_through = last_event_id.map_or(newest_id, |id| id.min(newest_id));
        Subscriber::new(cursors, delivered_through)
    }

    /// Removes a subscriber, and any topic left with neither subscribers nor events.
    pub fn unsubscribe(&mut self, subscriber: &Subscriber) {
        for cursor in subscriber.cursors.iter() {
            let key = cursor.topic as usize;
            let log = &mut self.logs[key];
            log.subscribers.remove(cursor.slot as usize);
            if log.subscribers.is_empty() && log.entries.is_empty() {
                let log = self.logs.remove(key);
                self.by_name.remove(&log.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const RETENTION: Retention = Retention {
        history: 4,
        history_bytes: 1 << 20,
        max_pending: 1 << 20,
    };

    fn publish(topics: &mut Topics, id: EventId, names: &[&str], data: &str) -> Vec<usize> {
        let published = Arc::new(Published {
            topics: names.iter().map(|n| Box::from(*n)).collect(),
            event: EncodedEvent::encode(id, None, data),
        });
        let mut touched = Vec::new();
        topics.append(&published, &mut touched);
        touched
    }

    /// Writes everything pending into a Vec, `chunk` bytes per call at most.
    fn drain(topics: &Topics, sub: &mut Subscriber, chunk: usize) -> (String, Flushed) {
        let mut out = Vec::new();
        let mut prefix = PendingBytes::None;
        let mut total = Flushed::default();
        loop {
            let flushed = sub
                .flush(topics, &mut prefix, |slices| {
                    let mut budget = chunk;
                    for slice in slices {
                        let n = slice.len().min(budget);
                        out.extend_from_slice(&slice[..n]);
                        budget -= n;
                    }
                    Ok(chunk - budget)
                })
                .unwrap();
            total.events += flushed.events;
            total.bytes += flushed.bytes;
            if !flushed.blocked {
                return (String::from_utf8(out).unwrap(), total);
            }
        }
    }

    /// Partial writes of every size resume at the right byte, and complete events are counted.
    #[test]
    fn partial_writes_resume_at_offset() {
        for chunk in 1..40 {
            let mut topics = Topics::new(RETENTION);
            let mut sub = topics.subscribe(1, &["a"], None, 0);
            publish(&mut topics, 1, &["a"], "one");
            publish(&mut topics, 2, &["a"], "two\nlines");
            let (out, flushed) = drain(&topics, &mut sub, chunk);
            assert_eq!(
                out, "id: 1\ndata: one\n\nid: 2\ndata: two\ndata: lines\n\n",
                "chunk {chunk}"
            );
            assert_eq!(flushed.events, 2);
            assert_eq!(sub.pending_bytes(&topics), 0);
        }
    }

    /// Several topics merge in id order and an event in two of them is written once.
    #[test]
    fn merges_topics_in_id_order_without_duplicates() {
        let mut topics = Topics::new(RETENTION);
        let mut sub = topics.subscribe(1, &["a", "b"], None, 0);
        let mut other = topics.subscribe(2, &["c"], None, 0);
        publish(&mut topics, 1, &["a"], "1");
        publish(&mut topics, 2, &["b"], "2");
        publish(&mut topics, 3, &["a", "b"], "3");
        publish(&mut topics, 4, &["c"], "4");
        publish(&mut topics, 5, &["b"], "5");
        let (out, flushed) = drain(&topics, &mut sub, 7);
        assert_eq!(
            out,
            "id: 1\ndata: 1\n\nid: 2\ndata: 2\n\nid: 3\ndata: 3\n\nid: 5\ndata: 5\n\n"
        );
        assert_eq!(flushed.events, 4);
        assert_eq!(drain(&topics, &mut other, 100).0, "id: 4\ndata: 4\n\n");
    }

    /// Replay starts after the given id, within the history window.
    #[test]
    fn replays_after_last_event_id() {
        let mut topics = Topics::new(RETENTION);
        for id in 1..=6 {
            publish(&mut topics, id, &["a"], &id.to_string());
            let key = topics.by_name["a"];
            topics.trim(key);
        }
        // History keeps 4 events: ids 3 to 6.
        let mut sub = topics.subscribe(1, &["a"], Some(4), 0);
        assert_eq!(
            drain(&topics, &mut sub, 100).0,
            "id: 5\ndata: 5\n\nid: 6\ndata: 6\n\n"
        );
        let mut all = topics.subscribe(2, &["a"], Some(0), 0);
        assert_eq!(drain(&topics, &mut all, 100).1.events, 4);
        let mut live = topics.subscribe(3, &["a"], None, 0);
        assert_eq!(drain(&topics, &mut live, 100).1.events, 0);
    }

    /// A subscriber that stops reading becomes lagging once it is more than `max_pending` behind
    /// and outside the history window; the log then lets go of what only it needed.
    #[test]
    fn stalled_subscriber_lags_and_log_is_bounded() {
        let retention = Retention {
            history: 2,
            history_bytes: 1 << 20,
            max_pending: 100,
        };
        let mut topics = Topics::new(retention);
        let stalled = topics.subscribe(1, &["a"], None, 0);
        let mut reader = topics.subscribe(2, &["a"], None, 0);
        let data = "x".repeat(20);
        let mut lagged_at = None;
        for id in 1..=20 {
            let key = publish(&mut topics, id, &["a"], &data)[0];
            drain(&topics, &mut reader, 1000);
            assert!(!reader.is_lagging(&topics));
            if lagged_at.is_none() && stalled.is_lagging(&topics) {
                lagged_at = Some(id);
                topics.unsubscribe(&stalled);
            }
            topics.trim(key);
        }
        let lagged_at = lagged_at.expect("the stalled subscriber never lagged");
        // Each event is 34 bytes: behind by more than 100 bytes after 4 events.
        assert_eq!(lagged_at, 4);
        assert!(topics.logs[topics.by_name["a"]].entries.len() <= 4);
    }

    /// The id rule: events that reach the loop after the subscriber already has them (a
    /// backplane delivering late) are skipped, and later ones follow without a gap.
    #[test]
    fn late_deliveries_are_neither_repeated_nor_lost() {
        let mut topics = Topics::new(RETENTION);
        publish(&mut topics, 1, &["a"], "1");
        // The client has seen id 3 elsewhere; ids 2 and 3 have not reached this loop yet.
        let mut replaying = topics.subscribe(1, &["a"], Some(3), 3);
        // A fresh subscriber after the broker acknowledged id 3.
        let mut fresh = topics.subscribe(2, &["a"], None, 3);
        // A client claiming an id from the future still gets what is published after it joined.
        let mut future = topics.subscribe(3, &["a"], Some(1 << 60), 3);
        for id in 2..=5 {
            publish(&mut topics, id, &["a"], &id.to_string());
        }
        let expected = "id: 4\ndata: 4\n\nid: 5\ndata: 5\n\n";
        assert_eq!(drain(&topics, &mut replaying, 5).0, expected);
        assert_eq!(drain(&topics, &mut fresh, 100).0, expected);
        assert_eq!(drain(&topics, &mut future, 100).0, expected);
        assert_eq!(replaying.delivered_through(), 5);
    }

    /// Unsubscribing removes topics that hold nothing.
    #[test]
    fn empty_topics_are_removed() {
        let mut topics = Topics::new(RETENTION);
        let sub = topics.subscribe(1, &["a", "b"], None, 0);
        publish(&mut topics, 1, &["a"], "x");
        topics.unsubscribe(&sub);
        assert_eq!(topics.len(), 1, "a keeps its history, b goes");
    }
}
