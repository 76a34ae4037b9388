//! Request bodies: `Content-Length` and chunked framing, decoded incrementally as bytes arrive,
//! and bounded: a body larger than the limit is refused with `413` as soon as that is known, not
//! after reading it all.
//!
//! Memory follows the bytes that arrived, never what the client announced: the body buffer
//! starts empty and grows with the data (doubling, but never past the announced length or the
//! limit), so a head that announces a large body costs nothing until the body comes.
//!
//! Chunked framing is strict (RFC 9112 section 7.1): every line ends in CRLF, a bare LF is
//! `400`; a chunk size is hex digits, optionally followed by extensions after `;`; chunk lines and
//! trailer sections are bounded in length, so neither can grow without limit.

use super::HttpError;
use super::request::{BodyFraming, MAX_HEAD_BYTES};

/// `413` for a body over the limit.
pub const TOO_LARGE: HttpError = HttpError::new(413, "request body too large");

/// The largest subscribe body (`POST /events`) worth reading. The largest valid subscription,
/// 16 topics of 128 bytes each percent-encoded three bytes per byte (`topic=` and `&` included)
/// plus a `lastEventId`, is about 6.3 KiB; a longer body cannot be a valid subscription, so it is
/// refused with `413` from its announced length instead of being read. Pass
/// `SUBSCRIBE_BODY_LIMIT.min(max_body)` as the limit of [`BodyReader::new`] for such bodies.
pub const SUBSCRIBE_BODY_LIMIT: u64 = 8 * 1024;

/// Longest chunk-size line (size, extensions and CRLF) accepted; extensions are ignored, so a
/// long one is only a way to make the server read bytes that count toward no limit.
pub const MAX_CHUNK_LINE: usize = 1024;

const BAD_CHUNK: HttpError = HttpError::bad_request("malformed chunked body");
const BARE_LF: HttpError = HttpError::bad_request("line ending without CR in chunked body");
const LONG_CHUNK_LINE: HttpError = HttpError::bad_request("chunk line too long");
const LONG_TRAILER: HttpError = HttpError::new(431, "trailer section too large");

