//! The load generator's event-stream parser (`sse_loadgen::sse::EventStreamParser`) never panics
//! on any bytes, and dispatches the same events and retries whatever the read splits; an event's
//! type is never empty and its last event ID never holds NUL (WHATWG HTML, section 9.2.6).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_fuzz::{Input, pieces};
use sse_loadgen::sse::{Dispatch, EventStreamParser};

/// An owned dispatch.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Event {
        event_type: Vec<u8>,
        data: Vec<u8>,
        id: Vec<u8>,
    },
    Retry(u64),
}

fn parse(reads: &[&[u8]]) -> (Vec<Out>, Vec<u8>) {
    let mut parser = EventStreamParser::new();
    let mut out = Vec::new();
    for read in reads {
        parser.feed(read, &mut |dispatch| {
            out.push(match dispatch {
                Dispatch::Event(event) => Out::Event {
                    event_type: event.event_type.to_vec(),
                    data: event.data.to_vec(),
                    id: event.last_event_id.to_vec(),
                },
                Dispatch::Retry(ms) => Out::Retry(ms),
            })
        });
    }
    (out, parser.last_event_id().to_vec())
}

fuzz_target!(|data: &[u8]| {
    let input = Input::split(data);
    let whole = parse(&[input.payload]);
    let split = parse(&pieces(input.control, input.payload));
    assert_eq!(whole, split, "the result depends on the read splits");
    for out in &whole.0 {
        if let Out::Event { event_type, id, .. } = out {
            assert!(!event_type.is_empty());
            assert!(!id.contains(&0));
        }
    }
});
