//! A raw HTTP/1.x client ([`Conn`], [`Response`]) and small conveniences over the API: publishing,
//! forms, `/metrics`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::*;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The version in the status line, e.g. `HTTP/1.1`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Header fields in order, as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (panics if it is not UTF-8).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    /// Whether header `name` holds `token` in its comma-separated list (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .flat_map(|(_, value)| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the body is delimited by the connection closing (no length, not chunked).
    fn is_close_delimited(&self) -> bool {
        self.header("content-length").is_none() && !self.is_chunked()
    }

    /// Whether the body uses chunked transfer coding.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"))
    }
}

/// One client connection with its own read buffer, for raw HTTP/1.x exchanges.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes received but not yet consumed.
    pub(super) buf: Vec<u8>,
    /// Whether the peer closed its side (or reset the connection).
    pub(super) eof: bool,
}

impl Conn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Connects to `addr` with a receive buffer (`SO_RCVBUF`) of `bytes`, set before
    /// connecting so the window the client offers is that small: a client that never reads then
    /// holds little of what the server sends, and the server's own buffers fill.
    pub fn connect_with_receive_buffer(addr: SocketAddr, bytes: usize) -> Conn {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        socket
            .connect_timeout(&addr.into(), TIMEOUT)
            .expect("connect");
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send request");
    }

    /// Writes all of `bytes`, returning an error instead of panicking (the server may already
    /// have answered and closed).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Bytes received and not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads once more into the buffer, waiting until `until` at most. Returns false on end of
    /// stream (or reset) and on timeout; see [`Conn::is_eof`].
    pub fn fill(&mut self, until: Instant) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            self.stream
                .set_read_timeout(Some((until - now).max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    // A reset counts as the end: the server closed with our data unread.
                    self.eof = true;
                    return false;
                }
            }
        }
    }

    /// Whether the peer has closed (seen by an earlier read).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Waits until the server closes the connection, discarding what arrives; returns whether
    /// it closed before `until`.
    pub fn wait_closed(&mut self, until: Instant) -> bool {
        while !self.eof && Instant::now() < until {
            self.fill(until);
            self.buf.clear();
        }
        self.eof
    }

    /// Whether nothing arrives and the connection stays open for `quiet`.
    pub fn stays_silent(&mut self, quiet: Duration) -> bool {
        let before = self.buf.len();
        self.fill(Instant::now() + quiet);
        self.buf.len() == before && !self.eof
    }

    /// Consumes `n` buffered bytes, reading more as needed.
    pub fn take(&mut self, n: usize, until: Instant) -> Vec<u8> {
        while self.buf.len() < n {
            if !self.fill(until) {
                panic!(
                    "wanted {n} bytes, got {} before {}: {:?}",
                    self.buf.len(),
                    if self.eof { "end of stream" } else { "timeout" },
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Consumes one line ending in `\r\n` (or `\n`), without the line ending.
    pub fn take_line(&mut self, until: Instant) -> String {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = &line[..line.len() - 1];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return String::from_utf8_lossy(line).into_owned();
            }
            if !self.fill(until) {
                panic!(
                    "no complete line before {}: {:?}",
                    if self.eof { "end of stream" } else { "timeout" },
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Reads a status line and header fields (the body is left in the buffer).
    pub fn read_head(&mut self, until: Instant) -> Response {
        let status_line = self.take_line(until);
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status = parts
            .next()
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        assert!(
            version.starts_with("HTTP/1."),
            "bad status line {status_line:?}"
        );
        let mut headers = Vec::new();
        loop {
            let line = self.take_line(until);
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        Response {
            version,
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads one complete response to a request of method `method` (bodies of `HEAD`, 1xx, 204
    /// and 304 are empty); a close-delimited body is read to the end of the stream.
    pub fn read_response_to(&mut self, method: &str, until: Instant) -> Response {
        let mut response = self.read_head(until);
        if method == "HEAD" || response.status < 200 || matches!(response.status, 204 | 304) {
            return response;
        }
        if response.is_chunked() {
            response.body = self.take_chunked(until);
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().expect("numeric Content-Length");
            response.body = self.take(length, until);
        } else {
            while self.fill(until) {}
            assert!(
                self.eof,
                "close-delimited body did not end before the deadline"
            );
            response.body = std::mem::take(&mut self.buf);
        }
        response
    }

    /// Reads one complete response (see [`Conn::read_response_to`]), skipping `100 Continue`.
    pub fn read_response(&mut self, until: Instant) -> Response {
        loop {
            let response = self.read_response_to("GET", until);
            if response.status != 100 {
                return response;
            }
        }
    }

    /// Consumes a chunked body and its trailer.
    fn take_chunked(&mut self, until: Instant) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let size_line = self.take_line(until);
            let size_text = size_line.split(';').next().unwrap().trim();
            let size = usize::from_str_radix(size_text, 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
            if size == 0 {
                while !self.take_line(until).is_empty() {}
                return body;
            }
            body.extend(self.take(size, until));
            let end = self.take(2, until);
            assert_eq!(end, b"\r\n", "chunk not followed by CRLF");
        }
    }

    /// Closes our sending side, telling the server no more requests come.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Sends one raw request on a new connection and reads the response.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut conn = Conn::connect(addr);
    conn.send(raw);
    conn.read_response(deadline())
}

/// `GET path` on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Builds a `POST` request with a form body and optional extra header lines (each ending in
/// `\r\n`). `Host: localhost`, since publishing without a token needs a loopback `Host`.
pub fn post_form_request(path: &str, body: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `POST path` with a form body on a new connection.
pub fn post_form(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(
        addr,
        &post_form_request(path, body, "Connection: close\r\n"),
    )
}

/// Percent-encodes a form body from field pairs.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything except unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Status of a raw `POST /publish?topic=...` on a new connection.
pub fn publish_status(addr: SocketAddr, topic: &str) -> u16 {
    let raw = format!(
        "POST /publish?topic={topic} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
    );
    request(addr, raw.as_bytes()).status
}

/// Publishes `data` on `topics` (optional event type) with a form body; returns the id.
pub fn publish_event(addr: SocketAddr, topics: &[&str], event: Option<&str>, data: &str) -> u64 {
    let mut fields: Vec<(&str, &str)> = topics.iter().map(|topic| ("topic", *topic)).collect();
    if let Some(event) = event {
        fields.push(("event", event));
    }
    fields.push(("data", data));
    let response = post_form(addr, "/publish", &form(&fields));
    assert_eq!(
        response.status,
        200,
        "publish refused: {:?}",
        String::from_utf8_lossy(&response.body)
    );
    parse_id(&response)
}

/// Publishes `data` on `topic`; returns the id.
pub fn publish(addr: SocketAddr, topic: &str, data: &str) -> u64 {
    publish_event(addr, &[topic], None, data)
}

/// The event id in a publish response body.
pub fn parse_id(response: &Response) -> u64 {
    let text = String::from_utf8_lossy(&response.body);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("publish response body is not an id: {text:?}"))
}

/// Publishes on one kept-alive connection, for tests that publish a lot.
pub struct Publisher {
    addr: SocketAddr,
    conn: Option<Conn>,
}

impl Publisher {
    /// A publisher for the server at `addr` (connects lazily).
    pub fn new(addr: SocketAddr) -> Publisher {
        Publisher { addr, conn: None }
    }

    /// Publishes raw `data` (as `text/plain`) on `topic`; returns the id. Reconnects once if
    /// the server closed the kept-alive connection.
    pub fn publish(&mut self, topic: &str, data: &[u8]) -> u64 {
        let mut head = format!(
            "POST /publish?topic={} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n",
            percent_encode(topic),
            data.len()
        )
        .into_bytes();
        head.extend_from_slice(data);
        for attempt in 0..2 {
            let conn = self.conn.get_or_insert_with(|| Conn::connect(self.addr));
            if conn.try_send(&head).is_ok() && conn.fill_or_buffered(deadline()) {
                let response = conn.read_response(deadline());
                if response
                    .header("connection")
                    .is_some_and(|value| value.eq_ignore_ascii_case("close"))
                {
                    self.conn = None;
                }
                assert_eq!(
                    response.status,
                    200,
                    "publish refused: {:?}",
                    String::from_utf8_lossy(&response.body)
                );
                return parse_id(&response);
            }
            self.conn = None;
            assert_eq!(attempt, 0, "publish connection closed twice");
        }
        unreachable!()
    }
}

impl Conn {
    /// Whether bytes are buffered or arrive before `until`.
    fn fill_or_buffered(&mut self, until: Instant) -> bool {
        !self.buf.is_empty() || self.fill(until)
    }
}

/// Fetches `/metrics` and parses each sample line into `name{labels}` → value.
pub fn metrics(addr: SocketAddr) -> BTreeMap<String, f64> {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200, "GET /metrics");
    parse_metrics(response.text())
}

/// Parses Prometheus text format: `name{labels} value [timestamp]`, comments skipped.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Label values may hold spaces; the name part ends at the closing brace if any.
        let split_at = match line.find('}') {
            Some(brace) => brace + 1,
            None => line.find(' ').unwrap_or(line.len()),
        };
        let (name, rest) = line.split_at(split_at);
        let value = rest.split_whitespace().next().unwrap_or_default();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad metrics line {line:?}")),
        };
        samples.insert(name.trim().to_string(), value);
    }
    samples
}

/// One metric's value, 0 if absent (counters with labels appear only once used).
pub fn metric(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}
