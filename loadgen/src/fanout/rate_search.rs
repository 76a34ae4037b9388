//! The rate search: after the main phase, phases on the same connections at rising rates find
//! the highest rate delivered without loss.
//!
//! The rule is [`next_rate`]: double from `--rate` until a phase fails (or `--max-rate` is
//! reached), then bisect between the highest passing and the lowest failing rate until they
//! are within 10 %. A phase passes when nothing was lost, every publish succeeded, the
//! publisher kept its schedule and p99 latency stayed within `--max-p99`.

use std::time::Duration;

use super::phase::Rig;
use super::report::SearchPhase;
use super::settings::FanoutSettings;
use crate::error::Result;
use crate::server_probe::ServerProbe;
use crate::stats::{ErrorCounts, count_error};

/// What the phases so far have shown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SearchBounds {
    /// The highest rate of a passing phase.
    pub highest_pass: Option<f64>,
    /// The lowest rate of a failing phase.
    pub lowest_fail: Option<f64>,
}

impl SearchBounds {
    /// Takes in a phase at `rate` that passed or failed.
    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.highest_pass = Some(self.highest_pass.map_or(rate, |r| r.max(rate)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |r| r.min(rate)));
        }
    }
}

/// The rate of the next search phase after a phase at `tried`, with `bounds` including that
/// phase; `None` when the search is over.
///
/// Until a phase fails the rate doubles, capped at `max_rate` (the search ends once a phase at
/// `max_rate` passed). After a failure it is the midpoint of the highest pass and the lowest
/// failure (rounded, and at least 1 above the pass), until the two are within 10 %. A failure
/// before any pass ends the search: nothing was sustained.
pub fn next_rate(tried: f64, bounds: SearchBounds, max_rate: f64) -> Option<f64> {
    let next = match (bounds.highest_pass, bounds.lowest_fail) {
        (_, None) if tried >= max_rate => return None,
        (_, None) => (tried * 2.0).min(max_rate),
        (None, Some(_)) => return None,
        (Some(low), Some(high)) if high <= low * 1.1 => return None,
        (Some(low), Some(high)) => ((low + high) / 2.0).round().max(low + 1.0),
    };
    match bounds.lowest_fail {
        Some(high) if next >= high => None,
        _ => Some(next),
    }
}

/// Whether a search phase passed: nothing lost on a phase that had connections, no publish
/// failed, the schedule was kept, and p99 is within the limit.
pub fn phase_passed(phase: &SearchPhase, connections: u64, max_p99: Duration) -> bool {
    phase.lost == 0
        && connections > 0
        && phase.publish_errors == 0
        && phase.kept_schedule
        && Duration::from_micros(phase.p99_us) <= max_p99
}

/// What the search found.
#[derive(Debug, Default)]
pub(super) struct SearchOutcome {
    /// Every phase, in order.
    pub phases: Vec<SearchPhase>,
    /// The highest passing rate.
    pub best_rate: Option<f64>,
    /// The subscribers connected in the phase at that rate.
    pub best_connections: Option<u64>,
    /// Server CPU seconds over all phases, when every phase had a reading.
    pub server_cpu_s: Option<f64>,
    /// Deliveries over all phases.
    pub deliveries: u64,
}

