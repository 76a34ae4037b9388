//! `sse-loadgen report`: reads the JSON lines of `fanout --json` / `scale --json` runs (one
//! label per server) and writes `summary.md` (a table per scenario) and SVG plots drawn with
//! plotters: memory per connection, p99 latency and deliveries per second vs connections.

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

/// The markdown summary: one table per scenario.
pub fn summary_markdown(reports: &[FanoutReport]) -> String {
    let opt = |v: Option<f64>, prec: usize| v.map_or("n/a".into(), |v| format!("{v:.prec$}"));
    let mut s = String::from("# SSE fan-out results\n\n");
    s.push_str(
        "Latency is measured from each event's scheduled send time (coordinated omission \
         corrected). Memory per connection is the server's RSS growth divided by the \
         connections open; kernel socket memory counts both ends on loopback.\n",
    );
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
                opt(r.server_rss_per_conn_bytes, 0),
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

/// One line of a plot.
struct Series {
    /// Legend text.
    name: String,
    /// (connections, value) points.
    points: Vec<(f64, f64)>,
}

/// Series per label (and scenario, when there are several) of `value`.
fn series(reports: &[FanoutReport], value: impl Fn(&FanoutReport) -> Option<f64>) -> Vec<Series> {
    let scenarios = by_scenario(reports);
    let several = scenarios.len() > 1;
    let mut map: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (scenario, rows) in scenarios {
        for r in rows {
            if let Some(v) = value(r).filter(|v| v.is_finite()) {
                let name = if several {
                    format!("{} [{scenario}]", r.label)
                } else {
                    r.label.clone()
                };
                map.entry(name).or_default().push((r.connections as f64, v));
            }
        }
    }
    map.into_iter()
        .map(|(name, points)| Series { name, points })
        .collect()
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
        .y_label_formatter(&|y| {
            if y_max >= 100.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
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
        &series(reports, |r| r.server_rss_per_conn_bytes),
    )?;
    let mut latency = Vec::new();
    for (suffix, pick) in [
        (
            "p50",
            (|r: &FanoutReport| r.latency_p50_us) as fn(&FanoutReport) -> u64,
        ),
        ("p99", |r: &FanoutReport| r.latency_p99_us),
        ("p99.9", |r: &FanoutReport| r.latency_p999_us),
    ] {
        for mut s in series(reports, |r| Some(pick(r) as f64 / 1000.0)) {
            s.name = format!("{} {suffix}", s.name);
            latency.push(s);
        }
    }
    plot(
        &out_dir.join("latency_p99.svg"),
        "Publish-to-receipt latency (p50, p99, p99.9)",
        "ms",
        &latency,
    )?;
    plot(
        &out_dir.join("deliveries_per_sec.svg"),
        "Deliveries per second (max sustained without loss, else measured)",
        "deliveries / s",
        &series(reports, |r| {
            r.max_sustained_deliveries_per_sec
                .or(Some(r.deliveries_per_sec))
        }),
    )?;
    Ok(summary)
}
