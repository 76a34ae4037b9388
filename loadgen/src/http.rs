//! HTTP/1.1 response decoding: the head (with `httparse`) and the body, framed by
//! `Transfer-Encoding: chunked`, `Content-Length` or the end of the connection.
//!
//! Both pieces are incremental so the mio event loop can feed them whatever a read returned.

use crate::failure::FailureKind;

/// Largest response head accepted; a server that sends more is misbehaving.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most headers accepted in a response head.
const MAX_HEADERS: usize = 64;

/// Why a response could not be decoded. Static messages, `Copy`, cheap to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// `httparse` rejected the head.
    #[error("bad response head: {0}")]
    Head(&'static str),
    /// The head is larger than [`MAX_HEAD`].
    #[error("response head larger than 64 KiB")]
    HeadTooLarge,
    /// A chunk size line is not hexadecimal or too large.
    #[error("bad chunk size")]
    ChunkSize,
    /// A chunk's data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    /// `Content-Length` is not a number.
    #[error("bad Content-Length")]
    ContentLength,
}

impl HttpError {
    /// The kind this failure is counted under.
    pub fn kind(&self) -> FailureKind {
        match self {
            HttpError::Head(_) | HttpError::HeadTooLarge | HttpError::ContentLength => {
                FailureKind::BadResponseHead
            }
            HttpError::ChunkSize | HttpError::ChunkEnd => FailureKind::BadChunkedBody,
        }
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length: N`.
    Length(u64),
    /// No length: the body ends when the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// How the body is delimited.
    pub body: BodyMode,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the content type is `text/event-stream` (parameters such as `charset` allowed).
    pub fn is_event_stream(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
    }

    /// Whether the server will close the connection after this response.
    pub fn closes(&self) -> bool {
        self.body == BodyMode::Close
            || self
                .header("connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

/// Parses a response head at the start of `buf`. `Ok(None)` means "keep reading".
/// On success returns the head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let status = resp.code.unwrap_or(0);
            let mut body = BodyMode::Close;
            let mut out = Vec::with_capacity(resp.headers.len());
            for h in resp.headers.iter() {
                let value = String::from_utf8_lossy(h.value).trim().to_string();
                if h.name.eq_ignore_ascii_case("transfer-encoding")
                    && value.to_ascii_lowercase().contains("chunked")
                {
                    body = BodyMode::Chunked;
                } else if h.name.eq_ignore_ascii_case("content-length") && body != BodyMode::Chunked
                {
                    let n = value.parse().map_err(|_| HttpError::ContentLength)?;
                    body = BodyMode::Length(n);
                }
                out.push((h.name.to_string(), value));
            }
            // 1xx, 204 and 304 responses have no body.
            if (100..200).contains(&status) || status == 204 || status == 304 {
                body = BodyMode::Length(0);
            }
            Ok(Some((
                ResponseHead {
                    status,
                    reason: resp.reason.unwrap_or("").to_string(),
                    headers: out,
                    body,
                },
                len,
            )))
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(HttpError::Head(match e {
            httparse::Error::Status => "invalid status line",
            httparse::Error::Version => "not HTTP/1.x",
            httparse::Error::TooManyHeaders => "too many headers",
            httparse::Error::HeaderName => "invalid header name",
            httparse::Error::HeaderValue => "invalid header value",
            httparse::Error::NewLine => "invalid line ending",
            _ => "invalid response",
        })),
    }
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hexadecimal size; `digits` counts them to reject absurd sizes.
    Size { size: u64, digits: u8 },
    /// After the size: skipping a chunk extension up to LF.
    SizeLine { size: u64 },
    /// Inside a chunk's data.
    Data { remaining: u64 },
    /// After a chunk's data: expecting CR LF.
    DataEnd { seen_cr: bool },
    /// After the last (zero) chunk: skipping trailers; `line_len` of the current one.
    Trailer { line_len: usize },
}

/// Decodes a response body incrementally, passing body bytes to a sink without copying.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    /// The framing from the head.
    mode: BodyMode,
    /// Chunked state (only for `BodyMode::Chunked`).
    chunk: ChunkState,
    /// Bytes still expected (only for `BodyMode::Length`).
    remaining: u64,
    /// The body is complete; further bytes belong to the next response.
    done: bool,
}

impl BodyDecoder {
    /// A decoder for a body framed as `mode`.
    pub fn new(mode: BodyMode) -> Self {
        let remaining = match mode {
            BodyMode::Length(n) => n,
            _ => 0,
        };
        Self {
            mode,
            chunk: ChunkState::Size { size: 0, digits: 0 },
            remaining,
            done: mode == BodyMode::Length(0),
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes `input`, passing body bytes to `sink`. Returns how many bytes of `input` were
    /// consumed (less than all only when the body ended inside it).
    pub fn feed(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<usize, HttpError> {
        if self.done {
            return Ok(0);
        }
        match self.mode {
            BodyMode::Close => {
                sink(input);
                Ok(input.len())
            }
            BodyMode::Length(_) => {
                let n = (self.remaining.min(input.len() as u64)) as usize;
                if n > 0 {
                    sink(&input[..n]);
                }
                self.remaining -= n as u64;
                self.done = self.remaining == 0;
                Ok(n)
            }
            BodyMode::Chunked => self.feed_chunked(input, sink),
        }
    }

    fn feed_chunked(
        &mut self,
        input: &[u8],
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() && !self.done {
            match &mut self.chunk {
                ChunkState::Size { size, digits } => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            *digits += 1;
                            if *digits > 15 {
                                return Err(HttpError::ChunkSize);
                            }
                            let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                            *size = *size * 16 + d;
                        }
                        b';' | b' ' | b'\t' | b'\r' if *digits > 0 => {
                            self.chunk = ChunkState::SizeLine { size: *size }
                        }
                        b'\n' if *digits > 0 => {
                            let size = *size;
                            self.start_chunk(size)
                        }
                        _ => return Err(HttpError::ChunkSize),
                    }
                }
                ChunkState::SizeLine { size } => {
                    let size = *size;
                    match input[i..].iter().position(|&b| b == b'\n') {
                        Some(p) => {
                            i += p + 1;
                            self.start_chunk(size);
                        }
                        None => i = input.len(),
                    }
                }
                ChunkState::Data { remaining } => {
                    let n = (*remaining).min((input.len() - i) as u64) as usize;
                    sink(&input[i..i + n]);
                    i += n;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.chunk = ChunkState::DataEnd { seen_cr: false };
                    }
                }
                ChunkState::DataEnd { seen_cr } => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' if !*seen_cr => *seen_cr = true,
                        b'\n' => self.chunk = ChunkState::Size { size: 0, digits: 0 },
                        _ => return Err(HttpError::ChunkEnd),
                    }
                }
                ChunkState::Trailer { line_len } => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\n' if *line_len == 0 => self.done = true,
                        b'\n' => *line_len = 0,
                        b'\r' => {}
                        _ => *line_len += 1,
                    }
                }
            }
        }
        Ok(i)
    }

    fn start_chunk(&mut self, size: u64) {
        self.chunk = if size == 0 {
            ChunkState::Trailer { line_len: 0 }
        } else {
            ChunkState::Data { remaining: size }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_pieces(mode: BodyMode, pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), HttpError> {
        let mut d = BodyDecoder::new(mode);
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, &mut |b| out.extend_from_slice(b))?;
        }
        Ok((out, d.is_done()))
    }

    /// Input, and the body it decodes to with whether the body is complete.
    type ChunkCase = (&'static [u8], Result<(&'static [u8], bool), HttpError>);

    #[test]
    fn chunked_table() {
        let table: &[ChunkCase] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", Ok((b"hello", true))),
            (
                b"5\r\nhello\r\n6\r\n world\r\n",
                Ok((b"hello world", false)),
            ),
            (
                b"A;ext=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
                Ok((b"0123456789", true)),
            ),
            (b"3\nabc\n0\n\n", Ok((b"abc", true))),
            (b"zz\r\n", Err(HttpError::ChunkSize)),
            (b"\r\n", Err(HttpError::ChunkSize)),
            (b"3\r\nabcd\r\n", Err(HttpError::ChunkEnd)),
            (b"ffffffffffffffffff\r\n", Err(HttpError::ChunkSize)),
        ];
        for (input, want) in table {
            let want = want.map(|(b, done)| (b.to_vec(), done));
            assert_eq!(
                decode_pieces(BodyMode::Chunked, &[input]),
                want,
                "{input:?}"
            );
            // And split at every position.
            for i in 0..=input.len() {
                let (a, b) = input.split_at(i);
                assert_eq!(
                    decode_pieces(BodyMode::Chunked, &[a, b]),
                    want,
                    "{input:?} @{i}"
                );
            }
        }
    }

    #[test]
    fn length_and_close() {
        let mut d = BodyDecoder::new(BodyMode::Length(3));
        let mut out = Vec::new();
        assert_eq!(d.feed(b"abcdef", &mut |b| out.extend_from_slice(b)), Ok(3));
        assert!(d.is_done());
        assert_eq!(out, b"abc");
        assert_eq!(
            decode_pieces(BodyMode::Close, &[b"ab", b"cd"]),
            Ok((b"abcd".to_vec(), false))
        );
    }

    #[test]
    fn heads() {
        let (h, len) = parse_head(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\nrest",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.body, BodyMode::Chunked);
        assert!(h.is_event_stream());
        assert_eq!(len, 95);
        let (h, _) = parse_head(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.reason.as_str(), h.body),
            (500, "Oops", BodyMode::Length(4))
        );
        assert!(!h.is_event_stream());
        let (h, _) = parse_head(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyMode::Close);
        assert!(h.closes());
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nConte"), Ok(None));
        assert!(parse_head(b"garbage garbage\r\n\r\n").is_err());
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(HttpError::ContentLength)
        );
    }
}
