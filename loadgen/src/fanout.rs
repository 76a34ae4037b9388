//! The `fanout` measurement: open N subscribers, publish E events on a fixed schedule, wait for
//! the drain, count what arrived, and measure memory and CPU on both sides; optionally search
//! for the highest event rate delivered without loss.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::group::{LocalGroup, SubscriberGroup};
use crate::publisher::{PublishOutcome, PublishTarget, publish_phase};
use crate::stats::{ErrorCounts, PhaseReport, count_error, counts_by_name};
use crate::subscriber::{ProgressSnapshot, SubscriberTarget, unix_now_ns};
use crate::sysinfo::{self, ServerProbe};
use crate::url::HttpUrl;
use crate::worker::{WorkerConfig, WorkerGroup};

/// File descriptors kept free in each process for pipes, publishers and /proc reads.
const FD_RESERVE: u64 = 64;
/// Ephemeral ports per source address (32768-60999).
const PORTS_PER_ADDRESS: u64 = 28_000;

/// Everything a fanout run is configured by.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutSettings {
    /// The subscribe URL.
    pub url: String,
    /// The publish URL (default: `/publish?topic=T` on the same server, `T` from `url`).
    pub publish_url: Option<String>,
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
    /// Idle time after the ramp before the "after" memory readings.
    #[serde(with = "secs")]
    pub settle: Duration,
    /// The server's pid, for /proc readings.
    pub server_pid: Option<u32>,
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

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Default for FanoutSettings {
    fn default() -> Self {
        FanoutSettings {
            url: String::new(),
            publish_url: None,
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
            server_pid: None,
            metrics_url: None,
            rate_search: false,
            search_events: 20,
            search_phase: Duration::from_secs(2),
            max_p99: Duration::from_secs(1),
            max_rate: 100_000.0,
            max_search_phases: 16,
            label: "server".into(),
            scenario: None,
            quiet: true,
            worker_exe: None,
        }
    }
}

/// One phase of the rate search.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchPhase {
    /// Events per second.
    pub rate: f64,
    /// Events published.
    pub events: u64,
    /// Deliveries.
    pub deliveries: u64,
    /// Lost deliveries.
    pub lost: u64,
    /// Duplicated deliveries.
    pub duplicated: u64,
    /// p99 latency, µs.
    pub p99_us: u64,
    /// Whether the publisher kept the schedule.
    pub kept_schedule: bool,
    /// Publish failures.
    pub publish_errors: u64,
    /// Server CPU seconds during the phase.
    pub server_cpu_s: Option<f64>,
    /// The phase passed: no loss, no publish error, p99 within `--max-p99`, schedule kept.
    pub passed: bool,
}

