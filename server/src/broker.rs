//! The broker: assigns event ids, encodes each event once, and hands it to every event loop.
//!
//! [`Broker`] is the small interface a backplane (Redis Streams, later) can supply: it owns the
//! id sequence and the order of events, and delivers each [`Published`] event to every loop's
//! [`Mailbox`] in id order. [`LocalBroker`] is the in-process implementation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::event::{EncodedEvent, EventError, EventId, is_valid_name};
use crate::metrics::Metrics;

/// An event on its way to the event loops: its topics and its shared wire bytes.
#[derive(Debug)]
pub struct Published {
    /// Topics the event was published to (validated, deduplicated).
    pub topics: Box<[Box<str>]>,
    /// The encoded event, shared by every loop and every subscriber.
    pub event: EncodedEvent,
}

/// Why a publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No topic was named.
    #[error("at least one topic is required")]
    NoTopic,
    /// A name or the data was invalid.
    #[error("{0}")]
    Invalid(#[from] EventError),
    /// Publishing would create more topics than the server keeps.
    #[error("too many topics")]
    TooManyTopics,
}

/// The source of event ids and the distributor of events.
pub trait Broker: Send + Sync {
    /// Assigns the next id to an event, encodes it, delivers it to every loop and returns the id.
    fn publish(
        &self,
        topics: &[&str],
        event_type: Option<&str>,
        data: &str,
    ) -> Result<EventId, PublishError>;

    /// Number of distinct topics that have been published to.
    fn topic_count(&self) -> usize;
}

/// Events waiting to be taken by one event loop, and the waker that tells it so.
pub struct Mailbox {
    queue: Mutex<Vec<Arc<Published>>>,
    waker: mio::Waker,
}

impl Mailbox {
    /// A mailbox whose loop is woken through `waker`.
    pub fn new(waker: mio::Waker) -> Mailbox {
        Mailbox {
            queue: Mutex::new(Vec::new()),
            waker,
        }
    }

    /// Queues an event. Returns true when the queue was empty, i.e. the loop needs a wake-up
    /// (a loop that already has a wake-up pending takes every queued event at once).
    fn push(&self, event: Arc<Published>) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.push(event);
        queue.len() == 1
    }

    /// Wakes the loop.
    pub fn wake(&self) {
        // A failed wake-up (the loop is gone) only matters at shutdown.
        let _ = self.waker.wake();
    }

    /// Moves every queued event into `into` (which keeps its capacity between calls).
    pub fn take_all(&self, into: &mut Vec<Arc<Published>>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *queue, into);
    }
}

/// Event ids: microseconds since the Unix epoch, bumped to stay strictly increasing. Because they
/// follow the clock, ids keep increasing across a restart, so a browser that reconnects with an
/// old `Last-Event-ID` is never ahead of the new server.
#[derive(Debug, Default)]
pub struct IdClock {
    last: EventId,
}

impl IdClock {
    /// The next id: the current time in microseconds, or one more than the last id.
    pub fn next_id(&mut self) -> EventId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.last = now.max(self.last + 1);
        self.last
    }
}

/// The in-process broker: one lock orders all publishes, so every loop sees events in id order.
pub struct LocalBroker {
    state: Mutex<BrokerState>,
    mailboxes: Vec<Arc<Mailbox>>,
    max_topics: usize,
    metrics: Arc<Metrics>,
}

struct BrokerState {
    ids: IdClock,
    topics: HashSet<Box<str>>,
}

impl LocalBroker {
    /// A broker delivering to these mailboxes, keeping at most `max_topics` topics, and
    /// counting what it publishes in `metrics`.
    pub fn new(
        mailboxes: Vec<Arc<Mailbox>>,
        max_topics: usize,
        metrics: Arc<Metrics>,
    ) -> LocalBroker {
        LocalBroker {
            state: Mutex::new(BrokerState {
                ids: IdClock::default(),
                topics: HashSet::new(),
            }),
            mailboxes,
            max_topics,
            metrics,
        }
    }
}

impl Broker for LocalBroker {
    fn publish(
        &self,
        topics: &[&str],
        event_type: Option<&str>,
        data: &str,
    ) -> Result<EventId, PublishError> {
        if topics.is_empty() {
            return Err(PublishError::NoTopic);
        }
        if !topics.iter().all(|t| is_valid_name(t)) {
            return Err(EventError::InvalidTopic.into());
        }
        if event_type.is_some_and(|kind| !is_valid_name(kind)) {
            return Err(EventError::InvalidEventType.into());
        }
        let mut unique: Vec<Box<str>> = Vec::with_capacity(topics.len());
        for topic in topics {
            if !unique.iter().any(|t| &**t == *topic) {
                unique.push((*topic).into());
            }
        }
        let mut wake = Vec::with_capacity(self.mailboxes.len());
        let id = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let new_topics = unique
                .iter()
                .filter(|t| !state.topics.contains(&***t))
                .count();
            if state.topics.len() + new_topics > self.max_topics {
                return Err(PublishError::TooManyTopics);
            }
            for topic in &unique {
                if !state.topics.contains(&**topic) {
                    state.topics.insert(topic.clone());
                }
            }
            let id = state.ids.next_id();
            let published = Arc::new(Published {
                topics: unique.into_boxed_slice(),
                event: EncodedEvent::encode(id, event_type, data),
            });
            // Delivering under the lock keeps every mailbox in id order.
            for mailbox in &self.mailboxes {
                wake.push(mailbox.push(published.clone()));
            }
            id
        };
        self.metrics
            .events_published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (mailbox, needs_wake) in self.mailboxes.iter().zip(wake) {
            if needs_wake {
                mailbox.wake();
            }
        }
        Ok(id)
    }

    fn topic_count(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .topics
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids increase strictly even when the clock does not move between calls.
    #[test]
    fn ids_strictly_increase() {
        let mut clock = IdClock::default();
        let mut last = 0;
        for _ in 0..10_000 {
            let id = clock.next_id();
            assert!(id > last);
            last = id;
        }
    }

    /// A restarted clock starts above the ids of the previous run (they follow wall time).
    #[test]
    fn ids_follow_the_clock_across_restarts() {
        let before = IdClock::default().next_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let after = IdClock::default().next_id();
        assert!(after > before);
    }
}
