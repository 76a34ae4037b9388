//! Fan-out to many subscribers, slow consumers, hang-ups, connection churn, metrics, shutdown.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::util::{
    self, Conn, Publisher, ServerProcess, SseStream, TIMEOUT, TestServer, deadline, get, metric,
    metrics, publish, wait_until,
};

/// 2,000 subscribers of one topic each receive all of 100 events, in order, with their data.
#[test]
fn two_thousand_subscribers_receive_every_event_in_order() {
    const SUBSCRIBERS: usize = 2000;
    const EVENTS: usize = 100;
    let server = TestServer::with_defaults();
    let addr = server.addr;
    let mut streams: Vec<SseStream> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut stream = SseStream::subscribe(addr, &["fan"]);
            stream.read_preamble(deadline());
            stream
        })
        .collect();
    assert!(
        wait_until(TIMEOUT, || metric(&metrics(addr), "sse_subscribers")
            >= SUBSCRIBERS as f64),
        "subscribers not all registered: {:?}",
        metrics(addr).get("sse_subscribers")
    );

    let mut publisher = Publisher::new(addr);
    let ids: Vec<u64> = (0..EVENTS)
        .map(|i| publisher.publish("fan", format!("event {i}").as_bytes()))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // Everything was sent while nobody read; the kernel holds it, so reading one subscriber
    // after another is enough.
    for (n, stream) in streams.iter_mut().enumerate() {
        for (i, &id) in ids.iter().enumerate() {
            let event = stream.next_event();
            assert_eq!(
                (event.id, event.data_text()),
                (Some(id), format!("event {i}")),
                "subscriber {n}, event {i}"
            );
        }
    }
}

