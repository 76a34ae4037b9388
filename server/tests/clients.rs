//! Real clients against a real `sse-server` process, over real sockets: headless Chromium's
//! `EventSource` and `@microsoft/fetch-event-source`, Node's `eventsource` package, Python's
//! `httpx-sse` and `curl -N`.
//!
//! Each test starts its own `sse-server` binary on `127.0.0.1:0` (learning the port from its
//! start-up line), runs a client script from `tests/clients/` with the server's URL, publishes
//! events itself over a plain `TcpStream` when the script says it is subscribed, and compares what
//! the script reports it received (`EVENT [type or listener, data, lastEventId]` lines, see
//! `tests/clients/lib.mjs`) with the ids the server assigned. Reconnects are forced either by
//! restarting the server on the same port (a SIGTERM closes every stream; ids stay increasing across
//! restarts, history does not survive, so the events "published while away" go to the new server
//! before the client is back) or, for clients without automatic reconnection, by the client
//! disconnecting and coming back with `Last-Event-ID`.
//!
//! What they need (Chromium, node_modules, the Python venv) is installed by
//! `./scripts/setup-test-deps.sh`; when something is missing the test fails and says so.
//! Every child process is killed by a guard, and every wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any single step may take (a browser starting on a busy two-core machine included).
const WAIT: Duration = Duration::from_secs(45);

/// Where the client scripts, their `package.json` and the Python venv live.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Where artifacts (the console screenshots) are kept; ignored by git.
fn artifacts_dir() -> PathBuf {
    clients_dir().join("artifacts")
}

