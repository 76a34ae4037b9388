//! The command line: every flag has an environment-variable twin, and `--help` shows defaults.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
// Sizes, durations and counts are read by the workspace's one parser, shared with sse-loadgen.
use sse_common::{parse_count_usize, parse_duration, parse_size};

use crate::access::jwt::JwtVerifier;
use crate::config::Config;

/// A lean Server-Sent Events fan-out server.
///
/// Subscribe: GET /events?topic=NAME. Publish: POST /publish (form fields topic, data, event; or
/// a raw body with ?topic=NAME). Metrics: GET /metrics. Console (live figures, playground): GET /.
#[derive(Debug, Parser)]
#[command(name = "sse-server", version)]
pub struct Cli {
    /// Address to listen on: IP:PORT, `[IPv6]:PORT` or HOST:PORT (a host name resolves; its first
    /// IPv4 address is used, else its first). Port 0: the OS chooses. The start-up line says
    /// which address.
    #[arg(long, env = "SSE_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: ListenAddr,
    /// Event loops (threads); 0: one per core.
    #[arg(long, env = "SSE_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Most event streams; past it, a new stream gets 503 with Retry-After. 64 connections more
    /// are kept for short requests (publish, health, metrics, the console page). Default: what
    /// the open-file limit allows.
    #[arg(long, env = "SSE_MAX_CONNECTIONS", value_parser = parse_max_connections)]
    pub max_connections: Option<usize>,
    /// Events kept per topic for Last-Event-ID replay.
    #[arg(long, env = "SSE_HISTORY", default_value = "1024", value_parser = parse_count_usize)]
    pub history: usize,
    /// Bytes kept per topic for replay (e.g. 1MiB, 512k).
    #[arg(long, env = "SSE_HISTORY_BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub history_bytes: u64,
    /// A comment is sent on streams idle this long (e.g. 15s, 500ms); 0 disables.
    #[arg(long, env = "SSE_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Bytes a subscriber may fall behind (beyond the history window) before it is disconnected.
    #[arg(long, env = "SSE_MAX_PENDING", default_value = "1MiB", value_parser = parse_size)]
    pub max_pending: u64,
    /// Largest publish or subscribe request body; 413 past it.
    #[arg(long, env = "SSE_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: u64,
    /// Time allowed for a complete request head, and then for its body; 408 past it.
    #[arg(long, env = "SSE_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// On SIGINT/SIGTERM, open streams are closed spread over this long.
    #[arg(long, env = "SSE_DRAIN", default_value = "1s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Period of the demo source publishing the time on topic `time`; 0 disables it.
    #[arg(long, env = "SSE_DEMO_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub demo_interval: Duration,
    /// Reconnection delay sent to clients in the stream's `retry:` field.
    #[arg(long, env = "SSE_RETRY", default_value = "2s", value_parser = parse_duration)]
    pub retry: Duration,
    /// Require `Authorization: Bearer TOKEN` to publish (works through a proxy). Without it,
    /// only direct requests from this host may: loopback peer, `Host` and `Origin`, no proxy
    /// headers.
    #[arg(long, env = "SSE_PUBLISH_TOKEN", hide_env_values = true)]
    pub publish_token: Option<String>,
    /// Require `Authorization: Bearer TOKEN` (or `?access_token=TOKEN`) to subscribe.
    #[arg(long, env = "SSE_SUBSCRIBE_TOKEN", hide_env_values = true)]
    pub subscribe_token: Option<String>,
    /// Accept JSON Web Tokens signed with HS256 and this secret; their `sse` claim names the
    /// topics their holder may subscribe and publish to. With JWT, every request needs a token.
    #[arg(long, env = "SSE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Accept JSON Web Tokens signed with the private key of this PEM public key (RSA: RS256;
    /// EC P-256: ES256).
    #[arg(long, env = "SSE_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,
    /// Cookie a subscriber's JSON Web Token may come in (for `EventSource` with
    /// `withCredentials`), besides `Authorization: Bearer` and `?access_token=`.
    #[arg(long, env = "SSE_JWT_COOKIE", value_name = "NAME")]
    pub jwt_cookie: Option<String>,
    /// Clock skew allowed on a token's `exp` and `nbf`; an open stream is closed at `exp` plus
    /// this.
    #[arg(long, env = "SSE_JWT_LEEWAY", default_value = "5s", value_parser = parse_duration)]
    pub jwt_leeway: Duration,
    /// Origin allowed to subscribe and publish from a browser (repeatable), or `*`. A page
    /// from a non-loopback origin publishes only with `--publish-token`.
    #[arg(long = "cors-origin", env = "SSE_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Most live topics (published to within --topic-ttl); a publish to a new topic past it
    /// gets 503.
    #[arg(long, env = "SSE_MAX_TOPICS", default_value = "100000", value_parser = parse_count_usize)]
    pub max_topics: usize,
    /// A topic with neither subscribers nor events for this long is forgotten with its history.
    #[arg(long, env = "SSE_TOPIC_TTL", default_value = "10m", value_parser = parse_duration)]
    pub topic_ttl: Duration,
    /// Bytes of retained events over all topics (history, and what slow subscribers still
    /// need); past it the oldest events of the least recently used (published to or subscribed
    /// to) topics go first, never one an open subscriber has not been written yet.
    #[arg(long, env = "SSE_HISTORY_MEMORY", default_value = "256MiB", value_parser = parse_size)]
    pub history_memory: u64,
    /// Kernel send buffer of each stream (SO_SNDBUF), bounding what a stuck subscriber pins in
    /// the kernel; 0 keeps the kernel's autotuning (up to net.ipv4.tcp_wmem's maximum).
    #[arg(long, env = "SSE_SEND_BUFFER", default_value = "16KiB", value_parser = parse_size)]
    pub send_buffer: u64,
    /// While some event loop's oldest undelivered event is older than this, publishes wait
    /// (then 503 after --header-timeout); 0 disables backpressure.
    #[arg(long, env = "SSE_MAX_BACKLOG", default_value = "1s", value_parser = parse_duration)]
    pub max_backlog: Duration,
    /// Join a cluster of servers sharing this Redis (Redis Streams backplane), e.g.
    /// redis://127.0.0.1:6379/0. Without it, one process is the whole system.
    #[arg(long, env = "SSE_REDIS_URL", hide_env_values = true)]
    pub redis: Option<String>,
    /// Listen with SO_REUSEPORT, so several processes share one address (the kernel spreads
    /// new connections over them).
    #[arg(long, env = "SSE_REUSE_PORT")]
    pub reuse_port: bool,
    /// Serve no console: `GET /` answers 404, and no figures are published on `$stats`.
    #[arg(long, env = "SSE_NO_CONSOLE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_console: bool,
    /// Close each stream after about this long (90-100% of it, spread so streams opened
    /// together do not end together); clients reconnect with Last-Event-ID and miss nothing.
    /// Rebalances long-lived streams over processes added later; 0 keeps streams open.
    #[arg(long, env = "SSE_STREAM_LIFETIME", default_value = "0", value_parser = parse_duration)]
    pub stream_lifetime: Duration,
}

