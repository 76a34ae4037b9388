//! The Redis backplane (`--redis`) with a real `redis-server` on a free loopback port: nodes are
//! in-process servers or `sse-server` children sharing it. Every test starts its own Redis.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::redis::RedisServer;
use crate::util::{
    self, Publisher, ServerProcess, SseStream, TIMEOUT, TestServer, deadline, metric, metrics,
    post_form, wait_until,
};

/// A node's configuration: the test defaults, joined to `redis`.
pub(crate) fn node_config(redis: &RedisServer) -> sse_server::Config {
    sse_server::Config {
        redis: Some(redis.url()),
        ..util::config()
    }
}

pub(crate) fn node(redis: &RedisServer) -> TestServer {
    TestServer::start(node_config(redis))
}

pub(crate) fn healthy(addr: std::net::SocketAddr) -> bool {
    util::get(addr, "/healthz").status == 200
}

/// Subscribes to `topics` and waits for the stream to open.
pub(crate) fn subscribe(addr: std::net::SocketAddr, topics: &[&str]) -> SseStream {
    let mut stream = SseStream::subscribe(addr, topics);
    stream.read_preamble(deadline());
    stream
}

/// Subscribes to `topic` with `Last-Event-ID: last`.
pub(crate) fn resume(addr: std::net::SocketAddr, topic: &str, last: u64) -> SseStream {
    let mut stream = SseStream::open(
        addr,
        &format!("/events?topic={topic}"),
        &format!("Last-Event-ID: {last}\r\n"),
    );
    stream.read_preamble(deadline());
    stream
}

/// Reads `count` events; returns their ids.
pub(crate) fn ids(stream: &mut SseStream, count: usize) -> Vec<u64> {
    (0..count)
        .map(|_| stream.next_event().id.expect("event id"))
        .collect()
}

/// Publishes on one node and on another, interleaved over two topics: every node's subscriber
/// gets every event once, all in the same order, which is the order of the ids Redis assigned
/// (strictly increasing across topics and nodes).
#[test]
fn publishes_on_any_node_reach_every_node_in_one_order() {
    let redis = RedisServer::start();
    let nodes = [node(&redis), node(&redis), node(&redis)];
    let mut streams: Vec<SseStream> = nodes
        .iter()
        .map(|node| subscribe(node.addr, &["a", "b"]))
        .collect();
    let mut publishers = [Publisher::new(nodes[0].addr), Publisher::new(nodes[1].addr)];
    let mut acknowledged = Vec::new();
    for n in 0..30 {
        let topic = if n % 3 == 0 { "b" } else { "a" };
        acknowledged.push(publishers[n % 2].publish(topic, format!("e{n}").as_bytes()));
    }
    assert!(
        acknowledged.windows(2).all(|pair| pair[0] < pair[1]),
        "ids increase across nodes and topics: {acknowledged:?}"
    );
    for (index, stream) in streams.iter_mut().enumerate() {
        assert_eq!(ids(stream, 30), acknowledged, "node {index}");
        assert!(
            stream.stays_silent(Duration::from_millis(200)),
            "node {index}: nothing twice"
        );
    }
}

/// A subscriber that connects without `Last-Event-ID` right after a publish was answered takes
/// only what is published after it, even while that publish is still on its way back to the
/// node through the feed (as with the in-process broker).
#[test]
fn a_new_subscriber_starts_after_the_last_answered_publish() {
    let redis = RedisServer::start();
    let node = node(&redis);
    let mut publisher = Publisher::new(node.addr);
    for round in 0..10 {
        let answered = publisher.publish("t", format!("old{round}").as_bytes());
        let mut stream = subscribe(node.addr, &["t"]);
        let next = publisher.publish("t", format!("new{round}").as_bytes());
        assert!(next > answered);
        assert_eq!(stream.next_event().id, Some(next), "round {round}");
    }
}