/// The result of one fanout run: every figure and the settings. One JSON line per run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FanoutReport {
    /// Name of the server under test (`--label`).
    pub label: String,
    /// Name of the scenario (`--scenario`, default `<payload>B@<rate>/s`).
    pub scenario: String,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// When it finished.
    pub finished_unix_s: f64,
    /// Subscribe URL.
    pub url: String,
    /// Publish URL.
    pub publish_url: String,
    /// Subscribers asked for.
    pub connections: u64,
    /// Event loops.
    pub threads: usize,
    /// Worker processes (1: none, all in this process).
    pub processes: usize,
    /// Source addresses used.
    pub source_ips: usize,
    /// Asked connect rate, per second.
    pub connect_rate: f64,
    /// Events of the main phase.
    pub events: u64,
    /// Event rate of the main phase, per second.
    pub rate: f64,
    /// Payload bytes.
    pub payload_bytes: u64,
    /// Publishing connections.
    pub publishers: usize,
    /// Drain timeout, s.
    pub drain_timeout_s: f64,
    /// Response (connect to head) timeout, s.
    pub response_timeout_s: f64,
    /// Fewest events per rate-search phase.
    pub search_events: u64,
    /// Length of a rate-search phase, s.
    pub search_phase_s: f64,
    /// p99 limit of a passing search phase, ms.
    pub max_p99_ms: f64,
    /// Highest rate the search tries, events/s.
    pub max_rate: f64,
    /// Soft open-file limit per process.
    pub fd_limit: u64,
    /// Where latency is measured from: always `scheduled_send_time`.
    pub latency_origin: String,
    /// Subscribers that got a 200 event stream.
    pub connections_open: u64,
    /// Subscribers that failed to.
    pub connections_failed: u64,
    /// Connections resolved (open or failed) per second during the ramp.
    pub connect_rate_achieved: f64,
    /// Ramp duration, s.
    pub ramp_s: f64,
    /// Distinct deliveries in the main phase.
    pub deliveries: u64,
    /// Events x connections open at the start of the main phase.
    pub expected_deliveries: u64,
    /// Deliveries that never arrived (within the drain timeout).
    pub lost: u64,
    /// Connections that missed at least one event of the main phase.
    pub connections_with_loss: u64,
    /// Deliveries received more than once.
    pub duplicated: u64,
    /// Deliveries received after a later event.
    pub out_of_order: u64,
    /// Deliveries of an earlier phase arriving after its end.
    pub late: u64,
    /// Connections that dropped during the main phase.
    pub dropped_connections: u64,
    /// Failures by kind over the whole run (ramp, phases, publishing).
    pub errors: BTreeMap<String, u64>,
    /// Events published with a 2xx answer in the main phase.
    pub published: u64,
    /// Largest publisher delay behind schedule, ms.
    pub publish_max_lag_ms: f64,
    /// Whether the publisher kept the schedule in the main phase.
    pub publisher_kept_schedule: bool,
    /// Latency percentiles of the main phase, µs.
    pub latency_p50_us: u64,
    /// p90.
    pub latency_p90_us: u64,
    /// p99.
    pub latency_p99_us: u64,
    /// p99.9.
    pub latency_p999_us: u64,
    /// Maximum.
    pub latency_max_us: u64,
    /// Mean.
    pub latency_mean_us: f64,
    /// Per event, time until the last subscriber had it: p50, ms.
    pub last_subscriber_p50_ms: f64,
    /// p99.
    pub last_subscriber_p99_ms: f64,
    /// Maximum.
    pub last_subscriber_max_ms: f64,
    /// Deliveries per second, from the first scheduled send to the last receipt.
    pub deliveries_per_sec: f64,
    /// Where server memory and CPU come from: `proc`, `metrics` or `none`.
    pub memory_source: String,
    /// Server RSS before opening the connections, bytes.
    pub server_rss_before_bytes: Option<u64>,
    /// Server RSS with every connection open and idle, bytes.
    pub server_rss_after_bytes: Option<u64>,
    /// (after - before) / connections open.
    pub server_rss_per_conn_bytes: Option<f64>,
    /// Kernel TCP socket memory before, bytes: buffers (`/proc/net/sockstat`) plus socket slab
    /// objects (`/proc/slabinfo`, when readable).
    pub kernel_sock_mem_before_bytes: Option<u64>,
    /// Kernel TCP socket memory after, bytes.
    pub kernel_sock_mem_after_bytes: Option<u64>,
    /// (after - before) / connections open; on loopback both ends are counted.
    pub kernel_sock_mem_per_conn_bytes: Option<f64>,
    /// Server CPU seconds during the main phase.
    pub server_cpu_s: Option<f64>,
    /// Server CPU seconds per million deliveries in the main phase.
    pub server_cpu_s_per_million_deliveries: Option<f64>,
    /// CPU seconds of the load generator (all its processes) over the whole run.
    pub loadgen_cpu_s: f64,
    /// Load generator CPU per delivery in the main phase (publishing included), µs.
    pub loadgen_cpu_us_per_delivery: Option<f64>,
    /// CPU of the subscriber threads alone (the receive path) per delivery in the main phase, µs.
    pub loadgen_subscriber_cpu_us_per_delivery: Option<f64>,
    /// Resident memory of the load generator (all its processes) with every connection open.
    pub loadgen_rss_bytes: u64,
    /// Whether the rate search ran.
    pub rate_search: bool,
    /// Highest rate of a passing search phase, events/s (the search doubles the rate from
    /// `--rate` until a phase fails, then bisects to within 10 %).
    pub max_sustained_rate: Option<f64>,
    /// That rate x connections open.
    pub max_sustained_deliveries_per_sec: Option<f64>,
    /// Server CPU seconds per million deliveries over the search phases.
    pub rate_search_server_cpu_s_per_million_deliveries: Option<f64>,
    /// Every search phase.
    pub rate_search_phases: Vec<SearchPhase>,
}