impl Cli {
    /// The library configuration these flags describe; fails when the `--jwt-public-key` file
    /// cannot be read or holds no public key.
    pub fn into_config(self) -> Result<Config, String> {
        let public_key = match &self.jwt_public_key {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("cannot read --jwt-public-key {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let jwt = if self.jwt_secret.is_some() || public_key.is_some() {
            let verifier = JwtVerifier::new(
                self.jwt_secret.as_deref().map(str::as_bytes),
                public_key.as_deref(),
                self.jwt_leeway,
            )
            .map_err(|e| match &self.jwt_public_key {
                Some(path) => format!("--jwt-public-key {}: {e}", path.display()),
                None => format!("--jwt-public-key: {e}"),
            })?;
            Some(Arc::new(verifier))
        } else {
            None
        };
        Ok(Config {
            listen: self.listen.chosen,
            threads: self.threads,
            max_connections: self.max_connections,
            history: self.history,
            history_bytes: self.history_bytes,
            heartbeat: self.heartbeat,
            max_pending: self.max_pending,
            max_body: self.max_body,
            header_timeout: self.header_timeout,
            drain: self.drain,
            demo_interval: self.demo_interval,
            retry: self.retry,
            publish_token: self.publish_token,
            subscribe_token: self.subscribe_token,
            jwt,
            jwt_cookie: self.jwt_cookie,
            cors_origins: self.cors_origins,
            max_topics: self.max_topics,
            topic_ttl: self.topic_ttl,
            history_memory: self.history_memory,
            send_buffer: self.send_buffer,
            max_backlog: self.max_backlog,
            redis: self.redis,
            reuse_port: self.reuse_port,
            console: !self.no_console,
            stream_lifetime: self.stream_lifetime,
        })
    }
}

/// `--listen` as given, and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// The text given (`localhost:8081`).
    pub given: String,
    /// Every address it resolved to, in the resolver's order.
    pub resolved: Vec<SocketAddr>,
    /// The address to listen on: the first IPv4 one of `resolved`, else the first.
    pub chosen: SocketAddr,
}

impl ListenAddr {
    /// What the start-up line adds when `--listen` was a host name (nothing for an address):
    /// ` listen=localhost:8081 (resolved to 127.0.0.1:8081, [::1]:8081; listening on the first
    /// IPv4 one)`.
    pub fn resolution_note(&self) -> String {
        if self.given.parse::<SocketAddr>().is_ok() {
            return String::new();
        }
        let resolved: Vec<String> = self.resolved.iter().map(SocketAddr::to_string).collect();
        let rule = if self.resolved.len() == 1 {
            ""
        } else if self.chosen.is_ipv4() {
            "; listening on the first IPv4 one"
        } else {
            "; no IPv4 address, listening on the first"
        };
        format!(
            " listen={} (resolved to {}{rule})",
            self.given,
            resolved.join(", ")
        )
    }
}