/// A node started after events were published replays them from Redis (its backfill) to a
/// client with `Last-Event-ID`, completely, then live; a client from before what Redis still
/// holds (the topic stream is trimmed to `--history`) is told it missed events.
#[test]
fn a_node_started_later_replays_from_redis_then_live() {
    let redis = RedisServer::start();
    let history = 8;
    let first = TestServer::start(sse_server::Config {
        history,
        ..node_config(&redis)
    });
    let published: Vec<u64> = (0..20)
        .map(|n| util::publish(first.addr, "t", &format!("e{n}")))
        .collect();
    let later = TestServer::start(sse_server::Config {
        history,
        ..node_config(&redis)
    });

    let from = published.len() - 5;
    let mut stream = resume(later.addr, "t", published[from - 1]);
    assert_eq!(stream.head.header("sse-replay"), Some("complete"));
    assert_eq!(ids(&mut stream, 5), published[from..]);
    let live = util::publish(first.addr, "t", "live");
    let event = stream.next_event();
    assert_eq!((event.id, event.data_text().as_str()), (Some(live), "live"));
    assert!(stream.stays_silent(Duration::from_millis(200)));

    // Redis kept `history` (+ what MAXLEN ~ leaves) of the 20: replay from the start is a gap,
    // and starts after what is gone.
    let mut stream = resume(later.addr, "t", published[0]);
    assert_eq!(stream.head.header("sse-replay"), Some("gap"));
    let replayed = ids(&mut stream, history);
    assert_eq!(
        replayed.last(),
        Some(&live),
        "the newest {history}: {replayed:?}"
    );
}

/// Redis stopped mid-stream (and restarted empty): publishes answer 503 within a second, open
/// streams stay open with heartbeats, `/healthz` and `/metrics` say the backplane is down; once
/// Redis is back the nodes reconnect by themselves, ids keep increasing, and every acknowledged
/// event reaches the subscriber exactly once.
#[test]
fn redis_restart_mid_stream_loses_nothing_acknowledged() {
    let mut redis = RedisServer::start();
    let config = sse_server::Config {
        heartbeat: Duration::from_millis(200),
        ..node_config(&redis)
    };
    let publisher_node = TestServer::start(config.clone());
    let subscriber_node = TestServer::start(config);
    let mut stream = subscribe(subscriber_node.addr, &["t"]);
    let mut publisher = Publisher::new(publisher_node.addr);
    let before: Vec<u64> = (0..5)
        .map(|n| publisher.publish("t", format!("a{n}").as_bytes()))
        .collect();
    assert_eq!(ids(&mut stream, 5), before);

    redis.stop();
    for node in [&publisher_node, &subscriber_node] {
        assert!(
            wait_until(TIMEOUT, || !healthy(node.addr)),
            "/healthz reports the backplane down"
        );
        let response = util::get(node.addr, "/healthz");
        assert_eq!(response.status, 503);
        assert!(response.text().contains("backplane"), "{}", response.text());
        assert_eq!(metric(&metrics(node.addr), "sse_backplane_up"), 0.0);
    }
    let started = Instant::now();
    let response = post_form(publisher_node.addr, "/publish?topic=t", "data=lost");
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "503 took {:?}",
        started.elapsed()
    );
    // The stream stays open: heartbeats keep arriving, no event.
    let heartbeats = stream.next_line(deadline()).expect("stream open");
    assert!(heartbeats.starts_with(b":"), "{heartbeats:?}");

    redis.restart();
    for node in [&publisher_node, &subscriber_node] {
        assert!(
            wait_until(TIMEOUT, || healthy(node.addr)),
            "nodes reconnect to Redis by themselves"
        );
        assert_eq!(metric(&metrics(node.addr), "sse_backplane_up"), 1.0);
        assert!(metric(&metrics(node.addr), "sse_backplane_reconnects_total") >= 1.0);
    }
    let after: Vec<u64> = (0..5)
        .map(|n| publisher.publish("t", format!("b{n}").as_bytes()))
        .collect();
    assert!(
        after[0] > before[4],
        "ids keep increasing across a Redis that lost its data"
    );
    assert_eq!(ids(&mut stream, 5), after);
    // Only heartbeats may follow: nothing twice.
    assert_eq!(
        stream.next_event_until(Instant::now() + Duration::from_millis(300)),
        None
    );
}