/// Runs the search on `rig`'s open connections, its events numbered from `first_seq`; adds
/// the phases' failures to `errors`.
pub(super) fn run_rate_search(
    rig: &mut Rig,
    probe: &ServerProbe,
    settings: &FanoutSettings,
    first_seq: u64,
    errors: &mut ErrorCounts,
) -> Result<SearchOutcome> {
    let mut outcome = SearchOutcome {
        server_cpu_s: Some(0.0),
        ..SearchOutcome::default()
    };
    let mut bounds = SearchBounds::default();
    let mut rate = settings.rate;
    let mut next_seq = first_seq;
    // Loss tracking keeps one bit per event and connection: at most 1 GiB per phase.
    let most_events = ((1u64 << 33) / settings.connections.max(1)).max(settings.search_events);
    for _ in 0..settings.max_search_phases {
        let timed = (rate * settings.search_phase.as_secs_f64()).ceil() as u64;
        let count = timed.max(settings.search_events).min(most_events) as usize;
        let cpu0 = probe.cpu_seconds();
        let step = format!("search phase {} at {rate}/s", outcome.phases.len() + 1);
        let (r, out) = rig.run_phase(&step, next_seq, count, rate)?;
        let cpu1 = probe.cpu_seconds();
        next_seq += count as u64;
        let server_cpu_s = cpu0.zip(cpu1).map(|(a, b)| b - a);
        outcome.server_cpu_s = outcome.server_cpu_s.zip(server_cpu_s).map(|(a, b)| a + b);
        outcome.deliveries += r.deliveries;
        for (k, v) in r.errors.iter().chain(out.errors.iter()) {
            count_error(errors, *k, *v);
        }
        let mut phase = SearchPhase {
            rate,
            events: count as u64,
            connections: r.connections,
            deliveries: r.deliveries,
            lost: r.lost,
            duplicated: r.duplicated,
            p99_us: r.latency.value_at_quantile(0.99),
            kept_schedule: out.kept_schedule,
            publish_errors: out.errors.values().sum(),
            server_cpu_s,
            passed: false,
        };
        phase.passed = phase_passed(&phase, r.connections, settings.max_p99);
        bounds.record(rate, phase.passed);
        outcome.phases.push(phase);
        match next_rate(rate, bounds, settings.max_rate) {
            Some(next) => rate = next,
            None => break,
        }
    }
    outcome.best_rate = bounds.highest_pass;
    outcome.best_connections = outcome
        .phases
        .iter()
        .rfind(|p| p.passed && Some(p.rate) == bounds.highest_pass)
        .map(|p| p.connections);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Phases as `(rate, passed)`, in the order they ran.
    type History = &'static [(f64, bool)];

    /// Bounds from `(rate, passed)` phases.
    fn bounds(phases: &[(f64, bool)]) -> SearchBounds {
        let mut b = SearchBounds::default();
        for &(rate, passed) in phases {
            b.record(rate, passed);
        }
        b
    }

    /// The next rate after each history of phases (the last one is the rate just tried).
    #[test]
    fn next_rate_doubles_then_bisects() {
        let max = 100_000.0;
        let table: &[(History, f64, Option<f64>)] = &[
            // Doubling while phases pass.
            (&[(100.0, true)], max, Some(200.0)),
            (&[(100.0, true), (200.0, true)], max, Some(400.0)),
            // Capped at the maximum, and over once the maximum passed.
            (&[(100.0, true)], 150.0, Some(150.0)),
            (&[(100.0, true), (150.0, true)], 150.0, None),
            // A failure before any pass: nothing sustained, stop.
            (&[(100.0, false)], max, None),
            // Bisection between the highest pass and the lowest failure.
            (
                &[(100.0, true), (200.0, true), (400.0, false)],
                max,
                Some(300.0),
            ),
            (
                &[(100.0, true), (200.0, true), (400.0, false), (300.0, true)],
                max,
                Some(350.0),
            ),
            (
                &[(100.0, true), (200.0, true), (400.0, false), (300.0, false)],
                max,
                Some(250.0),
            ),
            // Within 10 %: done.
            (
                &[
                    (200.0, true),
                    (400.0, false),
                    (300.0, true),
                    (350.0, false),
                    (325.0, true),
                ],
                max,
                None,
            ),
            (&[(1000.0, true), (1100.0, false)], max, None),
            // The midpoint is rounded and at least 1 above the pass.
            (&[(1.0, true), (2.0, false)], max, None),
            (&[(10.0, true), (13.0, false)], max, Some(12.0)),
        ];
        for (phases, max_rate, want) in table {
            let tried = phases.last().unwrap().0;
            assert_eq!(
                next_rate(tried, bounds(phases), *max_rate),
                *want,
                "{phases:?} max {max_rate}"
            );
        }
    }

    /// Bounds keep the highest pass and the lowest failure whatever the order.
    #[test]
    fn bounds_keep_highest_pass_and_lowest_failure() {
        let b = bounds(&[(300.0, true), (100.0, true), (400.0, false), (350.0, false)]);
        assert_eq!(b.highest_pass, Some(300.0));
        assert_eq!(b.lowest_fail, Some(350.0));
    }

    /// A search from 100/s against a server that sustains 330/s: the rates tried, ending when
    /// the highest pass (325) and the lowest failure (350) are within 10 %.
    #[test]
    fn search_sequence_converges_below_the_limit() {
        let mut b = SearchBounds::default();
        let mut rate = 100.0;
        let mut tried = Vec::new();
        for _ in 0..16 {
            tried.push(rate);
            b.record(rate, rate <= 330.0);
            match next_rate(rate, b, 100_000.0) {
                Some(next) => rate = next,
                None => break,
            }
        }
        assert_eq!(tried, [100.0, 200.0, 400.0, 300.0, 350.0, 325.0]);
        assert_eq!(b.highest_pass, Some(325.0));
    }

    /// What makes a phase pass, one condition at a time.
    #[test]
    fn phase_passes_only_when_every_condition_holds() {
        let good = SearchPhase {
            rate: 100.0,
            kept_schedule: true,
            p99_us: 1_000,
            ..SearchPhase::default()
        };
        let max = Duration::from_millis(10);
        let table: &[(SearchPhase, u64, bool)] = &[
            (good.clone(), 5, true),
            (good.clone(), 0, false),
            (
                SearchPhase {
                    lost: 1,
                    ..good.clone()
                },
                5,
                false,
            ),
            (
                SearchPhase {
                    publish_errors: 1,
                    ..good.clone()
                },
                5,
                false,
            ),
            (
                SearchPhase {
                    kept_schedule: false,
                    ..good.clone()
                },
                5,
                false,
            ),
            (
                SearchPhase {
                    p99_us: 10_001,
                    ..good.clone()
                },
                5,
                false,
            ),
            (
                SearchPhase {
                    p99_us: 10_000,
                    ..good.clone()
                },
                5,
                true,
            ),
        ];
        for (phase, connections, want) in table {
            assert_eq!(phase_passed(phase, *connections, max), *want, "{phase:?}");
        }
    }
}
