//! The `soak` subcommand: hours-of-use traffic against a running `sse-server` for a bounded
//! time, sampling the server every few seconds, and a verdict.
//!
//! Traffic (`traffic.rs`): connection churn (hundreds of connects and disconnects per second),
//! subscribers on thousands of short-lived topics and on a few busy ones, stuck and slow
//! consumers, bad requests mixed in, and publishes to new topics all along. Samples and trends
//! (`trend.rs`): RSS, open descriptors, sockets, topics, retained history. The soak fails when a
//! watched series still grows after warm-up, when a good subscriber loses or repeats an event,
//! when a publish or a request that should be served is not, or when the server stops
//! answering.

pub mod traffic;
pub mod trend;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::url::HttpUrl;
use traffic::{Counters, Shared};
use trend::{Sample, Trend};

/// What a soak does.
#[derive(Debug, Clone)]
pub struct SoakSettings {
    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub base: HttpUrl,
    /// How long the soak runs.
    pub duration: Duration,
    /// Samples before this are left out of the trends (the server fills its caches, topics
    /// reach their steady number after the topic TTL).
    pub warmup: Duration,
    /// How often the server is sampled.
    pub sample_every: Duration,
    /// The server's process id (for RSS and descriptors from /proc); else `/metrics` only.
    pub server_pid: Option<u32>,
    /// Busy topics, and good subscribers spread over them.
    pub busy_topics: usize,
    /// Good subscribers.
    pub good_subscribers: usize,
    /// Events per second published to the busy topics in all, and their size.
    pub busy_rate: f64,
    /// Bytes of each busy event's data.
    pub busy_payload: usize,
    /// New topics published to per second, in all.
    pub fresh_rate: f64,
    /// Threads publishing to new topics.
    pub fresh_threads: usize,
    /// Churn threads, and connect/disconnect cycles per second for each.
    pub churn_threads: usize,
    /// Cycles per second per churn thread.
    pub churn_rate: f64,
    /// Stuck subscribers (never read), renewed every so often.
    pub stuck: usize,
    /// Slow subscribers.
    pub slow: usize,
    /// Where samples, the summary and the plot go.
    pub out_dir: PathBuf,
}

/// A soak's outcome.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    /// Seconds the soak ran.
    pub duration_s: f64,
    /// Seconds of warm-up left out of the trends.
    pub warmup_s: f64,
    /// What the traffic counted.
    pub counts: BTreeMap<&'static str, u64>,
    /// Samples the server did not answer (`/metrics` within 2 s).
    pub unanswered_samples: u64,
    /// The trend of each watched series.
    pub trends: Vec<Trend>,
    /// Why the soak failed; empty when it passed.
    pub failures: Vec<String>,
}

/// Runs the soak and writes `samples.jsonl`, `summary.json`, `summary.md` and `soak.svg`.
pub fn run_soak(settings: &SoakSettings) -> Result<SoakReport> {
    let addr = settings.base.resolve()?;
    fs::create_dir_all(&settings.out_dir)
        .map_err(|e| Error::io(format!("cannot create {}", settings.out_dir.display()), e))?;
    let shared = Shared {
        addr,
        host: settings.base.host_header(),
        stop: Arc::new(AtomicBool::new(false)),
        counters: Arc::new(Counters::default()),
        newest_fresh: Arc::new(AtomicU64::new(0)),
    };
    let busy: Vec<String> = (0..settings.busy_topics.max(1))
        .map(|n| format!("busy-{n}"))
        .collect();
    let mut threads = Vec::new();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(f)
            .map_err(|e| Error::io("cannot start a soak thread", e))
    };
    for n in 0..settings.good_subscribers {
        let (s, topic) = (shared.clone(), busy[n % busy.len()].clone());
        threads.push(spawn(
            "good",
            Box::new(move || traffic::good_subscriber(s, topic)),
        )?);
    }
    // Good subscribers are in place before the first event, so each sees the whole sequence.
    thread::sleep(Duration::from_millis(500));
    let (s, topics, rate, payload) = (
        shared.clone(),
        busy.clone(),
        settings.busy_rate,
        settings.busy_payload,
    );
    threads.push(spawn(
        "busy-publisher",
        Box::new(move || traffic::busy_publisher(s, topics, rate, payload)),
    )?);
    let fresh_threads = settings.fresh_threads.max(1) as u64;
    for index in 0..fresh_threads {
        let (s, rate) = (shared.clone(), settings.fresh_rate / fresh_threads as f64);
        threads.push(spawn(
            "fresh-publisher",
            Box::new(move || traffic::fresh_publisher(s, rate, index, fresh_threads)),
        )?);
    }
    for n in 0..settings.churn_threads {
        let (s, rate) = (shared.clone(), settings.churn_rate);
        threads.push(spawn(
            "churn",
            Box::new(move || traffic::churn(s, rate, n as u64 + 1)),
        )?);
    }
    let (s, topics, stuck) = (shared.clone(), busy.clone(), settings.stuck);
    threads.push(spawn(
        "stuck",
        Box::new(move || traffic::stuck_subscribers(s, topics, stuck, Duration::from_secs(30))),
    )?);
    let (s, topics, slow) = (shared.clone(), busy.clone(), settings.slow);
    threads.push(spawn(
        "slow",
        Box::new(move || traffic::slow_subscribers(s, topics, slow, 512)),
    )?);

    let samples = sample_until_done(settings, addr, &shared)?;
    shared.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let unanswered = samples.iter().filter(|s| s.is_none()).count() as u64;
    let samples: Vec<Sample> = samples.into_iter().flatten().collect();
    let report = judge(settings, &samples, unanswered, &shared.counters);
    write_outputs(settings, &samples, &report)?;
    Ok(report)
}

