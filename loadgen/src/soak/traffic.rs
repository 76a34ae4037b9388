//! The soak's traffic: each kind of client runs on threads of its own with blocking sockets
//! (every read and write has a timeout, and every loop checks the stop flag), and counts what
//! happened in the shared [`Counters`].
//!
//! - good subscribers on the busy topics check that every event arrives once, in order
//!   (published data is `SEQ` per topic), and reconnect with `Last-Event-ID` if cut;
//! - the busy publisher publishes the busy topics at a fixed rate, with padding;
//! - the new-topic publisher publishes once to a new topic all along (`fresh-N`);
//! - churn threads connect and disconnect hundreds of times a second: subscribe to a recent
//!   short-lived topic and hang up, a health check, a bad request, an abandoned head;
//! - stuck subscribers never read (the server must cut them); slow ones read a trickle.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::parse_head;
use crate::sse::{Dispatch, EventStreamParser};

/// Socket timeouts: short, so every thread notices the stop flag within a second.
const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// What the traffic did, counted by every thread.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events the good subscribers received in order.
    pub good_events: AtomicU64,
    /// Events the good subscribers never received (a jump in the sequence).
    pub good_lost: AtomicU64,
    /// Events the good subscribers received twice or out of order.
    pub good_duplicated: AtomicU64,
    /// Times a good subscriber's stream ended and it reconnected.
    pub good_reconnects: AtomicU64,
    /// Publishes to the busy topics answered 200.
    pub busy_published: AtomicU64,
    /// Publishes to new topics answered 200.
    pub fresh_published: AtomicU64,
    /// Publishes not answered 200 (any topic), or not answered.
    pub publish_failures: AtomicU64,
    /// Connect/disconnect cycles of the churn threads.
    pub churn_cycles: AtomicU64,
    /// Bad requests sent.
    pub bad_requests: AtomicU64,
    /// Bad requests answered with something other than a 4xx (or not answered).
    pub bad_unexpected: AtomicU64,
    /// Churn requests that should have been served but were not (no 200, no answer).
    pub churn_failures: AtomicU64,
    /// Stuck subscriber connections opened.
    pub stuck_opened: AtomicU64,
    /// Slow subscriber connections opened.
    pub slow_opened: AtomicU64,
    /// Slow subscribers the server closed.
    pub slow_closed: AtomicU64,
}

impl Counters {
    /// The counts by name, for the summary.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("good_events", load(&self.good_events)),
            ("good_lost", load(&self.good_lost)),
            ("good_duplicated", load(&self.good_duplicated)),
            ("good_reconnects", load(&self.good_reconnects)),
            ("busy_published", load(&self.busy_published)),
            ("fresh_published", load(&self.fresh_published)),
            ("publish_failures", load(&self.publish_failures)),
            ("churn_cycles", load(&self.churn_cycles)),
            ("bad_requests", load(&self.bad_requests)),
            ("bad_unexpected", load(&self.bad_unexpected)),
            ("churn_failures", load(&self.churn_failures)),
            ("stuck_opened", load(&self.stuck_opened)),
            ("slow_opened", load(&self.slow_opened)),
            ("slow_closed", load(&self.slow_closed)),
        ]
    }
}

/// What every traffic thread shares.
#[derive(Clone)]
pub struct Shared {
    /// The server.
    pub addr: SocketAddr,
    /// The `Host` header to send.
    pub host: String,
    /// Set when the soak ends.
    pub stop: Arc<AtomicBool>,
    /// The counts.
    pub counters: Arc<Counters>,
    /// The newest `fresh-N` topic published, for the churn subscribers.
    pub newest_fresh: Arc<AtomicU64>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn connect(&self) -> Option<TcpStream> {
        let socket = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).ok()?;
        socket.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
        socket.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
        socket.set_nodelay(true).ok()?;
        Some(socket)
    }

    fn subscribe_request(&self, topic: &str, last_event_id: Option<&str>) -> String {
        let last = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        format!(
            "GET /events?topic={topic} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{last}\r\n",
            self.host
        )
    }
}

/// Paces a loop at `rate` turns per second from `start`: true when turn `n` is due, else sleeps
/// towards it (at most [`IO_TIMEOUT`], so the caller checks the stop flag) and returns false.
fn wait_turn(start: Instant, n: u64, rate: f64) -> bool {
    let due = start + Duration::from_secs_f64(n as f64 / rate);
    match due.checked_duration_since(Instant::now()) {
        Some(wait) => {
            thread::sleep(wait.min(IO_TIMEOUT));
            false
        }
        None => true,
    }
}

/// Reads a response head; returns its status and the bytes after it.
fn read_head(socket: &mut TcpStream, until: Instant) -> Option<(u16, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < until {
        match socket.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
        if let Ok(Some((head, len))) = parse_head(&buffer) {
            return Some((head.status, buffer[len..].to_vec()));
        }
    }
    None
}

