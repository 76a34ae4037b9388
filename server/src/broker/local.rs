//! The in-process broker: one lock orders every publish, assigns its id from the clock and
//! delivers it to every loop before the publisher is answered, all on the publisher's thread.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Broker, PublishError, PublishReply, PublishRequest};
use crate::event::EventId;
use crate::feed::Feeds;
use crate::metrics::Metrics;

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

/// The in-process broker, the default: no set-up, one process.
pub struct LocalBroker {
    state: Mutex<BrokerState>,
    /// The loops and counters, set once by [`Broker::attach`].
    attached: OnceLock<(Feeds, Arc<Metrics>)>,
    /// The newest id answered to a publisher.
    newest: AtomicU64,
    max_topics: usize,
}

struct BrokerState {
    ids: IdClock,
    topics: HashSet<Box<str>>,
}

impl LocalBroker {
    /// A broker keeping at most `max_topics` topics.
    pub fn new(max_topics: usize) -> LocalBroker {
        LocalBroker {
            state: Mutex::new(BrokerState {
                ids: IdClock::default(),
                topics: HashSet::new(),
            }),
            attached: OnceLock::new(),
            newest: AtomicU64::new(0),
            max_topics,
        }
    }

    /// Number of distinct topics published to.
    pub fn topic_count(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .topics
            .len()
    }
}

impl Broker for LocalBroker {
    fn attach(&self, feeds: Feeds, metrics: Arc<Metrics>) {
        let _ = self.attached.set((feeds, metrics));
    }

    fn publish(&self, request: PublishRequest, reply: PublishReply) {
        let Some((feeds, metrics)) = self.attached.get() else {
            return reply.complete(Err(PublishError::Unavailable));
        };
        let result = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let new_topics = request
                .topics()
                .iter()
                .filter(|t| !state.topics.contains(&***t))
                .count();
            if state.topics.len() + new_topics > self.max_topics {
                Err(PublishError::TooManyTopics)
            } else {
                for topic in request.topics() {
                    if !state.topics.contains(&**topic) {
                        state.topics.insert(topic.clone());
                    }
                }
                metrics
                    .topics
                    .store(state.topics.len() as u64, Ordering::Relaxed);
                let id = state.ids.next_id();
                // Delivering under the lock keeps every loop's feed in id order.
                feeds.deliver(Arc::new(request.into_published(id)));
                self.newest.store(id, Ordering::Release);
                Ok(id)
            }
        };
        if result.is_ok() {
            metrics.events_published.fetch_add(1, Ordering::Relaxed);
        }
        reply.complete(result);
    }

    fn newest_id(&self) -> EventId {
        self.newest.load(Ordering::Acquire)
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

    /// Past `max_topics`, a publish to a new topic is refused; known topics still work.
    #[test]
    fn bounds_the_number_of_topics() {
        let broker: Arc<dyn Broker> = Arc::new(LocalBroker::new(2));
        broker.attach(Feeds::new(Vec::new()), Arc::new(Metrics::default()));
        let publish = |topic: &str| {
            let request = PublishRequest::new(&[topic], None, "x").unwrap();
            broker.publish_and_wait(request, std::time::Duration::from_secs(1))
        };
        let first = publish("a").unwrap();
        assert!(publish("b").unwrap() > first);
        assert_eq!(publish("c"), Err(PublishError::TooManyTopics));
        assert!(publish("a").is_ok());
        assert!(broker.newest_id() > first);
    }
}
