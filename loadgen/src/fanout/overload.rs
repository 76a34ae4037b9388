//! The overload phase (`--overload DUR`): after the main phase and the rate search, on the
//! same connections, publish as fast as the server answers for `DUR` (a closed loop,
//! `--overload-in-flight` publishes at a time), wait (at most `--overload-drain`) for the
//! deliveries still owed, and report how that burst was delivered ([`OverloadReport`]).
//!
//! It runs last because it may leave the server with a backlog. With no schedule, latency is
//! measured from each event's actual send time: a server that slows its publishers down
//! (backpressure) shows it as fewer publishes accepted, not as delivery latency. A publish the
//! server refuses (a `503` from backpressure, say) is counted as refused, never as lost; only
//! accepted events are owed to the subscribers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::phase::Rig;
use super::settings::FanoutSettings;
use crate::error::Result;
use crate::publisher::{ClosedLoop, ClosedLoopOutcome};
use crate::server_probe::ServerProbe;
use crate::stats::{ErrorCounts, PhaseReport, count_error, counts_by_name};

/// The most events of an overload phase: the subscribers keep one bit per event and
/// connection, and the per-event figures 8 bytes per event and thread.
const MOST_EVENTS: u64 = 1_000_000;
/// The most loss-tracking bits of an overload phase over all connections (256 MiB).
const MOST_BITS: u64 = 1 << 31;

/// The most events an overload phase at `connections` may publish.
pub fn event_cap(connections: u64) -> u64 {
    (MOST_BITS / connections.max(1)).clamp(1, MOST_EVENTS)
}

/// How the overload phase went: one object of the report (`overload`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OverloadReport {
    /// Publishing time asked for (`--overload`), s.
    pub duration_s: f64,
    /// Publishes in flight (`--overload-in-flight`).
    pub in_flight: usize,
    /// Most events the phase could publish (see [`event_cap`]).
    pub event_cap: u64,
    /// Publishing stopped at `event_cap` before its time was up.
    pub stopped_at_cap: bool,
    /// Where latency is measured from: always `actual_send_time` (there is no schedule).
    pub latency_origin: String,
    /// Subscribers streaming when the phase started: those owed each accepted event.
    pub connections: u64,
    /// How long publishing took, to the last reply, s.
    pub publishing_s: f64,
    /// Publish requests sent (a refused event is sent again).
    pub requests: u64,
    /// Publishes answered 2xx: events the server took.
    pub accepted: u64,
    /// `accepted` per second of publishing.
    pub accepted_per_sec: f64,
    /// Publishes answered outside 2xx (`503` from backpressure, say): refused, not lost.
    pub refused: u64,
    /// Publishes with no answer (timeout, closed connection): not owed either.
    pub no_answer: u64,
    /// Refusals and failures of publishing by kind (`publish_status_503`, ...).
    pub publish_errors: BTreeMap<String, u64>,
    /// The first publish answer outside 2xx, quoted.
    pub first_refusal: Option<String>,
    /// Distinct deliveries of the burst's events.
    pub deliveries: u64,
    /// Accepted events x connections.
    pub expected_deliveries: u64,
    /// Owed deliveries that had not arrived by the end of the drain (`--overload-drain`).
    pub lost: u64,
    /// Deliveries received more than once.
    pub duplicated: u64,
    /// Connections that dropped during the phase.
    pub dropped_connections: u64,
    /// Deliveries per second, from the first publish to the last delivery.
    pub deliveries_per_sec: f64,
    /// From the end of publishing to the last delivery, s (0 when everything had arrived).
    pub drain_s: f64,
    /// Delivery latency from each event's actual send time: p50, µs.
    pub latency_p50_us: u64,
    /// p99.
    pub latency_p99_us: u64,
    /// Maximum.
    pub latency_max_us: u64,
    /// Server CPU seconds during the phase (publishing and drain).
    pub server_cpu_s: Option<f64>,
}