/// One good subscriber of `topic`: checks the sequence, reconnects with `Last-Event-ID`.
pub fn good_subscriber(shared: Shared, topic: String) {
    let counters = &shared.counters;
    let mut expected: Option<u64> = None;
    let mut last_id: Option<String> = None;
    let mut chunk = vec![0u8; 16 * 1024];
    while !shared.stopped() {
        let Some(mut socket) = shared.connect() else {
            thread::sleep(Duration::from_millis(200));
            continue;
        };
        let request = shared.subscribe_request(&topic, last_id.as_deref());
        if socket.write_all(request.as_bytes()).is_err() {
            continue;
        }
        let Some((200, rest)) = read_head(&mut socket, Instant::now() + Duration::from_secs(5))
        else {
            thread::sleep(Duration::from_millis(200));
            continue;
        };
        let mut parser = EventStreamParser::new();
        let mut on_event = |dispatch: Dispatch<'_>| {
            let Dispatch::Event(event) = dispatch else {
                return;
            };
            last_id = Some(event.last_event_id_str().into_owned());
            let Ok(seq) = event.data_str().trim().parse::<u64>() else {
                return;
            };
            match expected {
                Some(next) if seq == next => {
                    counters.good_events.fetch_add(1, Ordering::Relaxed);
                }
                Some(next) if seq > next => {
                    counters.good_lost.fetch_add(seq - next, Ordering::Relaxed);
                }
                Some(_) => {
                    counters.good_duplicated.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                None => {
                    counters.good_events.fetch_add(1, Ordering::Relaxed);
                }
            }
            expected = Some(seq + 1);
        };
        parser.feed(&rest, &mut on_event);
        loop {
            if shared.stopped() {
                return;
            }
            match socket.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => parser.feed(&chunk[..n], &mut on_event),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        counters.good_reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// Publishes `POST /publish?topic=...` on a kept-alive connection; true on `200`.
fn publish(shared: &Shared, conn: &mut Option<TcpStream>, topic: &str, data: &[u8]) -> bool {
    let head = format!(
        "POST /publish?topic={topic} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        shared.host,
        data.len()
    );
    for _ in 0..2 {
        if conn.is_none() {
            *conn = shared.connect();
        }
        let Some(socket) = conn.as_mut() else {
            return false;
        };
        let sent = socket.write_all(head.as_bytes()).is_ok() && socket.write_all(data).is_ok();
        if sent {
            if let Some((status, rest)) = read_head(socket, Instant::now() + Duration::from_secs(5))
            {
                // The id body is short; read what is left of it so the next answer starts clean.
                drain_small_body(socket, rest);
                return status == 200;
            }
        }
        *conn = None;
    }
    false
}

/// Reads the rest of a small `Content-Length` body (the publish answer's id and newline).
fn drain_small_body(socket: &mut TcpStream, mut rest: Vec<u8>) {
    let until = Instant::now() + Duration::from_secs(2);
    let mut chunk = [0u8; 256];
    while !rest.ends_with(b"\n") && Instant::now() < until {
        match socket.read(&mut chunk) {
            Ok(n) if n > 0 => rest.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}

/// Publishes to the busy topics in turn at `rate` events/s in all, each event `SEQ` padded to
/// `payload` bytes with spaces (the subscribers trim it).
pub fn busy_publisher(shared: Shared, topics: Vec<String>, rate: f64, payload: usize) {
    let mut conn = None;
    let mut seqs = vec![0u64; topics.len()];
    let start = Instant::now();
    let mut sent = 0u64;
    while !shared.stopped() {
        if !wait_turn(start, sent, rate) {
            continue;
        }
        let index = (sent as usize) % topics.len();
        let mut data = seqs[index].to_string().into_bytes();
        data.resize(payload.max(data.len()), b' ');
        if publish(&shared, &mut conn, &topics[index], &data) {
            shared
                .counters
                .busy_published
                .fetch_add(1, Ordering::Relaxed);
            seqs[index] += 1;
        } else {
            shared
                .counters
                .publish_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        sent += 1;
    }
}

/// Publishes once to a new topic `fresh-N` at `rate` topics/s, all along; thread `index` of
/// `threads` takes every `threads`-th N.
pub fn fresh_publisher(shared: Shared, rate: f64, index: u64, threads: u64) {
    let mut conn = None;
    let start = Instant::now();
    let mut n = 0u64;
    while !shared.stopped() {
        if !wait_turn(start, n, rate) {
            continue;
        }
        let topic = n * threads + index;
        if publish(&shared, &mut conn, &format!("fresh-{topic}"), b"hello") {
            shared
                .counters
                .fresh_published
                .fetch_add(1, Ordering::Relaxed);
            shared.newest_fresh.fetch_max(topic, Ordering::Relaxed);
        } else {
            shared
                .counters
                .publish_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
    }
}

/// Requests the server must refuse with a 4xx, one of each shape.
const BAD_REQUESTS: &[&[u8]] = &[
    b"GARBAGE\r\n\r\n",
    b"POST /publish?topic=x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /publish?topic=x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    b"GET /events?topic=a\r\n\r\n",
    b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"DELETE /events HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 999999\r\n\r\n",
    b"GET /events?topic=a%0Ab HTTP/1.1\r\nHost: localhost\r\n\r\n",
];

/// Connects and disconnects as fast as `per_second` allows: a short-lived subscription, a
/// health check, a bad request, or a head abandoned half-way.
pub fn churn(shared: Shared, per_second: f64, seed: u64) {
    let mut cycle = seed;
    let start = Instant::now();
    let mut done = 0u64;
    let mut oversized = b"GET /events HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    oversized.resize(oversized.len() + 10_000, b'a');
    oversized.extend_from_slice(b"\r\n\r\n");
    while !shared.stopped() {
        if !wait_turn(start, done, per_second) {
            continue;
        }
        done += 1;
        cycle = cycle
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let Some(mut socket) = shared.connect() else {
            shared
                .counters
                .churn_failures
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let counters = &shared.counters;
        counters.churn_cycles.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + Duration::from_secs(3);
        match (cycle >> 33) % 10 {
            0..=5 => {
                let newest = shared.newest_fresh.load(Ordering::Relaxed);
                let topic = format!("fresh-{}", newest.saturating_sub((cycle >> 40) % 50));
                let request = shared.subscribe_request(&topic, None);
                let ok = socket.write_all(request.as_bytes()).is_ok()
                    && matches!(read_head(&mut socket, until), Some((200, _)));
                if !ok {
                    counters.churn_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            6 => {
                let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", shared.host);
                let ok = socket.write_all(request.as_bytes()).is_ok()
                    && matches!(read_head(&mut socket, until), Some((200, _)));
                if !ok {
                    counters.churn_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            7 | 8 => {
                counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                let pick = ((cycle >> 20) as usize) % (BAD_REQUESTS.len() + 1);
                let request = BAD_REQUESTS.get(pick).copied().unwrap_or(&oversized);
                let refused = socket.write_all(request).is_ok()
                    && matches!(read_head(&mut socket, until), Some((400..=499, _)));
                if !refused {
                    counters.bad_unexpected.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                // A head cut short, then gone.
                let _ = socket.write_all(b"GET /events?top");
            }
        }
    }
}

/// Keeps `count` subscribers of the busy topics that never read, replacing them every
/// `renew` (the server cuts them once they are `--max-pending` behind).
pub fn stuck_subscribers(shared: Shared, topics: Vec<String>, count: usize, renew: Duration) {
    let mut held: Vec<TcpStream> = Vec::new();
    let mut renewed = Instant::now() - renew;
    while !shared.stopped() {
        if renewed.elapsed() >= renew {
            held.clear();
            for n in 0..count {
                if shared.stopped() {
                    return;
                }
                let Some(mut socket) = shared.connect() else {
                    continue;
                };
                let request = shared.subscribe_request(&topics[n % topics.len()], None);
                if socket.write_all(request.as_bytes()).is_ok() {
                    shared.counters.stuck_opened.fetch_add(1, Ordering::Relaxed);
                    held.push(socket);
                }
            }
            renewed = Instant::now();
        }
        thread::sleep(IO_TIMEOUT);
    }
}

/// Keeps `count` slow subscribers that read `per_read` bytes every 100 ms; one the server
/// closes is replaced.
pub fn slow_subscribers(shared: Shared, topics: Vec<String>, count: usize, per_read: usize) {
    let mut sockets: Vec<Option<TcpStream>> = (0..count).map(|_| None).collect();
    let mut chunk = vec![0u8; per_read.max(1)];
    while !shared.stopped() {
        for (n, slot) in sockets.iter_mut().enumerate() {
            if slot.is_none() {
                if let Some(mut socket) = shared.connect() {
                    let request = shared.subscribe_request(&topics[n % topics.len()], None);
                    if socket.write_all(request.as_bytes()).is_ok()
                        && socket.set_nonblocking(true).is_ok()
                    {
                        shared.counters.slow_opened.fetch_add(1, Ordering::Relaxed);
                        *slot = Some(socket);
                    }
                }
                continue;
            }
            if let Some(socket) = slot {
                match socket.read(&mut chunk) {
                    Ok(0) => {
                        shared.counters.slow_closed.fetch_add(1, Ordering::Relaxed);
                        *slot = None;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        shared.counters.slow_closed.fetch_add(1, Ordering::Relaxed);
                        *slot = None;
                    }
                }
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}