/// A subscriber that stops reading is disconnected (and counted) once it falls `max_pending`
/// bytes behind, while the other subscribers keep receiving every event, in order.
#[test]
fn stalled_subscriber_is_disconnected_while_others_keep_receiving() {
    const EVENT_SIZE: usize = 64 * 1024;
    /// Enough to fill any kernel buffers of the stalled connection many times over.
    const MAX_EVENTS: usize = 1500;
    let server = TestServer::start(sse_server::Config {
        max_pending: 256 * 1024,
        ..util::config()
    });
    let addr = server.addr;
    let mut stalled = SseStream::subscribe(addr, &["slow"]);
    stalled.read_preamble(deadline());

    // How many events each reading subscriber has received; the publisher keeps at most two
    // events ahead of the slowest of them, so only the stalled one can fall behind, however
    // slowly the readers get the CPU.
    let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let readers: Vec<_> = counts
        .iter()
        .map(|received| {
            let mut stream = SseStream::subscribe(addr, &["slow"]);
            stream.read_preamble(deadline());
            let received = Arc::clone(received);
            thread::spawn(move || {
                let mut ids = Vec::new();
                loop {
                    let event = stream.next_event();
                    if event.data_text() == "stop" {
                        return (ids, event.id.unwrap());
                    }
                    assert_eq!(event.data_text().len(), EVENT_SIZE, "event damaged");
                    ids.push(event.id.unwrap());
                    received.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let data = vec![b'x'; EVENT_SIZE];
    let mut publisher = Publisher::new(addr);
    let mut ids = Vec::new();
    let mut disconnected = false;
    let readers_caught_up = |published: usize| {
        let behind_by_at_most_two = || {
            counts
                .iter()
                .all(|count| count.load(Ordering::Relaxed) + 2 >= published)
        };
        assert!(
            wait_until(TIMEOUT, behind_by_at_most_two),
            "a reading subscriber stopped receiving"
        );
    };
    while ids.len() < MAX_EVENTS {
        readers_caught_up(ids.len());
        ids.push(publisher.publish("slow", &data));
        if ids.len() % 8 == 0
            && metric(&metrics(addr), "sse_slow_consumer_disconnects_total") >= 1.0
        {
            disconnected = true;
            break;
        }
    }
    assert!(
        disconnected,
        "stalled subscriber not disconnected after {} MB",
        (MAX_EVENTS * EVENT_SIZE) >> 20
    );
    // Delivery goes on after the disconnect.
    for _ in 0..8 {
        readers_caught_up(ids.len());
        ids.push(publisher.publish("slow", &data));
    }
    let stop = publisher.publish("slow", b"stop");
    for reader in readers {
        let (got, stop_id) = reader.join().expect("reader failed");
        assert_eq!(stop_id, stop);
        assert_eq!(got.len(), ids.len(), "a reading subscriber lost events");
        assert_eq!(got, ids);
    }
    assert_eq!(
        metric(&metrics(addr), "sse_slow_consumer_disconnects_total"),
        1.0,
        "only the stalled subscriber is disconnected"
    );

    // The stalled client finds its stream closed once it drains what was already sent.
    assert!(stalled.wait_closed(deadline()), "stalled stream still open");
    assert!(wait_until(TIMEOUT, || metric(
        &metrics(addr),
        "sse_subscribers"
    ) <= 3.0));
}

/// When clients hang up, their connections and subscriptions are freed at once, without
/// waiting for an event or a heartbeat to be written to them.
#[test]
fn hang_ups_free_connections_at_once() {
    let server = ServerProcess::spawn(&["--heartbeat", "600s"]);
    let addr = server.addr;
    let baseline = metrics(addr);
    let streams: Vec<SseStream> = (0..50)
        .map(|_| {
            let mut stream = SseStream::subscribe(addr, &["hang"]);
            stream.read_preamble(deadline());
            stream
        })
        .collect();
    let mut open = metrics(addr);
    let counted = wait_until(TIMEOUT, || {
        open = metrics(addr);
        metric(&open, "sse_subscribers") == 50.0
            && metric(&open, "sse_connections_open")
                == metric(&baseline, "sse_connections_open") + 50.0
    });
    assert!(counted, "50 streams open, metrics say {open:?}");
    drop(streams);
    let mut last = open;
    let freed = wait_until(Duration::from_secs(10), || {
        last = metrics(addr);
        metric(&last, "sse_subscribers") == 0.0
            && metric(&last, "sse_connections_open") == metric(&baseline, "sse_connections_open")
    });
    assert!(freed, "hang-ups not noticed: {last:?}");
    assert!(wait_until(TIMEOUT, || server.open_fds()
        <= metric(&baseline, "process_open_fds") as usize + 1));
}

/// One connect/disconnect cycle of the given kind: a subscriber that hangs up, a health check,
/// a connection that says nothing, or a request head cut short.
fn churn_cycle(addr: SocketAddr, n: usize) {
    match n % 4 {
        0 => {
            let mut stream = SseStream::subscribe(addr, &[["c0", "c1", "c2"][n % 3]]);
            stream.read_preamble(deadline());
        }
        1 => {
            let mut conn = Conn::connect(addr);
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
            assert_eq!(conn.read_response(deadline()).status, 200);
        }
        2 => {
            drop(TcpStream::connect(addr).expect("connect"));
        }
        _ => {
            let mut stream = TcpStream::connect(addr).expect("connect");
            let _ = stream.write_all(b"GET /events?topic=c0 HTTP/1.1\r\nHo");
        }
    }
}

/// Runs `cycles` churn cycles on four threads.
fn churn(addr: SocketAddr, cycles: usize) {
    const THREADS: usize = 4;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for n in (t..cycles).step_by(THREADS) {
                    churn_cycle(addr, n);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("churn worker failed");
    }
}

/// After 10,000 connect/disconnect cycles of every kind, open connections, subscribers, file
/// descriptors and resident memory return to their baseline (memory within a generous slack),
/// and the memory metric agrees with the kernel's figure.
#[test]
fn connection_churn_returns_to_baseline() {
    let server = ServerProcess::spawn(&["--heartbeat", "600s", "--threads", "2"]);
    let addr = server.addr;
    churn(addr, 1000);
    let settled = |samples: &std::collections::BTreeMap<String, f64>| {
        metric(samples, "sse_subscribers") == 0.0 && metric(samples, "sse_connections_open") <= 1.0
    };
    assert!(
        wait_until(TIMEOUT, || settled(&metrics(addr))),
        "warm-up did not settle"
    );
    let before = metrics(addr);
    let rss_before = server.rss_bytes();
    let fds_before = server.open_fds();

    churn(addr, 10_000);

    let mut after = before.clone();
    assert!(
        wait_until(TIMEOUT, || {
            after = metrics(addr);
            settled(&after)
        }),
        "connections not back to baseline: {after:?}"
    );
    assert!(
        metric(&after, "sse_connections_accepted_total")
            >= metric(&before, "sse_connections_accepted_total") + 10_000.0
    );
    assert!(
        wait_until(TIMEOUT, || server.open_fds() <= fds_before),
        "fds: {} before, {} after",
        fds_before,
        server.open_fds()
    );
    // The figure is sampled once a second off the loops: wait for a sample after the churn.
    assert!(
        wait_until(TIMEOUT, || metric(&metrics(addr), "process_open_fds")
            <= metric(&before, "process_open_fds")),
        "process_open_fds: {} before, {} after",
        metric(&before, "process_open_fds"),
        metric(&metrics(addr), "process_open_fds")
    );

    let rss_after = server.rss_bytes();
    let slack = 8 * 1024 * 1024 + rss_before / 4;
    assert!(
        rss_after <= rss_before + slack,
        "resident memory grew from {rss_before} to {rss_after} bytes"
    );
    let reported = metric(&after, "process_resident_memory_bytes");
    assert!(
        reported >= rss_after as f64 / 2.0 && reported <= rss_after as f64 * 2.0,
        "process_resident_memory_bytes {reported} vs VmRSS {rss_after}"
    );
    assert_eq!(get(addr, "/healthz").status, 200);
}

/// `/metrics` names every documented metric and counts what happened: events published,
/// deliveries, bytes written, subscribers, topics, rejected requests by status.
#[test]
fn metrics_count_what_happened() {
    let server = ServerProcess::spawn(&[]);
    let addr = server.addr;
    let before = metrics(addr);
    for name in [
        "sse_connections_open",
        "sse_connections_accepted_total",
        "sse_subscribers",
        "sse_topics",
        "sse_events_published_total",
        "sse_deliveries_total",
        "sse_bytes_written_total",
        "sse_slow_consumer_disconnects_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(before.contains_key(name), "/metrics lacks {name}");
    }
    let response = get(addr, "/metrics");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "Content-Type {content_type:?}"
    );

    let mut streams: Vec<SseStream> = (0..2)
        .map(|_| {
            let mut stream = SseStream::subscribe(addr, &["m"]);
            stream.read_preamble(deadline());
            stream
        })
        .collect();
    let mut wire_bytes = 0;
    for i in 0..3 {
        publish(addr, "m", &format!("metric {i}"));
        for stream in &mut streams {
            wire_bytes += stream.next_event().raw.len();
        }
    }
    assert_eq!(get(addr, "/nope").status, 404);

    // Each event loop adds its counts to the shared metrics once per iteration, so they may
    // trail what clients have already received by a moment.
    let mut after = metrics(addr);
    let delta = |after: &std::collections::BTreeMap<String, f64>, name: &str| {
        metric(after, name) - metric(&before, name)
    };
    wait_until(TIMEOUT, || {
        after = metrics(addr);
        delta(&after, "sse_deliveries_total") >= 6.0
            && delta(&after, "sse_bytes_written_total") >= wire_bytes as f64
            && delta(&after, "sse_rejected_requests_total{status=\"404\"}") >= 1.0
    });
    let delta = |name: &str| delta(&after, name);
    assert_eq!(delta("sse_events_published_total"), 3.0);
    assert_eq!(delta("sse_deliveries_total"), 6.0);
    assert!(delta("sse_bytes_written_total") >= wire_bytes as f64);
    assert_eq!(metric(&after, "sse_subscribers"), 2.0);
    assert!(metric(&after, "sse_topics") >= 1.0);
    assert_eq!(delta("sse_rejected_requests_total{status=\"404\"}"), 1.0);
    assert!(metric(&after, "process_resident_memory_bytes") > 0.0);
    assert!(metric(&after, "process_open_fds") >= 3.0);
}

/// SIGTERM and SIGINT: the server closes every stream within the drain period, stops
/// accepting, and exits with status 0.
#[test]
fn signals_drain_streams_and_exit_zero() {
    for signal in ["TERM", "INT"] {
        let mut server = ServerProcess::spawn(&["--drain", "300ms"]);
        let addr = server.addr;
        let mut streams: Vec<SseStream> = (0..10)
            .map(|_| {
                let mut stream = SseStream::subscribe(addr, &["bye"]);
                stream.read_preamble(deadline());
                stream
            })
            .collect();
        let id = publish(addr, "bye", "last words");
        server.signal(signal);
        for stream in &mut streams {
            assert_eq!(
                stream.next_event().id,
                Some(id),
                "SIG{signal}: event before close"
            );
            assert!(
                stream.wait_closed(deadline()),
                "SIG{signal}: stream not closed"
            );
        }
        let status = server.wait_exit(TIMEOUT).expect("server did not exit");
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}: {status:?}; stderr:\n{}",
            server.stderr_output()
        );
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
            "SIG{signal}: still accepting after exit"
        );
    }
}

/// The library's graceful shutdown closes open streams and makes `run()` return `Ok`.
#[test]
fn in_process_shutdown_closes_streams() {
    let mut server = TestServer::with_defaults();
    let addr = server.addr;
    let mut streams: Vec<SseStream> = (0..5)
        .map(|_| {
            let mut stream = SseStream::subscribe(addr, &["down"]);
            stream.read_preamble(deadline());
            stream
        })
        .collect();
    assert_eq!(server.stop(), Ok(()));
    for stream in &mut streams {
        assert!(
            stream.wait_closed(deadline()),
            "stream not closed by shutdown"
        );
    }
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}

/// Events as large as `max_body` (1 MiB by default, so a little over `max_pending` on the wire)
/// reach a subscriber that reads normally; it is not mistaken for a slow consumer.
#[test]
fn largest_events_reach_a_reading_subscriber() {
    let server = TestServer::start(sse_server::Config {
        max_body: 1 << 20,
        max_pending: 1 << 20,
        ..util::config()
    });
    let addr = server.addr;
    let mut stream = SseStream::subscribe(addr, &["large"]);
    stream.read_preamble(deadline());
    let mut publisher = Publisher::new(addr);
    for fill in b'a'..=b'c' {
        let data = String::from(fill as char).repeat(1 << 20);
        let id = publisher.publish("large", data.as_bytes());
        let event = stream.next_event();
        assert_eq!(event.id, Some(id));
        assert!(event.data_text() == data, "large event damaged");
    }
    assert_eq!(
        metric(&metrics(addr), "sse_slow_consumer_disconnects_total"),
        0.0
    );
}

/// Several publishers at once on different connections (and so different event loops): every
/// subscriber, wherever it is served, sees all events in increasing id order, so a reconnecting
/// client's `Last-Event-ID` never skips an event.
#[test]
fn concurrent_publishers_keep_ids_in_order_for_everyone() {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 200;
    let server = TestServer::start(sse_server::Config {
        threads: 4,
        ..util::config()
    });
    let addr = server.addr;
    let mut streams: Vec<SseStream> = (0..16)
        .map(|_| {
            let mut stream = SseStream::subscribe(addr, &["order"]);
            stream.read_preamble(deadline());
            stream
        })
        .collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            thread::spawn(move || {
                let mut publisher = Publisher::new(addr);
                (0..EACH)
                    .map(|i| publisher.publish("order", format!("{p}/{i}").as_bytes()))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = publishers
        .into_iter()
        .flat_map(|p| p.join().expect("publisher failed"))
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), PUBLISHERS * EACH, "ids are unique");
    let last = *all.last().unwrap();
    for (n, stream) in streams.iter_mut().enumerate() {
        let got = stream.ids_through(last);
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "subscriber {n}: ids out of order"
        );
        assert_eq!(got.len(), all.len(), "subscriber {n}: events lost");
    }
}