/// Decodes one request body from the bytes that follow its head.
#[derive(Debug)]
pub struct BodyReader {
    state: State,
    /// Most body bytes accepted.
    limit: u64,
    /// Framing bytes of the current chunk line, or of the whole trailer section, so far.
    line: usize,
    /// The decoded body so far.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `n` more bytes of a `Content-Length` body.
    Length(u64),
    /// Reading the hex size of the next chunk (`digits` so far).
    ChunkSize { size: u64, digits: u8 },
    /// Whitespace after the size, which must lead to an extension (`BWS ";"`).
    ChunkSizeSpace { size: u64 },
    /// Skipping a chunk extension up to the CR of the size line.
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
    /// Inside a trailer line, skipping to its CR.
    TrailerLine,
    /// Expecting the LF of a trailer line.
    TrailerLf,
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
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(length) if length > limit => return Err(TOO_LARGE),
            BodyFraming::Length(length) => State::Length(length),
            BodyFraming::Chunked => State::ChunkSize { size: 0, digits: 0 },
        };
        Ok(BodyReader {
            state,
            limit,
            line: 0,
            body: Vec::new(),
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
                    let take = left.min((input.len() - at) as u64);
                    self.append(&input[at..at + take as usize], left);
                    at += take as usize;
                    self.state = match left - take {
                        0 => State::Done,
                        left => State::Length(left),
                    };
                    continue;
                }
                State::ChunkData(left) => {
                    let take = left.min((input.len() - at) as u64);
                    self.append(&input[at..at + take as usize], left);
                    at += take as usize;
                    self.state = match left - take {
                        0 => State::ChunkDataCr,
                        left => State::ChunkData(left),
                    };
                    continue;
                }
                State::ChunkSize { size, digits } => {
                    self.count_line(LONG_CHUNK_LINE, MAX_CHUNK_LINE)?;
                    match byte {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            if digits >= 15 {
                                return Err(BAD_CHUNK);
                            }
                            let value = (byte as char).to_digit(16).unwrap_or(0) as u64;
                            let size = size * 16 + value;
                            // Refused as soon as the size line shows the body will not fit.
                            if self.body.len() as u64 + size > self.limit {
                                return Err(TOO_LARGE);
                            }
                            State::ChunkSize {
                                size,
                                digits: digits + 1,
                            }
                        }
                        b';' if digits > 0 => State::ChunkExtension { size },
                        b' ' | b'\t' if digits > 0 => State::ChunkSizeSpace { size },
                        b'\r' if digits > 0 => State::ChunkSizeLf { size },
                        b'\n' if digits > 0 => return Err(BARE_LF),
                        _ => return Err(BAD_CHUNK),
                    }
                }
                State::ChunkSizeSpace { size } => {
                    self.count_line(LONG_CHUNK_LINE, MAX_CHUNK_LINE)?;
                    match byte {
                        b' ' | b'\t' => State::ChunkSizeSpace { size },
                        b';' => State::ChunkExtension { size },
                        _ => return Err(BAD_CHUNK),
                    }
                }
                State::ChunkExtension { size } => {
                    self.count_line(LONG_CHUNK_LINE, MAX_CHUNK_LINE)?;
                    match byte {
                        b'\r' => State::ChunkSizeLf { size },
                        b'\n' => return Err(BARE_LF),
                        // Any other control character cannot be part of an extension.
                        b'\t' | b' '..=b'~' | 0x80..=0xff => State::ChunkExtension { size },
                        _ => return Err(BAD_CHUNK),
                    }
                }
                State::ChunkSizeLf { size } => match byte {
                    b'\n' if size == 0 => {
                        self.line = 0;
                        State::TrailerStart
                    }
                    b'\n' => State::ChunkData(size),
                    _ => return Err(BAD_CHUNK),
                },
                State::ChunkDataCr => match byte {
                    b'\r' => State::ChunkDataLf,
                    b'\n' => return Err(BARE_LF),
                    _ => return Err(BAD_CHUNK),
                },
                State::ChunkDataLf => match byte {
                    b'\n' => {
                        self.line = 0;
                        State::ChunkSize { size: 0, digits: 0 }
                    }
                    _ => return Err(BAD_CHUNK),
                },
                State::TrailerStart => {
                    self.count_line(LONG_TRAILER, MAX_HEAD_BYTES)?;
                    match byte {
                        b'\r' => State::FinalLf,
                        b'\n' => return Err(BARE_LF),
                        _ => State::TrailerLine,
                    }
                }
                State::TrailerLine => {
                    self.count_line(LONG_TRAILER, MAX_HEAD_BYTES)?;
                    match byte {
                        b'\r' => State::TrailerLf,
                        b'\n' => return Err(BARE_LF),
                        _ => State::TrailerLine,
                    }
                }
                State::TrailerLf => {
                    self.count_line(LONG_TRAILER, MAX_HEAD_BYTES)?;
                    match byte {
                        b'\n' => State::TrailerStart,
                        _ => return Err(BAD_CHUNK),
                    }
                }
                State::FinalLf => match byte {
                    b'\n' => State::Done,
                    _ => return Err(BAD_CHUNK),
                },
            };
            at += 1;
        }
        Ok(at)
    }

    /// Counts one more framing byte of the current line (or trailer section); `error` past `max`.
    fn count_line(&mut self, error: HttpError, max: usize) -> Result<(), HttpError> {
        self.line += 1;
        if self.line > max {
            return Err(error);
        }
        Ok(())
    }

    /// Appends body bytes. `left` is how many more this chunk or `Content-Length` body holds,
    /// `data` included: the buffer doubles as it fills, but never past what is still announced
    /// (for a chunk, what the limit still allows), so it never holds much more than arrived.
    fn append(&mut self, data: &[u8], left: u64) {
        let needed = self.body.len() + data.len();
        if needed > self.body.capacity() {
            let announced = match self.state {
                State::Length(_) => self.body.len() as u64 + left,
                _ => self.limit,
            };
            let doubled = (self.body.capacity() as u64 * 2).max(256);
            let capacity = doubled.min(announced).max(needed as u64) as usize;
            self.body.reserve_exact(capacity - self.body.len());
        }
        self.body.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes to a reader with this limit; returns the body and
    /// the bytes left over.
    fn decode_with(
        framing: BodyFraming,
        limit: u64,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, usize), HttpError> {
        let mut reader = BodyReader::new(framing, limit)?;
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

    fn decode(
        framing: BodyFraming,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, usize), HttpError> {
        decode_with(framing, 64, input, step)
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
            (
                b"3 ;a=\"b c\"\t\r\nabc\r\n0;z\r\nA: 1\r\nB: 2\r\n\r\n",
                b"abc",
            ),
            (b"0003\r\nabc\r\n00\r\n\r\n", b"abc"),
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

    /// Each case: a chunked body and the status it is refused with, at every split. Bare LF
    /// anywhere in the framing is `400` (issue 10, defect 7), as are malformed sizes and
    /// extensions; a size past the limit is `413` as soon as its digits show it; over-long chunk
    /// lines are `400` and over-long trailer sections `431`.
    #[test]
    fn refuses_bad_or_large_bodies() {
        let long_extension = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_CHUNK_LINE));
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "y".repeat(MAX_HEAD_BYTES));
        let cases: &[(&[u8], u16)] = &[
            (b"3\nabc\r\n0\r\n\r\n", 400),
            (b"3;ext\nabc\r\n0\r\n\r\n", 400),
            (b"3\r\nabc\n0\r\n\r\n", 400),
            (b"3\r\nabc\r\n0\n\r\n", 400),
            (b"3\r\nabc\r\n0\r\n\n", 400),
            (b"3\r\nabc\r\n0\r\nA: 1\n\r\n", 400),
            (b"3\nabc\n0\n\n", 400),
            (b"3\rabc\r\n0\r\n\r\n", 400),
            (b"x\r\n", 400),
            (b"\r\n", 400),
            (b";\r\n", 400),
            (b" 3\r\nabc\r\n0\r\n\r\n", 400),
            (b"3 \r\nabc\r\n0\r\n\r\n", 400),
            (b"3 x\r\nabc\r\n0\r\n\r\n", 400),
            (b"3;a\0b\r\nabc\r\n0\r\n\r\n", 400),
            (b"-3\r\nabc\r\n0\r\n\r\n", 400),
            (b"0x3\r\nabc\r\n0\r\n\r\n", 400),
            (b"5\r\nhelloXX", 400),
            (b"5\r\nhello\rX", 400),
            (b"5\r\nhello\r\n0\r\n\rX", 400),
            (b"0000000000000001\r\n", 400),
            (b"fffffffffffffffff\r\n", 413),
            (b"41\r\n", 413),
            (b"20\r\n0123456789abcdef0123456789abcdef\r\n21\r\n", 413),
            (long_extension.as_bytes(), 400),
            (long_trailer.as_bytes(), 431),
        ];
        for &(input, expected) in cases {
            for step in [1, 2, 3, input.len()] {
                let status = decode(BodyFraming::Chunked, input, step)
                    .map(|(body, _)| String::from_utf8_lossy(&body).into_owned())
                    .expect_err(&String::from_utf8_lossy(input))
                    .status;
                assert_eq!(
                    status,
                    expected,
                    "{:?} step {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        assert_eq!(
            BodyReader::new(BodyFraming::Length(65), 64)
                .unwrap_err()
                .status,
            413
        );
    }

    /// A chunked body exactly at the limit is read; the size line that would take it one byte
    /// past is refused at once, before any of that chunk's data.
    #[test]
    fn chunked_limit_is_exact() {
        let mut fits = b"20\r\n".to_vec();
        fits.extend_from_slice(&[b'a'; 32]);
        fits.extend_from_slice(b"\r\n20\r\n");
        fits.extend_from_slice(&[b'b'; 32]);
        fits.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(decode(BodyFraming::Chunked, &fits, 7).unwrap().0.len(), 64);
        let mut over = BodyReader::new(BodyFraming::Chunked, 64).unwrap();
        let prefix = &fits[..4 + 32 + 2];
        assert_eq!(over.feed(prefix), Ok(prefix.len()));
        assert_eq!(over.feed(b"21").unwrap_err().status, 413);
    }

    /// A Content-Length body takes exactly its length; a length of zero is done before any
    /// byte (it would otherwise wait for a byte that never comes).
    #[test]
    fn reads_content_length() {
        assert!(
            BodyReader::new(BodyFraming::Length(0), 64)
                .unwrap()
                .is_done()
        );
        for step in 1..10 {
            let (body, left) = decode(BodyFraming::Length(5), b"helloGET", step).unwrap();
            assert_eq!(body, b"hello");
            assert_eq!(left, 3);
        }
    }

    /// Regression test for issue 10, defect 6: the buffer is not preallocated from the
    /// announced length. A 1 MiB `Content-Length` holds nothing before its bytes come, and
    /// little more than what arrived after; the buffer never grows past the announced length or,
    /// for chunked bodies, the limit.
    #[test]
    fn allocates_with_the_data() {
        const MIB: u64 = 1 << 20;
        let mut reader = BodyReader::new(BodyFraming::Length(MIB), MIB).unwrap();
        assert_eq!(reader.body.capacity(), 0);
        reader.feed(&[b'a'; 1000]).unwrap();
        assert!(reader.body.capacity() < 4096, "{}", reader.body.capacity());
        let block = vec![b'b'; 64 * 1024];
        while !reader.is_done() {
            reader.feed(&block).unwrap();
            assert!(reader.body.capacity() <= 2 * reader.body.len().max(256));
        }
        assert_eq!(reader.body.capacity(), MIB as usize);

        let mut reader = BodyReader::new(BodyFraming::Length(300), MIB).unwrap();
        reader.feed(&[b'c'; 300]).unwrap();
        assert_eq!(reader.body.capacity(), 300);

        let mut reader = BodyReader::new(BodyFraming::Chunked, 1000).unwrap();
        reader.feed(b"3e8\r\n").unwrap();
        assert_eq!(reader.body.capacity(), 0, "a chunk size allocates nothing");
        for _ in 0..10 {
            reader.feed(&[b'd'; 100]).unwrap();
            assert!(reader.body.capacity() <= 1000);
        }
        reader.feed(b"\r\n0\r\n\r\n").unwrap();
        assert!(reader.is_done());
        assert_eq!(reader.body.len(), 1000);
    }

    /// A subscribe body at [`SUBSCRIBE_BODY_LIMIT`] is read; one announced a byte longer is
    /// `413` before any of it is read.
    #[test]
    fn subscribe_limit() {
        let body = vec![b'x'; SUBSCRIBE_BODY_LIMIT as usize];
        let framing = BodyFraming::Length(SUBSCRIBE_BODY_LIMIT);
        let (read, _) = decode_with(framing, SUBSCRIBE_BODY_LIMIT, &body, 1000).unwrap();
        assert_eq!(read.len(), body.len());
        let over = BodyFraming::Length(SUBSCRIBE_BODY_LIMIT + 1);
        assert_eq!(
            BodyReader::new(over, SUBSCRIBE_BODY_LIMIT)
                .unwrap_err()
                .status,
            413
        );
    }
}