impl OverloadReport {
    /// The figures of `burst`, whose subscribers saw `phase` and whose publishers saw `out`.
    pub(super) fn from_phase(
        burst: &ClosedLoop,
        phase: &PhaseReport,
        out: &ClosedLoopOutcome,
        server_cpu_s: Option<f64>,
    ) -> OverloadReport {
        let secs = |ns: u64| ns as f64 / 1e9;
        let publishing_s = out.elapsed.as_secs_f64();
        let publishing_end_ns = out.start_unix_ns + out.elapsed.as_nanos() as u64;
        let span_ns = phase
            .last_delivery_unix_ns
            .saturating_sub(out.start_unix_ns);
        OverloadReport {
            duration_s: burst.duration.as_secs_f64(),
            in_flight: burst.in_flight,
            event_cap: burst.max_events as u64,
            stopped_at_cap: out.stopped_at_cap,
            latency_origin: "actual_send_time".into(),
            connections: phase.connections,
            publishing_s,
            requests: out.requests,
            accepted: out.accepted,
            accepted_per_sec: if publishing_s > 0.0 {
                out.accepted as f64 / publishing_s
            } else {
                0.0
            },
            refused: out.refused,
            no_answer: out.no_answer,
            publish_errors: counts_by_name(&out.errors),
            first_refusal: out.first_refusal.as_ref().map(|r| r.to_string()),
            deliveries: phase.deliveries,
            expected_deliveries: out.accepted * phase.connections,
            lost: phase.lost,
            duplicated: phase.duplicated,
            dropped_connections: phase.dropped,
            deliveries_per_sec: if span_ns > 0 {
                phase.deliveries as f64 / secs(span_ns)
            } else {
                0.0
            },
            drain_s: secs(
                phase
                    .last_delivery_unix_ns
                    .saturating_sub(publishing_end_ns),
            ),
            latency_p50_us: phase.latency.value_at_quantile(0.5),
            latency_p99_us: phase.latency.value_at_quantile(0.99),
            latency_max_us: phase.latency.max(),
            server_cpu_s,
        }
    }
}

/// Runs the overload phase of `settings` on `rig`'s open connections, its events numbered
/// from `first_seq`; adds the subscribers' failures during it to `errors` (the publishers'
/// refusals stay in the phase's own `publish_errors`: in overload they are expected).
pub(super) fn run_overload(
    rig: &mut Rig,
    probe: &ServerProbe,
    settings: &FanoutSettings,
    duration: Duration,
    first_seq: u64,
    errors: &mut ErrorCounts,
) -> Result<OverloadReport> {
    let burst = ClosedLoop {
        first_seq,
        duration,
        in_flight: settings.overload_in_flight,
        max_events: event_cap(settings.connections) as usize,
    };
    // Stragglers of an earlier phase arrive before the burst starts, not during it.
    std::thread::sleep(settings.settle);
    let cpu0 = probe.cpu_seconds();
    let (phase, out) = rig.run_closed_loop("overload", burst, settings.overload_drain)?;
    let cpu1 = probe.cpu_seconds();
    for (kind, n) in &phase.errors {
        count_error(errors, *kind, *n);
    }
    let cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
    Ok(OverloadReport::from_phase(&burst, &phase, &out, cpu))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FailureKind;

    /// The cap keeps the tracking bits within 256 MiB, and at most a million events.
    #[test]
    fn event_cap_bounds_the_tracking_memory() {
        let table: &[(u64, u64)] = &[
            (0, 1_000_000),
            (1, 1_000_000),
            (2_000, 1_000_000),
            (15_000, 143_165),
            (1 << 31, 1),
            (u64::MAX, 1),
        ];
        for &(connections, want) in table {
            assert_eq!(event_cap(connections), want, "{connections}");
        }
    }

    /// The figures follow from what the subscribers and the publishers saw: expected
    /// deliveries count accepted events only, refusals stay refusals, rates divide by the
    /// right spans.
    #[test]
    fn figures_count_only_accepted_events_as_owed() {
        let burst = ClosedLoop {
            first_seq: 100,
            duration: Duration::from_secs(5),
            in_flight: 2,
            max_events: 1000,
        };
        let mut phase = PhaseReport::new(0);
        phase.connections = 10;
        phase.deliveries = 395;
        phase.lost = 5;
        phase.duplicated = 1;
        for us in [1_000, 2_000, 400_000] {
            phase.latency.record(us).unwrap();
        }
        let start = 1_000_000_000_000;
        phase.last_delivery_unix_ns = start + 8_000_000_000;
        let mut out = ClosedLoopOutcome {
            count: 45,
            requests: 60,
            accepted: 40,
            refused: 15,
            no_answer: 5,
            unowed: vec![1, 2, 3, 4, 5],
            start_unix_ns: start,
            elapsed: Duration::from_secs(5),
            ..ClosedLoopOutcome::default()
        };
        count_error(&mut out.errors, FailureKind::publish_status(503), 15);
        let r = OverloadReport::from_phase(&burst, &phase, &out, Some(1.5));
        assert_eq!(r.expected_deliveries, 400);
        assert_eq!((r.accepted, r.refused, r.no_answer), (40, 15, 5));
        assert_eq!(r.publish_errors["publish_status_503"], 15);
        assert_eq!(r.accepted_per_sec, 8.0);
        assert_eq!(r.deliveries_per_sec, 395.0 / 8.0);
        assert_eq!(r.drain_s, 3.0);
        assert_eq!((r.lost, r.duplicated), (5, 1));
        assert_eq!(r.latency_origin, "actual_send_time");
        assert_eq!(r.latency_max_us, phase.latency.max());
        assert_eq!((r.event_cap, r.in_flight, r.duration_s), (1000, 2, 5.0));
    }
}
