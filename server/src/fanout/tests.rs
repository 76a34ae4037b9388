//! Tests of the topic logs and subscribers: partial writes, merging, replay, the id rule, lag,
//! trimming, the memory budget and the topic TTL.

use super::*;
use crate::event::EncodedEvent;
use std::sync::Arc;

const RETENTION: Retention = Retention {
    history: 4,
    history_bytes: 1 << 20,
    max_pending: 1 << 20,
    memory: 1 << 30,
    topic_ttl_ms: 600_000,
};

/// Subscribes, for tests that do not look at the replay's completeness.
fn sub(
    topics: &mut Topics,
    conn: usize,
    names: &[&str],
    last_event_id: Option<EventId>,
    newest_id: EventId,
) -> Subscriber {
    topics
        .subscribe(conn, names, last_event_id, newest_id)
        .unwrap()
        .0
}

/// Trims topic `name` as the end of a pass that began at the current tail would.
fn trim_now(topics: &mut Topics, name: &str) {
    let key = topics.by_name[name];
    let tail = topics.tail_offset(key);
    topics.trim(key, tail, u64::MAX);
}

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
        let mut topics = Topics::new(RETENTION, 0);
        let mut subscriber = sub(&mut topics, 1, &["a"], None, 0);
        publish(&mut topics, 1, &["a"], "one");
        publish(&mut topics, 2, &["a"], "two\nlines");
        let (out, flushed) = drain(&topics, &mut subscriber, chunk);
        assert_eq!(
            out, "id: 1\ndata: one\n\nid: 2\ndata: two\ndata: lines\n\n",
            "chunk {chunk}"
        );
        assert_eq!(flushed.events, 2);
        assert_eq!(subscriber.pending_bytes(&topics), 0);
    }
}

/// Several topics merge in id order and an event in two of them is written once.
#[test]
fn merges_topics_in_id_order_without_duplicates() {
    let mut topics = Topics::new(RETENTION, 0);
    let mut subscriber = sub(&mut topics, 1, &["a", "b"], None, 0);
    let mut other = sub(&mut topics, 2, &["c"], None, 0);
    publish(&mut topics, 1, &["a"], "1");
    publish(&mut topics, 2, &["b"], "2");
    publish(&mut topics, 3, &["a", "b"], "3");
    publish(&mut topics, 4, &["c"], "4");
    publish(&mut topics, 5, &["b"], "5");
    let (out, flushed) = drain(&topics, &mut subscriber, 7);
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
    let mut topics = Topics::new(RETENTION, 0);
    for id in 1..=6 {
        publish(&mut topics, id, &["a"], &id.to_string());
        trim_now(&mut topics, "a");
    }
    // History keeps 4 events: ids 3 to 6.
    let mut subscriber = sub(&mut topics, 1, &["a"], Some(4), 0);
    assert_eq!(
        drain(&topics, &mut subscriber, 100).0,
        "id: 5\ndata: 5\n\nid: 6\ndata: 6\n\n"
    );
    let mut all = sub(&mut topics, 2, &["a"], Some(0), 0);
    assert_eq!(drain(&topics, &mut all, 100).1.events, 4);
    let mut live = sub(&mut topics, 3, &["a"], None, 0);
    assert_eq!(drain(&topics, &mut live, 100).1.events, 0);
}

/// A subscriber whose socket is full becomes lagging once it is more than `max_pending`
/// bytes behind, whatever the history window; the log then lets go of what only it needed.
#[test]
fn stalled_subscriber_lags_and_log_is_bounded() {
    let retention = Retention {
        history: 2,
        max_pending: 100,
        ..RETENTION
    };
    let mut topics = Topics::new(retention, 0);
    let stalled = sub(&mut topics, 1, &["a"], None, 0);
    let mut reader = sub(&mut topics, 2, &["a"], None, 0);
    let data = "x".repeat(20);
    let mut lagged_at = None;
    for id in 1..=20 {
        let key = publish(&mut topics, id, &["a"], &data)[0];
        drain(&topics, &mut reader, 1000);
        assert!(!reader.is_lagging(&topics, true));
        if lagged_at.is_none() && stalled.is_lagging(&topics, true) {
            lagged_at = Some(id);
            topics.unsubscribe(&stalled);
        }
        let tail = topics.tail_offset(key);
        topics.trim(key, tail, u64::MAX);
    }
    let lagged_at = lagged_at.expect("the stalled subscriber never lagged");
    // Each event is 34 bytes: more than 100 bytes behind after 3 events.
    assert_eq!(lagged_at, 3);
    assert!(topics.logs[topics.by_name["a"]].entries.len() <= 4);
}