/// A Redis that stops answering but keeps its sockets open (SIGSTOP: hung, or overloaded):
/// every publish is answered 503 within about a second, also those that meet the node
/// reconnecting (a stopped Redis still accepts connections, then never answers `SCRIPT LOAD`);
/// `/healthz` says the backplane is down, and once Redis goes on the node recovers by itself.
/// A publish answered 503 may still have reached Redis (a 503 is not a promise of absence);
/// every event arrives at most once, in order.
#[test]
fn a_redis_that_stops_answering_is_noticed_and_survived() {
    let redis = RedisServer::start();
    let node = node(&redis);
    let mut stream = subscribe(node.addr, &["t"]);
    let mut publisher = Publisher::new(node.addr);
    let before = publisher.publish("t", b"before");
    assert_eq!(ids(&mut stream, 1), [before]);

    redis.pause();
    // The first publish meets the open connection; the later ones meet the publisher
    // reconnecting to the stopped Redis, with backoff, at whatever point of it they arrive.
    for attempt in 0..6 {
        let started = Instant::now();
        let response = post_form(node.addr, "/publish?topic=t", "data=maybe");
        let took = started.elapsed();
        assert_eq!(
            response.status,
            503,
            "attempt {attempt}: {}",
            response.text()
        );
        // At most 900 ms by design (MAX_PUBLISH_WAIT bounds the queue, the connection with
        // its script load, and the round trip together); the rest is slack for a busy machine.
        assert!(
            took < Duration::from_millis(1300),
            "attempt {attempt}: 503 took {took:?}"
        );
        thread::sleep(Duration::from_millis(130 * attempt));
    }
    assert!(
        wait_until(TIMEOUT, || !healthy(node.addr)),
        "/healthz notices a Redis that does not answer"
    );

    redis.resume();
    assert!(wait_until(TIMEOUT, || healthy(node.addr)), "recovers");
    let after = publisher.publish("t", b"after");
    let mut got = Vec::new();
    loop {
        let event = stream.next_event();
        got.push((event.id.unwrap(), event.data_text()));
        if event.id == Some(after) {
            break;
        }
    }
    assert!(got.windows(2).all(|pair| pair[0].0 < pair[1].0), "{got:?}");
    assert!(
        got[..got.len() - 1].iter().all(|(_, data)| data == "maybe"),
        "only the unanswered publish may come before: {got:?}"
    );
    assert!(stream.stays_silent(Duration::from_millis(200)));
}

/// A node whose Redis is not there at all starts, answers publishes 503 quickly (never hangs),
/// and says why on `/healthz`.
#[test]
fn publishing_without_redis_answers_503_quickly() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let server = TestServer::start(sse_server::Config {
        redis: Some(format!("redis://127.0.0.1:{port}/0")),
        ..util::config()
    });
    for _ in 0..3 {
        let started = Instant::now();
        let response = post_form(server.addr, "/publish?topic=t", "data=x");
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let health = util::get(server.addr, "/healthz");
    assert_eq!(
        (health.status, health.text()),
        (503, "backplane down: Redis unreachable\n")
    );
    // Subscribing still works (streams open; events come once Redis does).
    subscribe(server.addr, &["t"]);
}

