//! Event streams read block by block: [`SseStream`], [`SseEvent`], [`raw_subscriber`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::*;

/// One event (or other block) read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` value.
    pub id: Option<u64>,
    /// The `event:` value.
    pub event: Option<String>,
    /// The `data:` values, one per line.
    pub data: Vec<String>,
    /// The block's exact bytes, from its first field line to the blank line included.
    pub raw: Vec<u8>,
}

impl SseEvent {
    /// The data lines joined by `\n`, as a browser would deliver them.
    pub fn data_text(&self) -> String {
        self.data.join("\n")
    }
}

/// An open event stream: the response head, then the body read line by line. A chunked body is
/// de-chunked transparently.
pub struct SseStream {
    /// The response head.
    pub head: Response,
    conn: Conn,
    /// De-chunked body bytes not yet consumed.
    body: Vec<u8>,
    /// Whether the body is chunked, and then how much of the current chunk remains.
    chunked: Option<ChunkState>,
    /// Every body byte consumed so far, for tests that check the exact stream.
    pub transcript: Vec<u8>,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy)]
enum ChunkState {
    /// Expecting a chunk size line.
    Size,
    /// Inside a chunk with this many bytes left, then CRLF.
    Data(usize),
    /// The last chunk was read.
    Done,
}

impl SseStream {
    /// Subscribes with `GET path` and extra header lines (each ending in `\r\n`); panics unless
    /// the answer is `200`.
    pub fn open(addr: SocketAddr, path: &str, extra_headers: &str) -> SseStream {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra_headers}\r\n");
        SseStream::open_raw(addr, request.as_bytes())
    }

    /// Subscribes to `topics` with `GET /events?topic=...`.
    pub fn subscribe(addr: SocketAddr, topics: &[&str]) -> SseStream {
        let query = form(&topics.iter().map(|t| ("topic", *t)).collect::<Vec<_>>());
        SseStream::open(addr, &format!("/events?{query}"), "")
    }

    /// Sends a raw request; panics unless the answer is a `200` stream.
    pub fn open_raw(addr: SocketAddr, request: &[u8]) -> SseStream {
        let mut conn = Conn::connect(addr);
        conn.send(request);
        SseStream::from_conn(conn)
    }

    /// Reads the response head of a stream request already sent on `conn`.
    pub fn from_conn(mut conn: Conn) -> SseStream {
        let mut head = conn.read_head(deadline());
        if head.status != 200 {
            // Show the reason the server gave.
            if let Some(length) = head.header("content-length") {
                let length = length.parse().unwrap_or(0);
                head.body = conn.take(length, deadline());
            }
            panic!(
                "subscription refused: {} {:?}",
                head.status,
                String::from_utf8_lossy(&head.body)
            );
        }
        let chunked = head.is_chunked().then_some(ChunkState::Size);
        let body = std::mem::take(&mut conn.buf);
        let mut stream = SseStream {
            head,
            conn,
            body: Vec::new(),
            chunked,
            transcript: Vec::new(),
        };
        stream.accept_raw(body);
        stream
    }

    /// The socket, e.g. to drop it or change options.
    pub fn socket(&self) -> &TcpStream {
        &self.conn.stream
    }

    /// Moves raw bytes from the socket into the de-chunked body.
    fn accept_raw(&mut self, raw: Vec<u8>) {
        let Some(_) = self.chunked else {
            self.body.extend(raw);
            return;
        };
        self.conn.buf.splice(0..0, raw);
        self.dechunk();
    }

    /// Decodes as much of the chunked body as is buffered.
    fn dechunk(&mut self) {
        loop {
            match self.chunked {
                None | Some(ChunkState::Done) => return,
                Some(ChunkState::Size) => {
                    let Some(end) = self.conn.buf.windows(2).position(|w| w == b"\r\n") else {
                        return;
                    };
                    let line: Vec<u8> = self.conn.buf.drain(..end + 2).collect();
                    let text = String::from_utf8_lossy(&line[..end]).into_owned();
                    let size_text = text.split(';').next().unwrap().trim();
                    let size = usize::from_str_radix(size_text, 16)
                        .unwrap_or_else(|_| panic!("bad chunk size line {text:?}"));
                    self.chunked = Some(if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    });
                }
                Some(ChunkState::Data(left)) => {
                    if self.conn.buf.is_empty() {
                        return;
                    }
                    let n = left.min(self.conn.buf.len());
                    if n > 0 {
                        let bytes: Vec<u8> = self.conn.buf.drain(..n).collect();
                        self.body.extend(bytes);
                        self.chunked = Some(ChunkState::Data(left - n));
                    }
                    if left - n == 0 {
                        if self.conn.buf.len() < 2 {
                            return;
                        }
                        assert_eq!(&self.conn.buf[..2], b"\r\n", "chunk not followed by CRLF");
                        self.conn.buf.drain(..2);
                        self.chunked = Some(ChunkState::Size);
                    }
                }
            }
        }
    }

    /// Reads more body bytes; false on end of stream or timeout.
    fn fill(&mut self, until: Instant) -> bool {
        if !self.conn.fill(until) {
            return false;
        }
        let raw = std::mem::take(&mut self.conn.buf);
        self.accept_raw(raw);
        true
    }

    /// Whether the server has closed the stream (seen by an earlier read).
    pub fn is_eof(&self) -> bool {
        self.conn.eof && self.body.is_empty()
    }

    /// Consumes one line (without its `\n`), reading as needed; `None` at the end of the
    /// stream or at `until`.
    pub fn next_line(&mut self, until: Instant) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=end).collect();
                self.transcript.extend_from_slice(&line);
                return Some(line[..end].to_vec());
            }
            if !self.fill(until) {
                return None;
            }
        }
    }

    /// Consumes the preamble the server sends at once: every line up to and including the
    /// first blank line, or, if events follow without a blank line, the `retry:` and comment
    /// lines before them. Returns the preamble bytes.
    pub fn read_preamble(&mut self, until: Instant) -> Vec<u8> {
        let start = self.transcript.len();
        loop {
            // Wait for a complete line.
            while !self.body.contains(&b'\n') {
                if !self.fill(until) {
                    panic!(
                        "no complete preamble line: {:?}",
                        String::from_utf8_lossy(&self.transcript[start..])
                    );
                }
            }
            let end = self.body.iter().position(|&b| b == b'\n').unwrap();
            let line = &self.body[..end];
            let is_preamble = line.starts_with(b"retry:") || line.starts_with(b":");
            if line.is_empty() {
                self.next_line(until);
                return self.transcript[start..].to_vec();
            }
            if !is_preamble {
                return self.transcript[start..].to_vec();
            }
            self.next_line(until);
        }
    }

    /// Reads the next event: skips comment, `retry:` and blank lines before it, then reads its
    /// field lines up to the blank line. `None` at the end of the stream or at `until`.
    pub fn next_event_until(&mut self, until: Instant) -> Option<SseEvent> {
        let mut event = SseEvent {
            id: None,
            event: None,
            data: Vec::new(),
            raw: Vec::new(),
        };
        loop {
            let line = self.next_line(until)?;
            let is_filler =
                line.is_empty() || line.starts_with(b":") || line.starts_with(b"retry:");
            if event.raw.is_empty() && is_filler {
                continue;
            }
            event.raw.extend_from_slice(&line);
            event.raw.push(b'\n');
            if line.is_empty() {
                return Some(event);
            }
            let text = String::from_utf8(line).expect("UTF-8 stream line");
            let (field, value) = match text.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (text.as_str(), ""),
            };
            match field {
                "id" => {
                    let id = value
                        .parse()
                        .unwrap_or_else(|_| panic!("non-numeric id line {text:?}"));
                    assert!(event.id.is_none(), "two id lines in one event");
                    event.id = Some(id);
                }
                "event" => event.event = Some(value.to_string()),
                "data" => event.data.push(value.to_string()),
                "" | "retry" => {}
                other => panic!("unexpected field {other:?} in stream"),
            }
        }
    }

    /// Reads the next event, panicking at the end of the stream or after [`TIMEOUT`].
    pub fn next_event(&mut self) -> SseEvent {
        let until = deadline();
        match self.next_event_until(until) {
            Some(event) => event,
            None => panic!(
                "no event before {}; stream so far: {:?}",
                if self.conn.eof {
                    "end of stream"
                } else {
                    "timeout"
                },
                String::from_utf8_lossy(&self.transcript)
            ),
        }
    }

    /// Reads events until one has id `last` (included); returns their ids.
    pub fn ids_through(&mut self, last: u64) -> Vec<u64> {
        let mut ids = Vec::new();
        loop {
            let event = self.next_event();
            let id = event.id.expect("event without id");
            ids.push(id);
            if id >= last {
                return ids;
            }
        }
    }

    /// Waits for the server to close the stream, discarding anything else; true if it did.
    pub fn wait_closed(&mut self, until: Instant) -> bool {
        while !self.conn.eof && Instant::now() < until {
            self.fill(until);
            self.body.clear();
        }
        self.conn.eof
    }

    /// Whether no body byte arrives for `quiet` (and the stream stays open).
    pub fn stays_silent(&mut self, quiet: Duration) -> bool {
        if !self.body.is_empty() {
            return false;
        }
        let got = self.fill(Instant::now() + quiet);
        !got && !self.conn.eof && self.body.is_empty()
    }

    /// Bytes received and not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.body
    }
}

/// Subscribes `GET /events?topic=TOPIC` with a plain socket, reads up to the end of the
/// preamble (so the subscriber is registered), and makes it non-blocking: for tests that read
/// many streams with fixed buffers.
pub fn raw_subscriber(addr: SocketAddr, topic: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .write_all(format!("GET /events?topic={topic} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b": stream open\n\n") {
        socket.read_exact(&mut byte).expect("stream preamble");
        seen.push(byte[0]);
    }
    socket.set_nonblocking(true).unwrap();
    socket
}
