//! Throughput of the event-stream parser (and the HTTP chunked decoder in front of it), in
//! MB/s of stream bytes, on realistic constant inputs: the load generator's own payloads as
//! `sse-server` frames them, and a multi-line, CRLF stream read in small pieces.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sse_loadgen::http::{BodyDecoder, BodyMode};
use sse_loadgen::payload::{self, Stamp};
use sse_loadgen::sse::{Dispatch, EventStreamParser};

/// 1,000 events as `sse-server` writes them: `id`, then one `data` line with a 64-byte payload.
fn loadgen_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for seq in 0..1000u64 {
        payload::encode(
            Stamp {
                run: 0x0123_4567_89ab_cdef,
                seq,
                scheduled_ns: 1_763_000_000_000_000_000 + seq * 1000,
            },
            64,
            &mut body,
        );
        out.extend_from_slice(format!("id: {}\ndata: ", 1_763_000_000_000_000 + seq).as_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\n\n");
    }
    out
}

/// 1,000 events with a type, an id and three CRLF-terminated data lines, plus comments.
fn multiline_stream() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..1000 {
        out.extend_from_slice(
            format!(
                ": keepalive\r\nevent: update\r\nid: {i}\r\ndata: {{\"user\": \"someone\", \"n\": {i}}}\r\ndata: second line of the event\r\ndata: third\r\n\r\n"
            )
            .as_bytes(),
        );
    }
    out
}

/// Wraps `body` in HTTP chunks of `size` bytes.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse(input: &[u8], piece: usize) -> usize {
    let mut parser = EventStreamParser::new();
    let mut n = 0;
    for p in input.chunks(piece) {
        parser.feed(black_box(p), &mut |d| {
            if let Dispatch::Event(e) = d {
                n += e.data.len();
            }
        });
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parser");
    let loadgen = loadgen_stream();
    let multiline = multiline_stream();
    g.throughput(Throughput::Bytes(loadgen.len() as u64));
    g.bench_function("loadgen_payloads_64KiB_reads", |b| {
        b.iter(|| parse(&loadgen, 64 * 1024))
    });
    g.bench_function("loadgen_payloads_100B_reads", |b| {
        b.iter(|| parse(&loadgen, 100))
    });
    g.throughput(Throughput::Bytes(multiline.len() as u64));
    g.bench_function("multiline_crlf_64KiB_reads", |b| {
        b.iter(|| parse(&multiline, 64 * 1024))
    });
    let wire = chunked(&loadgen, 4096);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("chunked_then_parse", |b| {
        b.iter(|| {
            let mut body = BodyDecoder::new(BodyMode::Chunked);
            let mut parser = EventStreamParser::new();
            let mut n = 0usize;
            body.feed(black_box(&wire), &mut |chunk| {
                parser.feed(chunk, &mut |d| {
                    if let Dispatch::Event(e) = d
                        && payload::decode(e.data).is_some()
                    {
                        n += 1;
                    }
                })
            })
            .unwrap();
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