/// The Chromium binary the browser scripts launch.
fn chromium_path() -> PathBuf {
    std::env::var_os("SSE_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

// ---------------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------------

/// One running `sse-server` process, killed on drop; its stderr is kept for failure reports.
struct ServerProcess {
    /// The process; `None` only between the stop and the start of a restart.
    child: Option<Child>,
    /// The address from its start-up line.
    addr: SocketAddr,
    /// The flags besides `--listen`, reused on restart.
    flags: Vec<String>,
    /// Everything it printed on stderr, across restarts.
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `sse-server --listen 127.0.0.1:0 FLAGS...` and waits for its start-up line.
    fn start(flags: &[&str]) -> ServerProcess {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (child, addr) = spawn_server("127.0.0.1:0", &flags, &stderr).unwrap_or_else(|e| {
            panic!("sse-server did not start: {e}\n{}", stderr.lock().unwrap())
        });
        ServerProcess {
            child: Some(child),
            addr,
            flags,
            stderr,
        }
    }

    /// `http://ADDR`, without a trailing slash.
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server with SIGTERM (it closes every stream, which is what clients see when a
    /// server goes away), then starts it again on the same port with the same flags.
    fn restart(&mut self) {
        let mut child = self.child.take().expect("server running");
        signal(child.id(), "TERM");
        if wait_exit(&mut child, Duration::from_secs(10)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sse-server did not exit within 10 s of SIGTERM");
        }
        // The port was just released; allow a moment should the OS still hold it.
        let listen = self.addr.to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match spawn_server(&listen, &self.flags, &self.stderr) {
                Ok((child, addr)) => {
                    assert_eq!(addr, self.addr, "restarted server listens elsewhere");
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("sse-server did not restart on {listen}: {e}")
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The value of an unlabelled metric from `GET /metrics`.
    fn metric(&self, name: &str) -> f64 {
        let response = http(self.addr, "GET", "/metrics", &[], b"");
        assert_eq!(response.status, 200, "GET /metrics");
        let text = String::from_utf8_lossy(&response.body);
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name)
                    .then(|| value.trim().parse::<f64>().ok())
                    .flatten()
            })
            .unwrap_or_else(|| panic!("metric {name} not found in GET /metrics:\n{text}"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("--- sse-server stderr ---\n{}", self.stderr.lock().unwrap());
        }
    }
}

/// Spawns the binary and reads its stderr until the start-up line gives the address; the rest of
/// stderr keeps being drained into `log` so the server never blocks on a full pipe.
fn spawn_server(
    listen: &str,
    flags: &[String],
    log: &Arc<Mutex<String>>,
) -> Result<(Child, SocketAddr), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sse-server"))
        .arg("--listen")
        .arg(listen)
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Arc::clone(log);
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    const PREFIX: &str = "sse-server: listening on http://";
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(PREFIX) {
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    let addr = addr.trim_end_matches(['/', ',']);
                    return match addr.parse() {
                        Ok(addr) => Ok((child, addr)),
                        Err(e) => {
                            let _ = child.kill();
                            let _ = child.wait();
                            Err(format!(
                                "bad address {addr:?} in start-up line {line:?}: {e}"
                            ))
                        }
                    };
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = wait_exit(&mut child, Duration::from_secs(5));
                return Err(format!("exited ({status:?}) without a start-up line"));
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no start-up line within {WAIT:?}"));
            }
        }
    }
}

/// Sends a signal with the shell's `kill` builtin (std can only send SIGKILL, and only to one
/// process): a process id, or `-PGID` for a whole process group.
fn signal(target: impl std::fmt::Display, name: &str) {
    let _ = Command::new("sh")
        .args(["-c", "kill -s \"$1\" -- \"$0\"", &target.to_string(), name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends SIGKILL to every live process whose command line mentions `path`; returns how many.
fn kill_processes_mentioning(path: &Path) -> usize {
    let needle = path.to_string_lossy().into_owned();
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // Zombies have an empty command line and need no killing.
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            signal(pid, "KILL");
            killed += 1;
        }
    }
    killed
}

/// Polls for the child's exit until `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP over std::net, for publishing and for metrics
// ---------------------------------------------------------------------------------------------

/// A complete HTTP response.
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// One request on a fresh connection (`Connection: close`), read to the end.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream
        .write_all(&bytes)
        .unwrap_or_else(|e| panic!("{method} {path}: write: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: read: {e}"));
    let split = find(&raw, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no complete response head in {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line in {head:?}"));
    let mut body = raw[split + 4..].to_vec();
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    Response { status, head, body }
}

/// The value of a header in a response head (first match, name case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Decodes a chunked body (the server may answer either way).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
    out
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Publishes one event with a form body and returns the id the server assigned.
fn publish(server: &ServerProcess, topic: &str, event: Option<&str>, data: &str) -> u64 {
    let mut body = format!("topic={}&data={}", form_encode(topic), form_encode(data));
    if let Some(event) = event {
        body.push_str(&format!("&event={}", form_encode(event)));
    }
    let response = http(
        server.addr,
        "POST",
        "/publish",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    let text = String::from_utf8_lossy(&response.body);
    assert_eq!(
        response.status, 200,
        "POST /publish {body}: {}\n{text}",
        response.head
    );
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("POST /publish {body}: body {text:?} is not an event id: {e}"))
}

/// One event to publish, and what a client should record for it.
struct Published {
    /// `event:` type; `None` for unnamed events.
    event: Option<&'static str>,
    /// `data:`, possibly several lines.
    data: &'static str,
    /// The id the server assigned.
    id: u64,
}

/// Publishes each `(event, data)` on `topic`, in order.
fn publish_all(
    server: &ServerProcess,
    topic: &str,
    events: &[(Option<&'static str>, &'static str)],
) -> Vec<Published> {
    events
        .iter()
        .map(|&(event, data)| Published {
            event,
            data,
            id: publish(server, topic, event, data),
        })
        .collect()
}

/// The `EVENT` line a script prints for an event: `[type or listener, data, lastEventId]`.
fn record(kind: &str, data: &str, id: u64) -> String {
    format!(
        "[{},{},{}]",
        json_string(kind),
        json_string(data),
        json_string(&id.to_string())
    )
}

/// What a client should record for these events (unnamed ones under `message`).
fn expected(events: &[&Published]) -> Vec<String> {
    events
        .iter()
        .map(|p| record(p.event.unwrap_or("message"), p.data, p.id))
        .collect()
}

/// JSON string literal, escaped the way `JSON.stringify` and Python's `json.dumps(...,
/// ensure_ascii=False)` escape it, so expected and received lines compare as text.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The string value of `"key":"..."` or `"key":null` in one flat JSON object printed by a script
/// (values the scripts print are simple: ids, header values, numbers).
fn json_field(object: &str, key: &str) -> Option<String> {
    let start = object.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &object[start..];
    if let Some(rest) = rest.strip_prefix('"') {
        let end = rest.find('"')?;
        Some(rest[..end].to_string())
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        let value = rest[..end].trim();
        (value != "null").then(|| value.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Client scripts
// ---------------------------------------------------------------------------------------------

/// One client script (node or python) in its own process group, so that killing it also kills
/// the Chromium it launched; killed on drop. Its stdout lines arrive through a channel.
struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line read so far, for assertions and failure reports.
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// A directory removed once the script is gone (the browser profiles).
    remove_on_drop: Option<PathBuf>,
}

impl Script {
    /// `node SCRIPT ARGS...` in `tests/clients`.
    fn node(script: &str, args: &[&str]) -> Script {
        let dir = clients_dir();
        assert!(
            dir.join("node_modules/playwright-core").is_dir()
                && dir.join("node_modules/eventsource").is_dir()
                && dir
                    .join("node_modules/@microsoft/fetch-event-source")
                    .is_dir(),
            "the npm packages of {} are not installed: run ./scripts/setup-test-deps.sh",
            dir.display()
        );
        Script::spawn("node", script, args)
    }

    /// `.venv/bin/python SCRIPT ARGS...` in `tests/clients`.
    fn python(script: &str, args: &[&str]) -> Script {
        let python = clients_dir().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing (httpx, httpx-sse): run ./scripts/setup-test-deps.sh",
            python.display()
        );
        Script::spawn(python.to_str().unwrap(), script, args)
    }

    /// `node browser.mjs SCENARIO ARGS...`, after checking that Chromium is there.
    fn browser(scenario: &str, args: &[&str]) -> Script {
        let chromium = chromium_path();
        assert!(
            chromium.exists(),
            "Chromium could not be found at {}: the browser tests need it. Install it with \
             ./scripts/setup-test-deps.sh (Debian package `chromium`), or set SSE_TEST_CHROMIUM",
            chromium.display()
        );
        let mut all = vec![scenario];
        all.extend_from_slice(args);
        // The browser profile lives where the driver, not the script, removes it: the script may
        // be killed before it could clean up.
        static PROFILES: AtomicUsize = AtomicUsize::new(0);
        let n = PROFILES.fetch_add(1, Ordering::Relaxed);
        let profiles =
            std::env::temp_dir().join(format!("sse-client-tests-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&profiles)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", profiles.display()));
        let mut script = Script::spawn_with(
            "node",
            "browser.mjs",
            &all,
            &[("SSE_TEST_PROFILES", &profiles)],
        );
        script.remove_on_drop = Some(profiles);
        script
    }

    fn spawn(program: &str, script: &str, args: &[&str]) -> Script {
        Script::spawn_with(program, script, args, &[])
    }

    fn spawn_with(program: &str, script: &str, args: &[&str], env: &[(&str, &Path)]) -> Script {
        let name = format!("{script} {}", args.join(" "));
        let mut child = Command::new(program)
            .arg(script)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(clients_dir())
            .env("PYTHONUNBUFFERED", "1")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} {name}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_log = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                stderr_log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let stdin = child.stdin.take();
        Script {
            name,
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
            remove_on_drop: None,
        }
    }

    /// Reads stdout until a line `KEYWORD payload` and returns the payload; fails the test on
    /// `FATAL`, on the script's exit, or after [`WAIT`].
    fn expect(&mut self, keyword: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with("FATAL") {
                        panic!("{} failed: {line}", self.name);
                    }
                    let (key, payload) = line.split_once(' ').unwrap_or((&line, ""));
                    if key == keyword {
                        return payload.to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {keyword} within {WAIT:?}", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited before printing {keyword}", self.name)
                }
            }
        }
    }

    /// Writes one line to the script's stdin.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| {
                panic!("{}: cannot write {line:?} to stdin: {e}", self.name);
            });
    }

    /// Waits for `DONE` and the script's exit.
    fn finish(&mut self) {
        self.expect("DONE");
        if wait_exit(&mut self.child, WAIT).is_none() {
            panic!("{}: did not exit after DONE", self.name);
        }
    }

    /// The payloads of every `KEYWORD` line read so far.
    fn all(&self, keyword: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|line| {
                line.strip_prefix(keyword)?
                    .strip_prefix(' ')
                    .map(str::to_string)
            })
            .collect()
    }

    /// The payload of the first `KEYWORD` line already read.
    fn expect_seen(&self, keyword: &str) -> String {
        self.all(keyword)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{}: printed no {keyword}", self.name))
    }

    /// The received events (`EVENT` lines), in order.
    fn events(&self) -> Vec<String> {
        self.all("EVENT")
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // The whole group: the script and, for the browser scripts, Chromium and its helpers.
        signal(format!("-{}", self.child.id()), "KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.remove_on_drop {
            // Playwright starts Chromium in a process group of its own, and Chromium shuts down
            // on its own schedule once its driver is gone: kill whatever still uses the profile.
            let deadline = Instant::now() + Duration::from_secs(5);
            while kill_processes_mentioning(dir) > 0 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = std::fs::remove_dir_all(dir);
        }
        if thread::panicking() {
            eprintln!(
                "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
                self.name,
                self.seen.join("\n"),
                self.name,
                self.stderr.lock().unwrap()
            );
        }
    }
}

