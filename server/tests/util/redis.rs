//! A real `redis-server` for the backplane tests: started on a free loopback port, without
//! persistence (`--save '' --appendonly no`) or with it (`--appendonly yes --appendfsync always`
//! in a data folder of its own), stopped and restarted on the same port on demand, killed and
//! reaped on drop (its data folder removed). Install it with `scripts/setup-test-deps.sh`.
//!
//! Besides the default account, Redis has a second one ([`RedisServer::cuttable_url`]): a node
//! given that URL can be cut off Redis alone ([`RedisServer::cut_off`]) while the others go on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TIMEOUT, wait_until};

/// The second account's name and password.
const CUTTABLE: &str = "cuttable";

/// A `redis-server` child process on `127.0.0.1`.
pub struct RedisServer {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Option<Child>,
    /// The data folder of a persistent server (append-only file), removed on drop.
    data_dir: Option<PathBuf>,
}

impl RedisServer {
    /// Starts `redis-server` without persistence on a free loopback port and waits until it
    /// answers `PING`.
    pub fn start() -> RedisServer {
        RedisServer::start_with(false)
    }

    /// Starts `redis-server` with every write fsynced to its append-only file before it is
    /// answered (`--appendonly yes --appendfsync always`): what it acknowledged survives a kill.
    pub fn start_persistent() -> RedisServer {
        RedisServer::start_with(true)
    }

    fn start_with(persistent: bool) -> RedisServer {
        // Redis cannot be asked for port 0: take a free port from the OS and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let data_dir = persistent.then(|| {
            let dir =
                std::env::temp_dir().join(format!("sse-test-redis-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the Redis data folder");
            dir
        });
        let mut server = RedisServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
            data_dir,
        };
        server.restart();
        server
    }

    /// The URL nodes are given (`--redis`).
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// The URL of the second account: a node given it can be cut off alone.
    pub fn cuttable_url(&self) -> String {
        format!("redis://{CUTTABLE}:{CUTTABLE}@{}/0", self.addr)
    }

    /// Cuts every connection of the second account and refuses it new ones (`ACL SETUSER off`,
    /// `CLIENT KILL USER`): a node on [`RedisServer::cuttable_url`] is cut off from Redis while
    /// the others go on.
    pub fn cut_off(&self) {
        assert_eq!(self.command(&["ACL", "SETUSER", CUTTABLE, "off"]), "+OK");
        let killed = self.command(&["CLIENT", "KILL", "USER", CUTTABLE]);
        assert!(killed.starts_with(':'), "CLIENT KILL: {killed}");
    }

    /// Lets the second account connect again.
    pub fn let_back(&self) {
        assert_eq!(self.command(&["ACL", "SETUSER", CUTTABLE, "on"]), "+OK");
    }

    /// Sends one command and returns its reply's first line (`+OK`, `:5`, `-ERR ...`, `$3`):
    /// for commands whose reply is one line.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect_timeout(&self.addr, TIMEOUT).expect("connect Redis");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).expect("send to Redis");
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => reply.push(byte[0]),
                _ => panic!("no reply from Redis to {args:?}"),
            }
        }
        reply.truncate(reply.len() - 2);
        String::from_utf8(reply).expect("UTF-8 reply")
    }

    /// Kills the server (SIGKILL; without persistence its data is gone) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server must be able to die.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server process (SIGSTOP): it keeps its sockets and data but answers nothing,
    /// as a hung or overloaded Redis; [`RedisServer::resume`] lets it go on.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts the server again on the same port (empty, unless it is persistent: then with the
    /// data of its append-only file) and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.addr.port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", ""]);
        match &self.data_dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always"])
                .arg("--dir")
                .arg(dir),
            None => command
                .args(["--appendonly", "no", "--dir"])
                .arg(std::env::temp_dir()),
        };
        let password = format!(">{CUTTABLE}");
        command
            .args(["--user", CUTTABLE, "on", &password, "~*", "&*", "+@all"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command
            .spawn()
            .expect("redis-server not found: run scripts/setup-test-deps.sh");
        self.child = Some(child);
        let addr = self.addr;
        assert!(
            wait_until(TIMEOUT, || ping(addr)),
            "redis-server on {addr} did not answer PING within {TIMEOUT:?}"
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Whether a Redis answers `PING` at `addr`.
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}
