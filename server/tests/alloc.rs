//! Fan-out allocates nothing per subscriber: a counting global allocator watches a running
//! server (its real event loop, over real sockets) deliver one event to 1,000 subscribers, and
//! counts no more allocations than for 10. What is counted is the whole path: the publish
//! through the broker, the loop taking it from its feed, the topic log, the passes and the
//! vectored writes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::broker::PublishRequest;

mod util;
use sse_server::{Broker, Config, Server};
use util::raw_subscriber;

/// Counts every allocation and reallocation made by this test binary.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only adds a counter.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const DATA: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// A running one-loop server and `count` subscribers of topic `news`.
struct Fixture {
    broker: Arc<dyn Broker>,
    subscribers: Vec<TcpStream>,
    shutdown: sse_server::ShutdownHandle,
    server: Option<thread::JoinHandle<()>>,
    /// Where subscribers' bytes are read into (and dropped).
    buffer: Box<[u8]>,
}

impl Fixture {
    fn new(count: usize) -> Fixture {
        let server = Server::bind(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            threads: 1,
            history: 16,
            demo_interval: Duration::ZERO,
            heartbeat: Duration::from_secs(600),
            drain: Duration::ZERO,
            ..Config::default()
        })
        .expect("bind");
        let addr = server.local_addr();
        let broker = server.broker();
        let shutdown = server.shutdown_handle();
        let server = thread::spawn(move || server.run().expect("server ran"));
        let subscribers = (0..count).map(|_| raw_subscriber(addr, "news")).collect();
        Fixture {
            broker,
            subscribers,
            shutdown,
            server: Some(server),
            buffer: vec![0; 64 * 1024].into_boxed_slice(),
        }
    }

    fn publish(&self) -> u64 {
        let request = PublishRequest::new(&["news"], Some("update"), DATA).unwrap();
        self.broker
            .publish_and_wait(request, Duration::from_secs(20))
            .expect("published")
    }

    /// Reads from every subscriber until each has `bytes` more bytes (allocation-free: fixed
    /// buffers, non-blocking reads, a deadline).
    fn read_all(&mut self, bytes: usize) {
        let end = Instant::now() + Duration::from_secs(30);
        for socket in &mut self.subscribers {
            let mut got = 0;
            while got < bytes {
                match socket.read(&mut self.buffer[..bytes - got]) {
                    Ok(0) => panic!("a subscriber was closed"),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        assert!(Instant::now() < end, "events did not arrive in time");
                        thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("read failed: {e}"),
                }
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Allocations made while one event is published and delivered to `count` subscribers, after
/// a warm-up that brings the loop's queues and the topic log to their steady capacity.
fn allocations_per_event(count: usize) -> u64 {
    let mut fixture = Fixture::new(count);
    let wire_len = |id: u64| format!("id: {id}\nevent: update\ndata: {DATA}\n\n").len();
    let mut last = 0;
    for _ in 0..64 {
        last = fixture.publish();
        fixture.read_all(wire_len(last));
    }
    // Ids of one run have the same number of digits (microseconds), so the next event has the
    // same length; computed before counting starts.
    let expected = wire_len(last);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    fixture.publish();
    fixture.read_all(expected);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    after - before
}

/// Delivering to 1,000 subscribers allocates no more than delivering to 10.
#[test]
fn fan_out_does_not_allocate_per_subscriber() {
    let few = allocations_per_event(10);
    let many = allocations_per_event(1000);
    assert!(
        many <= few,
        "allocations grew with the number of subscribers: {few} for 10, {many} for 1,000"
    );
    assert!(few <= 16, "{few} allocations for one event");
    eprintln!("allocations for one event: {few} to 10 subscribers, {many} to 1,000");
}
