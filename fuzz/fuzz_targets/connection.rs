//! One connection's request/response state machine (`event_loop::exchange::Exchange`), driven
//! end to end over an in-memory socket whose reads arrive in fuzz-chosen pieces, with
//! `WouldBlock` between them, and whose writes take fuzz-chosen short counts or `WouldBlock`
//! (the pattern of the h2 crate's end-to-end target). Publishes are answered as the broker
//! would, with an id or a refusal chosen by the input.
//!
//! What must hold: it never panics; it ends (stream, linger or close) within a bounded number of
//! steps; what it wrote is a sequence of complete HTTP/1.1 responses (a final one may be cut
//! only where the connection ends); and the bytes written and the way it ends are the same as
//! when the whole input arrives in one read and every write is taken whole.
//!
//! Control byte 0 chooses the publish answers, the others the read and write sizes.

#![no_main]

use std::io::{self, Read, Write};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sse_fuzz::{Input, pieces};
use sse_server::broker::PublishError;
use sse_server::event_loop::exchange::{Context, Exchange, Outcome};
use sse_server::feed::Feeds;
use sse_server::metrics::{LoopCounters, Metrics};
use sse_server::routes::Router;

/// Reads come in `reads` pieces, each after one `WouldBlock`; then end of input. Writes take
/// what `write_caps` says in turn (0: `WouldBlock`), then everything.
struct Socket<'a> {
    reads: Vec<&'a [u8]>,
    next_read: usize,
    /// A piece is ready (the `WouldBlock` before it was returned).
    ready: bool,
    write_caps: Vec<usize>,
    next_write: usize,
    written: Vec<u8>,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(piece) = self.reads.get(self.next_read) else {
            return Ok(0);
        };
        if !self.ready {
            self.ready = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = piece.len().min(buf.len());
        buf[..n].copy_from_slice(&piece[..n]);
        if n == piece.len() {
            self.next_read += 1;
            self.ready = false;
        } else {
            self.reads[self.next_read] = &piece[n..];
        }
        Ok(n)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let cap = match self.write_caps.get(self.next_write) {
            Some(&cap) => {
                self.next_write += 1;
                cap
            }
            None => usize::MAX,
        };
        if cap == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = cap.min(buf.len());
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a driven connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Stream(Vec<String>, Option<u64>),
    Linger,
    Close,
}

fn drive(router: &Router, socket: &mut Socket<'_>, answers: u8) -> End {
    let mut exchange =
        Exchange::new(std::time::Instant::now() + std::time::Duration::from_secs(60));
    let mut read_buffer: Box<[u8]> = vec![0; 16 * 1024].into_boxed_slice();
    let mut counters = LoopCounters::default();
    let mut next_serial = 0;
    let mut published = 0u32;
    // Each step is one readiness event, and each consumes a read piece (two steps: the
    // `WouldBlock` before it, then the bytes), a short or refused write, or answers a publish
    // (one per request, so fewer than the payload's bytes): this bounds a correct exchange.
    let payload: usize = socket.reads.iter().map(|r| r.len()).sum();
    let budget = 16 + 2 * socket.reads.len() + socket.write_caps.len() + payload;
    for _ in 0..budget {
        let mut cx = Context {
            router,
            read_buffer: &mut read_buffer,
            counters: &mut counters,
            next_serial: &mut next_serial,
            stopping: false,
            peer: "127.0.0.1".parse().unwrap(),
        };
        match exchange.drive(socket, &mut cx) {
            Outcome::Wait => {}
            Outcome::Publish(request, serial) => {
                assert!(!request.topics().is_empty());
                let result = if answers >> (published % 8) & 1 == 1 {
                    Err(PublishError::TooManyTopics)
                } else {
                    Ok(1_000_000 + u64::from(published))
                };
                published += 1;
                assert!(exchange.complete_publish(serial, result, router, false));
                assert!(
                    !exchange.complete_publish(serial, Ok(1), router, false),
                    "answered twice"
                );
            }
            Outcome::Stream(subscription) => {
                // The loop writes responses still queued (pipelined) before the stream's head.
                let queued = &exchange.output[exchange.written..];
                socket.written.extend_from_slice(queued);
                return End::Stream(subscription.topics, subscription.last_event_id);
            }
            Outcome::Linger => return End::Linger,
            Outcome::Close => return End::Close,
        }
    }
    panic!("still waiting after {budget} readiness events with the input all there");
}

/// Checks that `bytes` is a run of complete HTTP/1.1 responses, the last one possibly cut.
fn check_responses(bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(&bytes[at..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return,
            Err(e) => panic!("not an HTTP response at byte {at}: {e}"),
        };
        let status = response.code.unwrap();
        assert!((100..600).contains(&status), "status {status}");
        if status == 100 {
            at += len;
            continue;
        }
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| {
                std::str::from_utf8(h.value)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            });
        let Some(length) = length else {
            // A stream head (text/event-stream) has no length; nothing follows it here.
            assert!(status == 200, "a response without Content-Length: {status}");
            return;
        };
        at += len + length;
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::split(data);
    if input.payload.len() > 64 * 1024 {
        return;
    }
    let router = Router::new(
        sse_server::Config {
            max_body: 4096,
            ..sse_server::Config::default()
        },
        Arc::new(Metrics::default()),
        Feeds::default(),
    );
    let answers = input.choice(0);
    let control = input.control.get(1..).unwrap_or(&[]);
    let reads = pieces(control, input.payload);
    let write_caps: Vec<usize> = control
        .iter()
        .map(|&b| if b % 4 == 0 { 0 } else { b as usize / 4 })
        .collect();
    let mut split = Socket {
        reads: reads.clone(),
        next_read: 0,
        ready: false,
        write_caps,
        next_write: 0,
        written: Vec::new(),
    };
    let split_end = drive(&router, &mut split, answers);
    check_responses(&split.written);

    let mut whole = Socket {
        reads: vec![input.payload],
        next_read: 0,
        ready: true,
        write_caps: Vec::new(),
        next_write: 0,
        written: Vec::new(),
    };
    let whole_end = drive(&router, &mut whole, answers);
    assert_eq!(split_end, whole_end, "the ending depends on the splits");
    assert_eq!(
        split.written, whole.written,
        "the output depends on the splits"
    );
});
