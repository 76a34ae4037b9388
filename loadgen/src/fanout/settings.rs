//! What a fanout run is configured by ([`FanoutSettings`]), its validation, and the requests
//! and addresses it resolves to.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::subscriber::unix_now_ns;
use crate::url::HttpUrl;

/// Most publishes in flight in the overload phase (each is a thread and a connection).
pub const MAX_OVERLOAD_IN_FLIGHT: usize = 64;

/// Everything a fanout run is configured by.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutSettings {
    /// The subscribe URLs, one per server (node); subscriber `i` connects to `urls[i % n]`.
    pub urls: Vec<String>,
    /// The publish URLs; event `i` goes to `publish_urls[i % n]`. Empty: `/publish?topic=T`
    /// on the first subscribe URL's server, `T` from that URL.
    pub publish_urls: Vec<String>,
    /// Extra headers of subscribe requests.
    pub headers: Vec<(String, String)>,
    /// Extra headers of publish requests.
    pub publish_headers: Vec<(String, String)>,
    /// Subscribers to open.
    pub connections: u64,
    /// Subscribers opened per second.
    pub connect_rate: f64,
    /// Event loops in total.
    pub threads: usize,
    /// Worker processes; 0: as many as the open-file limit requires.
    pub processes: usize,
    /// Local addresses to connect from.
    pub source_ips: Vec<IpAddr>,
    /// Events of the main phase.
    pub events: u64,
    /// Events per second of the main phase.
    pub rate: f64,
    /// Payload size, bytes.
    pub payload: u64,
    /// Publishing connections; 0: one per 1,000 events/s of the phase (at most 16).
    pub publishers: usize,
    /// How long to wait for stragglers after the last event was published.
    #[serde(with = "secs")]
    pub drain_timeout: Duration,
    /// Time allowed from connect to response head.
    #[serde(with = "secs")]
    pub response_timeout: Duration,
    /// Reconnect a stream that ended, after `retry`, to the next URL, with `Last-Event-ID`.
    pub reconnect: bool,
    /// The reconnection delay until the server sends `retry`.
    #[serde(with = "secs")]
    pub retry: Duration,
    /// Idle time after the ramp before the "after" memory readings.
    #[serde(with = "secs")]
    pub settle: Duration,
    /// The server's pids (one per node), for /proc readings summed over their trees.
    pub server_pids: Vec<u32>,
    /// The server's Prometheus endpoint.
    pub metrics_url: Option<String>,
    /// Run the rate search after the main phase.
    pub rate_search: bool,
    /// Fewest events per search phase.
    pub search_events: u64,
    /// Length of a search phase: a phase publishes `rate x search_phase` events (at least
    /// `search_events`), so a high rate is held long enough that socket buffers cannot hide it.
    #[serde(with = "secs")]
    pub search_phase: Duration,
    /// A search phase fails when p99 latency exceeds this.
    #[serde(with = "secs")]
    pub max_p99: Duration,
    /// Highest rate the search tries.
    pub max_rate: f64,
    /// Most search phases.
    pub max_search_phases: usize,
    /// After the main phase and the rate search, publish back to back for this long (a
    /// closed loop: each publishing connection sends its next event when the last is
    /// answered), then measure the delivery of that burst. `None`: no overload phase.
    #[serde(with = "opt_secs")]
    pub overload: Option<Duration>,
    /// Publishes in flight during the overload phase (one publishing connection each).
    pub overload_in_flight: usize,
    /// After the overload burst, wait this long (at most) for the deliveries still owed.
    #[serde(with = "secs")]
    pub overload_drain: Duration,
    /// Name of the server under test.
    pub label: String,
    /// Name of the scenario; default `"<payload>B@<rate>/s"`.
    pub scenario: Option<String>,
    /// No progress line.
    pub quiet: bool,
    /// The binary to run as worker (default: this executable).
    #[serde(skip)]
    pub worker_exe: Option<PathBuf>,
}

