//! Replay from Redis on demand: a client whose `Last-Event-ID` is older than a node's logs
//! vouch for (history evicted for `--history-memory`, a topic forgotten after `--topic-ttl`)
//! gets the missed events from the topic streams in Redis, then live, with no gap and no
//! duplicate; a point Redis no longer holds is told as a gap.

use std::time::Duration;

use crate::backplane::{ids, node, node_config, resume};
use crate::util::redis::RedisServer;
use crate::util::{self, SseStream, TIMEOUT, TestServer, deadline, metric, metrics, wait_until};

/// Event data large enough that a small `--history-memory` holds only a few events.
fn payload(n: usize) -> String {
    format!("{n}:{}", "x".repeat(200))
}

/// Waits until `addr` has dropped at least `count` events for its memory budget, summed over
/// its loops (each loop keeps its own logs: the tests' nodes have two).
fn wait_evicted(addr: std::net::SocketAddr, count: f64) {
    assert!(
        wait_until(TIMEOUT, || metric(
            &metrics(addr),
            "sse_history_evicted_events_total"
        ) >= count),
        "the node evicts history for its memory budget"
    );
}

/// A node whose `--history-memory` holds a few events: a client that missed 29 of them gets
/// every one from Redis (exact data, in order, `Sse-Replay: complete`), then live events, each
/// once.
#[test]
fn replay_beyond_evicted_history_comes_from_redis_then_live() {
    let redis = RedisServer::start();
    let publisher = node(&redis);
    let small = TestServer::start(sse_server::Config {
        history_memory: 1024,
        ..node_config(&redis)
    });
    let published: Vec<u64> = (0..30)
        .map(|n| util::publish(publisher.addr, "t", &payload(n)))
        .collect();
    // Each loop evicts about 26 of the 30; 40 in all means both evicted at least 11.
    wait_evicted(small.addr, 40.0);

    let mut stream = resume(small.addr, "t", published[0]);
    assert_eq!(stream.head.header("sse-replay"), Some("complete"));
    for (n, &id) in published.iter().enumerate().skip(1) {
        let event = stream.next_event();
        assert_eq!((event.id, event.data_text()), (Some(id), payload(n)));
    }
    let live = util::publish(publisher.addr, "t", "live");
    assert_eq!(ids(&mut stream, 1), [live]);
    assert!(
        stream.stays_silent(Duration::from_millis(200)),
        "nothing twice"
    );
    let samples = metrics(small.addr);
    assert_eq!(metric(&samples, "sse_backplane_replays_total"), 1.0);
    assert_eq!(metric(&samples, "sse_replay_gaps_total"), 0.0);
}

/// A node that forgot a topic after its `--topic-ttl` (no subscribers, no events) while Redis
/// still holds the topic's stream: replay after an id of that topic comes from Redis, complete,
/// then live.
#[test]
fn replay_of_a_topic_the_node_forgot_comes_from_redis() {
    let redis = RedisServer::start();
    let publisher = node(&redis);
    let forgetful = TestServer::start(sse_server::Config {
        topic_ttl: Duration::from_millis(300),
        ..node_config(&redis)
    });
    let published: Vec<u64> = (0..10)
        .map(|n| util::publish(publisher.addr, "t", &format!("e{n}")))
        .collect();
    assert!(
        wait_until(TIMEOUT, || metric(
            &metrics(forgetful.addr),
            "sse_topics_expired_total"
        ) >= 2.0),
        "both loops of the node forget the idle topic"
    );

    let mut stream = resume(forgetful.addr, "t", published[3]);
    assert_eq!(stream.head.header("sse-replay"), Some("complete"));
    assert_eq!(ids(&mut stream, 6), published[4..]);
    let live = util::publish(publisher.addr, "t", "live");
    assert_eq!(ids(&mut stream, 1), [live]);
    assert!(
        stream.stays_silent(Duration::from_millis(200)),
        "nothing twice"
    );
    assert_eq!(
        metric(&metrics(forgetful.addr), "sse_backplane_replays_total"),
        1.0
    );
    // The 6 replayed from Redis count as deliveries, as the live one does.
    assert!(
        wait_until(TIMEOUT, || metric(
            &metrics(forgetful.addr),
            "sse_deliveries_total"
        ) == 7.0),
        "deliveries: {}",
        metric(&metrics(forgetful.addr), "sse_deliveries_total")
    );
}

/// Redis trimmed the topic's stream past the client's id (here `XTRIM` to 5 entries): the
/// client is told (`Sse-Replay: gap`, and `event: gap` as asked with `gaps=1`), then gets what
/// Redis still holds (more than the node's own evicted logs), then live.
#[test]
fn replay_from_a_point_redis_no_longer_holds_is_told_as_a_gap() {
    let redis = RedisServer::start();
    let publisher = node(&redis);
    let small = TestServer::start(sse_server::Config {
        history_memory: 600,
        ..node_config(&redis)
    });
    let published: Vec<u64> = (0..10)
        .map(|n| util::publish(publisher.addr, "t", &payload(n)))
        .collect();
    assert_eq!(
        redis.command(&["XTRIM", "{sse}:topic:t", "MAXLEN", "5"]),
        ":5"
    );
    // Each loop keeps 2 of the 10; 14 evicted in all means both evicted at least 6.
    wait_evicted(small.addr, 14.0);

    let last_event_id = format!("Last-Event-ID: {}\r\n", published[1]);
    let mut stream = SseStream::open(small.addr, "/events?topic=t&gaps=1", &last_event_id);
    stream.read_preamble(deadline());
    assert_eq!(stream.head.header("sse-replay"), Some("gap"));
    let gap = stream.next_event();
    assert_eq!(
        (gap.event.as_deref(), gap.id, gap.data_text()),
        (Some("gap"), None, published[1].to_string())
    );
    assert_eq!(
        ids(&mut stream, 5),
        published[5..],
        "what Redis still holds"
    );
    let live = util::publish(publisher.addr, "t", "live");
    assert_eq!(ids(&mut stream, 1), [live]);
    assert!(
        stream.stays_silent(Duration::from_millis(200)),
        "nothing twice"
    );
    let samples = metrics(small.addr);
    assert_eq!(metric(&samples, "sse_backplane_replays_total"), 1.0);
    assert_eq!(metric(&samples, "sse_replay_gaps_total"), 1.0);
}
