//! The live figures: a thread that, while some stream subscribes to `$stats`, samples the
//! server's counters once a second and publishes them through the broker as one JSON event.
//!
//! Nobody watching costs one atomic load every [`POLL`]: no sample, no event, no write. The
//! figures come from [`Metrics`] (the counters `/metrics` shows) and `/proc`; rates are the
//! difference between two samples over the time between them. The figures' own event counts in
//! them, as any event does: one event a second, one delivery a second per watching stream.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{STATS_EVENT, STATS_TOPIC};
use crate::broker::{Broker, PublishRequest};
use crate::metrics::Metrics;
use crate::sys;

/// How often the figures are published while someone watches.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How often the source looks whether someone watches: a new console gets its first figures
/// this fast, and an unwatched server pays four wake-ups of one thread a second for it.
const POLL: Duration = Duration::from_millis(250);

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Open connections (exchanging or streaming).
    pub connections: u64,
    /// Streaming subscribers.
    pub subscribers: u64,
    /// Topics the broker knows.
    pub topics: u64,
    /// Events published since start.
    pub published: u64,
    /// Deliveries since start.
    pub deliveries: u64,
    /// Bytes written to clients since start.
    pub bytes_written: u64,
    /// Slow-consumer disconnects since start.
    pub slow_disconnects: u64,
    /// Resident memory now.
    pub rss_bytes: u64,
    /// CPU seconds the process has used.
    pub cpu_seconds: f64,
}

impl Sample {
    /// Reads the counters and the process figures now.
    pub fn take(metrics: &Metrics) -> Sample {
        Sample {
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            connections: metrics.connections_open.load(Relaxed),
            subscribers: metrics.subscribers.load(Relaxed),
            topics: metrics.topics.load(Relaxed),
            published: metrics.events_published.load(Relaxed),
            deliveries: metrics.deliveries.load(Relaxed),
            bytes_written: metrics.bytes_written.load(Relaxed),
            slow_disconnects: metrics.slow_consumer_disconnects.load(Relaxed),
            rss_bytes: sys::resident_memory_bytes(),
            cpu_seconds: sys::cpu_seconds(),
        }
    }
}

/// The JSON data of one stats event. Rates are per second over `elapsed` since `previous`, and
/// `null` without one (the first event a new watcher gets). Memory per connection is the growth
/// of RSS since `rss_at_start` over the open connections (`null` with none open).
pub fn render_stats(
    now: &Sample,
    previous: Option<(&Sample, Duration)>,
    rss_at_start: u64,
) -> String {
    let rate = |current: u64, earlier: fn(&Sample) -> u64| match previous {
        Some((before, elapsed)) if !elapsed.is_zero() => format!(
            "{:.1}",
            current.saturating_sub(earlier(before)) as f64 / elapsed.as_secs_f64()
        ),
        _ => "null".to_owned(),
    };
    let cpu_percent = match previous {
        Some((before, elapsed)) if !elapsed.is_zero() => format!(
            "{:.1}",
            (now.cpu_seconds - before.cpu_seconds).max(0.0) / elapsed.as_secs_f64() * 100.0
        ),
        _ => "null".to_owned(),
    };
    let per_connection = now
        .rss_bytes
        .saturating_sub(rss_at_start)
        .checked_div(now.connections)
        .map_or_else(|| "null".to_owned(), |bytes| bytes.to_string());
    format!(
        concat!(
            "{{\"t\":{},\"connections\":{},\"subscribers\":{},\"topics\":{},",
            "\"published_per_s\":{},\"deliveries_per_s\":{},\"bytes_out_per_s\":{},",
            "\"slow_disconnects\":{},\"rss_bytes\":{},\"rss_at_start_bytes\":{},",
            "\"bytes_per_connection\":{},\"cpu_percent\":{},",
            "\"published\":{},\"deliveries\":{}}}"
        ),
        now.unix_ms,
        now.connections,
        now.subscribers,
        now.topics,
        rate(now.published, |s| s.published),
        rate(now.deliveries, |s| s.deliveries),
        rate(now.bytes_written, |s| s.bytes_written),
        now.slow_disconnects,
        now.rss_bytes,
        rss_at_start,
        per_connection,
        cpu_percent,
        now.published,
        now.deliveries,
    )
}