/// Samples every `sample_every` until the duration is over; `None` for an unanswered sample.
fn sample_until_done(
    settings: &SoakSettings,
    addr: SocketAddr,
    shared: &Shared,
) -> Result<Vec<Option<Sample>>> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut log = fs::File::create(settings.out_dir.join("samples.jsonl"))
        .map_err(|e| Error::io("cannot create samples.jsonl", e))?;
    let mut next = start;
    while start.elapsed() < settings.duration {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        next += settings.sample_every;
        let sample = sample(addr, &shared.host, settings.server_pid, start).map(|s| Sample {
            topics_published: shared.counters.fresh_published.load(Ordering::Relaxed) as f64,
            publish_failures: shared.counters.publish_failures.load(Ordering::Relaxed) as f64,
            ..s
        });
        if let Some(sample) = &sample {
            let line = serde_json::to_string(sample).unwrap_or_default();
            let _ = writeln!(log, "{line}");
            eprintln!(
                "soak: {:>5.0}s rss={:.1}MiB fds={} sockets={} topics={} loop_topics={} published_topics={} publish_failures={} good={} lost={} dup={}",
                sample.t_s,
                sample.rss_bytes / 1048576.0,
                sample.open_fds,
                sample.sockets,
                sample.topics,
                sample.loop_topics,
                sample.topics_published,
                sample.publish_failures,
                shared.counters.good_events.load(Ordering::Relaxed),
                shared.counters.good_lost.load(Ordering::Relaxed),
                shared.counters.good_duplicated.load(Ordering::Relaxed),
            );
        } else {
            eprintln!(
                "soak: {:>5.0}s the server did not answer /metrics",
                start.elapsed().as_secs_f64()
            );
        }
        samples.push(sample);
    }
    Ok(samples)
}

/// One reading: `/metrics` (within 2 s) and, with a pid, /proc.
fn sample(addr: SocketAddr, host: &str, pid: Option<u32>, start: Instant) -> Option<Sample> {
    let text = fetch(addr, host, "/metrics")?;
    let values: BTreeMap<&str, f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name, value.parse().ok()?))
        })
        .collect();
    let get = |name: &str| values.get(name).copied().unwrap_or(0.0);
    let (rss, fds) = match pid {
        Some(pid) => (
            crate::sysinfo::tree_rss_bytes(pid)
                .map_or(get("process_resident_memory_bytes"), |v| v as f64),
            fs::read_dir(format!("/proc/{pid}/fd"))
                .map_or(get("process_open_fds"), |d| d.count() as f64),
        ),
        None => (
            get("process_resident_memory_bytes"),
            get("process_open_fds"),
        ),
    };
    Some(Sample {
        t_s: start.elapsed().as_secs_f64(),
        rss_bytes: rss,
        open_fds: fds,
        sockets: get("sse_sockets_open"),
        subscribers: get("sse_subscribers"),
        loop_topics: get("sse_loop_topics"),
        topics: get("sse_topics"),
        retained_bytes: get("sse_history_retained_bytes"),
        slow_disconnects: get("sse_slow_consumer_disconnects_total"),
        ..Sample::default()
    })
}

