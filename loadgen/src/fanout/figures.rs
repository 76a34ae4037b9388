//! How a run's figures follow from what it measured: `Measurements` in, the [`FanoutReport`]
//! of a [`FanoutRun`] out.

use std::time::Duration;

use super::overload::OverloadReport;
use super::rate_search::SearchOutcome;
use super::report::{FanoutReport, FanoutRun};
use super::settings::FanoutSettings;
use crate::publisher::PublishOutcome;
use crate::stats::{ErrorCounts, PhaseReport, counts_by_name};
use crate::subscriber::{ProgressSnapshot, unix_now_ns};

/// Server memory growth per connection below which the figure is unreliable, bytes. Every
/// server holds at least a socket and a little state per connection; less growth than this
/// means the connections were served from memory an earlier run freed, not that they are free.
pub const MIN_PLAUSIBLE_RSS_PER_CONN: f64 = 32.0;

/// What a run measured, before it is turned into figures.
pub(super) struct Measurements {
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// The subscribe URLs, parsed.
    pub urls: Vec<String>,
    /// The publish URLs, parsed.
    pub publish_urls: Vec<String>,
    /// Processes holding the subscribers.
    pub processes: usize,
    /// Soft open-file limit per process.
    pub fd_limit: u64,
    /// How long the ramp took.
    pub ramp: Duration,
    /// The counters at the end of the ramp.
    pub ramp_progress: ProgressSnapshot,
    /// Where server memory and CPU come from.
    pub memory_source: &'static str,
    /// Server RSS before and after the ramp.
    pub rss: (Option<u64>, Option<u64>),
    /// Kernel socket memory before and after the ramp.
    pub sock: (Option<u64>, Option<u64>),
    /// The load generator's RSS with every connection open.
    pub loadgen_rss: u64,
    /// What the subscribers saw in the main phase.
    pub main: PhaseReport,
    /// How the main phase's publishing went.
    pub publish: PublishOutcome,
    /// Server CPU seconds during the main phase.
    pub server_cpu_s: Option<f64>,
    /// Load generator CPU seconds during the main phase.
    pub loadgen_main_cpu_s: f64,
    /// Load generator CPU seconds over the whole run.
    pub loadgen_cpu_s: f64,
    /// Failures over the whole run.
    pub errors: ErrorCounts,
    /// The rate search, when it ran.
    pub search: SearchOutcome,
    /// The overload phase, when it ran.
    pub overload: Option<OverloadReport>,
}

