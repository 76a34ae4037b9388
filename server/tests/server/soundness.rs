//! Soundness under long use: topics that come and go, bounded history memory, the lag policy,
//! fair and honest passes, publish backpressure. Each test names the defect it guards against.
//! (Bodies, descriptors and the abuse battery are in `abuse.rs`.)

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::event_loop::{EventLoop, FEED};
use sse_server::feed::{Feeds, LoopFeed};
use sse_server::metrics::Metrics;
use sse_server::routes::Router;
use sse_server::{Broker, LocalBroker};

use crate::util::{
    self, Conn, Publisher, SseStream, TIMEOUT, TestServer, deadline, metric, metrics,
    publish_status, raw_subscriber, wait_until,
};

/// Topics published once each and never again stop counting after `--topic-ttl`, so new topics
/// keep being accepted. (Guards against defect 1: the topic set only grew, and every publish to
/// a new topic answered 503 until restart.)
#[test]
fn topics_come_and_go_without_running_out() {
    let server = TestServer::start(sse_server::Config {
        max_topics: 50,
        topic_ttl: Duration::from_millis(300),
        ..util::config()
    });
    let addr = server.addr;
    for n in 0..50 {
        assert_eq!(publish_status(addr, &format!("user{n}")), 200);
    }
    assert_eq!(
        publish_status(addr, "user50"),
        503,
        "the limit holds for live topics"
    );
    for round in 1..4 {
        thread::sleep(Duration::from_millis(350));
        for n in 0..50 {
            let topic = format!("round{round}-user{n}");
            assert_eq!(publish_status(addr, &topic), 200, "{topic}");
        }
    }
    // The loops forget them too, history and all, once nobody subscribes.
    let forgotten = wait_until(TIMEOUT, || {
        let samples = metrics(addr);
        metric(&samples, "sse_loop_topics") == 0.0
            && metric(&samples, "sse_history_retained_bytes") == 0.0
    });
    assert!(forgotten, "idle topics stay: {:?}", metrics(addr));
    assert!(metric(&metrics(addr), "sse_topics_expired_total") >= 200.0);
}

/// `POST /publish?topic=...` on a kept-alive connection; the whole response, whatever its
/// status.
fn publish_on(conn: &mut Conn, topic: &str) -> util::Response {
    conn.send(
        format!(
            "POST /publish?topic={topic} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx"
        )
        .as_bytes(),
    );
    conn.read_response(deadline())
}

/// A flood of publishes to new topics at `--max-topics` is answered one by one as the limit
/// says: `200` while an idle topic (past `--topic-ttl`) can be forgotten to make room, `503`
/// with the reason and `Retry-After` once every topic is live, and live topics keep their
/// `200`. (Guards the limit's cost too: the broker used to scan every topic under its lock for
/// each new topic at the limit; the bounded work is shown by `live_topics`' unit tests.)
#[test]
fn a_flood_of_new_topics_at_the_limit_is_answered_correctly() {
    let limit = 300;
    let ttl = Duration::from_secs(3);
    let server = TestServer::start(sse_server::Config {
        max_topics: limit,
        topic_ttl: ttl,
        ..util::config()
    });
    let mut conn = Conn::connect(server.addr);
    let refused = |response: &util::Response| {
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(
            response.text().contains("--max-topics"),
            "the reason: {}",
            response.text()
        );
        assert_eq!(response.header("retry-after"), Some("5"));
    };
    for n in 0..limit {
        assert_eq!(publish_on(&mut conn, &format!("idle{n}")).status, 200);
    }
    refused(&publish_on(&mut conn, "one-too-many"));
    assert_eq!(publish_on(&mut conn, "idle7").status, 200, "a live topic");
    thread::sleep(ttl + Duration::from_millis(200));
    // Every idle topic can go now: each new one takes the place of one of them.
    for n in 0..limit {
        let response = publish_on(&mut conn, &format!("flood{n}"));
        assert_eq!(response.status, 200, "flood{n}: {}", response.text());
    }
    // Now every topic is live (published within the TTL): no room, for any new topic.
    for n in 0..50 {
        refused(&publish_on(&mut conn, &format!("late{n}")));
    }
    assert_eq!(publish_on(&mut conn, "flood0").status, 200, "a live topic");
    assert_eq!(metric(&metrics(server.addr), "sse_topics"), limit as f64);
}