/// Checks the subscribe requests a client made across one reconnect: the first without
/// `Last-Event-ID`, every later one (failed attempts while the server was down included) with the
/// id of the last event received before the stream closed.
fn assert_resumed_from(requests: &[String], last_before: u64) {
    assert!(
        requests.len() >= 2,
        "expected a first request and a reconnect, got {requests:#?}"
    );
    assert_eq!(
        json_field(&requests[0], "lastEventId"),
        None,
        "the first subscribe request has no Last-Event-ID: {}",
        requests[0]
    );
    for request in &requests[1..] {
        assert_eq!(
            json_field(request, "lastEventId"),
            Some(last_before.to_string()),
            "a reconnect sends Last-Event-ID of the last event received: {request}"
        );
    }
}

/// The events published while a client is away: checks first that it is really away (no
/// subscriber on the restarted server), so that they can only reach it by replay.
fn publish_while_away(
    server: &ServerProcess,
    topic: &str,
    events: &[(Option<&'static str>, &'static str)],
) -> Vec<Published> {
    let published = publish_all(server, topic, events);
    assert_eq!(
        server.metric("sse_subscribers"),
        0.0,
        "the client must still be away when these events are published (raise --retry?)"
    );
    published
}

/// A sequence exercising the encoder: unnamed and named events, multi-line data with an empty
/// line, a leading space and a trailing newline (both are data, not syntax), and non-ASCII text.
const VARIED: [(Option<&str>, &str); 5] = [
    (None, "hello"),
    (Some("tick"), "line 1\nline 2\n\nline 4"),
    (Some("other"), "héllo wörld ✓ — 😀"),
    (None, " leading space, trailing newline\n"),
    (Some("tick"), "{\"json\": [1, 2, 3]}"),
];

