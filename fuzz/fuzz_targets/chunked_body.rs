//! The request body decoder (`http::body::BodyReader`) gives the same result whatever the read
//! splits: the same body, the same number of bytes taken, the same refusal. It never holds more
//! than its limit, and for chunked bodies it agrees with a plain whole-input decoder
//! (`sse_fuzz::reference_chunked`) on every body either of them completes.
//!
//! Control byte 0 chooses the framing and the limit; the others choose the read sizes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_fuzz::{Chunked, Input, pieces, reference_chunked};
use sse_server::http::HttpError;
use sse_server::http::body::BodyReader;
use sse_server::http::request::BodyFraming;

/// What a reader made of an input.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done { body: Vec<u8>, taken: usize },
    Incomplete { body: Vec<u8> },
    Refused(HttpError),
}

fn run(framing: BodyFraming, limit: u64, reads: &[&[u8]]) -> Outcome {
    let mut reader = match BodyReader::new(framing, limit) {
        Ok(reader) => reader,
        Err(error) => return Outcome::Refused(error),
    };
    let mut taken = 0;
    for read in reads {
        if reader.is_done() {
            break;
        }
        match reader.feed(read) {
            Ok(n) => {
                assert!(n <= read.len());
                assert!(
                    n == read.len() || reader.is_done(),
                    "stopped early without an end"
                );
                taken += n;
            }
            Err(error) => return Outcome::Refused(error),
        }
        assert!(reader.body.len() as u64 <= limit, "body past its limit");
        assert!(reader.body.capacity() as u64 <= limit.max(256));
    }
    if reader.is_done() {
        Outcome::Done {
            body: reader.body,
            taken,
        }
    } else {
        Outcome::Incomplete { body: reader.body }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::split(data);
    let choice = input.choice(0);
    let limit = [0, 1, 16, 64, 1000, 4096, 1 << 20, u64::MAX][choice as usize % 8];
    let payload = input.payload;
    let framing = if choice & 0x80 == 0 {
        BodyFraming::Chunked
    } else {
        BodyFraming::Length(payload.len() as u64 / 2 + u64::from(choice & 0x0f))
    };
    let whole = run(framing, limit, &[payload]);
    let split = run(
        framing,
        limit,
        &pieces(input.control.get(1..).unwrap_or(&[]), payload),
    );
    assert_eq!(whole, split, "the result depends on the read splits");
    if let Outcome::Refused(error) = &whole {
        assert!(matches!(error.status, 400 | 413 | 431), "{error:?}");
    }

    if framing == BodyFraming::Chunked {
        let reference = reference_chunked(payload, limit);
        match (&whole, &reference) {
            (Outcome::Done { body, taken }, Chunked::Complete(expected, expected_taken)) => {
                assert_eq!(body, expected);
                assert_eq!(taken, expected_taken);
            }
            (Outcome::Done { .. }, Chunked::NotComplete) => {
                panic!("the reader completed a body the reference does not: {whole:?}")
            }
            (_, Chunked::Complete(..)) => {
                panic!("the reader did not complete a body the reference does: {whole:?}")
            }
            _ => {}
        }
    }
});
