//! Shared helpers of the server's integration tests.
//!
//! # Layout
//! - `server.rs`: [`TestServer`], an in-process server on `127.0.0.1:0`, shut down and joined on
//!   drop; [`ServerProcess`], the `sse-server` binary as a child process, killed and reaped on drop.
//! - `http.rs`: [`Conn`] and [`Response`], a raw HTTP/1.x client over one socket, for exact
//!   bytes, keep-alive, pipelining and malformed requests; [`metrics`], [`publish`], [`form`]:
//!   small conveniences over the HTTP API.
//! - `sse.rs`: [`SseStream`], an open event stream, read block by block ([`SseEvent`]).
//! - here: [`wait_until`], [`deadline`]: every wait has a deadline; no test sleeps for a result.
//! - [`redis::RedisServer`]: a real `redis-server` on a free loopback port, for the backplane.
//! - [`readme_flags`]: the README's flag tables against a binary's `--help` (shared with the
//!   load generator's tests).
//!
//! Every read has a deadline ([`TIMEOUT`] unless a test says otherwise), so a broken server
//! makes a test fail, never hang.

#![allow(dead_code)]

mod http;
pub mod readme_flags;
pub mod redis;
mod server;
mod sse;

// Each test binary uses a part of these.
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use server::*;
#[allow(unused_imports)]
pub use sse::*;

use std::thread;
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