// ---------------------------------------------------------------------------------------------
// Headless Chromium: EventSource
// ---------------------------------------------------------------------------------------------

/// A browser's EventSource on a same-origin page: unnamed events reach `onmessage`, named events
/// only their `addEventListener(name)` (an event nobody listens for reaches no handler, not
/// `onmessage`), multi-line and non-ASCII data arrive intact, and `lastEventId` is the id the
/// server assigned.
#[test]
fn browser_eventsource_dispatches_by_type_with_server_ids() {
    let server = ServerProcess::start(&["--demo-interval", "0"]);
    let mut browser = Script::browser("events", &[&server.url(), "t1", "6"]);
    browser.expect("READY");
    let mut published = publish_all(&server, "t1", &VARIED);
    // No listener for `unheard`: it must not show up anywhere, in particular not in onmessage.
    publish(&server, "t1", Some("unheard"), "nobody listens for this");
    published.extend(publish_all(&server, "t1", &[(None, "last")]));
    browser.finish();
    assert_eq!(
        browser.events(),
        expected(&published.iter().collect::<Vec<_>>())
    );
}

/// A browser's EventSource cannot send headers: on a server with `--subscribe-token` it subscribes
/// with `?access_token=T`, and is refused without it.
#[test]
fn browser_eventsource_subscribes_with_access_token() {
    let server = ServerProcess::start(&["--demo-interval", "0", "--subscribe-token", "s3cret"]);
    let refused = http(server.addr, "GET", "/events?topic=a", &[], b"");
    assert!(
        refused.status == 401 || refused.status == 403,
        "GET /events without the token: {}",
        refused.head
    );
    let mut browser = Script::browser("events", &[&server.url(), "a", "2", "&access_token=s3cret"]);
    browser.expect("READY");
    let published = publish_all(&server, "a", &VARIED[..2]);
    browser.finish();
    assert_eq!(
        browser.events(),
        expected(&published.iter().collect::<Vec<_>>())
    );
}

/// A browser's EventSource with a JSON Web Token made by Node's `jose` in `?access_token=`, on a
/// server with `--jwt-secret`: the stream opens for the topic the token's `sse.subscribe` names
/// and receives what a publisher with the publish token sends.
#[test]
fn browser_eventsource_subscribes_with_a_jwt() {
    let secret = "browser-jwt-secret-of-32-bytes!!";
    let server = ServerProcess::start(&[
        "--demo-interval",
        "0",
        "--jwt-secret",
        secret,
        "--publish-token",
        "pub",
    ]);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let spec = format!(
        r#"{{"alg": "HS256", "key": "{secret}", "claims": {{"sse": {{"subscribe": ["j"]}}, "exp": {exp}}}}}"#
    );
    let output = Command::new("node")
        .arg(clients_dir().join("make-token.mjs"))
        .arg(&spec)
        .current_dir(clients_dir())
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let refused = http(server.addr, "GET", "/events?topic=j", &[], b"");
    assert_eq!(refused.status, 401, "{}", refused.head);
    let mut browser = Script::browser(
        "events",
        &[&server.url(), "j", "2", &format!("&access_token={token}")],
    );
    browser.expect("READY");
    let published: Vec<Published> = ["first", "second"]
        .into_iter()
        .map(|data| {
            let response = http(
                server.addr,
                "POST",
                "/publish?topic=j",
                &[
                    ("Authorization", "Bearer pub"),
                    ("Content-Type", "text/plain"),
                ],
                data.as_bytes(),
            );
            assert_eq!(response.status, 200, "{}", response.head);
            let id = String::from_utf8_lossy(&response.body)
                .trim()
                .parse()
                .unwrap();
            Published {
                event: None,
                data,
                id,
            }
        })
        .collect();
    browser.finish();
    assert_eq!(
        browser.events(),
        expected(&published.iter().collect::<Vec<_>>())
    );
}

