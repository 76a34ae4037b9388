//! One node cut off from Redis while the others go on (its own Redis account is disabled and
//! its connections killed: `RedisServer::cut_off`): what was acknowledged meanwhile reaches it
//! once it is back, exactly once, from the feed; when the feed was trimmed past it meanwhile,
//! its streams end and replay from the topic streams recovers every event.

use std::time::Duration;

use crate::backplane::{healthy, ids, node, node_config, resume, subscribe};
use crate::util::redis::RedisServer;
use crate::util::{Publisher, TIMEOUT, TestServer, deadline, metric, metrics, wait_until};

/// A node on Redis's second account, which the test can cut off alone.
fn cuttable_node(redis: &RedisServer) -> TestServer {
    TestServer::start(sse_server::Config {
        redis: Some(redis.cuttable_url()),
        ..node_config(redis)
    })
}

/// Publishes `count` events to topic `t` through `publisher`; returns their ids.
fn publish_some(publisher: &mut Publisher, label: &str, count: usize) -> Vec<u64> {
    (0..count)
        .map(|n| publisher.publish("t", format!("{label}{n}").as_bytes()))
        .collect()
}

/// The feed is trimmed (here `XTRIM` to 2 entries) while a node is cut off: when the node is
/// back it cannot read what it missed from the feed. It says so instead of going on silently:
/// its streams end (before any event past the loss), `sse_backplane_feed_gaps_total` counts it,
/// and a client that reconnects with `Last-Event-ID` gets every missed event from the topic
/// stream, `Sse-Replay: complete`, then live: none lost, none twice.
#[test]
fn a_feed_trimmed_while_a_node_was_cut_off_ends_its_streams_and_replay_recovers() {
    let redis = RedisServer::start();
    let publisher_node = node(&redis);
    let cut = cuttable_node(&redis);
    let mut stream = subscribe(cut.addr, &["t"]);
    let mut publisher = Publisher::new(publisher_node.addr);
    let mut expected = publish_some(&mut publisher, "before", 3);
    let mut got = ids(&mut stream, 3);
    assert_eq!(got, expected);

    redis.cut_off();
    assert!(
        wait_until(TIMEOUT, || !healthy(cut.addr)),
        "the node is cut off"
    );
    expected.extend(publish_some(&mut publisher, "missed", 10));
    assert_eq!(
        redis.command(&["XTRIM", "{sse}:feed", "MAXLEN", "2"]),
        ":11",
        "the feed keeps only the last 2 of 13"
    );
    redis.let_back();

    while let Some(event) = stream.next_event_until(deadline()) {
        got.push(event.id.expect("event id"));
    }
    assert!(stream.is_eof(), "the stream ends");
    assert_eq!(got, expected[..3], "nothing past the loss before the end");
    assert!(
        wait_until(TIMEOUT, || healthy(cut.addr)),
        "the node is back"
    );
    assert_eq!(
        metric(&metrics(cut.addr), "sse_backplane_feed_gaps_total"),
        1.0
    );

    let mut again = resume(cut.addr, "t", *got.last().unwrap());
    assert_eq!(again.head.header("sse-replay"), Some("complete"));
    got.extend(again.ids_through(*expected.last().unwrap()));
    assert_eq!(got, expected, "every event once, in order");
    let live = publisher.publish("t", b"live");
    assert_eq!(ids(&mut again, 1), [live]);
    assert!(
        again.stays_silent(Duration::from_millis(200)),
        "nothing twice"
    );
}

/// Redis with persistence (`--appendonly yes --appendfsync always`) is killed and restarted
/// while a node is cut off: the events acknowledged meanwhile survive the restart and reach
/// that node's open stream once it reconnects, exactly once, from its last delivered id; ids
/// keep increasing; the stream is not ended (the feed still reaches back to the node).
#[test]
fn events_acknowledged_while_a_node_was_cut_off_survive_a_persistent_redis_restart() {
    let mut redis = RedisServer::start_persistent();
    let publisher_node = node(&redis);
    let cut = cuttable_node(&redis);
    let mut stream = subscribe(cut.addr, &["t"]);
    let mut publisher = Publisher::new(publisher_node.addr);
    let before = publish_some(&mut publisher, "before", 3);
    assert_eq!(ids(&mut stream, 3), before);

    redis.cut_off();
    assert!(
        wait_until(TIMEOUT, || !healthy(cut.addr)),
        "the node is cut off"
    );
    let acknowledged = publish_some(&mut publisher, "acked", 5);
    redis.restart();
    for node in [&publisher_node, &cut] {
        assert!(
            wait_until(TIMEOUT, || healthy(node.addr)),
            "the nodes reconnect after the restart"
        );
    }
    assert_eq!(
        ids(&mut stream, 5),
        acknowledged,
        "each acknowledged event once"
    );
    let after = publish_some(&mut publisher, "after", 3);
    assert!(after[0] > acknowledged[4], "ids keep increasing: {after:?}");
    assert_eq!(ids(&mut stream, 3), after);
    assert!(
        stream.stays_silent(Duration::from_millis(200)),
        "nothing twice"
    );
    assert_eq!(
        metric(&metrics(cut.addr), "sse_backplane_feed_gaps_total"),
        0.0
    );
}
