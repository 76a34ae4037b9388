//! The command line: every flag has an environment-variable twin, and `--help` shows defaults.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::config::Config;

/// A lean Server-Sent Events fan-out server.
///
/// Subscribe: GET /events?topic=NAME. Publish: POST /publish (form fields topic, data, event; or
/// a raw body with ?topic=NAME). Metrics: GET /metrics. Demo page: GET /.
#[derive(Debug, Parser)]
#[command(name = "sse-server", version)]
pub struct Cli {
    /// Address to listen on (port 0: the OS chooses; the start-up line says which).
    #[arg(long, env = "SSE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Event loops (threads); 0: one per core.
    #[arg(long, env = "SSE_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Most open connections; past it, new ones get 503 with Retry-After. Default: what the
    /// open-file limit allows.
    #[arg(long, env = "SSE_MAX_CONNECTIONS", value_parser = parse_count)]
    pub max_connections: Option<usize>,
    /// Events kept per topic for Last-Event-ID replay.
    #[arg(long, env = "SSE_HISTORY", default_value = "1024", value_parser = parse_count)]
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
    /// Origin allowed to subscribe and publish from a browser (repeatable), or `*`. A page
    /// from a non-loopback origin publishes only with `--publish-token`.
    #[arg(long = "cors-origin", env = "SSE_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Most distinct topics kept; publishing to a new topic past it gets 503.
    #[arg(long, env = "SSE_MAX_TOPICS", default_value = "100000", value_parser = parse_count)]
    pub max_topics: usize,
}

impl Cli {
    /// The library configuration these flags describe.
    pub fn into_config(self) -> Config {
        Config {
            listen: self.listen,
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
            cors_origins: self.cors_origins,
            max_topics: self.max_topics,
        }
    }
}

/// Parses a duration: `500ms`, `15s`, `2m`, or a bare number of seconds (fractions allowed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = split_unit(text);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (examples: 500ms, 15s, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?} (use ms, s or m)"
            ));
        }
    };
    if !(0.0..=1e9).contains(&seconds) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a size in bytes: `512`, `64k`, `1KiB`, `1m`, `1MiB`, `1g`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = split_unit(text);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?} (examples: 4096, 64k, 1MiB)"))?;
    let multiplier: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "invalid size unit in {text:?} (use k, KiB, m, MiB, g)"
            ));
        }
    };
    let bytes = value * multiplier;
    if !(0.0..=1e15).contains(&bytes) {
        return Err(format!("size {text:?} out of range"));
    }
    Ok(bytes as u64)
}

/// Parses a count: `1000`, `10k`, `1.5k`, `1m`.
pub fn parse_count(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (number, unit) = split_unit(text);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid count {text:?} (examples: 500, 10k, 1.5k)"))?;
    let multiplier = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "m" | "M" => 1e6,
        _ => return Err(format!("invalid count suffix in {text:?} (use k or m)")),
    };
    let count = value * multiplier;
    if !(0.0..=1e12).contains(&count) || count.fract() != 0.0 {
        return Err(format!("count {text:?} must be a whole number"));
    }
    Ok(count as usize)
}

fn split_unit(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ])
        .unwrap();
        let config = cli.into_config();
        assert_eq!(config.threads, 3);
        assert_eq!(config.heartbeat, Duration::from_secs(1));
        assert_eq!(config.cors_origins, ["http://a", "http://b"]);
        assert_eq!(config.max_connections, Some(10_000));
        assert_eq!(config.history, 1024);
    }
}