/// The stream survives the server closing it: the browser waits the `retry` the server sent
/// (3.5 s, longer than Chromium's own 3 s default, so honouring it shows), reconnects with
/// `Last-Event-ID`, and the events published while it was away arrive once each, in order.
#[test]
fn browser_eventsource_reconnects_after_retry_with_last_event_id() {
    let mut server = ServerProcess::start(&[
        "--demo-interval",
        "0",
        "--retry",
        "3500ms",
        "--drain",
        "100ms",
    ]);
    let mut browser = Script::browser("reconnect", &[&server.url(), "r", "3", "3"]);
    browser.expect("READY");
    let before = publish_all(
        &server,
        "r",
        &[(None, "one"), (Some("tick"), "two"), (None, "three")],
    );
    browser.expect("GOT");
    server.restart();
    let away = publish_while_away(
        &server,
        "r",
        &[(None, "four"), (Some("tick"), "five\nfive"), (None, "six")],
    );
    browser.finish();
    let all: Vec<&Published> = before.iter().chain(&away).collect();
    assert_eq!(
        browser.events(),
        expected(&all),
        "every event once, in order"
    );
    let requests: Vec<String> = browser
        .all("REQUEST")
        .into_iter()
        .filter(|r| r.contains("/events?topic=r"))
        .collect();
    assert_resumed_from(&requests, before[2].id);
    // The reconnect waited at least the server's retry (a lower bound only: the page's clock).
    let log = browser.all("LOG");
    let first_error = log
        .iter()
        .position(|l| l.contains("\"what\":\"error\""))
        .expect("an error event");
    let reopen = log[first_error..]
        .iter()
        .find(|l| l.contains("\"what\":\"open\""))
        .expect("a reopen");
    let time = |l: &str| json_field(l, "t").unwrap().parse::<f64>().unwrap();
    let delay = time(reopen) - time(&log[first_error]);
    assert!(
        delay >= 3400.0,
        "reconnected {delay} ms after the error, before the 3500 ms retry"
    );
}

/// Runs the cross-origin page (another port of 127.0.0.1) against a server whose
/// `--cors-origin` is `allow(origin)`.
fn cross_origin(
    mode: &str,
    allow: impl Fn(&str) -> String,
    count: usize,
) -> (Script, Vec<Published>) {
    let mut browser = Script::browser("cross", &[mode, "x", &count.to_string()]);
    let origin = browser.expect("ORIGIN");
    let server = ServerProcess::start(&["--demo-interval", "0", "--cors-origin", &allow(&origin)]);
    browser.send(&format!("URL {}", server.url()));
    let outcome = browser.expect("READY");
    let mut published = Vec::new();
    if outcome == "open" {
        published = publish_all(&server, "x", &VARIED[..count]);
    }
    browser.finish();
    (browser, published)
}

/// A page of another origin receives events when `--cors-origin` names its origin.
#[test]
fn browser_cross_origin_allowed_receives_events() {
    let (browser, published) = cross_origin("plain", |origin| origin.to_string(), 3);
    assert_eq!(
        browser.all("READY"),
        ["open"],
        "the allowed origin must connect"
    );
    assert_eq!(
        browser.events(),
        expected(&published.iter().collect::<Vec<_>>())
    );
}

/// A page of another origin is refused when `--cors-origin` names a different origin: the
/// EventSource fails for good (CLOSED, no reconnect), the browser blames CORS, no event arrives.
#[test]
fn browser_cross_origin_refused_when_not_allowed() {
    let (browser, _) = cross_origin("plain", |_| "http://127.0.0.1:1".to_string(), 0);
    assert_eq!(
        browser.all("READY"),
        ["error"],
        "a disallowed origin must not connect"
    );
    assert_eq!(
        json_field(&browser.all("STATE")[0], "readyState").as_deref(),
        Some("2")
    );
    assert!(
        browser.events().is_empty(),
        "no event may reach a refused page"
    );
    assert!(
        browser.all("CONSOLE").iter().any(|c| c.contains("CORS")),
        "Chromium should report a CORS refusal, got {:?}",
        browser.all("CONSOLE")
    );
}

