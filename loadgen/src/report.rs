//! `sse-loadgen report`: reads the JSON lines of `fanout --json` / `scale --json` runs (one
//! label per server) and writes `summary.md` (a table per scenario) and SVG plots drawn with
//! plotters: memory per connection, latency (p99, with p50 and p99.9) and deliveries per second
//! vs connections, one colour per server in every plot.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::fanout::FanoutReport;

/// Reads every JSON line of `paths` (blank lines skipped).
pub fn read_reports(paths: &[PathBuf]) -> Result<Vec<FanoutReport>> {
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r = serde_json::from_str(line).map_err(|e| Error::Json {
                context: format!("{}:{}: not a fanout report", path.display(), i + 1),
                source: e,
            })?;
            out.push(r);
        }
    }
    if out.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::NoReports(names.join(", ")));
    }
    Ok(out)
}

/// Groups reports by scenario, each sorted by label then connections.
fn by_scenario(reports: &[FanoutReport]) -> BTreeMap<&str, Vec<&FanoutReport>> {
    let mut map: BTreeMap<&str, Vec<&FanoutReport>> = BTreeMap::new();
    for r in reports {
        map.entry(r.scenario.as_str()).or_default().push(r);
    }
    for rows in map.values_mut() {
        rows.sort_by(|a, b| (&a.label, a.connections).cmp(&(&b.label, b.connections)));
    }
    map
}

/// A run's memory per connection, unless it is flagged unreliable.
fn reliable_rss_per_conn(r: &FanoutReport) -> Option<f64> {
    r.server_rss_per_conn_bytes
        .filter(|_| !r.server_rss_unreliable)
}

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
        for r in rows {
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
    }
    s
}

/// How a line is drawn, so several figures of one server share its colour and stay apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stroke {
    /// The plot's main figure.
    Bold,
    /// A lesser figure beside it (e.g. p50 beside p99).
    Thin,
    /// A tail figure (e.g. p99.9).
    Dashed,
}

/// One line of a plot.
struct Series {
    /// Legend text.
    name: String,
    /// Index of the server's label among every label of the report: its colour in every plot.
    colour: usize,
    stroke: Stroke,
    /// (connections, value) points.
    points: Vec<(f64, f64)>,
}

/// The scenarios worth a line against connections: those run at two or more connection
/// counts (a one-connection sanity run is a single point, and its per-connection figures are
/// page-sized noise); every scenario when none was.
fn scaling_scenarios(reports: &[FanoutReport]) -> BTreeMap<&str, Vec<&FanoutReport>> {
    let scenarios = by_scenario(reports);
    let spans = |rows: &[&FanoutReport]| rows.iter().any(|r| r.connections != rows[0].connections);
    if scenarios.values().any(|rows| spans(rows)) {
        scenarios
            .into_iter()
            .filter(|(_, rows)| spans(rows))
            .collect()
    } else {
        scenarios
    }
}

/// Series per label (and scenario, when there are several) of `value`, drawn with `stroke`.
fn series(
    reports: &[FanoutReport],
    stroke: Stroke,
    value: impl Fn(&FanoutReport) -> Option<f64>,
) -> Vec<Series> {
    let labels: Vec<&str> = {
        let mut labels: Vec<&str> = reports.iter().map(|r| r.label.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        labels
    };
    let scenarios = scaling_scenarios(reports);
    let several = scenarios.len() > 1;
    let mut map: BTreeMap<String, (usize, Vec<(f64, f64)>)> = BTreeMap::new();
    for (scenario, rows) in scenarios {
        for r in rows {
            if let Some(v) = value(r).filter(|v| v.is_finite()) {
                let name = if several {
                    format!("{} [{scenario}]", r.label)
                } else {
                    r.label.clone()
                };
                let colour = labels.binary_search(&r.label.as_str()).unwrap_or(0);
                map.entry(name)
                    .or_insert_with(|| (colour, Vec::new()))
                    .1
                    .push((r.connections as f64, v));
            }
        }
    }
    map.into_iter()
        .map(|(name, (colour, points))| Series {
            name,
            colour,
            stroke,
            points,
        })
        .collect()
}

/// A y-axis label: large counts in millions or thousands, small values with two decimals.
fn axis_number(y: f64, y_max: f64) -> String {
    if y_max >= 2e6 {
        format!("{:.1}M", y / 1e6)
    } else if y_max >= 2e4 {
        format!("{:.0}k", y / 1e3)
    } else if y_max >= 100.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.2}")
    }
}

