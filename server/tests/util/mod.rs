//! Shared helpers of the server's integration tests.
//!
//! # Layout
//! - [`TestServer`]: an in-process server on `127.0.0.1:0`, shut down and joined on drop.
//! - [`ServerProcess`]: the `sse-server` binary as a child process, killed and reaped on drop.
//! - [`Conn`] and [`Response`]: a raw HTTP/1.x client over one socket, for exact bytes,
//!   keep-alive, pipelining and malformed requests.
//! - [`SseStream`]: an open event stream, read block by block ([`SseEvent`]).
//! - [`wait_until`], [`deadline`]: every wait has a deadline; no test sleeps for a result.
//! - [`metrics`], [`publish`], [`form`]: small conveniences over the HTTP API.
//! - [`redis::RedisServer`]: a real `redis-server` on a free loopback port, for the backplane.
//! - [`readme_flags`]: the README's flag tables against a binary's `--help` (shared with the
//!   load generator's tests).
//!
//! Every read has a deadline ([`TIMEOUT`] unless a test says otherwise), so a broken server
//! makes a test fail, never hang.

#![allow(dead_code)]

pub mod readme_flags;
pub mod redis;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long any single expected thing may take before a test fails. Generous: the machine is
/// shared and the server is a debug build.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The instant [`TIMEOUT`] from now.
pub fn deadline() -> Instant {
    Instant::now() + TIMEOUT
}

/// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns whether
/// it held. Use instead of sleeping for a result.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The configuration every in-process test starts from: loopback port 0, no demo source, two
/// event loops, a heartbeat too slow to show up unless a test asks for it, and a short drain so
/// shutdown is quick.
pub fn config() -> sse_server::Config {
    sse_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 2,
        demo_interval: Duration::ZERO,
        heartbeat: Duration::from_secs(600),
        drain: Duration::from_millis(100),
        ..sse_server::Config::default()
    }
}

/// An in-process server running on its own thread. Dropping it shuts it down gracefully and
/// joins the thread (with a deadline).
pub struct TestServer {
    /// Where the server listens (the real port, chosen by the OS).
    pub addr: SocketAddr,
    shutdown: Option<sse_server::ShutdownHandle>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// Binds and starts a server with `config`.
    pub fn start(config: sse_server::Config) -> TestServer {
        TestServer::run(sse_server::Server::bind(config).expect("bind server"))
    }

    /// Binds and starts a server with `config` that publishes through `broker`.
    pub fn start_with_broker(
        config: sse_server::Config,
        broker: std::sync::Arc<dyn sse_server::Broker>,
    ) -> TestServer {
        TestServer::run(sse_server::Server::bind_with_broker(config, broker).expect("bind server"))
    }