/// `new EventSource(url, {withCredentials: true})` works with an explicitly allowed origin (the
/// server must answer with that origin and `Access-Control-Allow-Credentials: true`).
#[test]
fn browser_cross_origin_with_credentials() {
    let (browser, published) = cross_origin("credentials", |origin| origin.to_string(), 3);
    assert_eq!(
        browser.all("READY"),
        ["open"],
        "the credentialed request must be allowed"
    );
    assert_eq!(
        json_field(&browser.all("STATE")[0], "withCredentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        browser.events(),
        expected(&published.iter().collect::<Vec<_>>())
    );
}

/// The console at `/` shows the demo time (HH:MM:SS) ticking in its playground, which subscribes
/// to topic `time` on load; its screenshot is kept in `tests/clients/artifacts/demo.png`.
#[test]
fn browser_demo_page_shows_ticking_time() {
    let server = ServerProcess::start(&["--demo-interval", "1s"]);
    let png = artifacts_dir().join("demo.png");
    let _ = std::fs::remove_file(&png);
    let mut browser = Script::browser("demo", &[&server.url(), png.to_str().unwrap()]);
    browser.finish();
    let content_type = browser.expect_seen("CONTENT_TYPE");
    assert!(
        content_type.starts_with("text/html"),
        "GET / content type: {content_type}"
    );
    // The page shows a time of day that changed twice while the browser watched.
    let times = browser.all("TIME");
    assert!(times.len() >= 3, "the shown time ticked twice: {times:?}");
    let image = std::fs::read(&png).unwrap_or_else(|e| panic!("screenshot {}: {e}", png.display()));
    assert!(
        image.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG",
        png.display()
    );
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium: the console at `/`
// ---------------------------------------------------------------------------------------------

/// The load generator, built beside `sse-server` by any workspace build (`cargo nextest run
/// --workspace`, `./scripts/test.sh`): integration tests of one package cannot name another
/// package's binary through `CARGO_BIN_EXE_*`.
fn loadgen_path() -> PathBuf {
    let server = Path::new(env!("CARGO_BIN_EXE_sse-server"));
    let loadgen = server.with_file_name("sse-loadgen");
    assert!(
        loadgen.exists(),
        "{} is missing: build the workspace (`cargo build --workspace`) or run `./scripts/test.sh`",
        loadgen.display()
    );
    loadgen
}

/// `sse-loadgen fanout` against the server, as a user would point it at a running server:
/// `connections` subscribers opened at `connect_rate` per second (so the console shows a ramp),
/// then events published to their topic at 20/s for a minute (so it shows deliveries). Killed
/// with its process group when dropped.
struct Load {
    child: Child,
}

impl Load {
    fn start(server: &ServerProcess, topic: &str, connections: usize, connect_rate: usize) -> Load {
        let base = format!("http://{}", server.addr);
        let mut command = Command::new(loadgen_path());
        command
            .args(["fanout", "--url"])
            .arg(format!("{base}/events?topic={}", form_encode(topic)))
            .arg("--publish-url")
            .arg(format!("{base}/publish?topic={}", form_encode(topic)))
            .args(["--connections", &connections.to_string()])
            .args(["--connect-rate", &connect_rate.to_string()])
            .args(["--events", "1200", "--rate", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", loadgen_path().display()));
        Load { child }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // The load generator may run worker processes: end the whole group.
        signal(format!("-{}", self.child.id()), "KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The console at `/` in Chromium: its live figures (topic `$stats`) arrive and follow the
/// server. 500 subscribers opened by `sse-loadgen fanout` make the open-connections figure reach
/// 500, and its publishes make deliveries per second rise above 0. An event published through the page's form (with an event
/// type) arrives in the page's own subscription with the id the server answered. The page loads
/// nothing from elsewhere, the figures are produced only while the page watches them (the
/// `sse_stats_watchers` gauge is 1 while it is open, 0 once it is gone), and a screenshot is kept
/// in `tests/clients/artifacts/console.png`.
#[test]
fn browser_console_shows_live_figures_and_publishes_from_its_form() {
    let server = ServerProcess::start(&["--demo-interval", "1s"]);
    assert_eq!(
        server.metric("sse_stats_watchers"),
        0.0,
        "no console open yet"
    );
    let png = artifacts_dir().join("console.png");
    let _ = std::fs::remove_file(&png);
    let data = "hello from the console form";
    let mut browser = Script::browser(
        "console",
        &[&server.url(), png.to_str().unwrap(), "console-test", data],
    );
    browser.expect("READY");
    assert_eq!(
        server.metric("sse_stats_watchers"),
        1.0,
        "the page's figures stream"
    );
    let load = Load::start(&server, "load", 500, 125);
    browser.send("CONNECTIONS 500");
    let shown: u64 = browser.expect("CONNECTIONS").parse().unwrap();
    assert!(shown >= 500, "open connections shown: {shown}");
    let deliveries: f64 = browser.expect("DELIVERIES").parse().unwrap();
    assert!(
        deliveries > 0.0,
        "deliveries per second shown: {deliveries}"
    );
    let published = browser.expect("PUBLISHED");
    assert_eq!(
        json_field(&published, "status").as_deref(),
        Some("200"),
        "{published}"
    );
    let text = json_field(&published, "text").unwrap();
    let id: u64 = text
        .strip_prefix("published: id ")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("the result line names the id: {text:?}"));
    let received = browser.expect("RECEIVED");
    assert_eq!(
        received,
        format!("[\"#2\",\"{id}\",\"greeting\",{}]", json_string(data)),
        "the event in the page's subscription #2 (#1 is `time`): id, type, data"
    );
    browser.finish();
    drop(load);
    assert!(
        browser.all("FOREIGN").is_empty(),
        "the page loaded something from elsewhere: {:?}",
        browser.all("FOREIGN")
    );
    assert!(
        browser.all("CONSOLE").is_empty(),
        "console errors: {:?}",
        browser.all("CONSOLE")
    );
    let image = std::fs::read(&png).unwrap_or_else(|e| panic!("screenshot {}: {e}", png.display()));
    assert!(
        image.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG",
        png.display()
    );
    drop(browser);
    let deadline = Instant::now() + WAIT;
    while server.metric("sse_stats_watchers") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "the figures' stream is still counted after the browser is gone"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// With `--publish-token`, the console's publish form gets `401` without a token and then shows
/// the token field; with the token typed in, it publishes (sent as `Authorization: Bearer`) and
/// the event arrives in the page's subscription.
#[test]
fn browser_console_asks_for_the_publish_token() {
    let token = "console-t0ken";
    let server = ServerProcess::start(&["--demo-interval", "0", "--publish-token", token]);
    let data = "published with the token";
    let mut browser = Script::browser("console-token", &[&server.url(), token, "secured", data]);
    browser.finish();
    assert_eq!(browser.expect_seen("AUTH_FIELD_BEFORE"), "false");
    let without = browser.expect_seen("WITHOUT_TOKEN");
    assert_eq!(
        json_field(&without, "status").as_deref(),
        Some("401"),
        "{without}"
    );
    assert_eq!(browser.expect_seen("AUTH_FIELD_AFTER"), "true");
    let with = browser.expect_seen("WITH_TOKEN");
    assert_eq!(
        json_field(&with, "status").as_deref(),
        Some("200"),
        "{with}"
    );
    let received = browser.expect_seen("RECEIVED");
    assert!(
        received.ends_with(&format!(",\"message\",{}]", json_string(data))),
        "{received}"
    );
    // Chromium logs the refused publish ("status of 401"); nothing else may go wrong.
    assert!(
        browser.all("CONSOLE").iter().all(|c| c.contains("401")),
        "console errors: {:?}",
        browser.all("CONSOLE")
    );
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium: @microsoft/fetch-event-source
// ---------------------------------------------------------------------------------------------

/// fetch-event-source in the browser subscribes with `POST /events`, an `Authorization: Bearer`
/// header and a `body_kind` (`form` or `json`) body, and resumes with `Last-Event-ID` after the
/// server closes the stream.
fn fetch_event_source(body_kind: &str) {
    let token = "t0ken-for-tests";
    let mut server = ServerProcess::start(&[
        "--demo-interval",
        "0",
        "--retry",
        "2500ms",
        "--drain",
        "100ms",
        "--subscribe-token",
        token,
    ]);
    let mut browser = Script::browser("fetch", &[&server.url(), token, body_kind, "f", "3", "3"]);
    browser.expect("READY");
    let status = browser.expect_seen("UNAUTHORIZED_STATUS");
    assert!(
        status == "401" || status == "403",
        "POST /events without the token: {status}"
    );
    let before = publish_all(&server, "f", &VARIED[..3]);
    browser.expect("GOT");
    server.restart();
    let away = publish_while_away(&server, "f", &VARIED[2..]);
    browser.finish();
    let all: Vec<&Published> = before.iter().chain(&away).collect();
    assert_eq!(
        browser.events(),
        expected(&all),
        "every event once, in order"
    );
    // The first /events request is the probe without a token; the subscription starts after it.
    let requests = browser.all("REQUEST");
    assert_eq!(
        json_field(&requests[0], "authorization"),
        None,
        "{}",
        requests[0]
    );
    let subscribes = &requests[1..];
    let bearer = format!("Bearer {token}");
    assert!(
        subscribes.iter().all(|r| r.contains("\"method\":\"POST\"")
            && json_field(r, "authorization").as_deref() == Some(bearer.as_str())),
        "every subscribe is a POST with the bearer token: {subscribes:#?}"
    );
    assert_resumed_from(subscribes, before[2].id);
}

/// fetch-event-source, form body `topic=f`.
#[test]
fn browser_fetch_event_source_post_form_body() {
    fetch_event_source("form");
}

/// fetch-event-source, JSON body `{"topic":"f"}`.
#[test]
fn browser_fetch_event_source_post_json_body() {
    fetch_event_source("json");
}

// ---------------------------------------------------------------------------------------------
// Client libraries outside the browser
// ---------------------------------------------------------------------------------------------

/// Node's `eventsource` package receives a known sequence, reconnects on its own after the server
/// closed the stream, sends `Last-Event-ID`, and gets the events published while it was away.
#[test]
fn node_eventsource_package_reconnects_with_last_event_id() {
    let mut server = ServerProcess::start(&[
        "--demo-interval",
        "0",
        "--retry",
        "2500ms",
        "--drain",
        "100ms",
    ]);
    let mut client = Script::node("node-eventsource.mjs", &[&server.url(), "n", "3", "3"]);
    client.expect("READY");
    let before = publish_all(&server, "n", &VARIED[..3]);
    client.expect("GOT");
    server.restart();
    let away = publish_while_away(&server, "n", &VARIED[2..]);
    client.finish();
    let all: Vec<&Published> = before.iter().chain(&away).collect();
    assert_eq!(
        client.events(),
        expected(&all),
        "every event once, in order"
    );
    assert_resumed_from(&client.all("REQUEST"), before[2].id);
}

/// Python's httpx-sse receives a known sequence, disconnects, and on reconnecting with
/// `Last-Event-ID` gets exactly the events published while it was away (replayed from history:
/// the ones it already had are in the history too and must not come again), then live ones.
#[test]
fn python_httpx_sse_resumes_with_last_event_id() {
    let server = ServerProcess::start(&["--demo-interval", "0"]);
    let mut client = Script::python("httpx_sse_client.py", &[&server.url(), "p", "3", "3"]);
    client.expect("READY");
    let before = publish_all(&server, "p", &VARIED[..3]);
    let away_from = client.expect("AWAY");
    assert_eq!(
        away_from,
        before[2].id.to_string(),
        "httpx-sse's last event id"
    );
    let away = publish_all(&server, "p", &VARIED[3..]);
    client.send("GO");
    client.expect("READY");
    let live = publish_all(&server, "p", &[(None, "live after resume")]);
    client.finish();
    let all: Vec<&Published> = before.iter().chain(&away).chain(&live).collect();
    assert_eq!(
        client.events(),
        expected(&all),
        "every event once, in order"
    );
    for response in client.all("RESPONSE") {
        assert_eq!(json_field(&response, "status").as_deref(), Some("200"));
        let content_type = json_field(&response, "contentType").unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type}"
        );
    }
}

/// `curl -N` output of one subscription, read as it streams.
struct Curl {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Curl {
    fn start(url: &str, extra: &[&str]) -> Curl {
        let mut child = Command::new("curl")
            .args(["-sS", "-N", "-i", "--max-time", "60"])
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run curl (run ./scripts/setup-test-deps.sh): {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        let mut stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Curl { child, output }
    }

    /// Polls until the output satisfies `done`, or fails after [`WAIT`].
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned();
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "curl: no {what} within {WAIT:?}; got:\n{text}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the response head; returns it.
    fn wait_head(&self) -> String {
        let text = self.wait_for("response head", |t| t.contains("\r\n\r\n"));
        text[..text.find("\r\n\r\n").unwrap()].to_string()
    }

    /// Waits until the body holds `count` event blocks; returns them, exactly as sent.
    fn wait_events(&self, count: usize) -> Vec<String> {
        let text = self.wait_for("events", |t| event_blocks(t).len() >= count);
        event_blocks(&text)
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The complete blocks of an SSE body that carry an event (an `id:` or `data:` line), each with
/// its terminating blank line; `retry:`-only blocks and comments are not events.
fn event_blocks(text: &str) -> Vec<String> {
    let body = match text.find("\r\n\r\n") {
        Some(i) => &text[i + 4..],
        None => return Vec::new(),
    };
    let mut blocks = Vec::new();
    let mut rest = body;
    while let Some(end) = rest.find("\n\n") {
        let block = &rest[..end + 1];
        rest = &rest[end + 2..];
        let lines: Vec<&str> = block
            .lines()
            .filter(|l| !l.starts_with(':') && !l.starts_with("retry:"))
            .collect();
        if !lines.is_empty() {
            blocks.push(lines.iter().map(|l| format!("{l}\n")).collect::<String>() + "\n");
        }
    }
    blocks
}

/// The exact wire form of an event, as the README gives it.
fn wire(p: &Published) -> String {
    let mut out = format!("id: {}\n", p.id);
    if let Some(event) = p.event {
        out.push_str(&format!("event: {event}\n"));
    }
    for line in p.data.split('\n') {
        out.push_str(&format!("data: {line}\n"));
    }
    out + "\n"
}

/// `curl -N` gets the stream unbuffered with the SSE headers and the exact wire bytes, and a
/// second `curl -N -H 'Last-Event-ID: N'` gets exactly the events after N, then live ones.
#[test]
fn curl_streams_exact_events_and_resumes_with_last_event_id() {
    let server = ServerProcess::start(&["--demo-interval", "0", "--retry", "700ms"]);
    let url = format!("{}/events?topic=c", server.url());
    let first = Curl::start(&url, &[]);
    let head = first.wait_head();
    assert!(head.starts_with("HTTP/1.1 200"), "status line: {head}");
    assert!(
        header(&head, "content-type").is_some_and(|v| v.starts_with("text/event-stream")),
        "{head}"
    );
    assert_eq!(header(&head, "cache-control"), Some("no-cache"), "{head}");
    assert_eq!(header(&head, "x-accel-buffering"), Some("no"), "{head}");
    // The first bytes arrive before any event: they carry the server's retry.
    first.wait_for("the retry field", |t| {
        t.split("\r\n\r\n")
            .nth(1)
            .is_some_and(|b| b.lines().any(|l| l == "retry: 700"))
    });
    let before = publish_all(&server, "c", &VARIED[..3]);
    let got = first.wait_events(3);
    assert_eq!(got, before.iter().map(wire).collect::<Vec<_>>());
    drop(first);

    let away = publish_all(&server, "c", &VARIED[3..]);
    let last = before[2].id.to_string();
    let second = Curl::start(&url, &["-H", &format!("Last-Event-ID: {last}")]);
    second.wait_head();
    let live = publish_all(&server, "c", &[(None, "live after resume")]);
    let got = second.wait_events(3);
    let want: Vec<String> = away.iter().chain(&live).map(wire).collect();
    assert_eq!(got, want, "replay after {last}, then live, nothing twice");
}
