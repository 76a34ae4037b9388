//! Shared helpers of the integration tests: small misbehaving servers written with std::net and
//! threads, the real `sse-server` started in-process, and a runner for the binary.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Polls `cond` every 5 ms until it holds or `timeout` passes; returns whether it held.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A request as the fake servers see it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length framed).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler wants done with the connection after a request.
pub enum After {
    /// Read the next request (keep-alive).
    KeepAlive,
    /// Close it.
    Close,
    /// The handler kept the stream (a subscriber); this thread stops reading.
    Keep,
}

/// Reads one request; `None` at end of stream.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = req.parse(buf) {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let method = req.method.unwrap_or("").to_string();
            let path = req.path.unwrap_or("").to_string();
            let body_len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < len + body_len {
                let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[len..len + body_len].to_vec();
            buf.drain(..len + body_len);
            return Some(Request {
                method,
                path,
                headers,
                body,
            });
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A test server on 127.0.0.1:0 running `handler` for every request, one thread per
/// connection. Stopped (and its accept thread joined) on drop.
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Tells the accept loop to stop.
    stop: Arc<AtomicBool>,
    /// The accept loop.
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Starts a server.
    pub fn start(
        handler: impl Fn(&mut TcpStream, &Request) -> After + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let handler = handler.clone();
                        std::thread::spawn(move || {
                            let mut buf = Vec::new();
                            while let Some(req) = read_request(&mut stream, &mut buf) {
                                match handler(&mut stream, &req) {
                                    After::KeepAlive => {}
                                    After::Close => {
                                        let _ = stream.shutdown(Shutdown::Both);
                                        return;
                                    }
                                    After::Keep => return,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakeServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://ADDR/events?topic=t`.
    pub fn url(&self) -> String {
        format!("http://{}/events?topic=t", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the fake broker misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Delivers every event once, in order.
    Honest,
    /// Writes every event twice.
    Duplicate,
    /// Sends event 1 after event 2 (one out-of-order delivery per connection).
    SwapFirstTwo,
    /// After the event with this index, closes every odd-numbered subscriber.
    DropOddAfter(u64),
    /// Sends a 200 event-stream head, then never an event.
    Silent,
    /// Delivers every event once, each preceded by a demo-style event of another type and an
    /// event of an earlier run.
    WithForeign,
    /// After this many publishes, refuses every third one with `503` + `Retry-After` (as
    /// backpressure does) and delivers nothing of it; delivers the others once, in order.
    RefuseEveryThirdAfter(u64),
}

/// A tiny SSE broker: `GET /events` subscribes (close-delimited stream), `POST /publish`
/// writes the raw body as `data:` to every subscriber and answers 200.
pub fn fake_broker(mode: Mode) -> (FakeServer, Arc<AtomicU64>) {
    let (server, published, _) = fake_broker_with_peers(mode);
    (server, published)
}

/// [`fake_broker`], also returning the peer addresses of the subscribers.
pub fn fake_broker_with_peers(
    mode: Mode,
) -> (FakeServer, Arc<AtomicU64>, Arc<Mutex<Vec<SocketAddr>>>) {
    let peers: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let peers2 = peers.clone();
    let subscribers: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let published = Arc::new(AtomicU64::new(0));
    let held: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let refusals = AtomicU64::new(0);
    let count = published.clone();
    let server = FakeServer::start(move |stream, req| {
        if req.path == "/metrics" {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 69\r\n\r\nprocess_resident_memory_bytes 1048576\nprocess_cpu_seconds_total 0.25\n");
            return After::KeepAlive;
        }
        if req.method == "GET" {
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n: hi\n\n";
            if stream.write_all(head).is_err() {
                return After::Close;
            }
            if let Ok(peer) = stream.peer_addr() {
                peers2.lock().unwrap().push(peer);
            }
            subscribers
                .lock()
                .unwrap()
                .push(stream.try_clone().unwrap());
            return After::Keep;
        }
        if let Mode::RefuseEveryThirdAfter(n) = mode
            && refusals
                .fetch_add(1, Ordering::SeqCst)
                .checked_sub(n)
                .is_some_and(|k| k % 3 == 2)
        {
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 8\r\n\r\nbackoff\n",
            );
            return After::KeepAlive;
        }
        let seq = count.fetch_add(1, Ordering::SeqCst);
        let frame = [b"data: ".as_slice(), &req.body, b"\n\n"].concat();
        let mut subs = subscribers.lock().unwrap();
        if mode != Mode::Silent {
            let mut frames = vec![frame.clone()];
            if mode == Mode::WithForeign {
                let old_run = b"data: sselg run=0000000000000001 seq=0 t=1\n\n".to_vec();
                frames.insert(
                    0,
                    b"event: time\nid: 1700000000:0\ndata: 13:00:00\n\n".to_vec(),
                );
                frames.insert(0, old_run);
            }
            if mode == Mode::Duplicate {
                frames.push(frame.clone());
            }
            if mode == Mode::SwapFirstTwo {
                if seq == 1 {
                    *held.lock().unwrap() = Some(frame.clone());
                    frames.clear();
                } else if seq == 2 {
                    frames.extend(held.lock().unwrap().take());
                }
            }
            for (i, s) in subs.iter_mut().enumerate() {
                for f in &frames {
                    let _ = s.write_all(f);
                }
                if let Mode::DropOddAfter(k) = mode
                    && seq == k
                    && i % 2 == 1
                {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
        drop(subs);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        After::KeepAlive
    });
    (server, published, peers)
}

/// A server that answers every request with `response` and closes.
pub fn canned_server(response: &'static [u8]) -> FakeServer {
    FakeServer::start(move |stream, _| {
        let _ = stream.write_all(response);
        After::Close
    })
}

/// The real `sse-server`, in-process on 127.0.0.1:0, stopped on drop.
pub struct RealServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Stops it.
    shutdown: Option<sse_server::ShutdownHandle>,
    /// Its thread.
    thread: Option<JoinHandle<()>>,
}

impl RealServer {
    /// Starts the server with two event loops and no demo source.
    pub fn start() -> RealServer {
        RealServer::start_with_redis(None)
    }

    /// Like [`RealServer::start`], a node of the cluster sharing the Redis at `redis` if given.
    pub fn start_with_redis(redis: Option<String>) -> RealServer {
        let server = sse_server::Server::bind(sse_server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            demo_interval: Duration::ZERO,
            threads: 2,
            drain: Duration::from_millis(100),
            redis,
            ..sse_server::Config::default()
        })
        .expect("sse-server binds");
        let addr = server.local_addr();
        let shutdown = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run().expect("sse-server runs"));
        RealServer {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://ADDR/events?topic=bench`.
    pub fn url(&self) -> String {
        format!("http://{}/events?topic=bench", self.addr)
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            s.shutdown();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `redis-server` on a free loopback port without persistence, killed and reaped on drop
/// (install it with `scripts/setup-test-deps.sh`).
pub struct Redis {
    /// Its `redis://` URL.
    pub url: String,
    child: std::process::Child,
}

impl Redis {
    /// Starts it and waits until it answers `PING`.
    pub fn start() -> Redis {
        // Redis cannot be asked for port 0: take a free port from the OS and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server not found: run scripts/setup-test-deps.sh");
        let redis = Redis {
            url: format!("redis://127.0.0.1:{port}/0"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
                stream.set_read_timeout(Some(Duration::from_millis(500)))?;
                stream.write_all(b"PING\r\n")?;
                let mut reply = [0u8; 7];
                stream.read_exact(&mut reply)?;
                Ok(reply)
            });
            if matches!(answer, Ok(reply) if &reply == b"+PONG\r\n") {
                return redis;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET path` from the server at `addr` (HTTP/1.0, read to the end).
pub fn get_text(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    match response.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_owned(),
        None => response,
    }
}

/// Runs the `sse-loadgen` binary with `args`, none of the caller's `SSE_LOADGEN_*` variables
/// inherited (each is a flag's twin).
pub fn loadgen(args: &[&str]) -> Output {
    loadgen_with_env(args, &[])
}

/// Like [`loadgen`], with these environment variables set.
pub fn loadgen_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sse-loadgen"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SSE_LOADGEN_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("runs sse-loadgen")
}

/// Fanout settings for a small, quick run against `url`.
pub fn small_run(url: &str, connections: u64, events: u64) -> sse_loadgen::fanout::FanoutSettings {
    sse_loadgen::fanout::FanoutSettings {
        urls: vec![url.to_string()],
        connections,
        events,
        rate: 200.0,
        threads: 2,
        processes: 1,
        drain_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_secs(2),
        settle: Duration::from_millis(50),
        quiet: true,
        ..Default::default()
    }
}

/// What the failover brokers share: one history and every subscriber, as nodes of a cluster
/// share a backplane.
#[derive(Default)]
pub struct SharedBroker {
    /// Every event's frame, by id (ids are 0, 1, 2, ...).
    history: Vec<Vec<u8>>,
    /// Open streams and the node each is on.
    subscribers: Vec<(usize, TcpStream)>,
    /// `(node, Last-Event-ID)` of every subscribe that sent one.
    pub last_event_ids: Vec<(usize, String)>,
}

/// `nodes` fake nodes over one [`SharedBroker`]: `GET /events` streams with `retry: 50` and,
/// given `Last-Event-ID: N`, first replays the events from `N + 1 + replay_offset` (0: exact;
/// -1: one event again; 1: one event skipped); `POST /publish` gives the body the next id and
/// writes it to every subscriber of every node. Right after event `kill_after`, node 0 closes
/// all its streams, as a node that dies does. Node `broken`, if any, records a subscribe with
/// `Last-Event-ID` and closes it before answering.
pub fn failover_brokers(
    nodes: usize,
    kill_after: u64,
    replay_offset: i64,
    broken: Option<usize>,
) -> (Vec<FakeServer>, Arc<Mutex<SharedBroker>>) {
    let shared: Arc<Mutex<SharedBroker>> = Arc::default();
    let servers = (0..nodes)
        .map(|node| {
            let shared = shared.clone();
            FakeServer::start(move |stream, req| {
                let mut b = shared.lock().unwrap();
                if let Some(id) = req.header("last-event-id")
                    && Some(node) == broken
                {
                    b.last_event_ids.push((node, id.to_string()));
                    return After::Close;
                }
                if req.method == "GET" {
                    let head =
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 50\n\n";
                    if stream.write_all(head).is_err() {
                        return After::Close;
                    }
                    if let Some(id) = req.header("last-event-id") {
                        b.last_event_ids.push((node, id.to_string()));
                        let from = id.parse::<i64>().unwrap() + 1 + replay_offset;
                        for frame in b.history.iter().skip(from.max(0) as usize) {
                            let _ = stream.write_all(frame);
                        }
                    }
                    b.subscribers.push((node, stream.try_clone().unwrap()));
                    return After::Keep;
                }
                let id = b.history.len() as u64;
                let frame = [format!("id: {id}\ndata: ").as_bytes(), &req.body, b"\n\n"].concat();
                for (_, s) in b.subscribers.iter_mut() {
                    let _ = s.write_all(&frame);
                }
                b.history.push(frame);
                if id == kill_after {
                    b.subscribers.retain(|(n, s)| {
                        if *n == 0 {
                            let _ = s.shutdown(Shutdown::Both);
                        }
                        *n != 0
                    });
                }
                drop(b);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                After::KeepAlive
            })
        })
        .collect();
    (servers, shared)
}
