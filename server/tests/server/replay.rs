//! `Last-Event-ID` replay: retained events in order, then live, with no gap and no duplicate;
//! history bounds; ids across a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::util::{
    self, Publisher, ServerProcess, SseStream, TIMEOUT, TestServer, deadline, publish, wait_until,
};

/// `Last-Event-ID: N` replays every retained event of the topic with an id above `N`, in order,
/// then continues live; events of other topics are not replayed.
#[test]
fn replay_from_last_event_id_header_then_live() {
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(publish(addr, "r", &format!("r{i}")));
        publish(addr, "elsewhere", "not replayed");
    }
    let mut stream = SseStream::open(
        addr,
        "/events?topic=r",
        &format!("Last-Event-ID: {}\r\n", ids[1]),
    );
    stream.read_preamble(deadline());
    for (i, &id) in ids.iter().enumerate().skip(2) {
        let event = stream.next_event();
        assert_eq!((event.id, event.data_text()), (Some(id), format!("r{i}")));
    }
    let live = publish(addr, "r", "live");
    let event = stream.next_event();
    assert_eq!((event.id, event.data_text()), (Some(live), "live".into()));

    // The newest id replays nothing: the next event is the next live one.
    let mut caught_up = SseStream::open(
        addr,
        "/events?topic=r",
        &format!("Last-Event-ID: {live}\r\n"),
    );
    caught_up.read_preamble(deadline());
    let next = publish(addr, "r", "next");
    assert_eq!(caught_up.next_event().id, Some(next));
}

/// `?lastEventId=N` works like the header, and replay merges several topics in id order,
/// sending an event published to two of them once.
#[test]
fn replay_from_query_parameter_across_topics() {
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let mut published = Vec::new();
    for i in 0..9 {
        let topic = ["x", "y", "z"][i % 3];
        published.push((publish(addr, topic, &format!("{topic}{i}")), topic));
    }
    // An event on two subscribed topics is replayed once.
    published.push((util::publish_event(addr, &["x", "y"], None, "both"), "x"));
    let since = published[0].0;
    let mut stream = SseStream::open(
        addr,
        &format!("/events?topic=x&topic=y&lastEventId={since}"),
        "",
    );
    stream.read_preamble(deadline());
    let expected: Vec<u64> = published
        .iter()
        .filter(|(id, topic)| *id > since && *topic != "z")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(stream.ids_through(*expected.last().unwrap()), expected);
}

/// Subscribers that join with `Last-Event-ID` while events are being published get every event
/// after their id exactly once and in order: nothing is lost or repeated where replay hands
/// over to live delivery.
#[test]
fn replay_during_publishing_has_no_gap_or_duplicate() {
    const EVENTS: usize = 300;
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let published = Arc::new(Mutex::new(Vec::new()));
    let publisher = {
        let published = Arc::clone(&published);
        thread::spawn(move || {
            let mut publisher = Publisher::new(addr);
            for i in 0..EVENTS {
                let id = publisher.publish("race", format!("e{i}").as_bytes());
                published.lock().unwrap().push(id);
            }
        })
    };
    let count = || published.lock().unwrap().len();
    let mut joined = Vec::new();
    for step in 1..=8 {
        let target = step * EVENTS / 10;
        assert!(
            wait_until(TIMEOUT, || count() >= target || publisher.is_finished()),
            "publisher stalled"
        );
        let since = {
            let ids = published.lock().unwrap();
            // Alternate between the newest id and one a little older, in the header and the
            // query parameter.
            ids[ids.len() - 1 - (step % 3) * 2]
        };
        let stream = if step % 2 == 0 {
            SseStream::open(
                addr,
                "/events?topic=race",
                &format!("Last-Event-ID: {since}\r\n"),
            )
        } else {
            SseStream::open(addr, &format!("/events?topic=race&lastEventId={since}"), "")
        };
        joined.push((since, stream));
    }
    publisher.join().unwrap();
    let ids = published.lock().unwrap().clone();
    assert_eq!(ids.len(), EVENTS);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    let last = *ids.last().unwrap();
    for (n, (since, mut stream)) in joined.into_iter().enumerate() {
        let expected: Vec<u64> = ids.iter().copied().filter(|&id| id > since).collect();
        let how = if (n + 1) % 2 == 0 { "header" } else { "query" };
        let mut got = Vec::new();
        while got.last() < Some(&last) {
            match stream.next_event_until(deadline()) {
                Some(event) => got.push(event.id.expect("event without id")),
                None => break,
            }
        }
        let position = ids.iter().position(|&id| id == since).unwrap();
        assert_eq!(
            got,
            expected,
            "joiner {n} sent Last-Event-ID {since} (event {position} of {EVENTS}) by {how}; \
             received {} of {} events{}",
            got.len(),
            expected.len(),
            if stream.is_eof() {
                ", then the stream closed"
            } else {
                ""
            }
        );
    }
}

/// Replay serves at most the last `history` events of a topic.
#[test]
fn history_keeps_the_last_n_events() {
    let server = TestServer::start(sse_server::Config {
        history: 3,
        ..util::config()
    });
    let ids: Vec<u64> = (0..5)
        .map(|i| publish(server.addr, "h", &i.to_string()))
        .collect();
    let mut stream = SseStream::open(server.addr, "/events?topic=h", "Last-Event-ID: 0\r\n");
    stream.read_preamble(deadline());
    assert_eq!(stream.ids_through(ids[4]), ids[2..]);
}