    fn run(server: sse_server::Server) -> TestServer {
        let addr = server.local_addr();
        let shutdown = server.shutdown_handle();
        let thread = thread::Builder::new()
            .name("sse-server".into())
            .spawn(move || server.run().map_err(|error| format!("{error:?}")))
            .expect("spawn server thread");
        TestServer {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Starts a server with [`config`].
    pub fn with_defaults() -> TestServer {
        TestServer::start(config())
    }

    /// Asks the server to shut down gracefully and waits for `run()` to return; returns what it
    /// returned. Panics if it does not return within [`TIMEOUT`].
    pub fn stop(&mut self) -> Result<(), String> {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.shutdown();
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        if !wait_until(TIMEOUT, || thread.is_finished()) {
            // The thread is left behind: there is no way to stop it from outside.
            panic!("server did not stop within {TIMEOUT:?} of shutdown()");
        }
        thread.join().expect("server thread panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.shutdown();
        }
        let thread = self.thread.take().unwrap();
        let finished = wait_until(TIMEOUT, || thread.is_finished());
        if thread::panicking() {
            return;
        }
        assert!(
            finished,
            "server did not stop within {TIMEOUT:?} of shutdown()"
        );
        let result = thread.join().expect("server thread panicked");
        assert_eq!(result, Ok(()), "run() after shutdown");
    }
}

/// The `sse-server` binary running as a child process. Dropping it kills and reaps the child if
/// it is still running.
pub struct ServerProcess {
    /// Where the child listens, from its start-up line.
    pub addr: SocketAddr,
    child: Child,
    /// Collects the rest of stderr so the child never blocks on a full pipe; yields it all.
    stderr: Option<JoinHandle<String>>,
    /// The start-up line, as printed.
    pub startup_line: String,
}

impl ServerProcess {
    /// Starts the binary with `--listen 127.0.0.1:0 --demo-interval 0` and `args`, and waits for
    /// its start-up line.
    pub fn spawn(args: &[&str]) -> ServerProcess {
        ServerProcess::start(Command::new(env!("CARGO_BIN_EXE_sse-server")), args)
    }

    /// Like [`ServerProcess::spawn`], listening on `listen` (an address or `HOST:PORT`).
    pub fn spawn_listening_on(listen: &str, args: &[&str]) -> ServerProcess {
        let command = Command::new(env!("CARGO_BIN_EXE_sse-server"));
        ServerProcess::start_on(command, listen, args)
    }

    /// Like [`ServerProcess::spawn`], with these environment variables set (after the caller's
    /// `SSE_*` variables are removed).
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sse-server"));
        command.envs(env.iter().copied());
        ServerProcess::start(command, args)
    }

    /// Like [`ServerProcess::spawn`], with the open-file limit (soft and hard) set to `limit`.
    pub fn spawn_with_fd_limit(args: &[&str], limit: u32) -> ServerProcess {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_sse-server"),
        ]);
        ServerProcess::start(command, args)
    }

    fn start(command: Command, args: &[&str]) -> ServerProcess {
        ServerProcess::start_on(command, "127.0.0.1:0", args)
    }

    fn start_on(mut command: Command, listen: &str, args: &[&str]) -> ServerProcess {
        command
            .args(["--listen", listen, "--demo-interval", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The environment twins of the flags must not leak in from the caller's shell (those the
        // test set itself stay).
        let own: Vec<_> = command
            .get_envs()
            .map(|(name, _)| name.to_owned())
            .collect();
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SSE_") && !own.contains(&name) {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("spawn sse-server");
        let stderr = child.stderr.take().unwrap();
        let (line_tx, line_rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut all = String::new();
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && line.starts_with("sse-server: listening on http://") {
                    let _ = line_tx.send(line.clone());
                    sent = true;
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let line = match line_rx.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let output = reader.join().unwrap_or_default();
                panic!("no start-up line from sse-server within {TIMEOUT:?}; stderr:\n{output}");
            }
        };
        let rest = &line["sse-server: listening on http://".len()..];
        let addr_text = rest
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap();
        let addr = addr_text
            .trim_end_matches([',', ';'])
            .parse()
            .unwrap_or_else(|_| panic!("bad address in start-up line {line:?}"));
        ServerProcess {
            addr,
            child,
            stderr: Some(reader),
            startup_line: line,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `"TERM"`, `"INT"`) to the child.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }

    /// Everything the child wrote to stderr; only complete once it has exited.
    pub fn stderr_output(&mut self) -> String {
        match self.stderr.take() {
            Some(reader) if reader.is_finished() => reader.join().unwrap_or_default(),
            Some(reader) => {
                self.stderr = Some(reader);
                String::from("(stderr not complete: process still running)")
            }
            None => String::new(),
        }
    }

    /// The child's resident set size in bytes, from `/proc/PID/status`.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .expect("VmRSS line");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|value| value.parse().ok())
            .expect("VmRSS value");
        kib * 1024
    }

    /// How many file descriptors the child holds, from `/proc/PID/fd`.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(reader) = self.stderr.take() {
            let _ = reader.join();
        }
    }
}

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
    buf: Vec<u8>,
    /// Whether the peer closed its side (or reset the connection).
    eof: bool,
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