/// `kill -9` of a node while events are published through another: its subscribers reconnect
/// to the survivor with `Last-Event-ID` (as browsers do) and, counted over both streams, get
/// every acknowledged event exactly once, in order.
#[test]
fn a_killed_node_loses_no_event_for_subscribers_that_reconnect() {
    let redis = RedisServer::start();
    let url = redis.url();
    let args = ["--redis", url.as_str(), "--threads", "2"];
    let doomed = ServerProcess::spawn(&args);
    let survivor = ServerProcess::spawn(&args);
    let mut streams: Vec<SseStream> = (0..20).map(|_| subscribe(doomed.addr, &["t"])).collect();

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let publishing = {
        let acknowledged = acknowledged.clone();
        let done = done.clone();
        let addr = survivor.addr;
        thread::spawn(move || {
            let mut publisher = Publisher::new(addr);
            for n in 0..300 {
                let id = publisher.publish("t", format!("e{n}").as_bytes());
                acknowledged.lock().unwrap().push(id);
                thread::sleep(Duration::from_millis(2));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    assert!(wait_until(TIMEOUT, || acknowledged.lock().unwrap().len() >= 100));
    doomed.signal("KILL");
    publishing.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    let acknowledged = acknowledged.lock().unwrap().clone();
    let last = *acknowledged.last().unwrap();

    for (index, stream) in streams.iter_mut().enumerate() {
        // What the killed node had sent, up to the end of its stream.
        let mut got = Vec::new();
        while let Some(event) = stream.next_event_until(deadline()) {
            got.push(event.id.unwrap());
        }
        assert!(stream.is_eof(), "subscriber {index}: the stream ended");
        let resumed_from = got.last().copied().unwrap_or(0);
        let mut again = resume(survivor.addr, "t", resumed_from);
        assert_eq!(again.head.header("sse-replay"), Some("complete"));
        if resumed_from < last {
            got.extend(again.ids_through(last));
        }
        assert_eq!(
            got, acknowledged,
            "subscriber {index}: none lost, none twice"
        );
        assert!(again.stays_silent(Duration::from_millis(100)));
    }
    let unique: BTreeSet<u64> = acknowledged.iter().copied().collect();
    assert_eq!(unique.len(), acknowledged.len());
}

/// With `--reuse-port` two servers listen on one address and the kernel spreads connections
/// over both (each is told apart by the `retry:` it sends).
#[test]
fn reuse_port_lets_two_servers_share_an_address() {
    let config = sse_server::Config {
        reuse_port: true,
        retry: Duration::from_millis(1111),
        ..util::config()
    };
    let first = TestServer::start(config.clone());
    let second = TestServer::start(sse_server::Config {
        listen: first.addr,
        retry: Duration::from_millis(2222),
        ..config
    });
    assert_eq!(second.addr, first.addr);
    let mut seen = BTreeSet::new();
    // 64 connections all hashed onto one listener would be a 2^-63 chance.
    for _ in 0..64 {
        let mut stream = SseStream::subscribe(first.addr, &["t"]);
        let preamble = String::from_utf8(stream.read_preamble(deadline())).unwrap();
        seen.insert(preamble.lines().next().unwrap_or_default().to_owned());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["retry: 1111", "retry: 2222"]
    );
}

/// `--redis rediss://...` is refused at start with a plain reason (this build's Redis client
/// has no TLS), not taken for a URL that fails later; so is a URL that is not Redis's.
#[test]
fn unsupported_redis_urls_are_refused_at_start() {
    for (url, expected) in [
        (
            "rediss://127.0.0.1:6380/0",
            "sse-server: error: --redis: rediss:// (TLS) is not supported",
        ),
        (
            "REDISS://127.0.0.1:6380/0",
            "sse-server: error: --redis: rediss:// (TLS) is not supported",
        ),
        (
            "http://127.0.0.1:6379/0",
            "sse-server: error: bad --redis URL: ",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sse-server"))
            .args(["--listen", "127.0.0.1:0", "--demo-interval", "0"])
            .args(["--redis", url])
            .env_remove("SSE_REDIS_URL")
            .output()
            .expect("run sse-server");
        assert!(!output.status.success(), "{url}: refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(expected), "{url}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{url}: one line: {stderr}");
    }
}