/// Replay is bounded in bytes too: with room for about two 4 KB events, only the newest one or
/// two are kept.
#[test]
fn history_is_bounded_in_bytes() {
    let server = TestServer::start(sse_server::Config {
        history_bytes: 10_000,
        ..util::config()
    });
    let data = "b".repeat(4000);
    let ids: Vec<u64> = (0..5).map(|_| publish(server.addr, "hb", &data)).collect();
    let mut stream = SseStream::open(server.addr, "/events?topic=hb", "Last-Event-ID: 0\r\n");
    stream.read_preamble(deadline());
    let replayed = stream.ids_through(ids[4]);
    assert!(
        replayed.len() <= 2 && replayed[..] == ids[5 - replayed.len()..],
        "replayed {replayed:?} of {ids:?}"
    );
}

/// Ids keep increasing when the server restarts (they are not reset to a counter's start).
#[test]
fn ids_increase_across_a_restart() {
    let mut first = ServerProcess::spawn(&["--drain", "100ms"]);
    let before: Vec<u64> = (0..3)
        .map(|i| publish(first.addr, "t", &i.to_string()))
        .collect();
    first.signal("TERM");
    let status = first.wait_exit(TIMEOUT).expect("first server exits");
    assert!(status.success(), "{status:?}");

    let second = ServerProcess::spawn(&["--drain", "100ms"]);
    let after = publish(second.addr, "t", "after");
    assert!(
        after > *before.last().unwrap(),
        "id {after} after restart, before: {before:?}"
    );
}

/// A replay request for a topic never published to is simply an empty stream that goes live.
#[test]
fn replay_of_unknown_topic_goes_live() {
    let server = TestServer::with_defaults();
    let mut stream = SseStream::open(server.addr, "/events?topic=new", "Last-Event-ID: 5\r\n");
    stream.read_preamble(deadline());
    assert!(stream.stays_silent(Duration::from_millis(100)));
    let id = publish(server.addr, "new", "first");
    assert_eq!(stream.next_event().id, Some(id));
}

/// A client that got id `N` back from a publish and at once subscribes with
/// `Last-Event-ID: N` never receives event `N` again, even if the event is still on its way to
/// the event loop serving the new subscriber. (Guards against positioning the replay by what a
/// loop has received so far instead of by id.)
#[test]
fn subscribing_with_the_newest_id_never_repeats_it() {
    let server = TestServer::start(sse_server::Config {
        threads: 4,
        ..util::config()
    });
    let addr = server.addr;
    // Keep the event loops busy, so that the new subscriber's request and the event's arrival
    // often reach a loop in the same wake-up, as happens on a loaded machine.
    let stop = Arc::new(AtomicBool::new(false));
    let mut noise: Vec<thread::JoinHandle<()>> = (0..8)
        .map(|_| {
            let mut stream = SseStream::subscribe(addr, &["noise"]);
            stream.read_preamble(deadline());
            // A noise reader may fall behind and be cut off as a slow consumer; that is fine.
            thread::spawn(move || {
                while let Some(event) = stream.next_event_until(deadline()) {
                    if event.data_text() == "stop" {
                        return;
                    }
                }
            })
        })
        .collect();
    noise.push({
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut publisher = Publisher::new(addr);
            let data = vec![b'n'; 4096];
            while !stop.load(Ordering::Relaxed) {
                publisher.publish("noise", &data);
            }
            publisher.publish("noise", b"stop");
        })
    });
    let mut publisher = Publisher::new(addr);
    let mut duplicates = Vec::new();
    for round in 0..400 {
        let newest = publisher.publish("newest", format!("old {round}").as_bytes());
        let mut stream = SseStream::open(
            addr,
            "/events?topic=newest",
            &format!("Last-Event-ID: {newest}\r\n"),
        );
        stream.read_preamble(deadline());
        let next = publisher.publish("newest", format!("new {round}").as_bytes());
        let event = stream.next_event();
        if event.id != Some(next) {
            duplicates.push((round, newest, event.id));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for thread in noise {
        thread.join().expect("noise thread failed");
    }
    assert!(
        duplicates.is_empty(),
        "(round, Last-Event-ID sent, first id received): {duplicates:?}"
    );
}

/// `--stream-lifetime`: a stream is closed after (90-100% of) its lifetime; a client that comes
/// back with `Last-Event-ID`, as `EventSource` does, gets what was published while it was away,
/// then live, nothing lost and nothing twice; the close is counted as a lifetime close, not a
/// token's. A server without a lifetime keeps its streams open.
#[test]
fn streams_end_after_their_lifetime_and_resume_without_loss() {
    let server = TestServer::start(sse_server::Config {
        stream_lifetime: Duration::from_millis(400),
        ..util::config()
    });
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["life"]);
    stream.read_preamble(deadline());
    let first = publish(addr, "life", "before the end");
    assert_eq!(stream.next_event().id, Some(first));
    assert!(
        stream.wait_closed(deadline()),
        "the stream outlived its lifetime"
    );
    let away = publish(addr, "life", "while away");
    let mut back = SseStream::open(
        addr,
        "/events?topic=life",
        &format!("Last-Event-ID: {first}\r\n"),
    );
    back.read_preamble(deadline());
    let event = back.next_event();
    assert_eq!(
        (event.id, event.data_text()),
        (Some(away), "while away".into())
    );
    let live = publish(addr, "life", "live");
    assert_eq!(back.next_event().id, Some(live));
    let samples = util::metrics(addr);
    assert!(util::metric(&samples, "sse_stream_lifetime_closes_total") >= 1.0);
    assert_eq!(util::metric(&samples, "sse_token_expiry_closes_total"), 0.0);

    let forever = TestServer::with_defaults();
    let mut stream = SseStream::subscribe(forever.addr, &["life"]);
    stream.read_preamble(deadline());
    assert!(
        stream.stays_silent(Duration::from_millis(1200)),
        "without --stream-lifetime the stream stays open"
    );
    assert!(!stream.is_eof());
}
