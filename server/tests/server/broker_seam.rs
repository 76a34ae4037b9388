//! The broker seam is real: a second [`Broker`] implementation, written here, drives a real
//! server over sockets. It answers publishes from its own thread (as a backplane does after a
//! round trip) and can hold deliveries back until after it answered, so events reach the event
//! loops late. Subscribers that join meanwhile, live or with `Last-Event-ID`, get every event
//! after their position exactly once, in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use sse_server::Broker;
use sse_server::broker::{PublishReply, PublishRequest, Published};
use sse_server::feed::Feeds;
use sse_server::metrics::Metrics;

use crate::util::{self, Publisher, SseStream, TestServer, deadline};

/// A broker that answers on its own thread, with deliveries that can be held back.
struct LateBroker {
    /// Publishes go to the broker's thread.
    requests: Mutex<mpsc::Sender<(PublishRequest, PublishReply)>>,
    shared: Arc<LateShared>,
}

struct LateShared {
    feeds: OnceLock<Feeds>,
    /// Acknowledged events not yet delivered, and whether deliveries are held.
    held: Mutex<(VecDeque<Arc<Published>>, bool)>,
    newest: AtomicU64,
}

impl LateShared {
    /// Delivers what is held, in id order, unless deliveries are held back.
    fn deliver_released(&self) {
        let mut held = self.held.lock().unwrap();
        if held.1 {
            return;
        }
        let feeds = self.feeds.get().expect("attached");
        while let Some(event) = held.0.pop_front() {
            feeds.deliver(event);
        }
    }
}

impl LateBroker {
    fn start() -> Arc<LateBroker> {
        let (sender, receiver) = mpsc::channel::<(PublishRequest, PublishReply)>();
        let shared = Arc::new(LateShared {
            feeds: OnceLock::new(),
            held: Mutex::new((VecDeque::new(), false)),
            newest: AtomicU64::new(0),
        });
        let worker = shared.clone();
        // The thread ends when the broker (and its sender) is dropped.
        thread::spawn(move || {
            for (id, (request, reply)) in (1001..).zip(receiver) {
                let event = Arc::new(request.into_published(id));
                worker.held.lock().unwrap().0.push_back(event);
                worker.newest.store(id, Ordering::SeqCst);
                // Answered first, delivered after (or later still, while held).
                reply.complete(Ok(id));
                worker.deliver_released();
            }
        });
        Arc::new(LateBroker {
            requests: Mutex::new(sender),
            shared,
        })
    }

    /// Holds deliveries back (publishes are still answered) until [`LateBroker::release`].
    fn hold(&self) {
        self.shared.held.lock().unwrap().1 = true;
    }

    fn release(&self) {
        self.shared.held.lock().unwrap().1 = false;
        self.shared.deliver_released();
    }
}

impl Broker for LateBroker {
    fn attach(&self, feeds: Feeds, _metrics: Arc<Metrics>) {
        let _ = self.shared.feeds.set(feeds);
    }

    fn publish(&self, request: PublishRequest, reply: PublishReply) {
        // A send fails only when the thread is gone; the dropped reply then answers 503.
        let _ = self.requests.lock().unwrap().send((request, reply));
    }

    fn newest_id(&self) -> u64 {
        self.shared.newest.load(Ordering::SeqCst)
    }
}

fn ids(stream: &mut SseStream, count: usize) -> Vec<u64> {
    (0..count)
        .map(|_| stream.next_event().id.expect("every event has an id"))
        .collect()
}

/// Events answered but delivered late: a live subscriber, a fresh one that joins while they are
/// held, one that replays from a retained event and one whose `Last-Event-ID` is an answered
/// but undelivered event each get exactly the events after their position, once, in order.
#[test]
fn late_deliveries_join_replay_and_live_without_gap_or_duplicate() {
    let broker = LateBroker::start();
    let server = TestServer::start_with_broker(
        sse_server::Config {
            threads: 2,
            ..util::config()
        },
        broker.clone(),
    );
    let addr = server.addr;
    let mut live = SseStream::subscribe(addr, &["t"]);
    live.read_preamble(deadline());
    let mut publisher = Publisher::new(addr);
    let mut published: Vec<u64> = (1..=5)
        .map(|n| publisher.publish("t", format!("e{n}").as_bytes()))
        .collect();
    // The first five reach the loops; the live subscriber has them.
    assert_eq!(ids(&mut live, 5), published);

    broker.hold();
    published.extend((6..=10).map(|n| publisher.publish("t", format!("e{n}").as_bytes())));
    let join = |last_event_id: Option<u64>| {
        let header = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        let mut stream = SseStream::open(addr, "/events?topic=t", &header);
        stream.read_preamble(deadline());
        stream
    };
    // Joins while events 6..=10 are answered but not yet in any loop.
    let mut fresh = join(None);
    let mut from_retained = join(Some(published[2]));
    let mut from_undelivered = join(Some(published[7]));
    broker.release();
    published.extend((11..=15).map(|n| publisher.publish("t", format!("e{n}").as_bytes())));

    assert_eq!(ids(&mut live, 10), published[5..], "live: 6..=15");
    assert_eq!(ids(&mut fresh, 5), published[10..], "fresh: 11..=15");
    assert_eq!(
        ids(&mut from_retained, 12),
        published[3..],
        "replay from 3: 4..=15"
    );
    assert_eq!(
        ids(&mut from_undelivered, 7),
        published[8..],
        "from 8: 9..=15"
    );
    for stream in [
        &mut live,
        &mut fresh,
        &mut from_retained,
        &mut from_undelivered,
    ] {
        assert!(
            stream.stays_silent(std::time::Duration::from_millis(200)),
            "nothing more, no duplicate"
        );
    }
}

/// A broker that drops a publish without answering it: the publisher gets `503`, not silence,
/// and the connection keeps serving.
#[test]
fn a_publish_the_broker_drops_is_answered_503() {
    struct DroppingBroker;
    impl Broker for DroppingBroker {
        fn attach(&self, _feeds: Feeds, _metrics: Arc<Metrics>) {}
        fn publish(&self, _request: PublishRequest, _reply: PublishReply) {}
        fn newest_id(&self) -> u64 {
            0
        }
    }
    let server = TestServer::start_with_broker(util::config(), Arc::new(DroppingBroker));
    let response = util::post_form(server.addr, "/publish?topic=t", "data=x");
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("5"));
    assert_eq!(util::get(server.addr, "/healthz").status, 200);
}
