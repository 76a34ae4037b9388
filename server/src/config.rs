//! The server's settings, with the defaults the command line shows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::access::jwt::JwtVerifier;

/// Everything that can be set on the command line (see `cli`), as the library takes it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0: the OS chooses).
    pub listen: SocketAddr,
    /// Event loops (threads); 0 means one per core.
    pub threads: usize,
    /// Most event streams (64 sockets more are kept for short requests); `None`: what the
    /// open-file limit allows.
    pub max_connections: Option<usize>,
    /// Events kept per topic for replay.
    pub history: usize,
    /// Bytes kept per topic for replay.
    pub history_bytes: u64,
    /// Idle streams get a comment this often.
    pub heartbeat: Duration,
    /// Bytes a subscriber may fall behind before it is disconnected.
    pub max_pending: u64,
    /// Largest request body.
    pub max_body: u64,
    /// Time allowed for a complete request head (and then for its body).
    pub header_timeout: Duration,
    /// On shutdown, streams are closed spread over this long.
    pub drain: Duration,
    /// Period of the demo time source on topic `time`; zero disables it.
    pub demo_interval: Duration,
    /// Reconnection delay sent to clients in the `retry:` field.
    pub retry: Duration,
    /// Bearer token required to publish; `None`: direct requests from this host only (see
    /// `access::local`).
    pub publish_token: Option<String>,
    /// Bearer token required to subscribe.
    pub subscribe_token: Option<String>,
    /// Verifies JSON Web Tokens (`--jwt-secret`, `--jwt-public-key`); `None`: static tokens only.
    pub jwt: Option<Arc<JwtVerifier>>,
    /// Cookie a subscriber's JSON Web Token may come in.
    pub jwt_cookie: Option<String>,
    /// Origins allowed by CORS (`*` for any).
    pub cors_origins: Vec<String>,
    /// Most live topics (published to within `topic_ttl`); a publish to a new topic past it
    /// gets `503`.
    pub max_topics: usize,
    /// A topic with neither subscribers nor events for this long is forgotten, history and all.
    pub topic_ttl: Duration,
    /// Bytes of retained events (history and what slow subscribers still need) over all topics.
    pub history_memory: u64,
    /// Send buffer of a streaming socket (`SO_SNDBUF`); 0 leaves the kernel's autotuning.
    pub send_buffer: u64,
    /// While a loop's fan-out backlog is longer than this, publishes wait; 0 disables.
    pub max_backlog: Duration,
    /// Redis URL of the backplane (`redis://host:port/db`); `None`: the in-process broker.
    pub redis: Option<String>,
    /// Listen with `SO_REUSEPORT`, so several processes can share the address.
    pub reuse_port: bool,
    /// Serve the console at `/` and produce its figures on `$stats` (`--no-console`: neither).
    pub console: bool,
    /// A stream is closed after about this long (each between 90% and 100% of it, so streams
    /// opened together do not all end together); the client reconnects with `Last-Event-ID`
    /// and misses nothing. Zero: streams last as long as their clients.
    pub stream_lifetime: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            threads: 0,
            max_connections: None,
            history: 1024,
            history_bytes: 1 << 20,
            heartbeat: Duration::from_secs(15),
            max_pending: 1 << 20,
            max_body: 1 << 20,
            header_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(1),
            demo_interval: Duration::from_secs(1),
            retry: Duration::from_secs(2),
            publish_token: None,
            subscribe_token: None,
            jwt: None,
            jwt_cookie: None,
            cors_origins: Vec::new(),
            max_topics: 100_000,
            topic_ttl: Duration::from_secs(600),
            history_memory: 256 << 20,
            send_buffer: 16 << 10,
            max_backlog: Duration::from_secs(1),
            redis: None,
            reuse_port: false,
            console: true,
            stream_lifetime: Duration::ZERO,
        }
    }
}
