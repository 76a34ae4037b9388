//! Counters, and their Prometheus text rendering for `GET /metrics`.
//!
//! Event loops count deliveries and bytes in plain fields of their own ([`LoopCounters`]) and add
//! them to the shared atomics once per loop iteration, so the hot path touches no shared cache
//! line per subscriber.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::feed::Feeds;
use crate::sys;

/// Statuses whose rejections are counted (anything else counts under 500).
const REJECTED_STATUSES: [u16; 14] = [
    400, 401, 403, 404, 405, 408, 413, 415, 417, 431, 500, 501, 503, 505,
];

/// Server-wide counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections open now (exchanging or streaming).
    pub connections_open: AtomicU64,
    /// Client sockets held now, lingering ones included: at most `--max-connections` plus the
    /// headroom for short requests (plus lingering refusals).
    pub sockets_open: AtomicU64,
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Streaming subscribers now: what `--max-connections` bounds.
    pub subscribers: AtomicU64,
    /// Streams subscribed to the console's `$stats` topic now: the figures are produced only
    /// while this is above zero (`console::StatsSource`).
    pub stats_watchers: AtomicU64,
    /// Topics the broker knows (set by the broker).
    pub topics: AtomicU64,
    /// Events published since start.
    pub events_published: AtomicU64,
    /// Events written completely to a subscriber, summed over subscribers.
    pub deliveries: AtomicU64,
    /// Bytes written to clients.
    pub bytes_written: AtomicU64,
    /// Subscribers disconnected for falling too far behind.
    pub slow_consumer_disconnects: AtomicU64,
    /// Streams closed because their JSON Web Token expired.
    pub token_expiry_closes: AtomicU64,
    /// Streams closed because their `--stream-lifetime` was over.
    pub lifetime_closes: AtomicU64,
    /// Replays that could not deliver every event after the client's id (told as a gap).
    pub replay_gaps: AtomicU64,
    /// Publishes that had to wait for the fan-out backlog to come down (each one counted,
    /// whether it was then published or refused).
    pub backpressure_waits: AtomicU64,
    /// The history memory budget (`--history-memory`), shown beside what is retained.
    pub history_memory_budget: AtomicU64,
    /// Open file descriptors of the process, as last sampled by the
    /// [`FdSampler`](crate::fd_sampler::FdSampler) (never counted on a loop thread).
    pub open_fds: AtomicU64,
    /// When the server started, in microseconds since the Unix epoch.
    pub start_time_micros: AtomicU64,
    /// Set while the backplane (`--redis`) cannot be reached; never set without one.
    backplane_down: AtomicBool,
    /// Times the backplane's feed connection was re-established.
    backplane_reconnects: AtomicU64,
    /// Times the feed was found trimmed past this node's last event (its streams were ended).
    backplane_feed_gaps: AtomicU64,
    /// Replays the loops' logs could not vouch for that were answered from the broker's store
    /// (Redis's topic streams).
    pub backplane_replays: AtomicU64,
    rejected: [AtomicU64; REJECTED_STATUSES.len()],
}

/// One loop's counts since it last added them to [`Metrics`].
#[derive(Debug, Default)]
pub struct LoopCounters {
    /// Completed event writes.
    pub deliveries: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

impl Metrics {
    /// Counts a request refused with `status`.
    pub fn count_rejected(&self, status: u16) {
        let index = REJECTED_STATUSES
            .iter()
            .position(|&s| s == status)
            .or_else(|| REJECTED_STATUSES.iter().position(|&s| s == 500))
            .unwrap_or(0);
        self.rejected[index].fetch_add(1, Relaxed);
    }

    /// Requests refused with `status` so far.
    pub fn rejected(&self, status: u16) -> u64 {
        REJECTED_STATUSES
            .iter()
            .position(|&s| s == status)
            .map_or(0, |i| self.rejected[i].load(Relaxed))
    }

    /// Records whether the backplane is reachable (set by the broker).
    pub fn set_backplane_up(&self, up: bool) {
        self.backplane_down.store(!up, Relaxed);
    }

