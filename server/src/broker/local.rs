//! The in-process broker: one lock orders every publish, assigns its id from the clock and
//! delivers it to every loop before the publisher is answered, all on the publisher's thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::live_topics::LiveTopics;
use super::{Broker, PublishError, PublishReply, PublishRequest};
use crate::event::EventId;
use crate::feed::Feeds;
use crate::metrics::Metrics;

/// Microseconds since the Unix epoch now.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
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
        self.last = now_micros().max(self.last + 1);
        self.last
    }
}

/// The in-process broker, the default: no set-up, one process.
///
/// It bounds the number of *live* topics: those published to within the topic TTL. A topic
/// not published to for that long no longer counts (the loops forget its log once it has no
/// subscribers either). The live topics are kept least recently published first
/// (`broker::live_topics`), so a publish forgets a bounded number of idle topics, and at the limit
/// exactly as many as it needs room for: its cost does not grow with the number of topics.
pub struct LocalBroker {
    state: Mutex<BrokerState>,
    /// The loops and counters, set once by [`Broker::attach`].
    attached: OnceLock<(Feeds, Arc<Metrics>)>,
    /// The newest id answered to a publisher; at start, the clock (every id below it was
    /// assigned before this broker existed).
    newest: AtomicU64,
    max_topics: usize,
    topic_ttl: Duration,
    started: Instant,
}

/// Idle topics a publish forgets besides those it needs room for, so that the set (and
/// `sse_topics`) follows the TTL while publishing goes on below the limit.
const EXPIRE_PER_PUBLISH: usize = 8;

struct BrokerState {
    ids: IdClock,
    /// Live topics, least recently published first.
    topics: LiveTopics,
}

impl LocalBroker {
    /// A broker keeping at most `max_topics` live topics, a topic staying live for
    /// `topic_ttl` after its last publish.
    pub fn new(max_topics: usize, topic_ttl: Duration) -> LocalBroker {
        LocalBroker {
            state: Mutex::new(BrokerState {
                ids: IdClock::default(),
                topics: LiveTopics::new(),
            }),
            attached: OnceLock::new(),
            newest: AtomicU64::new(now_micros()),
            max_topics,
            topic_ttl,
            started: Instant::now(),
        }
    }

    /// Number of live topics.
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
        let now_ms = self.started.elapsed().as_millis() as u64;
        let ttl_ms = self.topic_ttl.as_millis().min(u64::MAX as u128) as u64;
        let result = {
            let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let state = &mut *guard;
            let topics = &mut state.topics;
            topics.expire(now_ms, ttl_ms, EXPIRE_PER_PUBLISH);
            let new = request
                .topics()
                .iter()
                .filter(|t| !topics.contains(t))
                .count();
            let over = (topics.len() + new).saturating_sub(self.max_topics);
            if over > 0 {
                // Room for the new topics, from the idle ones (least recently published first).
                topics.expire(now_ms, ttl_ms, over);
            }
            if topics.len() + new > self.max_topics {
                Err(PublishError::TooManyTopics)
            } else {
                for topic in request.topics() {
                    topics.touch(topic, now_ms);
                }
                metrics.topics.store(topics.len() as u64, Ordering::Relaxed);
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
        let broker: Arc<dyn Broker> = Arc::new(LocalBroker::new(2, Duration::from_secs(600)));
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

    /// A topic not published to within the TTL stops counting, so new topics are accepted
    /// again. (Guards against a topic set that only grows: 503 for every new topic forever.)
    #[test]
    fn topics_expire_after_the_ttl() {
        let broker: Arc<dyn Broker> = Arc::new(LocalBroker::new(2, Duration::from_millis(30)));
        broker.attach(Feeds::new(Vec::new()), Arc::new(Metrics::default()));
        let publish = |topic: &str| {
            let request = PublishRequest::new(&[topic], None, "x").unwrap();
            broker.publish_and_wait(request, Duration::from_secs(1))
        };
        assert!(publish("user1").is_ok());
        assert!(publish("user2").is_ok());
        assert_eq!(publish("user3"), Err(PublishError::TooManyTopics));
        std::thread::sleep(Duration::from_millis(40));
        for n in 3..100 {
            assert!(publish(&format!("user{n}")).is_ok(), "user{n}");
            std::thread::sleep(Duration::from_millis(16));
        }
    }
}
