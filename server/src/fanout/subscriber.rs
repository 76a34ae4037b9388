//! A subscriber's cursors into the topic logs, and the vectored writes that deliver from them.

use std::io::{self, IoSlice};

use super::{MAX_TOPICS_PER_SUBSCRIBER, Topics};
use crate::event::{EncodedEvent, EventId};

/// Most buffers handed to one vectored write (Linux allows 1024; 64 events per call is plenty).
const MAX_IOVECS: usize = 64;

/// A subscriber's position in one topic.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    /// Key of the topic in [`Topics::logs`].
    pub(super) topic: u32,
    /// This subscriber's key in the topic's subscriber list.
    pub(super) slot: u32,
    /// Sequence number of the next event to write.
    pub(super) next_seq: u64,
    /// The topic's tail offset when the subscriber joined: lag counts only events published
    /// since, so a replay is not taken for falling behind.
    pub(super) live_from: u64,
}

/// A streaming connection's place in the topics it subscribes to: a few bytes, no buffers.
#[derive(Debug)]
pub struct Subscriber {
    /// One cursor per subscribed topic.
    pub(super) cursors: Box<[Cursor]>,
    /// Bytes of the first pending event already written (after a partial write). 64 bits: a
    /// single event may be larger than 4 GiB when `--max-body` allows it.
    head_written: u64,
    /// Events with ids up to this one are skipped (the subscriber has them, or joined after
    /// them), so replay and late deliveries join live delivery without duplicates. 0 once no
    /// such event can still arrive: each log is in id order, so that is as soon as every log
    /// of the subscriber holds a newer id; a steady-state flush then pays one comparison.
    skip_through: EventId,
}

/// What one [`Subscriber::flush`] achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Events written completely.
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
    /// True when the socket would not take everything (wait for it to become writable).
    pub blocked: bool,
}

impl Subscriber {
    /// A subscriber at `cursors` that must skip events with ids up to `skip_through`.
    pub(super) fn new(
        cursors: Box<[Cursor]>,
        skip_through: EventId,
        topics: &Topics,
    ) -> Subscriber {
        let mut subscriber = Subscriber {
            cursors,
            head_written: 0,
            skip_through,
        };
        subscriber.skip_delivered(topics);
        subscriber
    }

    /// True while events this subscriber must not get may still reach its logs.
    pub fn is_skipping(&self) -> bool {
        self.skip_through != 0
    }

    /// Moves the cursors past events this subscriber must not get (ids up to
    /// `skip_through`); they can only be at the front, each log being in id order. Once every
    /// log holds a newer id, none can come any more and skipping ends.
    fn skip_delivered(&mut self, topics: &Topics) {
        if self.skip_through == 0 || self.head_written > 0 {
            // Nothing to skip; or the event under way is newer than every skipped one.
            return;
        }
        let mut done = true;
        for cursor in self.cursors.iter_mut() {
            let log = &topics.logs[cursor.topic as usize];
            while log
                .get(cursor.next_seq)
                .is_some_and(|entry| entry.event.id <= self.skip_through)
            {
                cursor.next_seq += 1;
            }
            done &= log
                .entries
                .back()
                .is_some_and(|e| e.event.id >= self.skip_through);
        }
        if done {
            self.skip_through = 0;
        }
    }

    /// The id of the next event this subscriber would be written, if its logs hold one.
    pub fn next_id(&self, topics: &Topics) -> Option<EventId> {
        let mut positions = [0u64; MAX_TOPICS_PER_SUBSCRIBER];
        let positions = &mut positions[..self.cursors.len()];
        for (position, cursor) in positions.iter_mut().zip(self.cursors.iter()) {
            *position = cursor.next_seq;
        }
        self.next_event(topics, positions).map(|event| event.id)
    }

