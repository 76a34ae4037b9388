//! `sse-server` behind nginx with TLS and HTTP/2, as `server/deploy/nginx/` configures it, seen
//! by headless Chromium and `curl --http2`.
//!
//! Each test starts an `sse-server` binary and an nginx of its own (Debian's package, installed
//! by `./scripts/setup-test-deps.sh`) on free loopback ports, with a throw-away certificate made by
//! `openssl`; nginx's configuration is a small wrapper (ports, certificate, temporary paths,
//! `worker_shutdown_timeout`) that includes `server/deploy/nginx/sse-locations.conf` unchanged.
//! nginx serves the same locations twice: over TLS with HTTP/2, and over plain HTTP/1.1.
//!
//! Shown: a page opens 12 `EventSource`s on one origin over HTTP/2 and every one receives every
//! event, while the same page over HTTP/1.1 gets only 6 open (Chromium's limit per host);
//! a stream cut by an nginx reload reconnects through it and replays with `Last-Event-ID`, no
//! gap, no duplicate; `curl --http2` receives each event before the next is published (no
//! buffering on the way); publishing through the proxy needs a bearer token.

#[path = "util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use util::{Response, ServerProcess, post_form_request, request};

/// The publish token of the servers behind the proxy.
const TOKEN: &str = "proxy-test-token";

