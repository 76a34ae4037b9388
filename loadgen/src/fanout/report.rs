//! The result of a fanout run: [`FanoutReport`] (every figure and the settings, one JSON line
//! per run), its rate-search phases, and whether the run measured anything at all.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::overload::OverloadReport;

/// One phase of the rate search.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchPhase {
    /// Events per second.
    pub rate: f64,
    /// Events published.
    pub events: u64,
    /// Subscribers streaming when the phase started: those that owed each of its events.
    #[serde(default)]
    pub connections: u64,
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
    /// Subscribe URL (the first `--url`).
    pub url: String,
    /// Publish URL (the first `--publish-url`, or the default one).
    pub publish_url: String,
    /// Every subscribe URL (node), in the order subscribers are spread over them.
    pub urls: Vec<String>,
    /// Every publish URL, in the order events are spread over them.
    pub publish_urls: Vec<String>,
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
    /// Connections that dropped during the main phase (with `--reconnect`: that gave up, after
    /// a refusal).
    pub dropped_connections: u64,
    /// Whether subscribers reconnected when their stream ended (`--reconnect`).
    pub reconnect: bool,
    /// Streams that ended and came back, from the start to the end of the main phase.
    pub reconnects: u64,
    /// Time from a stream's end to its new event-stream head: p50, ms.
    pub reconnect_p50_ms: Option<f64>,
    /// Maximum.
    pub reconnect_max_ms: Option<f64>,
    /// From the first stream that ended to the last reconnection, ms: the time until every
    /// subscriber was back. `null` when none reconnected or some were still reconnecting.
    pub all_back_ms: Option<f64>,
    /// Subscribers still reconnecting when the main phase ended.
    pub still_reconnecting: u64,
    /// Failures by kind over the whole run (ramp, phases, publishing; the overload phase's
    /// publish refusals are in `overload.publish_errors`, since there they are expected).
    pub errors: BTreeMap<String, u64>,
    /// The first subscribe reply that was not a 200 event stream, quoted
    /// (`200 OK, content type text/plain: "ok"`).
    pub first_subscribe_refusal: Option<String>,
    /// The first publish reply outside 2xx in the main phase, quoted
    /// (`400 Bad Request: "missing topic"`).
    pub first_publish_refusal: Option<String>,
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
    /// The server pids (`--server-pid`) whose process trees are summed, each process once.
    pub server_pids: Vec<u32>,
    /// Server RSS before opening the connections, bytes.
    pub server_rss_before_bytes: Option<u64>,
    /// Server RSS with every connection open and idle, bytes.
    pub server_rss_after_bytes: Option<u64>,
    /// (after - before) / connections open.
    pub server_rss_per_conn_bytes: Option<f64>,
    /// The server's memory did not grow as connections opened (less than
    /// [`MIN_PLAUSIBLE_RSS_PER_CONN`](super::figures::MIN_PLAUSIBLE_RSS_PER_CONN) per connection), so the figure above is not what a
    /// connection costs: the allocator reused memory freed by an earlier run. Use a fresh server
    /// per step, as `scripts/bench.sh` does.
    pub server_rss_unreliable: bool,
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
    /// That rate x the subscribers still connected in that phase (not those opened in the
    /// ramp: some may have dropped since).
    pub max_sustained_deliveries_per_sec: Option<f64>,
    /// Server CPU seconds per million deliveries over the search phases.
    pub rate_search_server_cpu_s_per_million_deliveries: Option<f64>,
    /// Every search phase.
    pub rate_search_phases: Vec<SearchPhase>,
    /// The overload phase (`--overload`), when it ran: a closed-loop burst of publishes and
    /// how it was delivered.
    pub overload: Option<OverloadReport>,
}

/// A finished run: the report and the main phase's latency histogram.
#[derive(Debug)]
pub struct FanoutRun {
    /// Every figure.
    pub report: FanoutReport,
    /// Main-phase latency, µs.
    pub latency: Histogram<u64>,
}

impl FanoutReport {
    /// Why this run measured nothing, when it did: no subscriber connected (then nothing was
    /// published), or every publish of the main phase failed. Names the failures and quotes
    /// the server's first refusal.
    pub fn nothing_measured(&self) -> Option<String> {
        let kinds = |publish: bool| {
            let list: Vec<String> = self
                .errors
                .iter()
                .filter(|(k, _)| k.starts_with("publish_") == publish)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if list.is_empty() {
                String::new()
            } else {
                format!(": {}", list.join(" "))
            }
        };
        let quote = |reply: &Option<String>| {
            reply
                .as_ref()
                .map_or(String::new(), |r| format!("; first reply: {r}"))
        };
        let mut why = Vec::new();
        if self.connections_open == 0 {
            why.push(format!(
                "no subscriber connected ({} of {} failed{}), so nothing was published{}",
                self.connections_failed,
                self.connections,
                kinds(false),
                quote(&self.first_subscribe_refusal)
            ));
        }
        if self.connections_open > 0 && self.published == 0 && self.events > 0 {
            why.push(format!(
                "every publish failed ({} of {}{}){}",
                self.events,
                self.events,
                kinds(true),
                quote(&self.first_publish_refusal)
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that measured something is fine; one without subscribers or without a single
    /// successful publish says why, with the kinds and the quoted reply.
    #[test]
    fn nothing_measured_names_what_failed_and_quotes_the_server() {
        let good = FanoutReport {
            connections: 3,
            connections_open: 3,
            events: 2,
            published: 2,
            ..FanoutReport::default()
        };
        let no_subscribers = FanoutReport {
            connections_open: 0,
            published: 0,
            connections_failed: 3,
            errors: [("bad_content_type".to_string(), 3)].into(),
            first_subscribe_refusal: Some("200 OK, content type text/plain: \"ok\"".into()),
            ..good.clone()
        };
        let no_publish = FanoutReport {
            published: 0,
            errors: [("publish_status_400".to_string(), 2)].into(),
            first_publish_refusal: Some("400 Bad Request: \"missing topic\"".into()),
            ..good.clone()
        };
        let table: &[(&FanoutReport, Option<&str>)] = &[
            (&good, None),
            (
                &no_subscribers,
                Some(
                    "no subscriber connected (3 of 3 failed: bad_content_type=3), so nothing was \
                     published; first reply: 200 OK, content type text/plain: \"ok\"",
                ),
            ),
            (
                &no_publish,
                Some(
                    "every publish failed (2 of 2: publish_status_400=2); first reply: 400 Bad \
                     Request: \"missing topic\"",
                ),
            ),
        ];
        for (report, want) in table {
            assert_eq!(report.nothing_measured().as_deref(), *want);
        }
    }
}