    /// Makes the subscriber skip events with ids up to `id` too (it got them another way: the
    /// broker's replay). Call before anything is written.
    pub fn skip_through(&mut self, id: EventId, topics: &Topics) {
        if id > self.skip_through {
            self.skip_through = id;
        }
        self.skip_delivered(topics);
    }

    /// The next event to write (smallest id among the topics' next events), with a function of
    /// the positions so gathering can look ahead without moving the real cursors.
    fn next_event<'t>(&self, topics: &'t Topics, positions: &[u64]) -> Option<&'t EncodedEvent> {
        let mut next: Option<&EncodedEvent> = None;
        for (cursor, &seq) in self.cursors.iter().zip(positions) {
            if let Some(entry) = topics.logs[cursor.topic as usize].get(seq) {
                if next.is_none_or(|n| entry.event.id < n.id) {
                    next = Some(&entry.event);
                }
            }
        }
        next
    }

    /// Moves every position whose next event is `id` past it. An event published to several of
    /// the subscriber's topics is written once.
    fn step_past(&self, topics: &Topics, positions: &mut [u64], id: EventId) {
        for (cursor, seq) in self.cursors.iter().zip(positions.iter_mut()) {
            let log = &topics.logs[cursor.topic as usize];
            if log.get(*seq).is_some_and(|e| e.event.id == id) {
                *seq += 1;
            }
        }
    }

    /// Each subscribed topic (a key of the loop's topics) with the sequence number of the next
    /// event to write there.
    pub fn positions(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.cursors
            .iter()
            .map(|cursor| (cursor.topic as usize, cursor.next_seq))
    }

    /// The sequence number of the next event to write in topic `topic` (a key of the loop's
    /// topics), if the subscriber has that topic: what a pass round notes as owed.
    pub fn next_seq_in(&self, topic: usize) -> Option<u64> {
        self.cursors
            .iter()
            .find(|cursor| cursor.topic as usize == topic)
            .map(|cursor| cursor.next_seq)
    }

    /// Whether an event this subscriber still needs was dropped from a log (trimmed while the
    /// subscriber was more than `max_pending` behind; the memory budget never evicts an event
    /// a subscriber is owed): it cannot be written to any more.
    pub fn has_lost_events(&self, topics: &Topics) -> bool {
        self.cursors
            .iter()
            .any(|cursor| cursor.next_seq < topics.logs[cursor.topic as usize].first_seq)
    }

    /// Bytes of events published since this subscriber joined that it has not been written.
    pub fn live_lag(&self, topics: &Topics) -> u64 {
        self.bytes_behind(topics, true)
    }

    /// Whether this subscriber lags and must be disconnected: it lost events, or its socket is
    /// full (`blocked`) while it is more than `max_pending` bytes behind (see the module docs).
    pub fn is_lagging(&self, topics: &Topics, blocked: bool) -> bool {
        self.has_lost_events(topics)
            || (blocked && self.live_lag(topics) > topics.retention.max_pending)
    }

    /// Bytes waiting to be written to this subscriber.
    pub fn pending_bytes(&self, topics: &Topics) -> u64 {
        self.bytes_behind(topics, false)
    }

    /// Bytes from each cursor to its log's tail, summed, less what is written of the first
    /// event; with `since_join`, only bytes of events published since the subscriber joined.
    fn bytes_behind(&self, topics: &Topics, since_join: bool) -> u64 {
        let total: u64 = self
            .cursors
            .iter()
            .map(|cursor| {
                let log = &topics.logs[cursor.topic as usize];
                let from = log.start_offset(cursor.next_seq);
                let from = if since_join {
                    from.max(cursor.live_from)
                } else {
                    from
                };
                log.tail_offset - from
            })
            .sum();
        total.saturating_sub(self.head_written)
    }

    /// Writes pending bytes: first `prefix` (response head, preamble or heartbeat; its offset is
    /// advanced), then the pending events, with as few vectored writes as the socket accepts.
    /// `write` is the socket's `write_vectored`; it is a parameter so benches and tests can count.
    pub fn flush<W>(
        &mut self,
        topics: &Topics,
        prefix: &mut PendingBytes,
        mut write: W,
    ) -> io::Result<Flushed>
    where
        W: FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    {
        let mut flushed = Flushed::default();
        self.skip_delivered(topics);
        loop {
            let mut positions = [0u64; MAX_TOPICS_PER_SUBSCRIBER];
            let positions = &mut positions[..self.cursors.len()];
            for (position, cursor) in positions.iter_mut().zip(self.cursors.iter()) {
                *position = cursor.next_seq;
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            let mut total = 0;
            if !prefix.remaining().is_empty() {
                slices[0] = IoSlice::new(prefix.remaining());
                total += slices[0].len();
                count = 1;
            }
            let mut skip = self.head_written as usize;
            while count < MAX_IOVECS {
                let Some(event) = self.next_event(topics, positions) else {
                    break;
                };
                slices[count] = IoSlice::new(&event.wire[skip..]);
                total += event.len() - skip;
                skip = 0;
                count += 1;
                self.step_past(topics, positions, event.id);
            }
            if count == 0 {
                return Ok(flushed);
            }
            let written = match write(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    flushed.blocked = true;
                    return Ok(flushed);
                }
                Err(e) => return Err(e),
            };
            flushed.bytes += written as u64;
            flushed.events += self.consume(topics, prefix, written);
            if written < total {
                // The socket buffer is full: the next write would fail, so do not try it.
                flushed.blocked = true;
                return Ok(flushed);
            }
        }
    }

    /// Advances the prefix and the cursors over `written` bytes; returns events completed.
    fn consume(&mut self, topics: &Topics, prefix: &mut PendingBytes, mut written: usize) -> u64 {
        written -= prefix.advance(written);
        let mut completed = 0;
        while written > 0 {
            let mut positions = [0u64; MAX_TOPICS_PER_SUBSCRIBER];
            let positions = &mut positions[..self.cursors.len()];
            for (position, cursor) in positions.iter_mut().zip(self.cursors.iter()) {
                *position = cursor.next_seq;
            }
            let Some(event) = self.next_event(topics, positions) else {
                break;
            };
            let left = event.len() - self.head_written as usize;
            if written < left {
                self.head_written += written as u64;
                break;
            }
            written -= left;
            self.head_written = 0;
            completed += 1;
            self.step_past(topics, positions, event.id);
            for (cursor, &position) in self.cursors.iter_mut().zip(positions.iter()) {
                cursor.next_seq = position;
            }
        }
        completed
    }
}

