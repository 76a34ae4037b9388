//! Fan-out allocates nothing per subscriber: a counting global allocator shows that delivering
//! an event to 1,000 subscribers over real sockets allocates exactly as much as delivering it
//! to 10, and no more than a handful of times in all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sse_server::broker::Published;
use sse_server::event::EncodedEvent;
use sse_server::fanout::{PendingBytes, Retention, Subscriber, Topics};

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

struct Fixture {
    topics: Topics,
    subscribers: Vec<(Subscriber, PendingBytes, UnixStream)>,
    readers: Vec<UnixStream>,
    touched: Vec<usize>,
}

impl Fixture {
    fn new(count: usize) -> Fixture {
        let mut topics = Topics::new(Retention {
            history: 1024,
            history_bytes: 1 << 20,
            max_pending: 1 << 20,
        });
        let mut subscribers = Vec::new();
        let mut readers = Vec::new();
        for key in 0..count {
            let (writer, reader) = UnixStream::pair().unwrap();
            writer.set_nonblocking(true).unwrap();
            reader.set_nonblocking(true).unwrap();
            subscribers.push((
                topics.subscribe(key, &["news"], None, 0),
                PendingBytes::None,
                writer,
            ));
            readers.push(reader);
        }
        Fixture {
            topics,
            subscribers,
            readers,
            touched: Vec::with_capacity(8),
        }
    }

    /// What an event loop does with one published event: append it to the topic log, then one
    /// vectored write per subscriber of the touched topic, from the shared buffer.
    fn deliver(&mut self, published: &Published) -> u64 {
        self.touched.clear();
        self.topics.append(published, &mut self.touched);
        let mut delivered = 0;
        for &topic in &self.touched {
            for key in self.topics.subscribers(topic) {
                let (subscriber, prefix, socket) = &mut self.subscribers[key];
                let flushed = subscriber
                    .flush(&self.topics, prefix, |slices: &[IoSlice<'_>]| {
                        socket.write_vectored(slices)
                    })
                    .unwrap();
                delivered += flushed.events;
            }
        }
        delivered
    }

    /// Reads what the subscribers received, so socket buffers never fill.
    fn drain_readers(&mut self) -> usize {
        let mut buffer = [0u8; 4096];
        let mut total = 0;
        for reader in &mut self.readers {
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                total += n;
            }
        }
        total
    }
}

fn event(id: u64) -> Published {
    Published {
        topics: vec![Box::from("news")].into_boxed_slice(),
        event: EncodedEvent::encode(id, Some("update"), &"x".repeat(100)),
    }
}

/// Allocations made while delivering one event to `count` subscribers (after a warm-up, so the
/// topic log's queue already has its capacity, as it does in a running server).
fn allocations_per_event(count: usize) -> u64 {
    let mut fixture = Fixture::new(count);
    for id in 1..=1100 {
        assert_eq!(fixture.deliver(&event(id)), count as u64);
        fixture.drain_readers();
        let touched = fixture.touched[0];
        fixture.topics.trim(touched);
    }
    let published = Arc::new(event(5000));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let delivered = fixture.deliver(&published);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(delivered, count as u64, "every subscriber got the event");
    assert!(fixture.drain_readers() >= count * published.event.len());
    after - before
}

/// Delivering to 1,000 subscribers allocates no more than delivering to 10.
#[test]
fn fan_out_does_not_allocate_per_subscriber() {
    let few = allocations_per_event(10);
    let many = allocations_per_event(1000);
    assert_eq!(few, many, "allocations grew with the number of subscribers");
    assert!(many <= 2, "{many} allocations for one event");
}