impl FanoutRun {
    /// The figures of a run configured by `s` that measured `m`.
    pub(super) fn from_measurements(s: &FanoutSettings, m: Measurements) -> FanoutRun {
        let main = &m.main;
        let opened = m.ramp_progress.opened;
        let per_conn = |(before, after): (Option<u64>, Option<u64>)| {
            before
                .zip(after)
                .filter(|_| opened > 0)
                .map(|(b, a)| (a as f64 - b as f64) / opened as f64)
        };
        let last_sub = main.last_subscriber_histogram();
        let ms = |us: u64| us as f64 / 1000.0;
        let span_ns = main
            .last_delivery_unix_ns
            .saturating_sub(m.publish.start_unix_ns);
        let per_million =
            |cpu: Option<f64>, d: u64| cpu.filter(|_| d > 0).map(|c| c / d as f64 * 1e6);
        let best_rate = m.search.best_rate;
        let report = FanoutReport {
            label: s.label.clone(),
            scenario: s
                .scenario
                .clone()
                .unwrap_or_else(|| format!("{}B@{}/s", s.payload, s.rate)),
            started_unix_s: m.started_unix_s,
            finished_unix_s: unix_now_ns() as f64 / 1e9,
            url: m.urls[0].clone(),
            publish_url: m.publish_urls[0].clone(),
            urls: m.urls,
            publish_urls: m.publish_urls,
            connections: s.connections,
            threads: s.threads,
            processes: m.processes,
            source_ips: s.source_ips.len(),
            connect_rate: s.connect_rate,
            events: s.events,
            rate: s.rate,
            payload_bytes: s.payload,
            publishers: s.publishers,
            drain_timeout_s: s.drain_timeout.as_secs_f64(),
            response_timeout_s: s.response_timeout.as_secs_f64(),
            search_events: s.search_events,
            search_phase_s: s.search_phase.as_secs_f64(),
            max_p99_ms: s.max_p99.as_secs_f64() * 1e3,
            max_rate: s.max_rate,
            fd_limit: m.fd_limit,
            latency_origin: "scheduled_send_time".into(),
            connections_open: opened,
            // Connections still opening when the main phase started were closed and counted as
            // `ramp_timeout` failures.
            connections_failed: s.connections - opened,
            connect_rate_achieved: (opened + m.ramp_progress.failed) as f64
                / m.ramp.as_secs_f64().max(1e-9),
            ramp_s: m.ramp.as_secs_f64(),
            deliveries: main.deliveries,
            expected_deliveries: main.connections * s.events,
            lost: main.lost,
            connections_with_loss: main.connections_with_loss,
            duplicated: main.duplicated,
            out_of_order: main.out_of_order,
            late: main.late,
            dropped_connections: main.dropped,
            reconnect: s.reconnect,
            reconnects: main.reconnects,
            reconnect_p50_ms: (main.reconnects > 0)
                .then(|| ms(main.reconnect_us.value_at_quantile(0.5))),
            reconnect_max_ms: (main.reconnects > 0).then(|| ms(main.reconnect_us.max())),
            all_back_ms: (main.reconnects > 0 && main.reconnecting == 0).then(|| {
                main.last_reconnect_unix_ns
                    .saturating_sub(main.first_stream_end_unix_ns) as f64
                    / 1e6
            }),
            still_reconnecting: main.reconnecting,
            errors: counts_by_name(&m.errors),
            first_subscribe_refusal: main.first_reply.as_ref().map(|r| r.to_string()),
            first_publish_refusal: m.publish.first_refusal.as_ref().map(|r| r.to_string()),
            published: m.publish.published,
            publish_max_lag_ms: m.publish.max_lag_ns as f64 / 1e6,
            publisher_kept_schedule: m.publish.kept_schedule,
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
            memory_source: m.memory_source.into(),
            server_pids: s.server_pids.clone(),
            server_rss_before_bytes: m.rss.0,
            server_rss_after_bytes: m.rss.1,
            server_rss_per_conn_bytes: per_conn(m.rss),
            server_rss_unreliable: per_conn(m.rss).is_some_and(|b| b < MIN_PLAUSIBLE_RSS_PER_CONN),
            kernel_sock_mem_before_bytes: m.sock.0,
            kernel_sock_mem_after_bytes: m.sock.1,
            kernel_sock_mem_per_conn_bytes: per_conn(m.sock),
            server_cpu_s: m.server_cpu_s,
            server_cpu_s_per_million_deliveries: per_million(m.server_cpu_s, main.deliveries),
            loadgen_cpu_s: m.loadgen_cpu_s,
            loadgen_cpu_us_per_delivery: (main.deliveries > 0)
                .then(|| m.loadgen_main_cpu_s / main.deliveries as f64 * 1e6),
            loadgen_subscriber_cpu_us_per_delivery: (main.deliveries > 0)
                .then(|| main.subscriber_cpu_ns as f64 / 1e3 / main.deliveries as f64),
            loadgen_rss_bytes: m.loadgen_rss,
            rate_search: s.rate_search,
            max_sustained_rate: best_rate,
            // The subscribers of the passing phase: those opened in the ramp may have dropped
            // since (issue 11).
            max_sustained_deliveries_per_sec: best_rate
                .zip(m.search.best_connections)
                .map(|(r, c)| r * c as f64),
            rate_search_server_cpu_s_per_million_deliveries: if s.rate_search {
                per_million(m.search.server_cpu_s, m.search.deliveries)
            } else {
                None
            },
            rate_search_phases: m.search.phases,
            overload: m.overload,
        };
        FanoutRun {
            report,
            latency: m.main.latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures of a run whose server RSS went from `before` to `after` with `opened`
    /// connections open.
    fn memory_run(before: u64, after: u64, opened: u64) -> FanoutReport {
        let s = FanoutSettings {
            connections: opened.max(1),
            ..FanoutSettings::default()
        };
        let m = Measurements {
            started_unix_s: 0.0,
            urls: vec![String::new()],
            publish_urls: vec![String::new()],
            processes: 1,
            fd_limit: 1024,
            ramp: Duration::from_secs(1),
            ramp_progress: ProgressSnapshot {
                opened,
                ..ProgressSnapshot::default()
            },
            memory_source: "proc",
            rss: (Some(before), Some(after)),
            sock: (None, None),
            loadgen_rss: 0,
            main: PhaseReport::new(1),
            publish: PublishOutcome::default(),
            server_cpu_s: None,
            loadgen_main_cpu_s: 0.0,
            loadgen_cpu_s: 0.0,
            errors: ErrorCounts::new(),
            search: SearchOutcome::default(),
            overload: None,
        };
        FanoutRun::from_measurements(&s, m).report
    }

    /// Memory that did not grow as connections opened is flagged unreliable; real growth is
    /// not. Regression test for issue 15, defect 4 (`scale` against a used server reported
    /// 0-8 B per connection as fact).
    #[test]
    fn memory_that_did_not_grow_is_flagged_unreliable() {
        let mib = 1 << 20;
        let table: &[(u64, u64, u64, Option<f64>, bool)] = &[
            (10 * mib, 10 * mib + 160_000, 1000, Some(160.0), false),
            (10 * mib, 10 * mib + 8_000, 1000, Some(8.0), true),
            (10 * mib, 10 * mib, 1000, Some(0.0), true),
            (10 * mib, 10 * mib - 4096, 1000, Some(-4.096), true),
            (10 * mib, 10 * mib + 32_000, 1000, Some(32.0), false),
            (10 * mib, 10 * mib, 0, None, false),
        ];
        for &(before, after, opened, per_conn, unreliable) in table {
            let r = memory_run(before, after, opened);
            assert_eq!(r.server_rss_per_conn_bytes, per_conn, "{before} -> {after}");
            assert_eq!(r.server_rss_unreliable, unreliable, "{before} -> {after}");
        }
    }
}