/// The lag limit holds however large the history is, and only a full socket counts as
/// slow. (Guards against the old rule, which cut a subscriber off only once it was outside
/// the whole history window as well.)
#[test]
fn lag_is_max_pending_whatever_the_history() {
    let retention = Retention {
        history: 1024,
        history_bytes: 1 << 30,
        max_pending: 1000,
        ..RETENTION
    };
    let mut topics = Topics::new(retention, 0);
    let stuck = sub(&mut topics, 1, &["a"], None, 0);
    let data = "x".repeat(85); // 100 bytes on the wire with "id: NN\n"
    for id in 10..=19 {
        publish(&mut topics, id, &["a"], &data);
    }
    assert_eq!(stuck.live_lag(&topics), 1000);
    assert!(!stuck.is_lagging(&topics, true), "exactly at the limit");
    publish(&mut topics, 20, &["a"], &data);
    assert!(
        stuck.is_lagging(&topics, true),
        "past max-pending with a full socket"
    );
    assert!(
        !stuck.is_lagging(&topics, false),
        "a socket that takes bytes is not slow"
    );
    // A replay of the whole history is not lag: only what was published since joining is.
    let replaying = sub(&mut topics, 2, &["a"], Some(0), 20);
    assert!(!replaying.is_lagging(&topics, true));
}

/// Trimming at the end of a pass uses the tail the pass began with: a subscriber visited
/// early in a long pass, when it was up to date, is not cut off for what arrived during the
/// pass. (Guards against trimming against the newest tail.)
#[test]
fn trim_keeps_what_a_pass_may_still_owe() {
    let retention = Retention {
        history: 1,
        max_pending: 100,
        ..RETENTION
    };
    let mut topics = Topics::new(retention, 0);
    let mut early = sub(&mut topics, 1, &["a"], None, 0);
    let key = publish(&mut topics, 1, &["a"], "x")[0];
    let pass_tail = topics.tail_offset(key);
    drain(&topics, &mut early, 1000);
    // A burst arrives while the pass goes on to other subscribers.
    for id in 2..=20 {
        publish(&mut topics, id, &["a"], &"y".repeat(20));
    }
    topics.trim(key, pass_tail, u64::MAX);
    assert!(!early.has_lost_events(&topics));
    assert_eq!(drain(&topics, &mut early, 1 << 20).1.events, 19);
}

/// Past the memory budget, the oldest events of the least recently published topics go
/// first, and replay from before them is told as a gap.
#[test]
fn memory_budget_evicts_least_recently_published_topics_first() {
    let event_cost = EncodedEvent::encode(10, None, "x").len() as u64 + ENTRY_OVERHEAD;
    let retention = Retention {
        memory: 10 * event_cost,
        ..RETENTION
    };
    let mut topics = Topics::new(retention, 0);
    for (id, name) in (10..).zip(["old", "old", "busy", "busy", "busy", "mid"]) {
        publish(&mut topics, id, &[name], "x");
    }
    for id in 16..=20 {
        publish(&mut topics, id, &["busy"], "x");
    }
    // 11 events for a budget of 10: the oldest event of "old" went.
    assert_eq!(topics.retained_bytes(), 10 * event_cost);
    assert_eq!(topics.logs[topics.by_name["old"]].entries.len(), 1);
    for id in 21..=22 {
        publish(&mut topics, id, &["busy"], "x");
    }
    // Then the rest of "old", then "mid" (published after "old"), before any of "busy".
    assert!(
        !topics.by_name.contains_key("old")
            || topics.logs[topics.by_name["old"]].entries.is_empty()
    );
    assert_eq!(topics.logs[topics.by_name["mid"]].entries.len(), 0);
    assert_eq!(topics.logs[topics.by_name["busy"]].entries.len(), 10);
    assert_eq!(topics.evicted_and_expired().0, 3);
    let (_, replay) = topics.subscribe(1, &["old"], Some(10), 22).unwrap();
    assert_eq!(replay, Replay::Gap);
    let (_, replay) = topics.subscribe(2, &["busy"], Some(18), 22).unwrap();
    assert_eq!(replay, Replay::Complete);
}