/// The running stats source; stopped (and joined) by [`StatsSource::stop`] or on drop.
pub struct StatsSource {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatsSource {
    /// Starts the thread. RSS now is the baseline of the per-connection figure, so call it
    /// before connections are accepted.
    pub fn start(broker: Arc<dyn Broker>, metrics: Arc<Metrics>) -> io::Result<StatsSource> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let rss_at_start = sys::resident_memory_bytes();
        let thread = std::thread::Builder::new()
            .name("console-stats".into())
            .spawn(move || run(&*broker, &metrics, rss_at_start, &thread_stop))?;
        Ok(StatsSource {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StatsSource {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The thread: publishes a sample every [`INTERVAL`] while someone watches, until `stop`.
fn run(broker: &(dyn Broker + 'static), metrics: &Metrics, rss_at_start: u64, stop: &AtomicBool) {
    // The previous sample and when it was taken; forgotten while nobody watches, so a new
    // watcher's first rates are not averaged over the time nobody looked.
    let mut previous: Option<(Sample, Instant)> = None;
    let mut next = Instant::now();
    while !stop.load(Relaxed) {
        if metrics.stats_watchers.load(Relaxed) == 0 {
            previous = None;
            std::thread::sleep(POLL);
            continue;
        }
        let now = Instant::now();
        if previous.is_some() && now < next {
            std::thread::sleep((next - now).min(POLL));
            continue;
        }
        let sample = Sample::take(metrics);
        let data = render_stats(
            &sample,
            previous.as_ref().map(|(s, at)| (s, now - *at)),
            rss_at_start,
        );
        // The topic, type and data are always valid; a refusal (the topic limit, a backplane
        // that is down) only skips this second's figures.
        if let Ok(request) = PublishRequest::new(&[STATS_TOPIC], Some(STATS_EVENT), &data) {
            let _ = broker.publish_and_wait(request, INTERVAL);
        }
        previous = Some((sample, now));
        next = now.max(next) + INTERVAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(unix_ms: u64) -> Sample {
        Sample {
            unix_ms,
            connections: 0,
            subscribers: 0,
            topics: 0,
            published: 0,
            deliveries: 0,
            bytes_written: 0,
            slow_disconnects: 0,
            rss_bytes: 0,
            cpu_seconds: 0.0,
        }
    }

    /// Without a previous sample the rates are null; with one, per second over the elapsed time.
    #[test]
    fn renders_rates_and_memory_per_connection() {
        let first = Sample {
            connections: 500,
            subscribers: 499,
            topics: 3,
            published: 10,
            deliveries: 1000,
            bytes_written: 50_000,
            slow_disconnects: 2,
            rss_bytes: 10_000_000,
            cpu_seconds: 1.0,
            ..sample(1_000)
        };
        assert_eq!(
            render_stats(&first, None, 9_000_000),
            concat!(
                r#"{"t":1000,"connections":500,"subscribers":499,"topics":3,"#,
                r#""published_per_s":null,"deliveries_per_s":null,"bytes_out_per_s":null,"#,
                r#""slow_disconnects":2,"rss_bytes":10000000,"rss_at_start_bytes":9000000,"#,
                r#""bytes_per_connection":2000,"cpu_percent":null,"published":10,"deliveries":1000}"#
            )
        );
        let second = Sample {
            published: 30,
            deliveries: 11_000,
            bytes_written: 150_000,
            cpu_seconds: 1.5,
            ..first
        };
        let text = render_stats(&second, Some((&first, Duration::from_secs(2))), 9_000_000);
        for part in [
            r#""published_per_s":10.0"#,
            r#""deliveries_per_s":5000.0"#,
            r#""bytes_out_per_s":50000.0"#,
            r#""cpu_percent":25.0"#,
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }

    /// No open connection: no per-connection figure; RSS below the baseline counts as no growth.
    #[test]
    fn no_connections_no_per_connection_figure() {
        let text = render_stats(&sample(5), None, 1 << 20);
        assert!(text.contains(r#""bytes_per_connection":null"#), "{text}");
        let one = Sample {
            connections: 1,
            rss_bytes: 100,
            ..sample(5)
        };
        assert!(render_stats(&one, None, 1 << 20).contains(r#""bytes_per_connection":0"#));
    }
}
