//! One topic's log in one event loop: its events (shared buffers) with running byte offsets,
//! its subscribers there, and what replay from an id can promise.

use std::collections::VecDeque;

use slab::Slab;

use super::Retention;
use crate::event::{EncodedEvent, EventId};

/// No neighbour in the list of topics that hold events.
pub(super) const NO_TOPIC: u32 = u32::MAX;

/// One event in a topic log.
#[derive(Debug)]
pub(super) struct LogEntry {
    pub(super) event: EncodedEvent,
    /// Bytes of the topic's stream up to and including this event.
    pub(super) end_offset: u64,
}

impl LogEntry {
    pub(super) fn start_offset(&self) -> u64 {
        self.end_offset - self.event.len() as u64
    }
}

/// One topic's events, as seen by one event loop, and who subscribes to it there.
#[derive(Debug)]
pub struct TopicLog {
    pub(super) name: Box<str>,
    pub(super) entries: VecDeque<LogEntry>,
    /// Sequence number of `entries[0]`; sequence numbers count every event ever appended.
    pub(super) first_seq: u64,
    /// Bytes of every event ever appended to this topic (the stream's end offset).
    pub(super) tail_offset: u64,
    /// Connection keys of this loop's subscribers, so an event wakes exactly them.
    pub(super) subscribers: Slab<usize>,
    /// Replay from an id below this may be incomplete: events after it were dropped, or the
    /// log does not know what the topic held before it was created.
    pub(super) floor_id: EventId,
    /// Loop time (ms) of the last append or the last subscriber leaving: the topic is
    /// forgotten once it has had neither events nor subscribers for the topic TTL.
    pub(super) idle_since_ms: u64,
    /// No subscriber's cursor is before this sequence number: events before it are history
    /// only, which the memory budget may evict (see `memory.rs`). A lower bound, raised when a
    /// round of the topic's pass has visited every subscriber.
    pub(super) owed_from: u64,
    /// Whether the topic is in the loop's list of topics with evictable events.
    pub(super) in_lru: bool,
    /// Neighbours in the loop's list of topics with evictable events, least recently used
    /// first.
    pub(super) lru_prev: u32,
    /// See `lru_prev`.
    pub(super) lru_next: u32,
}

/// What a replay from `Last-Event-ID` can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// No `Last-Event-ID`: live events only.
    Live,
    /// Every event after the id is retained and will be sent.
    Complete,
    /// Some events after the id are no longer retained (trimmed, evicted, forgotten, or from
    /// before this server knew the topic); the replay starts after them.
    Gap,
}

impl TopicLog {
    pub(super) fn new(name: Box<str>, floor_id: EventId, now_ms: u64) -> TopicLog {
        TopicLog {
            name,
            entries: VecDeque::new(),
            first_seq: 0,
            tail_offset: 0,
            subscribers: Slab::new(),
            floor_id,
            idle_since_ms: now_ms,
            owed_from: 0,
            in_lru: false,
            lru_prev: NO_TOPIC,
            lru_next: NO_TOPIC,
        }
    }

    /// Sequence number the next appended event will get.
    pub(super) fn end_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    pub(super) fn get(&self, seq: u64) -> Option<&LogEntry> {
        let index = seq.checked_sub(self.first_seq)?;
        self.entries.get(index as usize)
    }

    /// Byte offset in the stream where event `seq` starts (the tail for the next event).
    pub(super) fn start_offset(&self, seq: u64) -> u64 {
        self.get(seq)
            .map_or(self.tail_offset, LogEntry::start_offset)
    }

    pub(super) fn append(&mut self, event: &EncodedEvent, now_ms: u64) {
        self.tail_offset += event.len() as u64;
        self.entries.push_back(LogEntry {
            event: event.clone(),
            end_offset: self.tail_offset,
        });
        self.idle_since_ms = now_ms;
    }

    /// A subscriber (already in `subscribers`) starts at `seq`: events from it on are owed
    /// until a round has visited it (a round under way is told by the loop, see
    /// `Passes::note_join`). The first subscriber sets the bound outright: nobody else is owed
    /// anything.
    pub(super) fn owe_from(&mut self, seq: u64) {
        if self.subscribers.len() == 1 {
            self.owed_from = seq;
        }
        self.owed_from = self.owed_from.min(seq);
    }

    /// Whether the memory budget may evict the oldest event: no subscriber may still be owed it.
    pub(super) fn oldest_is_evictable(&self) -> bool {
        !self.entries.is_empty() && (self.subscribers.is_empty() || self.first_seq < self.owed_from)
    }

    /// Drops the oldest event; returns its size in bytes.
    pub(super) fn pop_oldest(&mut self) -> Option<usize> {
        let entry = self.entries.pop_front()?;
        self.first_seq += 1;
        self.floor_id = self.floor_id.max(entry.event.id);
        Some(entry.event.len())
    }

    /// Whether the oldest event may be dropped: it is outside the history window and more than
    /// `max_pending` bytes behind `tail` (the tail when the last pass over the subscribers
    /// began: every subscriber still open is at most that far behind it).
    pub(super) fn oldest_is_droppable(&self, retention: &Retention, tail: u64) -> bool {
        let Some(entry) = self.entries.front() else {
            return false;
        };
        let outside_history = self.entries.len() > retention.history
            || self.tail_offset - entry.start_offset() > retention.history_bytes;
        outside_history && entry.end_offset + retention.max_pending <= tail
    }

    /// First sequence number of the history window: the last `history` events, at most
    /// `history_bytes` of them. (The log may hold older events for subscribers that are behind;
    /// those are not replayed.)
    pub(super) fn history_start(&self, retention: &Retention) -> u64 {
        let by_count = self.end_seq() - (self.entries.len() as u64).min(retention.history as u64);
        let oldest_offset = self.tail_offset.saturating_sub(retention.history_bytes);
        let by_bytes = self.first_seq
            + self
                .entries
                .partition_point(|e| e.start_offset() < oldest_offset) as u64;
        by_count.max(by_bytes)
    }

    /// Where a replay after `id` starts (the first event within the history window whose id is
    /// larger), and whether it misses events.
    pub(super) fn replay_from(&self, id: EventId, retention: &Retention) -> (u64, Replay) {
        let after = self.first_seq + self.entries.partition_point(|e| e.event.id <= id) as u64;
        let start = self.history_start(retention);
        let replay = if id < self.floor_id || after < start {
            Replay::Gap
        } else {
            Replay::Complete
        };
        (after.max(start), replay)
    }

    /// The newest id this log has held (0 for none).
    pub(super) fn last_id(&self) -> EventId {
        self.entries
            .back()
            .map_or(self.floor_id, |entry| entry.event.id)
    }
}