/// The memory budget never evicts an event a subscriber has not been written yet: a reader
/// that keeps up is not cut off for pressure from other topics, the events it is owed are
/// evicted once a round has written them, and memory is back within the budget then.
/// (Guards against eviction by recency alone, which dropped a quiet topic's newest event
/// before its pass reached the reader, and then cut the reader off as slow.)
#[test]
fn eviction_spares_events_a_reader_is_still_owed() {
    let event_cost = EncodedEvent::encode(10, None, "x").len() as u64 + ENTRY_OVERHEAD;
    let retention = Retention {
        memory: 10 * event_cost,
        ..RETENTION
    };
    let mut topics = Topics::new(retention, 0);
    let mut reader = sub(&mut topics, 1, &["quiet"], None, 0);
    let quiet = publish(&mut topics, 10, &["quiet"], "x")[0];
    // Other topics fill the budget many times over before the reader's round comes.
    for id in 11..=40 {
        publish(&mut topics, id, &[&format!("busy{}", id % 3)], "x");
    }
    assert!(!reader.has_lost_events(&topics), "evicted under the reader");
    assert_eq!(topics.retained_bytes(), 10 * event_cost, "others made room");
    assert_eq!(topics.logs[quiet].entries.len(), 1);
    let (out, _) = drain(&topics, &mut reader, 100);
    assert_eq!(out, "id: 10\ndata: x\n\n");
    // The round ends: the event is history now, and goes when it is the least recently used.
    let owed = reader.next_seq_in(quiet).unwrap();
    topics.trim(quiet, topics.tail_offset(quiet), owed);
    for id in 41..=43 {
        publish(&mut topics, id, &[&format!("busy{}", id % 3)], "x");
    }
    assert_eq!(topics.retained_bytes(), 10 * event_cost);
    assert!(topics.logs[quiet].entries.is_empty());
    assert!(!reader.has_lost_events(&topics));
}

/// A topic whose events the budget found all owed asks for a round of its pass (a replay that
/// has since caught up on a topic nobody publishes to keeps its start as the bound until
/// then); after the rounds, the caught-up reader's events go, the stuck reader's stay.
#[test]
fn owed_topics_ask_for_a_round_and_stuck_readers_keep_theirs() {
    let event_cost = EncodedEvent::encode(10, None, "x").len() as u64 + ENTRY_OVERHEAD;
    let retention = Retention {
        memory: 6 * event_cost,
        ..RETENTION
    };
    let mut topics = Topics::new(retention, 0);
    for id in 10..=12 {
        publish(&mut topics, id, &["a"], "x");
        publish(&mut topics, id + 10, &["b"], "x");
    }
    // Replays from the start of each topic; only "a"'s reads them at once.
    let mut replay_a = sub(&mut topics, 1, &["a"], Some(0), 22);
    let stuck_b = sub(&mut topics, 2, &["b"], Some(0), 22);
    let mut reader_c = sub(&mut topics, 3, &["c"], None, 22);
    drain(&topics, &mut replay_a, 1000);
    let mut wanted = Vec::new();
    topics.take_rounds_wanted(&mut wanted);
    assert!(wanted.is_empty(), "within the budget");
    let c = publish(&mut topics, 30, &["c"], "x")[0];
    topics.take_rounds_wanted(&mut wanted);
    let (a, b) = (topics.by_name["a"], topics.by_name["b"]);
    assert_eq!(wanted, [a, b, c], "least recently used first");
    assert_eq!(topics.retained_bytes(), 7 * event_cost, "all owed for now");
    // The rounds: "a"'s reader has everything, "b"'s nothing, "c"'s is being written.
    topics.trim(a, topics.tail_offset(a), replay_a.next_seq_in(a).unwrap());
    topics.trim(b, topics.tail_offset(b), stuck_b.next_seq_in(b).unwrap());
    assert_eq!(topics.retained_bytes(), 6 * event_cost);
    assert_eq!(
        topics.logs[a].entries.len(),
        2,
        "history of a caught-up reader goes"
    );
    assert_eq!(
        topics.logs[b].entries.len(),
        3,
        "the stuck reader's events stay"
    );
    drain(&topics, &mut reader_c, 1000);
    topics.trim(c, topics.tail_offset(c), reader_c.next_seq_in(c).unwrap());
    for id in 31..=33 {
        publish(&mut topics, id, &["c"], "x");
        drain(&topics, &mut reader_c, 1000);
        topics.trim(c, topics.tail_offset(c), reader_c.next_seq_in(c).unwrap());
    }
    assert_eq!(topics.retained_bytes(), 6 * event_cost);
    assert!(
        topics.logs[a].entries.is_empty(),
        "the least recently used first"
    );
    assert_eq!(topics.logs[b].entries.len(), 3);
    assert_eq!(topics.logs[c].entries.len(), 3);
    for reader in [&replay_a, &stuck_b, &reader_c] {
        assert!(!reader.has_lost_events(&topics));
    }
}

