//! Every event the publish API accepts, encoded by the server (`event::EncodedEvent::encode`),
//! is read back by the load generator's WHATWG parser (`sse_loadgen::sse`) with the same data,
//! event type and id, whatever the read splits. The data is the same exactly when it holds no
//! CR; line breaks (CRLF, lone CR, LF) come back as LF, the only line break an event stream can
//! carry.
//!
//! Payload: topic, then event type and data pairs, separated by U+0001 (an empty event type is
//! none, as the publish API treats it). Control byte 0 chooses the first id; the others the read
//! sizes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_fuzz::{Input, pieces};
use sse_loadgen::sse::{Dispatch, EventStreamParser};
use sse_server::event::{EncodedEvent, is_valid_name};

fuzz_target!(|data: &[u8]| {
    let input = Input::split(data);
    let text = String::from_utf8_lossy(input.payload);
    let mut parts = text.split('\u{1}');
    let topic = parts.next().unwrap_or_default();
    if !is_valid_name(topic) {
        return;
    }
    let first_id =
        [0, 1, 9, 10, 99, u64::from(u32::MAX), u64::MAX - 8][input.choice(0) as usize % 7];
    let mut published: Vec<(u64, Option<&str>, &str)> = Vec::new();
    let mut stream = b"retry: 2000\n: stream open\n\n".to_vec();
    while let (Some(kind), Some(data)) = (parts.next(), parts.next()) {
        let kind = Some(kind).filter(|k| !k.is_empty());
        if kind.is_some_and(|k| !is_valid_name(k)) || published.len() == 8 {
            return;
        }
        let id = first_id + published.len() as u64;
        stream.extend_from_slice(&EncodedEvent::encode(id, kind, data).wire);
        published.push((id, kind, data));
        stream.extend_from_slice(b": keep-alive\n\n");
    }

    let mut parser = EventStreamParser::new();
    let mut received: Vec<(String, String, String)> = Vec::new();
    for piece in pieces(input.control.get(1..).unwrap_or(&[]), &stream) {
        parser.feed(piece, &mut |dispatch| {
            if let Dispatch::Event(event) = dispatch {
                received.push((
                    event.last_event_id_str().into_owned(),
                    event.event_type_str().into_owned(),
                    event.data_str().into_owned(),
                ));
            }
        });
    }
    assert_eq!(received.len(), published.len(), "events lost or invented");
    for ((id, kind, data), (got_id, got_kind, got_data)) in published.iter().zip(&received) {
        assert_eq!(got_id, &id.to_string());
        assert_eq!(got_kind, kind.unwrap_or("message"));
        let expected = data.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(got_data, &expected);
    }
});
