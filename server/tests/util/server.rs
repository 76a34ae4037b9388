//! Servers for the tests: in-process ([`TestServer`]) and as a child process ([`ServerProcess`]).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::*;

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