/// `GET path` with `Connection: close`, answered `200` within 2 s: the body.
fn fetch(addr: SocketAddr, host: &str, path: &str) -> Option<String> {
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).ok()?;
    let (head, len) = crate::http::parse_head(&response).ok()??;
    (head.status == 200).then(|| String::from_utf8_lossy(&response[len..]).into_owned())
}

/// The verdict: trends flat after warm-up, no loss or repeat, every publish and request served.
fn judge(
    settings: &SoakSettings,
    samples: &[Sample],
    unanswered: u64,
    counters: &Counters,
) -> SoakReport {
    let warmup_s = settings.warmup.as_secs_f64();
    let trends = trend::trends(samples, warmup_s);
    let counts: BTreeMap<&'static str, u64> = counters.snapshot().into_iter().collect();
    let mut failures = Vec::new();
    failures.extend(trends.iter().filter_map(Trend::failure));
    for (name, what) in [
        ("good_lost", "events lost by good subscribers"),
        ("good_duplicated", "events repeated to good subscribers"),
        ("publish_failures", "publishes not answered 200"),
        ("bad_unexpected", "bad requests not refused with a 4xx"),
        (
            "churn_failures",
            "requests that should have been served but were not",
        ),
    ] {
        if counts[name] > 0 {
            failures.push(format!("{}: {what}", counts[name]));
        }
    }
    if counts["good_events"] == 0 {
        failures.push("the good subscribers received nothing".to_owned());
    }
    if unanswered > 0 {
        failures.push(format!(
            "{unanswered} samples: the server did not answer /metrics"
        ));
    }
    if samples.iter().filter(|s| s.t_s >= warmup_s).count() < 3 {
        failures.push("fewer than 3 samples after warm-up: run longer".to_owned());
    }
    SoakReport {
        duration_s: samples.last().map_or(0.0, |s| s.t_s),
        warmup_s,
        counts,
        unanswered_samples: unanswered,
        trends,
        failures,
    }
}

fn write_outputs(settings: &SoakSettings, samples: &[Sample], report: &SoakReport) -> Result<()> {
    let dir = &settings.out_dir;
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    fs::write(dir.join("summary.json"), json)
        .map_err(|e| Error::io("cannot write summary.json", e))?;
    fs::write(dir.join("summary.md"), summary_markdown(report))
        .map_err(|e| Error::io("cannot write summary.md", e))?;
    if let Err(e) = trend::plot(samples, report.warmup_s, &dir.join("soak.svg")) {
        eprintln!("soak: warning: the plot failed: {e}");
    }
    Ok(())
}

/// The summary: the verdict, each trend, and the counts.
pub fn summary_markdown(report: &SoakReport) -> String {
    let mut out = String::new();
    let verdict = if report.failures.is_empty() {
        "**passed**".to_owned()
    } else {
        format!("**failed**: {}", report.failures.join("; "))
    };
    out.push_str(&format!(
        "Soak of {:.0} s ({:.0} s warm-up): {verdict}.\n\n",
        report.duration_s, report.warmup_s
    ));
    out.push_str(
        "| series | mean after warm-up | slope /min | tolerated if steady | quarter medians | steady | fitted growth | tolerated | flat |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |\n");
    for t in &report.trends {
        let quarters: Vec<String> = t
            .quarter_medians
            .iter()
            .map(|q| format!("{q:.0}"))
            .collect();
        out.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.1} | {} | {} | {:.0} | {:.0} | {} |\n",
            t.name,
            t.mean,
            t.slope_per_s * 60.0,
            t.rate_limit_per_min,
            quarters.join(" / "),
            if t.steady_growth { "yes" } else { "no" },
            t.growth,
            t.limit,
            if t.flat { "yes" } else { "**no**" }
        ));
    }
    out.push_str("\n| count | value |\n| --- | ---: |\n");
    for (name, value) in &report.counts {
        out.push_str(&format!("| {name} | {value} |\n"));
    }
    out.push_str(&format!(
        "| unanswered_samples | {} |\n",
        report.unanswered_samples
    ));
    out
}