/// A finished run: the report and the main phase's latency histogram.
#[derive(Debug)]
pub struct FanoutRun {
    /// Every figure.
    pub report: FanoutReport,
    /// Main-phase latency, µs.
    pub latency: Histogram<u64>,
}

/// A fresh random run id.
fn random_run_id() -> u64 {
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

/// The publish URL: given, or `/publish?topic=T` on the subscribe URL's server.
pub fn publish_url_for(settings: &FanoutSettings, url: &HttpUrl) -> Result<HttpUrl> {
    match &settings.publish_url {
        Some(u) => HttpUrl::parse(u),
        None => {
            let topic = url.query_param("topic").unwrap_or("default");
            HttpUrl::parse(&format!(
                "http://{}/publish?topic={topic}",
                url.host_header()
            ))
        }
    }
}

/// Checks that `addr` accepts TCP connections.
fn preflight(addr: SocketAddr, what: &str) -> Result<()> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map(drop)
        .map_err(|source| Error::Connect {
            addr: format!("{what} {addr}"),
            source,
        })
}

/// Validates settings that clap cannot.
fn validate(s: &FanoutSettings) -> Result<()> {
    let bad = |m: &str| Err(Error::Config(m.to_string()));
    if s.connections == 0 {
        return bad("--connections must be at least 1");
    }
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

/// Runs one fanout measurement.
pub fn run_fanout(settings: &FanoutSettings) -> Result<FanoutRun> {
    validate(settings)?;
    let started_unix_s = unix_now_ns() as f64 / 1e9;
    let cpu_start = sysinfo::self_cpu_seconds();
    let url = HttpUrl::parse(&settings.url)?;
    let publish_url = publish_url_for(settings, &url)?;
    let addr = url.resolve()?;
    let publish_addr = publish_url.resolve()?;
    preflight(addr, "subscribe server")?;
    preflight(publish_addr, "publish server")?;
    let probe = match (settings.server_pid, &settings.metrics_url) {
        (Some(pid), _) => {
            if sysinfo::tree_rss_bytes(pid).is_none() {
                return Err(Error::Config(format!(
                    "--server-pid {pid}: no such process"
                )));
            }
            ServerProbe::Pid(pid)
        }
        (None, Some(m)) => ServerProbe::Metrics(HttpUrl::parse(m)?),
        (None, None) => ServerProbe::None,
    };
    let (fd_limit, _) = sysinfo::raise_fd_limit();
    let n = settings.connections;
    let per_process = fd_limit.saturating_sub(FD_RESERVE).max(1);
    let processes = if settings.processes == 0 {
        n.div_ceil(per_process) as usize
    } else {
        settings.processes
    }
    .clamp(1, n as usize);
    let progress_line = !settings.quiet && std::io::stderr().is_terminal();
    if n.div_ceil(processes as u64) > per_process {
        eprintln!(
            "sse-loadgen: warning: {} connections per process exceed the open-file limit {fd_limit}; use more --processes",
            n.div_ceil(processes as u64)
        );
    }
    let addresses = settings.source_ips.len().max(1) as u64;
    if n > PORTS_PER_ADDRESS * addresses {
        eprintln!(
            "sse-loadgen: warning: {n} connections from {addresses} source address(es) may exhaust the ~28k ephemeral ports per address; use --source-ips"
        );
    }
    let run_id = random_run_id();
    let request = subscribe_request(&url, &settings.headers, "GET", None, None);
    let target = SubscriberTarget {
        addr,
        request,
        source_ips: settings.source_ips.clone(),
        response_timeout_ms: settings.response_timeout.as_millis() as u64,
        run_id,
    };
    let publish = PublishTarget {
        url: publish_url.clone(),
        addr: publish_addr,
        headers: settings.publish_headers.clone(),
        run_id,
        payload: settings.payload as usize,
        publishers: settings.publishers,
    };

    // Memory before.
    let rss_before = probe.rss_bytes();
    let sock_before = sysinfo::tcp_socket_memory_bytes();

    // Ramp.
    let ramp_start = Instant::now();
    let mut groups = start_groups(settings, target, processes)?;
    let ramp_budget = Duration::from_secs_f64(n as f64 / settings.connect_rate)
        + settings.response_timeout
        + Duration::from_secs(10);
    let mut last_progress = ProgressSnapshot::default();
    loop {
        let p = total_progress(&groups);
        if progress_line && p != last_progress {
            let secs = ramp_start.elapsed().as_secs_f64().max(1e-3);
            eprint!(
                "\r  connections open {:>7}/{n}  failed {:>6}  {:>8.0}/s ",
                p.opened,
                p.failed,
                (p.opened + p.failed) as f64 / secs
            );
        }
        last_progress = p;
        if p.opened + p.failed >= n || ramp_start.elapsed() > ramp_budget {
            break;
        }
        std::thread::sleep(Duration::from_millis(if progress_line { 100 } else { 10 }));
    }
    let ramp = ramp_start.elapsed();
    if progress_line {
        eprintln!();
    }
    let ramp_progress = total_progress(&groups);
    let mut errors = ErrorCounts::new();

    // Memory after: all open, idle a moment.
    std::thread::sleep(settings.settle);
    let rss_after = probe.rss_bytes();
    let sock_after = sysinfo::tcp_socket_memory_bytes();
    let loadgen_rss = sysinfo::self_rss_bytes() + groups.iter().map(|g| g.rss_bytes()).sum::<u64>();

    // Main phase.
    let loadgen_cpu_0 = loadgen_cpu(&groups);
    let server_cpu_0 = probe.cpu_seconds();
    let (main, publish_out) = run_phase(
        &mut groups,
        &publish,
        0,
        settings.events as usize,
        settings.rate,
        settings.drain_timeout,
    )?;
    let server_cpu_1 = probe.cpu_seconds();
    let loadgen_cpu_1 = loadgen_cpu(&groups);

    // Rate search on the same connections.
    let mut search = Vec::new();
    let mut best_rate = None;
    let mut failed_rate: Option<f64> = None;
    let (mut search_cpu, mut search_deliveries) = (Some(0.0), 0u64);
    if settings.rate_search {
        let mut rate = settings.rate;
        let mut next_seq = settings.events;
        // Loss tracking keeps one bit per event and connection: at most 1 GiB per phase.
        let most_events = ((1u64 << 33) / settings.connections.max(1)).max(settings.search_events);
        for _ in 0..settings.max_search_phases {
            let timed = (rate * settings.search_phase.as_secs_f64()).ceil() as u64;
            let count = timed.max(settings.search_events).min(most_events) as usize;
            let cpu0 = probe.cpu_seconds();
            let (r, out) = run_phase(
                &mut groups,
                &publish,
                next_seq,
                count,
                rate,
                settings.drain_timeout,
            )?;
            let cpu1 = probe.cpu_seconds();
            next_seq += count as u64;
            let server_cpu_s = cpu0.zip(cpu1).map(|(a, b)| b - a);
            search_cpu = search_cpu.zip(server_cpu_s).map(|(a, b)| a + b);
            search_deliveries += r.deliveries;
            let p99_us = r.latency.value_at_quantile(0.99);
            let publish_errors: u64 = out.errors.values().sum();
            let passed = r.lost == 0
                && r.connections > 0
                && publish_errors == 0
                && out.kept_schedule
                && Duration::from_micros(p99_us) <= settings.max_p99;
            for (k, v) in r.errors.iter().chain(out.errors.iter()) {
                count_error(&mut errors, *k, *v);
            }
            search.push(SearchPhase {
                rate,
                events: count as u64,
                deliveries: r.deliveries,
                lost: r.lost,
                duplicated: r.duplicated,
                p99_us,
                kept_schedule: out.kept_schedule,
                publish_errors,
                server_cpu_s,
                passed,
            });
            if passed {
                best_rate = Some(rate);
            } else {
                failed_rate = Some(rate);
            }
            // Double until a phase fails, then bisect between the last pass and the first
            // failure until they are within 10 %.
            rate = match (best_rate, failed_rate) {
                (_, None) if rate >= settings.max_rate => break,
                (_, None) => (rate * 2.0).min(settings.max_rate),
                (None, Some(_)) => break,
                (Some(low), Some(high)) if high <= low * 1.1 => break,
                (Some(low), Some(high)) => ((low + high) / 2.0).round().max(low + 1.0),
            };
            if failed_rate.is_some_and(|high| rate >= high) {
                break;
            }
        }
    }

    let mut usage_cpu = 0.0;
    for g in groups {
        usage_cpu += g.shutdown()?.cpu_s;
    }
    let loadgen_cpu_s = sysinfo::self_cpu_seconds() - cpu_start + usage_cpu;

    for (k, v) in main.errors.iter().chain(publish_out.errors.iter()) {
        count_error(&mut errors, *k, *v);
    }
    let opened = ramp_progress.opened;
    let per_conn = |before: Option<u64>, after: Option<u64>| {
        before
            .zip(after)
            .filter(|_| opened > 0)
            .map(|(b, a)| (a as f64 - b as f64) / opened as f64)
    };
    let last_sub = main.last_subscriber_histogram();
    let ms = |us: u64| us as f64 / 1000.0;
    let span_ns = main
        .last_delivery_unix_ns
        .saturating_sub(publish_out.start_unix_ns);
    let server_cpu_s = server_cpu_0.zip(server_cpu_1).map(|(a, b)| b - a);
    let per_million = |cpu: Option<f64>, d: u64| cpu.filter(|_| d > 0).map(|c| c / d as f64 * 1e6);
    let report = FanoutReport {
        label: settings.label.clone(),
        scenario: settings
            .scenario
            .clone()
            .unwrap_or_else(|| format!("{}B@{}/s", settings.payload, settings.rate)),
        started_unix_s,
        finished_unix_s: unix_now_ns() as f64 / 1e9,
        url: url.to_string(),
        publish_url: publish_url.to_string(),
        connections: n,
        threads: settings.threads,
        processes,
        source_ips: settings.source_ips.len(),
        connect_rate: settings.connect_rate,
        events: settings.events,
        rate: settings.rate,
        payload_bytes: settings.payload,
        publishers: settings.publishers,
        drain_timeout_s: settings.drain_timeout.as_secs_f64(),
        response_timeout_s: settings.response_timeout.as_secs_f64(),
        search_events: settings.search_events,
        search_phase_s: settings.search_phase.as_secs_f64(),
        max_p99_ms: settings.max_p99.as_secs_f64() * 1e3,
        max_rate: settings.max_rate,
        fd_limit,
        latency_origin: "scheduled_send_time".into(),
        connections_open: opened,
        // Connections still opening when the main phase started were closed and counted as
        // `ramp_timeout` failures.
        connections_failed: n - opened,
        connect_rate_achieved: (opened + ramp_progress.failed) as f64
            / ramp.as_secs_f64().max(1e-9),
        ramp_s: ramp.as_secs_f64(),
        deliveries: main.deliveries,
        expected_deliveries: main.connections * settings.events,
        lost: main.lost,
        connections_with_loss: main.connections_with_loss,
        duplicated: main.duplicated,
        out_of_order: main.out_of_order,
        late: main.late,
        dropped_connections: main.dropped,
        errors: counts_by_name(&errors),
        published: publish_out.published,
        publish_max_lag_ms: publish_out.max_lag_ns as f64 / 1e6,
        publisher_kept_schedule: publish_out.kept_schedule,
        latency_p50_us: main.latency.value_at_quantile(0.5),
        latency_p90_us: main.latency.value_at_quantile(0.9),
        latency_p99_us: main.latency.value_at_quantile(0.99),
        latency_p999_us: main.latency.value_at_quantile(0.999),
        latency_max_us: main.latency.max(),
        latency_mean_us: main.latency.mean(),
        last_subscriber_p50_ms: ms(last_sub.value_at_quantile(0.5)),
        last_subscriber_p99_ms: ms(last_sub.value_at_quantile(0.99)),
        last_subscriber_max_ms: ms(last_sub.max()),
        deliveries_per_sec: if span_ns > 0 {
            main.deliveries as f64 / (span_ns as f64 / 1e9)
        } else {
            0.0
        },
        memory_source: probe.source().into(),
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss_after,
        server_rss_per_conn_bytes: per_conn(rss_before, rss_after),
        kernel_sock_mem_before_bytes: sock_before,
        kernel_sock_mem_after_bytes: sock_after,
        kernel_sock_mem_per_conn_bytes: per_conn(sock_before, sock_after),
        server_cpu_s,
        server_cpu_s_per_million_deliveries: per_million(server_cpu_s, main.deliveries),
        loadgen_cpu_s,
        loadgen_cpu_us_per_delivery: (main.deliveries > 0)
            .then(|| (loadgen_cpu_1 - loadgen_cpu_0) / main.deliveries as f64 * 1e6),
        loadgen_subscriber_cpu_us_per_delivery: (main.deliveries > 0)
            .then(|| main.subscriber_cpu_ns as f64 / 1e3 / main.deliveries as f64),
        loadgen_rss_bytes: loadgen_rss,
        rate_search: settings.rate_search,
        max_sustained_rate: best_rate,
        max_sustained_deliveries_per_sec: best_rate.map(|r| r * opened as f64),
        rate_search_server_cpu_s_per_million_deliveries: if settings.rate_search {
            per_million(search_cpu, search_deliveries)
        } else {
            None
        },
        rate_search_phases: search,
    };
    Ok(FanoutRun {
        report,
        latency: main.latency,
    })
}

/// CPU seconds of this process and every worker so far.
fn loadgen_cpu(groups: &[Box<dyn SubscriberGroup>]) -> f64 {
    sysinfo::self_cpu_seconds() + groups.iter().map(|g| g.cpu_seconds()).sum::<f64>()
}

/// The sum of every group's counters.
fn total_progress(groups: &[Box<dyn SubscriberGroup>]) -> ProgressSnapshot {
    groups
        .iter()
        .map(|g| g.progress())
        .fold(ProgressSnapshot::default(), |a, b| a + b)
}

/// Starts the subscriber groups: threads here, or worker processes.
fn start_groups(
    settings: &FanoutSettings,
    target: SubscriberTarget,
    processes: usize,
) -> Result<Vec<Box<dyn SubscriberGroup>>> {
    let n = settings.connections as usize;
    if processes <= 1 {
        let g = LocalGroup::start(
            Arc::new(target),
            n,
            settings.threads,
            settings.connect_rate,
            0,
        )?;
        return Ok(vec![Box::new(g)]);
    }
    let exe = match &settings.worker_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| Error::io("cannot find this executable to start workers", e))?,
    };
    let threads = settings.threads.div_ceil(processes).max(1);
    let mut groups: Vec<Box<dyn SubscriberGroup>> = Vec::with_capacity(processes);
    for p in 0..processes {
        let lo = n * p / processes;
        let hi = n * (p + 1) / processes;
        let config = WorkerConfig {
            target: target.clone(),
            connections: hi - lo,
            threads,
            rate: settings.connect_rate * (hi - lo) as f64 / n as f64,
            first_index: lo,
        };
        // Workers already started are killed when `groups` drops on error.
        groups.push(Box::new(WorkerGroup::spawn(&exe, &config)?));
    }
    Ok(groups)
}

