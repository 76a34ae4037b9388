//! Request bodies: `Content-Length` and chunked framing, decoded incrementally as bytes arrive,
//! and bounded: a body larger than the limit is refused with `413` as soon as that is known, not
//! after reading it all.

use super::HttpError;
use super::request::BodyFraming;

/// `413` for a body over the limit.
pub const TOO_LARGE: HttpError = HttpError::new(413, "request body too large");

const BAD_CHUNK: HttpError = HttpError::bad_request("malformed chunked body");

/// Decodes one request body from the bytes that follow its head.
#[derive(Debug)]
pub struct BodyReader {
    state: State,
    limit: u64,
    /// The decoded body so far.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `n` more bytes of a `Content-Length` body.
    Length(u64),
    /// Reading the hex size of the next chunk (`digits` so far).
    ChunkSize { size: u64, digits: u8 },
    /// Skipping a chunk extension up to the end of the size line.
    ChunkExtension { size: u64 },
    /// Expecting the LF of the size line.
    ChunkSizeLf { size: u64 },
    /// `n` more bytes of chunk data.
    ChunkData(u64),
    /// Expecting CR then LF after chunk data.
    ChunkDataCr,
    /// Expecting LF after chunk data.
    ChunkDataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line, skipping to its LF.
    TrailerLine,
    /// Expecting the LF of the final empty line.
    FinalLf,
    /// The body is complete.
    Done,
}

impl BodyReader {
    /// A reader for a body with this framing and at most `limit` bytes. A `Content-Length` over
    /// the limit is refused here, before any of the body is read.
    pub fn new(framing: BodyFraming, limit: u64) -> Result<BodyReader, HttpError> {
        let state = match framing {
            BodyFraming::None => State::Done,
            BodyFraming::Length(length) if length > limit => return Err(TOO_LARGE),
            BodyFraming::Length(length) => State::Length(length),
            BodyFraming::Chunked => State::ChunkSize { size: 0, digits: 0 },
        };
        let capacity = match state {
            State::Length(length) => length as usize,
            _ => 0,
        };
        Ok(BodyReader {
            state,
            limit,
            body: Vec::with_capacity(capacity),
        })
    }

    /// True when the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`; returns how many bytes of it belong to the body (the rest is the
    /// next pipelined request).
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, HttpError> {
        let mut at = 0;
        while at < input.len() {
            let byte = input[at];
            self.state = match self.state {
                State::Done => break,
                State::Length(left) => {
                    let take = (left as usize).min(input.len() - at);
                    self.body.extend_from_slice(&input[at..at + take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                    continue;
                }
                State::ChunkData(left) => {
                    let take = (left as usize).min(input.len() - at);
                    self.body.extend_from_slice(&input[at..at + take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::ChunkDataCr
                    } else {
                        State::ChunkData(left)
                    };
                    continue;
                }
                State::ChunkSize { size, digits } => match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err(BAD_CHUNK);
                        }
                        let value = (byte as char).to_digit(16).unwrap_or(0) as u64;
                        let size = size * 16 + value;
                        if self.body.len() as u64 + size > self.limit {
                            return Err(TOO_LARGE);
                        }
                        State::ChunkSize {
                            size,
                            digits: digits + 1,
                        }
                    }
                    b';' | b' ' | b'\t' if digits > 0 => State::ChunkExtension { size },
                    b'\r' if digits > 0 => State::ChunkSizeLf { size },
                    b'\n' if digits > 0 => Self::after_size(size),
                    _ => return Err(BAD_CHUNK),
                },
                State::ChunkExtension { size } => match byte {
                    b'\r' => State::ChunkSizeLf { size },
                    b'\n' => Self::after_size(size),
                    _ => State::ChunkExtension { size },
                },
                State::ChunkSizeLf { size } => match byte {
                    b'\n' => Self::after_size(size),
                    _ => return Err(BAD_CHUNK),
                },
                State::ChunkDataCr => match byte {
                    b'\r' => State::ChunkDataLf,
                    b'\n' => State::ChunkSize { size: 0, digits: 0 },
                    _ => return Err(BAD_CHUNK),
                },
                State::ChunkDataLf => match byte {
                    b'\n' => State::ChunkSize { size: 0, digits: 0 },
                    _ => return Err(BAD_CHUNK),
                },
                State::TrailerStart => match byte {
                    b'\r' => State::FinalLf,
                    b'\n' => State::Done,
                    _ => State::TrailerLine,
                },
                State::TrailerLine => match byte {
                    b'\n' => State::TrailerStart,
                    _ => State::TrailerLine,
                },
                State::FinalLf => match byte {
                    b'\n' => State::Done,
                    _ => return Err(BAD_CHUNK),
                },
            };
            at += 1;
        }
        Ok(at)
    }

    fn after_size(size: u64) -> State {
        if size == 0 {
            State::TrailerStart
        } else {
            State::ChunkData(size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body and the bytes left over.
    fn decode(
        framing: BodyFraming,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, usize), HttpError> {
        let mut reader = BodyReader::new(framing, 64)?;
        let mut at = 0;
        while !reader.is_done() && at < input.len() {
            let end = (at + step).min(input.len());
            at += reader.feed(&input[at..end])?;
        }
        assert!(
            reader.is_done(),
            "incomplete: {:?}",
            String::from_utf8_lossy(input)
        );
        Ok((reader.body, input.len() - at))
    }

    /// Chunked bodies decode the same whatever the read boundaries, and stop at their end.
    #[test]
    fn decodes_chunked_at_every_split() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT",
                b"hello world",
            ),
            (
                b"A;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n",
                b"0123456789",
            ),
            (b"3\nabc\n0\n\n", b"abc"),
            (b"0\r\n\r\n", b""),
        ];
        for &(input, expected) in cases {
            for step in 1..=input.len() {
                let (body, left) = decode(BodyFraming::Chunked, input, step).unwrap();
                assert_eq!(
                    body,
                    expected,
                    "{:?} step {step}",
                    String::from_utf8_lossy(input)
                );
                let tail = input.ends_with(b"NEXT") as usize * 4;
                assert_eq!(left, tail);
            }
        }
    }

    /// Bad chunk framing is 400; a body over the limit is 413 before it is all read.
    #[test]
    fn refuses_bad_or_large_bodies() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\r\nhello\r\n0\r\n\rX",
            b"fffffffffffffffff\r\n",
        ] {
            let err = decode(BodyFraming::Chunked, bad, 1).unwrap_err();
            assert!(err.status == 400 || err.status == 413, "{bad:?}");
        }
        assert_eq!(
            decode(BodyFraming::Chunked, b"41\r\n", 100)
                .unwrap_err()
                .status,
            413
        );
        assert_eq!(
            BodyReader::new(BodyFraming::Length(65), 64)
                .unwrap_err()
                .status,
            413
        );
    }

    /// A Content-Length body takes exactly its length.
    #[test]
    fn reads_content_length() {
        for step in 1..10 {
            let (body, left) = decode(BodyFraming::Length(5), b"helloGET", step).unwrap();
            assert_eq!(body, b"hello");
            assert_eq!(left, 3);
        }
    }
}