/// The longest any single step may take (a browser starting on a busy machine included).
const WAIT: Duration = Duration::from_secs(45);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn nginx_path() -> PathBuf {
    std::env::var_os("SSE_TEST_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// A port no one listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in front of one upstream, in a directory of its own (configuration, certificate, logs,
/// temporary files); stopped and removed on drop.
struct Proxy {
    dir: PathBuf,
    child: Child,
    /// The TLS + HTTP/2 listener.
    https_port: u16,
    /// The plain HTTP/1.1 listener.
    http_port: u16,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nginx = nginx_path();
        assert!(
            nginx.exists(),
            "nginx not found at {}; run ./scripts/setup-test-deps.sh (Debian package nginx)",
            nginx.display()
        );
        let dir = std::env::temp_dir().join(format!(
            "sse-proxy-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("run openssl")
            .success();
        assert!(made, "openssl could not make the certificate");
        let https_port = free_port();
        let http_port = free_port();
        let locations = manifest_dir().join("deploy/nginx/sse-locations.conf");
        let d = dir.display();
        let conf = format!(
            "daemon off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             worker_shutdown_timeout 1s;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n\
               uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n\
               upstream sse_upstream {{ server {upstream}; keepalive 16; }}\n\
               server {{\n\
                 listen 127.0.0.1:{https_port} ssl http2;\n\
                 ssl_certificate {d}/cert.pem;\n\
                 ssl_certificate_key {d}/key.pem;\n\
                 include {locations};\n\
               }}\n\
               server {{\n\
                 listen 127.0.0.1:{http_port};\n\
                 include {locations};\n\
               }}\n\
             }}\n",
            locations = locations.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut proxy = Proxy {
            dir,
            child,
            https_port,
            http_port,
        };
        let ready = util::wait_until(Duration::from_secs(10), || {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("nginx exited ({status}):\n{}", proxy.error_log());
            }
            TcpStream::connect(("127.0.0.1", https_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        });
        assert!(ready, "nginx did not listen:\n{}", proxy.error_log());
        proxy
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn https_origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    fn http_origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    /// A graceful reload (SIGHUP): new workers take new connections; the old one closes its
    /// connections, open streams included, after `worker_shutdown_timeout`.
    fn reload(&self) {
        signal(self.child.id(), "HUP");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // TERM lets the master stop its workers; KILL only if it does not.
        signal(self.child.id(), "TERM");
        let exited = util::wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Publishes `data` on `topic` through the proxy's HTTP/1.1 listener with the token; the id.
fn publish(proxy: &Proxy, topic: &str, data: &str) -> u64 {
    let response = publish_through(proxy, topic, data, &format!("Bearer {TOKEN}"));
    assert_eq!(response.status, 200, "publish: {:?}", response.text());
    util::parse_id(&response)
}

fn publish_through(proxy: &Proxy, topic: &str, data: &str, authorization: &str) -> Response {
    let auth = if authorization.is_empty() {
        String::new()
    } else {
        format!("Authorization: {authorization}\r\n")
    };
    let body = util::form(&[("topic", topic), ("data", data)]);
    request(
        proxy.http_addr(),
        &post_form_request("/publish", &body, &format!("{auth}Connection: close\r\n")),
    )
}

/// A Node script speaking the line protocol of `tests/clients/lib.mjs`; killed on drop.
struct Script {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Every line seen, for failure messages.
    seen: Vec<String>,
}

impl Script {
    fn start(args: &[&str]) -> Script {
        let dir = manifest_dir().join("tests/clients");
        let mut child = Command::new("node")
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node (install Node 20+, then ./scripts/setup-test-deps.sh)");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The payload of the next line starting with `keyword` (other lines are kept in `seen`).
    fn expect(&mut self, keyword: &str) -> String {
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(message) = line.strip_prefix("FATAL") {
                        panic!("script failed:{message}\nseen: {:?}", self.seen);
                    }
                    let (word, payload) = line.split_once(' ').unwrap_or((&line, ""));
                    if word == keyword {
                        return payload.to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {keyword} within {WAIT:?}; seen: {:?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("script ended before {keyword}; seen: {:?}", self.seen)
                }
            }
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to script");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // A script that printed DONE is closing its browser and removing its profile: let it
        // finish, and kill it only if it does not.
        let exited = util::wait_until(Duration::from_secs(15), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The ids in a `STREAM [i, id, id, ...]` payload, by stream index.
fn stream_ids(payload: &str) -> (usize, Vec<u64>) {
    let inner = payload.trim_start_matches('[').trim_end_matches(']');
    let mut parts = inner.split(',').map(|part| part.trim().trim_matches('"'));
    let index = parts.next().unwrap().parse().unwrap();
    let ids = parts
        .filter(|part| !part.is_empty())
        .map(|id| id.parse().unwrap())
        .collect();
    (index, ids)
}

/// Opens `streams` EventSources from a page on `origin`; publishes `events` once they settle;
/// returns the page's protocol, how many opened, and each stream's ids, beside the ids published.
fn many_streams(
    proxy: &Proxy,
    origin: &str,
    topic: &str,
    streams: usize,
    events: usize,
) -> (String, usize, Vec<Vec<u64>>, Vec<u64>) {
    let mut script = Script::start(&[
        "proxy-browser.mjs",
        "many",
        origin,
        topic,
        &streams.to_string(),
    ]);
    let protocol = script.expect("PROTOCOL");
    let opened: usize = script.expect("OPENED").parse().unwrap();
    let published: Vec<u64> = (0..events)
        .map(|i| publish(proxy, topic, &format!("event {i}")))
        .collect();
    script.send(&format!("COUNT {events}"));
    let mut received = vec![Vec::new(); streams];
    for _ in 0..streams {
        let (index, ids) = stream_ids(&script.expect("STREAM"));
        received[index] = ids;
    }
    script.expect("DONE");
    (protocol, opened, received, published)
}

/// Over HTTP/2 one connection carries every stream: 12 `EventSource`s on one origin all open,
/// and each receives every event, in order.
#[test]
fn http2_page_holds_twelve_streams_and_each_gets_every_event() {
    let server = ServerProcess::spawn(&["--publish-token", TOKEN]);
    let proxy = Proxy::start(server.addr);
    let (protocol, opened, received, published) =
        many_streams(&proxy, &proxy.https_origin(), "h2", 12, 5);
    assert_eq!(protocol, "h2", "the page did not come over HTTP/2");
    assert_eq!(opened, 12);
    for (i, ids) in received.iter().enumerate() {
        assert_eq!(ids, &published, "stream {i}");
    }
}

/// The same page over plain HTTP/1.1 gets only 6 streams open (Chromium's connections per
/// host); the other 6 wait and receive nothing: what HTTP/2 buys.
#[test]
fn http1_page_is_held_to_six_streams() {
    let server = ServerProcess::spawn(&["--publish-token", TOKEN]);
    let proxy = Proxy::start(server.addr);
    let (protocol, opened, received, published) =
        many_streams(&proxy, &proxy.http_origin(), "h1", 12, 5);
    assert_eq!(protocol, "http/1.1");
    assert_eq!(opened, 6, "Chromium opened other than 6 HTTP/1.1 streams");
    let full = received.iter().filter(|ids| **ids == published).count();
    let empty = received.iter().filter(|ids| ids.is_empty()).count();
    assert_eq!((full, empty), (6, 6), "{received:?}");
}

/// An nginx reload cuts the stream (the old worker closes its connections after
/// `worker_shutdown_timeout`); `EventSource` reconnects through the new worker with
/// `Last-Event-ID`, and gets the events published while it was away, then live ones: every id
/// once, in order.
#[test]
fn stream_cut_by_nginx_reload_resumes_without_gap_or_duplicate() {
    let server = ServerProcess::spawn(&["--publish-token", TOKEN, "--retry", "1500ms"]);
    let proxy = Proxy::start(server.addr);
    let origin = proxy.https_origin();
    let mut script = Script::start(&["proxy-browser.mjs", "reconnect", &origin, "cut"]);
    assert_eq!(script.expect("PROTOCOL"), "h2");
    script.expect("OPEN");
    let mut published = Vec::new();
    let mut received = Vec::new();
    let event_id = |script: &mut Script| -> u64 {
        let payload = script.expect("EVENT");
        let id = payload.rsplit(',').next().unwrap();
        id.trim_matches(|c| c == '"' || c == ']').parse().unwrap()
    };
    for i in 0..3 {
        published.push(publish(&proxy, "cut", &format!("before {i}")));
        received.push(event_id(&mut script));
    }
    proxy.reload();
    script.expect("ERROR");
    // Published while the client waits out its retry delay: only a replay can bring these.
    for i in 0..3 {
        published.push(publish(&proxy, "cut", &format!("away {i}")));
    }
    script.expect("OPEN");
    published.push(publish(&proxy, "cut", "after"));
    for _ in 0..4 {
        received.push(event_id(&mut script));
    }
    script.send("STOP");
    script.expect("DONE");
    assert_eq!(received, published, "seen: {:?}", script.seen);
}

/// `curl --http2` through the proxy receives each event before the next one is published: no
/// buffer on the way holds events back.
#[test]
fn curl_http2_sees_events_one_by_one() {
    let server = ServerProcess::spawn(&["--publish-token", TOKEN]);
    let proxy = Proxy::start(server.addr);
    let url = format!("{}/events?topic=curl", proxy.https_origin());
    let mut curl = Command::new("curl")
        .args(["-sSN", "--http2", "-k", "-v", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run curl");
    let (tx, lines) = mpsc::channel();
    let stdout = curl.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = curl.stderr.take().unwrap();
    let verbose = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let wait_for = |wanted: &str| {
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line == wanted => return,
                Ok(_) => {}
                Err(_) => panic!("curl did not print {wanted:?} in time"),
            }
        }
    };
    wait_for(": stream open");
    for i in 0..3 {
        let id = publish(&proxy, "curl", &format!("one by one {i}"));
        // The event's own lines arrive before anything else is published.
        wait_for(&format!("id: {id}"));
        wait_for(&format!("data: one by one {i}"));
    }
    let _ = curl.kill();
    let _ = curl.wait();
    let verbose = verbose.join().unwrap();
    assert!(
        verbose.contains("< HTTP/2 200"),
        "curl did not use HTTP/2:\n{verbose}"
    );
    assert!(
        verbose
            .to_ascii_lowercase()
            .contains("< content-type: text/event-stream"),
        "{verbose}"
    );
}

/// Through the proxy, `/publish` without a bearer token is refused by nginx (`401` with a
/// challenge), a wrong token by the server (`401`), the right one is accepted; a server with
/// no `--publish-token` refuses every publish through the proxy (`403`, it sees the proxy's
/// `X-Forwarded-For`).
#[test]
fn publishing_through_the_proxy_needs_a_token() {
    let server = ServerProcess::spawn(&["--publish-token", TOKEN]);
    let proxy = Proxy::start(server.addr);
    let refused = publish_through(&proxy, "p", "x", "");
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .header("server")
            .is_some_and(|s| s.starts_with("nginx"))
    );
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"sse-server\"")
    );
    let wrong = publish_through(&proxy, "p", "x", "Bearer wrong");
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("bearer token"), "{:?}", wrong.text());
    publish(&proxy, "p", "x");
    drop(proxy);
    drop(server);

    let open = ServerProcess::spawn(&[]);
    let proxy = Proxy::start(open.addr);
    let refused = publish_through(&proxy, "p", "x", "Bearer anything");
    assert_eq!(refused.status, 403, "{:?}", refused.text());
    assert!(
        refused.text().contains("through a proxy"),
        "{:?}",
        refused.text()
    );
}