/// Runs one phase: track, publish, drain, collect.
fn run_phase(
    groups: &mut [Box<dyn SubscriberGroup>],
    publish: &PublishTarget,
    first_seq: u64,
    count: usize,
    rate: f64,
    drain_timeout: Duration,
) -> Result<(PhaseReport, PublishOutcome)> {
    for g in groups.iter_mut() {
        g.start_phase(first_seq, count)?;
    }
    let out = publish_phase(publish, first_seq, count, rate);
    let deadline = Instant::now() + drain_timeout;
    while total_progress(groups).missing > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut merged = PhaseReport::new(count);
    for g in groups.iter_mut() {
        merged.merge(&g.end_phase(count)?);
    }
    Ok((merged, out))
}

/// Formats bytes per connection for the table.
fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} {unit}"))
}

/// Writes the human report.
pub fn print_report(r: &FanoutReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "sse-loadgen fanout  {}  [{}]", r.label, r.scenario)?;
    writeln!(out, "  url                  {}", r.url)?;
    writeln!(out, "  publish url          {}", r.publish_url)?;
    writeln!(
        out,
        "  settings             {} connections, {} threads, {} process(es), {} events at {}/s, payload {} B, {} publisher(s)",
        r.connections, r.threads, r.processes, r.events, r.rate, r.payload_bytes, r.publishers
    )?;
    writeln!(
        out,
        "  connections          {} open, {} failed, ramp {:.2} s ({:.0}/s), fd limit {}",
        r.connections_open, r.connections_failed, r.ramp_s, r.connect_rate_achieved, r.fd_limit
    )?;
    writeln!(
        out,
        "  deliveries           {} of {} expected, {:.0}/s",
        r.deliveries, r.expected_deliveries, r.deliveries_per_sec
    )?;
    writeln!(
        out,
        "  lost / dup / ooo     {} / {} / {}   connections with loss {}   dropped connections {}   late {}",
        r.lost,
        r.duplicated,
        r.out_of_order,
        r.connections_with_loss,
        r.dropped_connections,
        r.late
    )?;
    writeln!(
        out,
        "  latency (µs)         p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}",
        r.latency_p50_us,
        r.latency_p90_us,
        r.latency_p99_us,
        r.latency_p999_us,
        r.latency_max_us,
        r.latency_mean_us
    )?;
    writeln!(
        out,
        "  last subscriber (ms) p50 {:.3}  p99 {:.3}  max {:.3}",
        r.last_subscriber_p50_ms, r.last_subscriber_p99_ms, r.last_subscriber_max_ms
    )?;
    writeln!(
        out,
        "  latency origin       each event's scheduled send time (start + seq/rate): a stalled publisher shows as latency; publisher max lag {:.3} ms, schedule {}",
        r.publish_max_lag_ms,
        if r.publisher_kept_schedule {
            "kept"
        } else {
            "NOT kept"
        }
    )?;
    writeln!(
        out,
        "  server memory ({})  per conn {}   rss {} -> {}",
        r.memory_source,
        fmt_opt(r.server_rss_per_conn_bytes, "B"),
        r.server_rss_before_bytes
            .map_or("n/a".into(), |b| b.to_string()),
        r.server_rss_after_bytes
            .map_or("n/a".into(), |b| b.to_string())
    )?;
    writeln!(
        out,
        "  kernel socket mem    per conn {} (both ends on loopback)",
        fmt_opt(r.kernel_sock_mem_per_conn_bytes, "B")
    )?;
    writeln!(
        out,
        "  server cpu           {} s, {} s per million deliveries",
        r.server_cpu_s.map_or("n/a".into(), |c| format!("{c:.3}")),
        r.server_cpu_s_per_million_deliveries
            .map_or("n/a".into(), |c| format!("{c:.3}"))
    )?;
    writeln!(
        out,
        "  loadgen              cpu {:.3} s, {} µs per delivery ({} µs receiving), rss {} MiB",
        r.loadgen_cpu_s,
        r.loadgen_cpu_us_per_delivery
            .map_or("n/a".into(), |c| format!("{c:.2}")),
        r.loadgen_subscriber_cpu_us_per_delivery
            .map_or("n/a".into(), |c| format!("{c:.2}")),
        r.loadgen_rss_bytes / (1 << 20)
    )?;
    if r.rate_search {
        for p in &r.rate_search_phases {
            writeln!(
                out,
                "  rate search          {:>9.0}/s  lost {:>6}  p99 {:>8} µs  schedule {}  {}",
                p.rate,
                p.lost,
                p.p99_us,
                if p.kept_schedule { "kept" } else { "missed" },
                if p.passed { "pass" } else { "FAIL" }
            )?;
        }
        writeln!(
            out,
            "  max sustained        {} events/s, {} deliveries/s",
            r.max_sustained_rate
                .map_or("none".into(), |v| format!("{v:.0}")),
            r.max_sustained_deliveries_per_sec
                .map_or("none".into(), |v| format!("{v:.0}"))
        )?;
    }
    if r.errors.is_empty() {
        writeln!(out, "  errors               none")?;
    } else {
        let list: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "  errors               {}", list.join(" "))?;
    }
    Ok(())
}