/// Replay says whether it is complete: not when the history window or trimming dropped
/// events after the client's id, nor for ids from before the loop knew the topic.
#[test]
fn replay_tells_complete_from_gap() {
    let mut topics = Topics::new(RETENTION, 100);
    for id in 101..=110 {
        publish(&mut topics, id, &["a"], "x");
        trim_now(&mut topics, "a");
    }
    // History keeps 4 events: 107..=110.
    let replay = |topics: &mut Topics, id| topics.subscribe(9, &["a"], Some(id), 110).unwrap().1;
    assert_eq!(replay(&mut topics, 106), Replay::Complete);
    assert_eq!(replay(&mut topics, 110), Replay::Complete);
    assert_eq!(replay(&mut topics, 105), Replay::Gap);
    // A topic this loop never saw: complete only for ids since it started.
    assert_eq!(
        topics.subscribe(9, &["new"], Some(100), 110).unwrap().1,
        Replay::Complete
    );
    assert_eq!(
        topics.subscribe(9, &["new2"], Some(99), 110).unwrap().1,
        Replay::Gap
    );
    assert_eq!(
        topics.subscribe(9, &["a"], None, 110).unwrap().1,
        Replay::Live
    );
}

/// A topic with neither subscribers nor events for the TTL is forgotten with its history,
/// and ids it held can no longer be vouched for; a topic with a subscriber stays.
#[test]
fn idle_topics_are_forgotten_after_the_ttl() {
    let retention = Retention {
        topic_ttl_ms: 1000,
        ..RETENTION
    };
    let mut topics = Topics::new(retention, 0);
    topics.set_now(0);
    let watched = sub(&mut topics, 1, &["watched"], None, 0);
    for n in 0..10_000u64 {
        publish(&mut topics, n + 1, &[&format!("user{n}")], "x");
    }
    publish(&mut topics, 20_000, &["watched"], "x");
    assert_eq!(topics.len(), 10_001);
    topics.set_now(999);
    topics.sweep();
    topics.sweep();
    topics.sweep();
    assert_eq!(topics.len(), 10_001, "not yet");
    topics.set_now(1000);
    // Each sweep looks at a bounded number of slots; a few cover them all.
    for _ in 0..8 {
        topics.sweep();
    }
    assert_eq!(topics.len(), 1, "only the watched topic is left");
    assert_eq!(topics.evicted_and_expired().1, 10_000);
    assert!(topics.retained_bytes() > 0);
    let (_, replay) = topics.subscribe(2, &["user5"], Some(3), 20_000).unwrap();
    assert_eq!(replay, Replay::Gap, "user5's history was forgotten");
    topics.unsubscribe(&watched);
}