/// Reads `--listen`: an address (`127.0.0.1:8080`, `[::1]:0`), or `HOST:PORT` with a host name
/// resolved now. `:PORT` is refused: Go-style it would mean every interface, which would expose
/// the server (and, with no `--publish-token`, trip the publish policy's warning); a silent
/// loopback would surprise those who expect that. The message names both spellings.
fn parse_listen(text: &str) -> Result<ListenAddr, String> {
    let given = text.trim();
    if let Ok(addr) = given.parse::<SocketAddr>() {
        return Ok(ListenAddr {
            given: given.to_owned(),
            resolved: vec![addr],
            chosen: addr,
        });
    }
    if given.starts_with('[') || given.matches(':').count() > 1 {
        return Err(format!(
            "{given:?}: an IPv6 address is written [ADDRESS]:PORT, e.g. [::1]:8080"
        ));
    }
    if given.starts_with(':') {
        return Err(format!(
            "{given:?} names no host: give 127.0.0.1{given} to listen on this host only, or \
             0.0.0.0{given} for every interface (then set --publish-token too)"
        ));
    }
    let Some((host, port)) = given.rsplit_once(':') else {
        return Err(format!(
            "{given:?} has no port: give HOST:PORT, e.g. 127.0.0.1:8080 or localhost:8080"
        ));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{given:?}: port {port:?} is not a number from 0 to 65535"))?;
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    let chosen = resolved
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolves to no address"))?;
    Ok(ListenAddr {
        given: given.to_owned(),
        resolved,
        chosen,
    })
}

/// A connection cap: a count of at least 1 (0 would refuse every client).
fn parse_max_connections(text: &str) -> Result<usize, String> {
    match parse_count_usize(text) {
        Ok(0) => Err(
            "0 would refuse every connection; give at least 1, or leave the flag out \
                      to take what the open-file limit allows"
                .to_owned(),
        ),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_common::parse_count;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5h").is_err());
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1x").is_err());
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1.5k"), Ok(1500));
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("-1").is_err());
    }

    /// `--listen` takes addresses as they are and host names resolved (IPv4 first), and refuses
    /// each mistake saying what to write instead; `:PORT` is refused rather than guessed.
    /// (Guards against issue 15, defect 9: `localhost:8081` was refused.)
    #[test]
    fn listen_takes_addresses_and_host_names() {
        for (text, chosen, note) in [
            ("127.0.0.1:0", "127.0.0.1:0", ""),
            ("[::1]:8080", "[::1]:8080", ""),
            ("0.0.0.0:8080", "0.0.0.0:8080", ""),
            (
                "localhost:8081",
                "127.0.0.1:8081",
                " listen=localhost:8081 (resolved to 127.0.0.1:8081",
            ),
        ] {
            let listen = parse_listen(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(listen.chosen.to_string(), chosen, "{text}");
            assert!(listen.resolved.contains(&listen.chosen), "{text}");
            let got = listen.resolution_note();
            assert!(
                got.starts_with(note) && got.is_empty() == note.is_empty(),
                "{text}: {got:?}"
            );
        }
        for (text, reason) in [
            (
                ":0",
                "give 127.0.0.1:0 to listen on this host only, or 0.0.0.0:0 for every",
            ),
            (":8080", "names no host"),
            ("localhost", "has no port: give HOST:PORT"),
            ("::1:8080", "[ADDRESS]:PORT"),
            ("[::1]", "[ADDRESS]:PORT"),
            ("localhost:99999", "is not a number from 0 to 65535"),
            ("nosuch.invalid:8080", "cannot resolve \"nosuch.invalid\""),
        ] {
            let error = parse_listen(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
        let cli = Cli::try_parse_from(["sse-server", "--listen", "localhost:0"]).unwrap();
        assert!(cli.into_config().unwrap().listen.ip().is_loopback());
    }

    /// `--max-connections 0` is refused with a reason.
    #[test]
    fn refuses_a_zero_connection_cap() {
        let error = Cli::try_parse_from(["sse-server", "--max-connections", "0"]).unwrap_err();
        assert!(
            error.to_string().contains("would refuse every connection"),
            "{error}"
        );
        assert!(Cli::try_parse_from(["sse-server", "--max-connections", "1"]).is_ok());
    }

    /// `--help` parses and every flag maps into the config.
    #[test]
    fn flags_map_to_config() {
        let cli = Cli::try_parse_from([
            "sse-server",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "3",
            "--heartbeat",
            "1s",
            "--cors-origin",
            "http://a",
            "--cors-origin",
            "http://b",
            "--max-connections",
            "10k",
            "--redis",
            "redis://127.0.0.1:6379/0",
            "--reuse-port",
        ])
        .unwrap();
        let config = cli.into_config().unwrap();
        assert_eq!(config.threads, 3);
        assert_eq!(config.heartbeat, Duration::from_secs(1));
        assert_eq!(config.cors_origins, ["http://a", "http://b"]);
        assert_eq!(config.max_connections, Some(10_000));
        assert_eq!(config.history, 1024);
        assert_eq!(config.redis.as_deref(), Some("redis://127.0.0.1:6379/0"));
        assert!(config.reuse_port);
        assert!(config.console, "the console is on unless --no-console");
        let cli = Cli::try_parse_from(["sse-server", "--no-console"]).unwrap();
        assert!(!cli.into_config().unwrap().console);
    }
}