/// Retained history over all topics stays within `--history-memory`; replay from a point no
/// longer retained says so (`Sse-Replay: gap`, and `event: gap` when asked with `gaps=1`).
/// (Guards against defect 2: no bound over the sum of the topics' histories.)
#[test]
fn history_memory_is_bounded_and_gaps_are_told() {
    let budget = 64 * 1024;
    let server = TestServer::start(sse_server::Config {
        history_memory: budget,
        ..util::config()
    });
    let addr = server.addr;
    let mut publisher = Publisher::new(addr);
    let data = vec![b'm'; 4000];
    let first = publisher.publish("old", &data);
    for n in 0..100 {
        publisher.publish(&format!("busy{}", n % 5), &data);
    }
    let samples = metrics(addr);
    let retained = metric(&samples, "sse_history_retained_bytes");
    assert!(
        retained > 0.0 && retained <= budget as f64,
        "retained {retained}"
    );
    assert_eq!(
        metric(&samples, "sse_history_memory_budget_bytes"),
        budget as f64
    );
    assert!(metric(&samples, "sse_history_evicted_events_total") >= 80.0);

    let last_event_id = format!("Last-Event-ID: {}\r\n", first - 1);
    let mut stream = SseStream::open(addr, "/events?topic=old&gaps=1", &last_event_id);
    assert_eq!(stream.head.header("sse-replay"), Some("gap"));
    stream.read_preamble(deadline());
    let gap = stream.next_event();
    assert_eq!(gap.event.as_deref(), Some("gap"));
    assert_eq!(gap.id, None, "the notice carries no id");
    assert_eq!(gap.data_text(), (first - 1).to_string());
    // Without gaps=1 only the header tells; the stream itself is unchanged.
    let stream = SseStream::open(addr, "/events?topic=old", &last_event_id);
    assert_eq!(stream.head.header("sse-replay"), Some("gap"));
    // A replay that has everything says so.
    let newest = publisher.publish("busy0", b"x");
    let header = format!("Last-Event-ID: {newest}\r\n");
    let stream = SseStream::open(addr, "/events?topic=busy0", &header);
    assert_eq!(stream.head.header("sse-replay"), Some("complete"));
    assert!(metric(&metrics(addr), "sse_replay_gaps_total") >= 2.0);
}

/// Readers that keep up are never cut off by the history memory budget, however hard other
/// topics press on it while a long pass is under way: eviction takes only events every reader
/// has been written, and retained memory is back within the budget once they have been.
/// (Guards against eviction by recency alone: the least recently published topic lost events
/// its pass had not reached yet, and its readers were cut off as slow for pressure they did not
/// cause.)
#[test]
fn readers_that_keep_up_are_never_cut_by_eviction() {
    let budget = 64 * 1024;
    let server = TestServer::start(sse_server::Config {
        threads: 1,
        history_memory: budget,
        ..util::config()
    });
    let addr = server.addr;
    let readers: Vec<TcpStream> = (0..1500).map(|_| raw_subscriber(addr, "watched")).collect();
    let events = 40;
    let reading = thread::spawn(move || read_everything(readers, events, 0));
    let stop = Arc::new(AtomicBool::new(false));
    let pressing: Vec<_> = (0..2)
        .map(|thread| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut publisher = Publisher::new(addr);
                let mut published = 0;
                while !stop.load(Ordering::Relaxed) && published < 20_000 {
                    let topic = format!("press{thread}-{}", published % 50);
                    publisher.publish(&topic, &[b'p'; 8 * 1024]);
                    published += 1;
                }
                published
            })
        })
        .collect();
    let mut publisher = Publisher::new(addr);
    for _ in 0..events {
        publisher.publish("watched", &[b'w'; 1000]);
    }
    let complete = reading.join().expect("readers");
    stop.store(true, Ordering::Relaxed);
    let pressed: usize = pressing
        .into_iter()
        .map(|t| t.join().expect("presser"))
        .sum();
    assert_eq!(complete, 1500, "every reader got every event");
    let samples = metrics(addr);
    assert_eq!(metric(&samples, "sse_slow_consumer_disconnects_total"), 0.0);
    assert!(
        metric(&samples, "sse_history_evicted_events_total") > 0.0,
        "no pressure: {pressed} publishes evicted nothing"
    );
    let within = wait_until(TIMEOUT, || {
        metric(&metrics(addr), "sse_history_retained_bytes") <= budget as f64
    });
    assert!(
        within,
        "retained {:?}",
        metrics(addr).get("sse_history_retained_bytes")
    );
}

