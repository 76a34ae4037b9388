//! The markdown summary of a report: one table per scenario, then what the plots leave out
//! and why (a single-point scenario, an unreliable memory figure, a rate search that found
//! nothing), so no run disappears from the plots without a word.

use super::by_scenario;
use super::series::plot_notes;
use crate::fanout::{FanoutReport, OverloadReport};

/// The markdown summary: one table per scenario.
pub fn summary_markdown(reports: &[FanoutReport]) -> String {
    let opt = |v: Option<f64>, prec: usize| v.map_or("n/a".into(), |v| format!("{v:.prec$}"));
    let mut s = String::from("# SSE fan-out results\n\n");
    s.push_str(
        "Latency is measured from each event's scheduled send time (coordinated omission \
         corrected). Memory per connection is the server's RSS growth divided by the \
         connections open; kernel socket memory counts both ends on loopback.\n",
    );
    if reports.iter().any(|r| r.server_rss_unreliable) {
        s.push_str(
            "\nRSS figures marked *unreliable* come from runs in which the server's memory did \
             not grow as connections opened (its allocator reused memory an earlier run freed); \
             they are left out of the memory plot. Run each step on a fresh server.\n",
        );
    }
    for (scenario, rows) in by_scenario(reports) {
        s.push_str(&format!("\n## Scenario `{scenario}`\n\n"));
        s.push_str(
            "| server | connections | open | RSS B/conn | kernel B/conn | p50 µs | p99 µs | p99.9 µs | max µs | last sub p99 ms | deliveries/s | max sustained deliveries/s | server CPU s / M deliveries (steady) | server CPU s / M deliveries (rate search) | loadgen CPU µs / delivery | lost | dup |\n",
        );
        s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        for r in &rows {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
                r.label,
                r.connections,
                r.connections_open,
                if r.server_rss_unreliable {
                    format!("{} *unreliable*", opt(r.server_rss_per_conn_bytes, 0))
                } else {
                    opt(r.server_rss_per_conn_bytes, 0)
                },
                opt(r.kernel_sock_mem_per_conn_bytes, 0),
                r.latency_p50_us,
                r.latency_p99_us,
                r.latency_p999_us,
                r.latency_max_us,
                r.last_subscriber_p99_ms,
                r.deliveries_per_sec,
                opt(r.max_sustained_deliveries_per_sec, 0),
                opt(r.server_cpu_s_per_million_deliveries, 3),
                opt(r.rate_search_server_cpu_s_per_million_deliveries, 3),
                opt(r.loadgen_cpu_us_per_delivery, 1),
                r.lost,
                r.duplicated
            ));
        }
        overload_table(&rows, &mut s);
    }
    let notes = plot_notes(reports);
    if !notes.is_empty() {
        s.push_str("\n## Not in the plots\n\n");
        for note in notes {
            s.push_str(&format!("- {note}\n"));
        }
    }
    s
}

/// The overload phase's table of a scenario, when a run of it had one.
fn overload_table(rows: &[&FanoutReport], s: &mut String) {
    let runs: Vec<(&FanoutReport, &OverloadReport)> = rows
        .iter()
        .filter_map(|r| r.overload.as_ref().map(|o| (*r, o)))
        .collect();
    if runs.is_empty() {
        return;
    }
    s.push_str(
        "\nOverload phase: publishing back to back (the next publish when the last is \
         answered), then waiting for the deliveries owed. Latency is measured from each \
         event's actual send time, as there is no schedule; refused publishes (a 503 from \
         backpressure, say) are not owed, so they are never counted lost.\n\n",
    );
    s.push_str(
        "| server | connections | publishing s | in flight | accepted | accepted/s | refused | unanswered | deliveries/s | p50 µs | p99 µs | max µs | drained s | lost | dup |\n",
    );
    s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (r, o) in runs {
        s.push_str(&format!(
            "| {} | {} | {:.1}{} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {:.2} | {} | {} |\n",
            r.label,
            o.connections,
            o.publishing_s,
            if o.stopped_at_cap { " (event cap)" } else { "" },
            o.in_flight,
            o.accepted,
            o.accepted_per_sec,
            o.refused,
            o.no_answer,
            o.deliveries_per_sec,
            o.latency_p50_us,
            o.latency_p99_us,
            o.latency_max_us,
            o.drain_s,
            o.lost,
            o.duplicated
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(label: &str, scenario: &str, connections: u64, rss: f64) -> FanoutReport {
        FanoutReport {
            label: label.into(),
            scenario: scenario.into(),
            connections,
            server_rss_per_conn_bytes: Some(rss),
            ..FanoutReport::default()
        }
    }

    /// An unreliable memory figure is marked in the table, and the summary says it is not in
    /// the memory plot. Regression test for issue 15, defect 4.
    #[test]
    fn unreliable_memory_is_marked_and_said_to_be_left_out() {
        let mut reports = [
            report("ours", "64B@5/s", 1000, 160.0),
            report("ours", "64B@5/s", 5000, 4.0),
        ];
        reports[1].server_rss_unreliable = true;
        let summary = summary_markdown(&reports);
        assert!(summary.contains("| 4 *unreliable* |"), "{summary}");
        assert!(summary.contains("left out of the memory plot"), "{summary}");
        assert!(
            summary.contains(
                "## Not in the plots\n\n- `memory_per_conn.svg` leaves out ours at 5000 connections"
            ),
            "{summary}"
        );
    }

    /// A single-point scenario beside a scaling run has its table, and the summary says it
    /// is in no plot. Regression test for issue 15, defect 12.
    #[test]
    fn single_point_scenario_is_said_to_be_in_no_plot() {
        let reports = [
            report("ours", "64B@5/s", 1000, 300.0),
            report("ours", "64B@5/s", 5000, 190.0),
            report("ours", "sanity: 1 connection", 1, 4096.0),
        ];
        let summary = summary_markdown(&reports);
        assert!(
            summary.contains("## Scenario `sanity: 1 connection`"),
            "{summary}"
        );
        assert!(
            summary.contains("- Scenario `sanity: 1 connection` is in no plot"),
            "{summary}"
        );
    }

    /// A run with an overload phase gets a row in the scenario's overload table; without
    /// one, there is no such table.
    #[test]
    fn overload_phase_has_its_own_table() {
        let mut reports = [
            report("ours", "64B@5/s", 1000, 300.0),
            report("ours", "64B@5/s", 5000, 190.0),
        ];
        assert!(!summary_markdown(&reports).contains("Overload phase"));
        reports[1].overload = Some(OverloadReport {
            connections: 5000,
            publishing_s: 5.0,
            in_flight: 1,
            accepted: 1200,
            accepted_per_sec: 240.0,
            refused: 30,
            deliveries_per_sec: 1_200_000.0,
            latency_p50_us: 150_000,
            latency_p99_us: 800_000,
            latency_max_us: 900_000,
            drain_s: 0.5,
            ..OverloadReport::default()
        });
        let summary = summary_markdown(&reports);
        assert!(
            summary.contains(
                "| ours | 5000 | 5.0 | 1 | 1200 | 240 | 30 | 0 | 1200000 | 150000 | 800000 | 900000 | 0.50 | 0 | 0 |"
            ),
            "{summary}"
        );
        assert!(summary.contains("actual send time"), "{summary}");
    }

    /// Nothing left out: no notes section.
    #[test]
    fn no_notes_when_everything_is_drawn() {
        let reports = [
            report("ours", "64B@5/s", 1000, 300.0),
            report("ours", "64B@5/s", 5000, 190.0),
        ];
        assert!(!summary_markdown(&reports).contains("Not in the plots"));
    }
}