/// A subscription naming more topics than a subscriber can hold is refused.
#[test]
fn too_many_topics_are_refused() {
    let mut topics = Topics::new(RETENTION, 0);
    let names: Vec<String> = (0..17).map(|n| n.to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert!(topics.subscribe(1, &names, None, 0).is_err());
    assert!(topics.subscribe(1, &names[..16], None, 0).is_ok());
}

/// The id rule: events that reach the loop after the subscriber already has them (a
/// backplane delivering late) are skipped, and later ones follow without a gap.
#[test]
fn late_deliveries_are_neither_repeated_nor_lost() {
    let mut topics = Topics::new(RETENTION, 0);
    publish(&mut topics, 1, &["a"], "1");
    // The client has seen id 3 elsewhere; ids 2 and 3 have not reached this loop yet.
    let mut replaying = sub(&mut topics, 1, &["a"], Some(3), 3);
    // A fresh subscriber after the broker acknowledged id 3.
    let mut fresh = sub(&mut topics, 2, &["a"], None, 3);
    // A client claiming an id from the future still gets what is published after it joined.
    let mut future = sub(&mut topics, 3, &["a"], Some(1 << 60), 3);
    for id in 2..=5 {
        publish(&mut topics, id, &["a"], &id.to_string());
    }
    let expected = "id: 4\ndata: 4\n\nid: 5\ndata: 5\n\n";
    assert_eq!(drain(&topics, &mut replaying, 5).0, expected);
    assert_eq!(drain(&topics, &mut fresh, 100).0, expected);
    assert_eq!(drain(&topics, &mut future, 100).0, expected);
    assert!(
        !replaying.is_skipping(),
        "skipping ends once newer ids are in every log"
    );
}

/// Unsubscribing removes topics that hold nothing.
#[test]
fn empty_topics_are_removed() {
    let mut topics = Topics::new(RETENTION, 0);
    let subscriber = sub(&mut topics, 1, &["a", "b"], None, 0);
    publish(&mut topics, 1, &["a"], "x");
    topics.unsubscribe(&subscriber);
    assert_eq!(topics.len(), 1, "a keeps its history, b goes");
}

/// Events lost on their way to the loop (a backplane's feed trimmed while the node was cut
/// off): replay from before the loss is a gap in known and new topics alike; from after it,
/// complete.
#[test]
fn lost_events_make_older_replays_gaps() {
    let mut topics = Topics::new(RETENTION, 0);
    publish(&mut topics, 1, &["a"], "1");
    publish(&mut topics, 2, &["a"], "2");
    // Events 3..=9 never arrived.
    topics.vouch_only_after(9);
    publish(&mut topics, 10, &["a"], "10");
    let replay =
        |topics: &mut Topics, name, id| topics.subscribe(9, &[name], Some(id), 10).unwrap().1;
    assert_eq!(replay(&mut topics, "a", 2), Replay::Gap);
    assert_eq!(replay(&mut topics, "a", 9), Replay::Complete);
    assert_eq!(replay(&mut topics, "new", 5), Replay::Gap);
    assert_eq!(replay(&mut topics, "new2", 9), Replay::Complete);
}

/// A subscriber told to skip through an id (the broker replayed up to it) starts after it,
/// whatever its cursors held; its next event is the first one after.
#[test]
fn skipping_through_a_broker_replay() {
    let mut topics = Topics::new(RETENTION, 0);
    for id in 1..=4 {
        publish(&mut topics, id, &["a"], &id.to_string());
    }
    let mut subscriber = sub(&mut topics, 1, &["a"], Some(1), 4);
    assert_eq!(subscriber.next_id(&topics), Some(2));
    subscriber.skip_through(3, &topics);
    assert_eq!(subscriber.next_id(&topics), Some(4));
    publish(&mut topics, 5, &["a"], "5");
    assert_eq!(
        drain(&topics, &mut subscriber, 100).0,
        "id: 4\ndata: 4\n\nid: 5\ndata: 5\n\n"
    );
}