/// A subscriber that never reads is disconnected once it is `--max-pending` behind with a full
/// socket, however large the history is, while a reading subscriber gets everything: what was
/// published before the cut is more than `--max-pending` and at most a few times
/// `--max-pending` plus `--send-buffer` (the client's receive buffer is kept small, so what
/// the kernel holds is about the send buffer). (Guards against defect 3: a stuck subscriber
/// was cut only outside the whole history window, here after 100,000 events, and its kernel
/// buffer grew to `tcp_wmem`'s maximum.)
#[test]
fn a_stuck_subscriber_is_cut_at_max_pending_whatever_the_history() {
    let max_pending = 64 * 1024;
    let send_buffer = 16 * 1024;
    let server = TestServer::start(sse_server::Config {
        history: 100_000,
        history_bytes: 1 << 30,
        max_pending,
        send_buffer,
        ..util::config()
    });
    let addr = server.addr;
    let mut stuck = Conn::connect_with_receive_buffer(addr, 4096);
    stuck.send(b"GET /events?topic=lag HTTP/1.1\r\nHost: test\r\n\r\n");
    let _head = stuck.read_head(deadline());
    let mut reader = SseStream::subscribe(addr, &["lag"]);
    reader.read_preamble(deadline());
    let mut publisher = Publisher::new(addr);
    let data = vec![b'z'; 4096];
    let mut ids = Vec::new();
    let mut cut = false;
    for _ in 0..2000 {
        ids.push(publisher.publish("lag", &data));
        while reader.next_event().id != ids.last().copied() {}
        if metric(&metrics(addr), "sse_slow_consumer_disconnects_total") >= 1.0 {
            cut = true;
            break;
        }
    }
    let published = ids.len() as u64 * data.len() as u64;
    assert!(
        cut,
        "the stuck subscriber was never disconnected after {} KiB",
        published / 1024
    );
    assert!(
        published > max_pending,
        "cut after {published} bytes, before it was --max-pending behind"
    );
    let bound = 3 * (max_pending + send_buffer);
    assert!(
        published <= bound,
        "cut only after {published} bytes ({} events): more than 3 x (max-pending + send-buffer) = {bound}",
        ids.len()
    );
    assert!(stuck.wait_closed(deadline()), "the stuck stream is closed");
    // Reset, not closed politely: the server's end is gone at once, instead of lingering as an
    // orphan that keeps the whole send queue pinned in the kernel until the client closes.
    let client = stuck.stream.local_addr().unwrap();
    assert!(
        wait_until(TIMEOUT, || !kernel_has_connection(addr, client)),
        "the server's end of the stuck stream is still in /proc/net/tcp"
    );
}

/// Whether the kernel still has a TCP socket from `local` to `remote` (IPv4, by port: every
/// test address is 127.0.0.1), in any state, orphans included (`/proc/net/tcp`).
fn kernel_has_connection(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |field: &str| {
        field
            .rsplit_once(':')
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
    };
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 2
            && port(fields[1]) == Some(local.port())
            && port(fields[2]) == Some(remote.port())
    })
}