/// Bytes a connection must write before its events: an owned response head and preamble, or a
/// static heartbeat. Empty in the steady state, so it costs a streaming connection nothing.
#[derive(Debug, Default)]
pub enum PendingBytes {
    /// Nothing.
    #[default]
    None,
    /// Bytes built for this connection: response head and preamble (and the events a broker
    /// replayed from beyond the loop's logs; the logs' own replay is never copied here).
    Owned(Box<[u8]>, usize),
    /// Shared constant bytes (heartbeat).
    Static(&'static [u8], usize),
}

impl PendingBytes {
    /// What is left to write.
    pub fn remaining(&self) -> &[u8] {
        match self {
            PendingBytes::None => &[],
            PendingBytes::Owned(bytes, offset) => &bytes[*offset..],
            PendingBytes::Static(bytes, offset) => &bytes[*offset..],
        }
    }

    /// Marks up to `written` bytes as written; returns how many it took.
    fn advance(&mut self, written: usize) -> usize {
        let taken = written.min(self.remaining().len());
        match self {
            PendingBytes::None => {}
            PendingBytes::Owned(_, offset) | PendingBytes::Static(_, offset) => *offset += taken,
        }
        if taken > 0 && self.remaining().is_empty() {
            *self = PendingBytes::None;
        }
        taken
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.remaining().is_empty()
    }
}