/// Draws `series` into an SVG line chart.
fn plot(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Plot {
        file: path.display().to_string(),
        reason: e.to_string(),
    };
    let all = series.iter().flat_map(|s| s.points.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_max = all.map(|p| p.1).fold(1e-9, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| axis_number(*y, y_max))
        .draw()
        .map_err(|e| err(&e))?;
    for s in series {
        let color = Palette99::pick(s.colour).to_rgba();
        let style = match s.stroke {
            Stroke::Bold => color.stroke_width(3),
            Stroke::Thin | Stroke::Dashed => color.stroke_width(1),
        };
        let points = s.points.iter().copied();
        let drawn = match s.stroke {
            Stroke::Dashed => chart.draw_series(DashedLineSeries::new(points, 6, 4, style)),
            Stroke::Bold | Stroke::Thin => chart.draw_series(LineSeries::new(points, style)),
        }
        .map_err(|e| err(&e))?;
        // The legend's sample: two segments, joined for a solid line, apart for a dashed one.
        let (first_end, second_start) = if s.stroke == Stroke::Dashed {
            (7, 13)
        } else {
            (10, 10)
        };
        drawn.label(s.name.clone()).legend(move |anchor| {
            EmptyElement::at(anchor)
                + PathElement::new(vec![(0, 0), (first_end, 0)], style)
                + PathElement::new(vec![(second_start, 0), (20, 0)], style)
        });
        if s.stroke == Stroke::Bold {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Writes `summary.md` and the plots into `out_dir`, returns the summary text.
pub fn write_report(reports: &[FanoutReport], out_dir: &Path) -> Result<String> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| Error::io(format!("cannot create {}", out_dir.display()), e))?;
    let summary = summary_markdown(reports);
    std::fs::File::create(out_dir.join("summary.md"))
        .and_then(|mut f| f.write_all(summary.as_bytes()))
        .map_err(|e| Error::io("cannot write summary.md", e))?;
    plot(
        &out_dir.join("memory_per_conn.svg"),
        "Server memory per connection",
        "RSS bytes / connection",
        // Figures flagged unreliable (memory did not grow) are left out, not drawn as fact.
        &series(reports, Stroke::Bold, reliable_rss_per_conn),
    )?;
    // One colour per server; p99, the figure the targets name, bold; p50 thin; p99.9 dashed.
    let mut latency = Vec::new();
    for (suffix, stroke, pick) in [
        (
            "p50",
            Stroke::Thin,
            (|r: &FanoutReport| r.latency_p50_us) as fn(&FanoutReport) -> u64,
        ),
        ("p99", Stroke::Bold, |r: &FanoutReport| r.latency_p99_us),
        ("p99.9", Stroke::Dashed, |r: &FanoutReport| {
            r.latency_p999_us
        }),
    ] {
        for mut s in series(reports, stroke, |r| Some(pick(r) as f64 / 1000.0)) {
            s.name = format!("{} {suffix}", s.name);
            latency.push(s);
        }
    }
    latency.sort_by(|a, b| a.name.cmp(&b.name));
    plot(
        &out_dir.join("latency_p99.svg"),
        "Publish-to-receipt latency: p99 (bold), p50 (thin), p99.9 (dashed)",
        "ms",
        &latency,
    )?;
    plot(
        &out_dir.join("deliveries_per_sec.svg"),
        "Deliveries per second (max sustained without loss, else measured)",
        "deliveries / s",
        &series(reports, Stroke::Bold, |r| {
            r.max_sustained_deliveries_per_sec
                .or(Some(r.deliveries_per_sec))
        }),
    )?;
    Ok(summary)
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

    /// An unreliable memory figure is marked in the summary and left out of the memory plot.
    /// Regression test for issue 15, defect 4.
    #[test]
    fn unreliable_memory_is_marked_and_not_plotted() {
        let mut reports = [
            report("ours", "64B@5/s", 1000, 160.0),
            report("ours", "64B@5/s", 5000, 4.0),
        ];
        reports[1].server_rss_unreliable = true;
        let summary = summary_markdown(&reports);
        assert!(summary.contains("| 4 *unreliable* |"), "{summary}");
        assert!(summary.contains("left out of the memory plot"), "{summary}");
        let lines = series(&reports, Stroke::Bold, reliable_rss_per_conn);
        assert_eq!(lines[0].points, vec![(1000.0, 160.0)]);
    }

    /// A one-connection sanity run beside a scaling run is not drawn as a line of its own: its
    /// per-connection memory is a page of noise and would squash the real lines.
    #[test]
    fn single_point_scenarios_stay_out_of_plots_beside_scaling_runs() {
        let reports = [
            report("ours", "64B@5/s", 1000, 300.0),
            report("ours", "64B@5/s", 5000, 190.0),
            report("ours", "sanity", 1, 4096.0),
        ];
        let lines = series(&reports, Stroke::Bold, |r| r.server_rss_per_conn_bytes);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, "ours");
        assert_eq!(lines[0].points, vec![(1000.0, 300.0), (5000.0, 190.0)]);
    }

    /// A run with one step per server still plots its points.
    #[test]
    fn single_step_runs_are_plotted() {
        let reports = [
            report("go", "64B@5/s", 1000, 28000.0),
            report("ours", "64B@5/s", 1000, 300.0),
        ];
        let lines = series(&reports, Stroke::Bold, |r| r.server_rss_per_conn_bytes);
        assert_eq!(lines.len(), 2);
    }

    /// Each server keeps its colour in every plot, whatever figures it lacks.
    #[test]
    fn a_server_keeps_its_colour_across_plots() {
        let mut reports = vec![
            report("axum", "s", 1000, 20000.0),
            report("axum", "s", 5000, 20000.0),
            report("ours", "s", 1000, 300.0),
            report("ours", "s", 5000, 190.0),
        ];
        let all = series(&reports, Stroke::Bold, |r| r.server_rss_per_conn_bytes);
        reports[0].server_rss_per_conn_bytes = None;
        reports[1].server_rss_per_conn_bytes = None;
        let without_axum = series(&reports, Stroke::Bold, |r| r.server_rss_per_conn_bytes);
        assert_eq!(without_axum.len(), 1);
        assert_eq!(without_axum[0].colour, all[1].colour);
        assert_ne!(all[0].colour, all[1].colour);
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(axis_number(6_000_000.0, 6_600_000.0), "6.0M");
        assert_eq!(axis_number(30_000.0, 33_000.0), "30k");
        assert_eq!(axis_number(250.0, 330.0), "250");
        assert_eq!(axis_number(0.5, 1.1), "0.50");
    }
}