/// Durations as seconds (a float) in the JSON of the settings.
mod secs {
    use serde::Serializer;
    use std::time::Duration;
    /// Writes `d` as seconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Optional durations as seconds, or null.
mod opt_secs {
    use serde::Serializer;
    use std::time::Duration;
    /// Writes `d` as seconds, or null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

impl Default for FanoutSettings {
    fn default() -> Self {
        FanoutSettings {
            urls: Vec::new(),
            publish_urls: Vec::new(),
            headers: Vec::new(),
            publish_headers: Vec::new(),
            connections: 100,
            connect_rate: 5000.0,
            threads: 1,
            processes: 0,
            source_ips: Vec::new(),
            events: 100,
            rate: 100.0,
            payload: 64,
            publishers: 1,
            drain_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            settle: Duration::from_secs(1),
            reconnect: false,
            retry: Duration::from_secs(3),
            server_pids: Vec::new(),
            metrics_url: None,
            rate_search: false,
            search_events: 20,
            search_phase: Duration::from_secs(2),
            max_p99: Duration::from_secs(1),
            max_rate: 100_000.0,
            max_search_phases: 16,
            overload: None,
            overload_in_flight: 1,
            overload_drain: Duration::from_secs(30),
            label: "server".into(),
            scenario: None,
            quiet: true,
            worker_exe: None,
        }
    }
}

/// A fresh random run id.
pub(super) fn random_run_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(unix_now_ns());
    h.write_u32(std::process::id());
    h.finish()
}

/// The subscribe request for `url`.
pub fn subscribe_request(
    url: &HttpUrl,
    headers: &[(String, String)],
    method: &str,
    body: Option<&str>,
    last_event_id: Option<&str>,
) -> String {
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: sse-loadgen/{}\r\n",
        url.path_and_query,
        url.host_header(),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(id) = last_event_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    } else {
        req.push_str("\r\n");
    }
    req
}

/// The publish URLs: those given, or `/publish?topic=T` on the server of `first`, the first
/// subscribe URL.
pub fn publish_urls_for(settings: &FanoutSettings, first: &HttpUrl) -> Result<Vec<HttpUrl>> {
    if !settings.publish_urls.is_empty() {
        return settings
            .publish_urls
            .iter()
            .map(|u| HttpUrl::parse(u))
            .collect();
    }
    let topic = first.query_param("topic").unwrap_or("default");
    Ok(vec![HttpUrl::parse(&format!(
        "http://{}/publish?topic={topic}",
        first.host_header()
    ))?])
}

/// Checks that `addr` accepts TCP connections.
pub(super) fn preflight(addr: SocketAddr, what: &str) -> Result<()> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map(drop)
        .map_err(|source| Error::Connect {
            addr: format!("{what} {addr}"),
            source,
        })
}

/// Validates settings that clap cannot.
pub(super) fn validate(s: &FanoutSettings) -> Result<()> {
    let bad = |m: &str| Err(Error::Config(m.to_string()));
    if s.urls.is_empty() {
        return bad("--url is required");
    }
    if s.connections == 0 {
        return bad("--connections must be at least 1");
    }
    crate::payload::check_size(s.payload).map_err(Error::Config)?;
    if s.events == 0 {
        return bad("--events must be at least 1");
    }
    if !(s.rate > 0.0 && s.rate.is_finite()) {
        return bad("--rate must be greater than 0");
    }
    if !(s.connect_rate > 0.0 && s.connect_rate.is_finite()) {
        return bad("--connect-rate must be greater than 0");
    }
    if s.threads == 0 {
        return bad("--threads must be at least 1");
    }
    if s.rate_search && s.search_events == 0 {
        return bad("--search-events must be at least 1");
    }
    if s.overload.is_some_and(|d| d.is_zero()) {
        return bad("--overload must be longer than 0 (leave it out for no overload phase)");
    }
    if !(1..=MAX_OVERLOAD_IN_FLIGHT).contains(&s.overload_in_flight) {
        return Err(Error::Config(format!(
            "--overload-in-flight must be from 1 to {MAX_OVERLOAD_IN_FLIGHT}"
        )));
    }
    // Loss tracking keeps one bit per event and connection; bound it to 1 GiB.
    let events = s
        .events
        .max(if s.rate_search { s.search_events } else { 0 });
    if events.saturating_mul(s.connections) / 8 > 1 << 30 {
        return bad(
            "--events x --connections needs more than 1 GiB of loss-tracking bits; use fewer events",
        );
    }
    Ok(())
}