/// Many readers that keep up are never cut off as slow while bursts arrive during long passes,
/// however small `--max-pending` and the history are. (Guards against defect 8: the log was
/// trimmed against the tail at the end of a pass, so readers visited early in the pass lost
/// events they had not yet been offered.)
#[test]
fn readers_that_keep_up_are_not_cut_during_long_passes() {
    let server = TestServer::start(sse_server::Config {
        threads: 1,
        history: 1,
        max_pending: 8 * 1024,
        ..util::config()
    });
    let addr = server.addr;
    let readers: Vec<TcpStream> = (0..1500).map(|_| raw_subscriber(addr, "burst")).collect();
    let events = 60;
    let event_len = format!("id: {}\ndata: {}\n\n", u64::MAX / 2, "b".repeat(1000)).len() - 19;
    let reading = thread::spawn(move || read_everything(readers, events, event_len));
    let mut publisher = Publisher::new(addr);
    for _ in 0..events {
        publisher.publish("burst", &[b'b'; 1000]);
    }
    let complete = reading.join().expect("readers");
    assert_eq!(complete, 1500, "every reader got every event");
    assert_eq!(
        metric(&metrics(addr), "sse_slow_consumer_disconnects_total"),
        0.0
    );
}

/// Reads every socket until it has `events` events of about `event_len` bytes (ids have 16 to
/// 19 digits), counting blank-line terminators; returns how many sockets got them all.
fn read_everything(mut sockets: Vec<TcpStream>, events: usize, _event_len: usize) -> usize {
    let mut counts = vec![0usize; sockets.len()];
    let mut last = vec![0u8; sockets.len()];
    let mut buffer = vec![0u8; 64 * 1024];
    let end = Instant::now() + TIMEOUT * 3;
    while Instant::now() < end && counts.iter().any(|&c| c < events) {
        let mut idle = true;
        for (index, socket) in sockets.iter_mut().enumerate() {
            match socket.read(&mut buffer) {
                Ok(0) => counts[index] = usize::MAX / 2,
                Ok(n) => {
                    idle = false;
                    for &byte in &buffer[..n] {
                        if byte == b'\n' && last[index] == b'\n' {
                            counts[index] += 1;
                        }
                        last[index] = byte;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => counts[index] = usize::MAX / 2,
            }
        }
        if idle {
            thread::sleep(Duration::from_millis(1));
        }
    }
    counts.iter().filter(|&&c| c == events).count()
}

/// While the fan-out is behind (`--max-backlog`), publishes wait instead of piling up, and
/// nothing accepted is lost. (Guards against defect 9: publishes accepted far faster than they
/// could be delivered, with nothing telling the publisher to slow down.)
#[test]
fn publishes_wait_while_the_fanout_is_behind() {
    let server = TestServer::start(sse_server::Config {
        threads: 1,
        max_backlog: Duration::from_millis(1),
        ..util::config()
    });
    let addr = server.addr;
    let readers: Vec<TcpStream> = (0..1500).map(|_| raw_subscriber(addr, "slow")).collect();
    let events = 40;
    let reading = thread::spawn(move || read_everything(readers, events, 0));
    let mut publisher = Publisher::new(addr);
    let ids: Vec<u64> = (0..events)
        .map(|_| publisher.publish("slow", &[b's'; 200]))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        reading.join().expect("readers"),
        1500,
        "nothing accepted is lost"
    );
    let samples = metrics(addr);
    assert!(
        metric(&samples, "sse_publish_backpressure_waits_total") >= 1.0,
        "no publish waited: {samples:?}"
    );
}

/// A real event loop beside a second loop that runs nothing: a test double of a loop that is
/// behind, whose backlog the test sets. Stopped and joined when dropped.
struct LoopBesideAStalledOne {
    addr: std::net::SocketAddr,
    stalled: Arc<LoopFeed>,
    /// The stalled loop's poll: its waker must stay registered somewhere.
    _stalled_poll: mio::Poll,
    feeds: Feeds,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<std::io::Result<()>>>,
}

impl LoopBesideAStalledOne {
    fn start(config: sse_server::Config) -> LoopBesideAStalledOne {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), FEED).unwrap();
        let feed = Arc::new(LoopFeed::new(waker));
        let stalled_poll = mio::Poll::new().unwrap();
        let stalled = Arc::new(LoopFeed::new(
            mio::Waker::new(stalled_poll.registry(), FEED).unwrap(),
        ));
        let feeds = Feeds::new(vec![feed.clone(), stalled.clone()]);
        let metrics = Arc::new(Metrics::default());
        let broker: Arc<dyn Broker> =
            Arc::new(LocalBroker::new(config.max_topics, config.topic_ttl));
        broker.attach(feeds.clone(), metrics.clone());
        let router = Arc::new(Router::new(config, metrics, feeds.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let event_loop = EventLoop::new(
            poll,
            mio::net::TcpListener::from_std(listener),
            feed,
            feeds.clone(),
            router,
            broker,
            1000,
            stop.clone(),
        )
        .unwrap();
        let thread = thread::spawn(move || event_loop.run());
        LoopBesideAStalledOne {
            addr,
            stalled,
            _stalled_poll: stalled_poll,
            feeds,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LoopBesideAStalledOne {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.feeds.wake_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `POST /publish?topic=TOPIC` on a new connection, without waiting for the answer.
fn send_publish(addr: std::net::SocketAddr, topic: &str) -> Conn {
    let mut conn = Conn::connect(addr);
    conn.send(
        format!(
            "POST /publish?topic={topic} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx"
        )
        .as_bytes(),
    );
    conn
}

/// While some loop is behind (`--max-backlog`), a publish waits; one that waits longer than
/// `--header-timeout` gets `503` with `Retry-After` and the reason, and is never published;
/// one still waiting when the backlog comes down is published. Every publish that waited is
/// counted in `sse_publish_backpressure_waits_total`. (Guards against defect 9's fix being
/// half there: refusals never tested, and only the first publish of a wave counted.)
#[test]
fn publishes_parked_too_long_get_503_with_retry_after() {
    let server = LoopBesideAStalledOne::start(sse_server::Config {
        max_backlog: Duration::from_millis(10),
        header_timeout: Duration::from_secs(1),
        ..util::config()
    });
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["parked"]);
    stream.read_preamble(deadline());
    server.stalled.stats.set_backlog(Duration::from_secs(10));
    // Three publishes wait together; each is refused once it has waited too long.
    let mut waiting: Vec<Conn> = (0..3).map(|_| send_publish(addr, "parked")).collect();
    for conn in &mut waiting {
        let response = conn.read_response(deadline());
        assert_eq!(response.status, 503, "{}", response.text());
        assert_eq!(response.header("retry-after"), Some("5"));
        assert!(
            response.text().contains("--max-backlog"),
            "{}",
            response.text()
        );
    }
    let samples = metrics(addr);
    assert_eq!(
        metric(&samples, "sse_publish_backpressure_waits_total"),
        3.0
    );
    assert_eq!(metric(&samples, "sse_events_published_total"), 0.0);
    // One waits, then the backlog comes down before its time is up: it is published.
    let mut released = send_publish(addr, "parked");
    assert!(
        released.stays_silent(Duration::from_millis(100)),
        "answered while behind"
    );
    server.stalled.stats.set_backlog(Duration::ZERO);
    let response = released.read_response(deadline());
    assert_eq!(response.status, 200, "{}", response.text());
    let id = util::parse_id(&response);
    assert_eq!(
        stream.next_event().id,
        Some(id),
        "the refused publishes were never published"
    );
    assert_eq!(
        metric(&metrics(addr), "sse_publish_backpressure_waits_total"),
        4.0
    );
}