    /// True while the backplane is configured but unreachable (`/healthz` then answers 503).
    pub fn backplane_down(&self) -> bool {
        self.backplane_down.load(Relaxed)
    }

    /// Counts a reconnection to the backplane.
    pub fn count_backplane_reconnect(&self) {
        self.backplane_reconnects.fetch_add(1, Relaxed);
    }

    /// Counts a feed found trimmed past this node's last event.
    pub fn count_backplane_feed_gap(&self) {
        self.backplane_feed_gaps.fetch_add(1, Relaxed);
    }

    /// Adds a loop's counts and zeroes them.
    pub fn add(&self, counters: &mut LoopCounters) {
        if counters.deliveries > 0 {
            self.deliveries.fetch_add(counters.deliveries, Relaxed);
        }
        if counters.bytes_written > 0 {
            self.bytes_written
                .fetch_add(counters.bytes_written, Relaxed);
        }
        *counters = LoopCounters::default();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, feeds: &Feeds) -> String {
        let (retained, loop_topics, evicted, expired) = feeds.totals();
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "sse_connections_open",
            "gauge",
            "Open client connections.",
            self.connections_open.load(Relaxed),
        );
        metric(
            "sse_sockets_open",
            "gauge",
            "Client sockets held (lingering ones included); at most --max-connections + 64 for short requests (+ 64 refusals).",
            self.sockets_open.load(Relaxed),
        );
        metric(
            "sse_connections_accepted_total",
            "counter",
            "Connections accepted.",
            self.connections_accepted.load(Relaxed),
        );
        metric(
            "sse_subscribers",
            "gauge",
            "Open event streams; bounded by --max-connections.",
            self.subscribers.load(Relaxed),
        );
        metric(
            "sse_stats_watchers",
            "gauge",
            "Open streams of the console's $stats topic (figures are produced only while some are).",
            self.stats_watchers.load(Relaxed),
        );
        metric(
            "sse_topics",
            "gauge",
            "Topics that have been published to.",
            self.topics.load(Relaxed),
        );
        metric(
            "sse_events_published_total",
            "counter",
            "Events published.",
            self.events_published.load(Relaxed),
        );
        metric(
            "sse_deliveries_total",
            "counter",
            "Events written completely to a subscriber (events replayed from the backplane: when their stream opens).",
            self.deliveries.load(Relaxed),
        );
        metric(
            "sse_bytes_written_total",
            "counter",
            "Bytes written to clients.",
            self.bytes_written.load(Relaxed),
        );
        metric(
            "sse_slow_consumer_disconnects_total",
            "counter",
            "Subscribers disconnected for falling more than max-pending behind.",
            self.slow_consumer_disconnects.load(Relaxed),
        );
        metric(
            "sse_backplane_up",
            "gauge",
            "1 while publishing and delivery work (the --redis backplane is reachable, or none is used).",
            u64::from(!self.backplane_down()),
        );
        metric(
            "sse_backplane_reconnects_total",
            "counter",
            "Times the backplane's feed connection was re-established.",
            self.backplane_reconnects.load(Relaxed),
        );
        metric(
            "sse_backplane_feed_gaps_total",
            "counter",
            "Times the feed was trimmed past this node's last event while it was cut off from Redis (its streams were ended, so clients replay).",
            self.backplane_feed_gaps.load(Relaxed),
        );
        metric(
            "sse_backplane_replays_total",
            "counter",
            "Replays from Last-Event-ID older than this node's logs vouch for, answered from Redis's topic streams.",
            self.backplane_replays.load(Relaxed),
        );
        metric(
            "sse_token_expiry_closes_total",
            "counter",
            "Streams closed because their JSON Web Token expired (exp plus --jwt-leeway).",
            self.token_expiry_closes.load(Relaxed),
        );
        metric(
            "sse_stream_lifetime_closes_total",
            "counter",
            "Streams closed because their --stream-lifetime was over (the client reconnects).",
            self.lifetime_closes.load(Relaxed),
        );
        metric(
            "sse_replay_gaps_total",
            "counter",
            "Replays from Last-Event-ID that missed events no longer retained (told as event: gap).",
            self.replay_gaps.load(Relaxed),
        );
        metric(
            "sse_history_retained_bytes",
            "gauge",
            "Bytes of events retained for replay and slow subscribers (the fullest loop).",
            retained,
        );
        metric(
            "sse_history_memory_budget_bytes",
            "gauge",
            "The --history-memory budget for retained events.",
            self.history_memory_budget.load(Relaxed),
        );
        metric(
            "sse_history_evicted_events_total",
            "counter",
            "Events dropped to stay within --history-memory (summed over loops).",
            evicted,
        );
        metric(
            "sse_loop_topics",
            "gauge",
            "Topic logs held by the event loop holding most (live topics plus subscribed ones).",
            loop_topics,
        );
        metric(
            "sse_topics_expired_total",
            "counter",
            "Topic logs forgotten after --topic-ttl without events or subscribers (summed over loops).",
            expired,
        );
        metric(
            "sse_publish_backpressure_waits_total",
            "counter",
            "Publishes that waited because the fan-out backlog was over --max-backlog (each one, whether then published or refused with 503).",
            self.backpressure_waits.load(Relaxed),
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            sys::resident_memory_bytes(),
        );
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors (sampled once a second off the event loops).",
            self.open_fds.load(Relaxed),
        );
        let _ = write!(
            out,
            "# HELP sse_fanout_backlog_seconds Age of the oldest event not yet through its fan-out pass, in the loop furthest behind.\n# TYPE sse_fanout_backlog_seconds gauge\nsse_fanout_backlog_seconds {:.6}\n",
            feeds.max_backlog().as_secs_f64()
        );
        let _ = write!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {:.6}\n",
            sys::cpu_seconds()
        );
        let _ = write!(
            out,
            "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {:.6}\n",
            self.start_time_micros.load(Relaxed) as f64 / 1e6
        );
        out.push_str("# HELP sse_loop_connections Client sockets held by each event loop (lingering ones included).\n");
        out.push_str("# TYPE sse_loop_connections gauge\n");
        for (index, connections) in feeds.loop_connections().iter().enumerate() {
            let _ = writeln!(
                out,
                "sse_loop_connections{{loop=\"{index}\"}} {connections}"
            );
        }
        out.push_str("# HELP sse_rejected_requests_total Requests refused, by status.\n");
        out.push_str("# TYPE sse_rejected_requests_total counter\n");
        for (status, count) in REJECTED_STATUSES.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "sse_rejected_requests_total{{status=\"{status}\"}} {}",
                count.load(Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric the README names is rendered, with rejections by status.
    #[test]
    fn renders_every_metric() {
        let metrics = Metrics::default();
        metrics.count_rejected(404);
        metrics.count_rejected(404);
        metrics.count_rejected(999);
        metrics.topics.store(3, Relaxed);
        let text = metrics.render(&Feeds::default());
        for name in [
            "sse_connections_open 0",
            "sse_connections_accepted_total 0",
            "sse_subscribers 0",
            "sse_stats_watchers 0",
            "sse_topics 3",
            "sse_events_published_total 0",
            "sse_deliveries_total 0",
            "sse_bytes_written_total 0",
            "sse_slow_consumer_disconnects_total 0",
            "sse_token_expiry_closes_total 0",
            "sse_stream_lifetime_closes_total 0",
            "sse_rejected_requests_total{status=\"404\"} 2",
            "sse_rejected_requests_total{status=\"500\"} 1",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_cpu_seconds_total ",
            "process_start_time_seconds ",
            "sse_history_memory_budget_bytes ",
            "sse_fanout_backlog_seconds ",
            "sse_backplane_up 1",
            "sse_backplane_reconnects_total 0",
            "sse_backplane_replays_total 0",
            "sse_backplane_feed_gaps_total 0",
            "# TYPE sse_loop_connections gauge",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
