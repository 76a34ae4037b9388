//! Micro-benchmarks of the hot paths: encoding an event, parsing a request head, and fanning one
//! event out to 10,000 subscribers (user-space work only: the writer is a sink that accepts
//! everything, so the figure excludes the kernel's ~8-10 µs per write measured on this machine).

use std::hint::black_box;
use std::io::IoSlice;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sse_server::broker::Published;
use sse_server::event::EncodedEvent;
use sse_server::fanout::{PendingBytes, Retention, Topics};
use sse_server::http::request::parse_head;

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, data) in [
        ("64B", "x".repeat(64)),
        (
            "1KiB_16_lines",
            "y".repeat(63).repeat(16).chars().collect::<String>(),
        ),
        ("1KiB_multiline", format!("{}\n", "z".repeat(63)).repeat(16)),
    ] {
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                EncodedEvent::encode(
                    black_box(1_795_267_363_602_000),
                    Some("tick"),
                    black_box(&data),
                )
            })
        });
    }
    group.finish();
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_head");
    let subscribe = b"GET /events?topic=news&topic=sports HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nLast-Event-ID: 1795267363602000\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36\r\nAccept-Language: en-US,en;q=0.9\r\nConnection: keep-alive\r\n\r\n";
    let publish = b"POST /publish?topic=news HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n";
    for (name, head) in [("subscribe", &subscribe[..]), ("publish", &publish[..])] {
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| parse_head(black_box(head)).unwrap().unwrap())
        });
    }
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 10_000;
    let mut group = c.benchmark_group("fan_out");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    group.sample_size(20);
    let retention = Retention {
        history: 1024,
        history_bytes: 1 << 20,
        max_pending: 1 << 20,
        ..Retention::default()
    };
    let mut topics = Topics::new(retention, 0);
    let mut subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|key| {
            let (subscriber, _) = topics.subscribe(key, &["news"], None, 0).unwrap();
            (subscriber, PendingBytes::None)
        })
        .collect();
    let mut touched = Vec::new();
    let mut id = 0;
    group.bench_function("one_event_to_10k_subscribers", |b| {
        b.iter_batched(
            || {
                id += 1;
                Arc::new(Published {
                    topics: vec![Box::from("news")].into_boxed_slice(),
                    event: EncodedEvent::encode(id, None, &"x".repeat(100)),
                })
            },
            |published| {
                touched.clear();
                topics.append(&published, &mut touched);
                let topic = touched[0];
                let mut delivered = 0;
                let mut owed_from = u64::MAX;
                for key in topics.subscribers(topic) {
                    let (subscriber, prefix) = &mut subscribers[key];
                    let flushed = subscriber
                        .flush(&topics, prefix, |slices: &[IoSlice<'_>]| {
                            Ok(slices.iter().map(|s| s.len()).sum())
                        })
                        .unwrap();
                    delivered += flushed.events;
                    owed_from = owed_from.min(subscriber.next_seq_in(topic).unwrap_or(u64::MAX));
                }
                let tail = topics.tail_offset(topic);
                topics.trim(topic, tail, owed_from);
                assert_eq!(delivered, SUBSCRIBERS as u64);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, encoding, parsing, fan_out);
criterion_main!(benches);
