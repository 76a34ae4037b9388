//! The soak's samples of the server (memory, descriptors, connections, topics), the trend of
//! each after warm-up (a least-squares line), the verdict, and the plot.

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

/// One reading of the server.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    /// Seconds since the soak began.
    pub t_s: f64,
    /// Resident memory of the server's processes (bytes).
    pub rss_bytes: f64,
    /// Open descriptors of the server.
    pub open_fds: f64,
    /// Client sockets the server holds (`sse_sockets_open`).
    pub sockets: f64,
    /// Streaming subscribers (`sse_subscribers`).
    pub subscribers: f64,
    /// Topic logs of the fullest loop (`sse_loop_topics`).
    pub loop_topics: f64,
    /// Live topics of the broker (`sse_topics`).
    pub topics: f64,
    /// Bytes of retained history (`sse_history_retained_bytes`).
    pub retained_bytes: f64,
    /// Slow consumers cut so far (`sse_slow_consumer_disconnects_total`).
    pub slow_disconnects: f64,
}

/// A series the verdict watches, and how much growth after warm-up it tolerates.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// Its name in the report.
    pub name: &'static str,
    /// Reads it from a sample.
    pub get: fn(&Sample) -> f64,
    /// Growth always tolerated (noise), in the series' unit.
    pub slack: f64,
    /// Growth tolerated as a share of the series' mean after warm-up.
    pub share: f64,
}

/// The series a soak must keep flat.
pub const WATCHED: [Watched; 5] = [
    Watched {
        name: "rss_bytes",
        get: |s| s.rss_bytes,
        slack: 8.0 * 1024.0 * 1024.0,
        share: 0.10,
    },
    Watched {
        name: "open_fds",
        get: |s| s.open_fds,
        slack: 64.0,
        share: 0.10,
    },
    Watched {
        name: "sockets",
        get: |s| s.sockets,
        slack: 64.0,
        share: 0.10,
    },
    Watched {
        name: "loop_topics",
        get: |s| s.loop_topics,
        slack: 500.0,
        share: 0.10,
    },
    Watched {
        name: "topics",
        get: |s| s.topics,
        slack: 500.0,
        share: 0.10,
    },
];

/// The trend of one series after warm-up.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    /// The series.
    pub name: &'static str,
    /// Mean after warm-up.
    pub mean: f64,
    /// Slope of the fitted line, per second.
    pub slope_per_s: f64,
    /// What the fitted line grew by over the span after warm-up.
    pub growth: f64,
    /// The growth tolerated.
    pub limit: f64,
    /// Whether the series stayed within it.
    pub flat: bool,
}

/// Least-squares slope of `(x, y)` points (0 for fewer than two distinct x).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// The trend of every watched series over the samples taken at or after `warmup_s`.
pub fn trends(samples: &[Sample], warmup_s: f64) -> Vec<Trend> {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= warmup_s).collect();
    let span = match (after.first(), after.last()) {
        (Some(first), Some(last)) => last.t_s - first.t_s,
        _ => 0.0,
    };
    WATCHED
        .iter()
        .map(|watched| {
            let points: Vec<(f64, f64)> = after.iter().map(|s| (s.t_s, (watched.get)(s))).collect();
            let mean = if points.is_empty() {
                0.0
            } else {
                points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64
            };
            let slope_per_s = slope(&points);
            let growth = slope_per_s * span;
            let limit = watched.slack + watched.share * mean;
            Trend {
                name: watched.name,
                mean,
                slope_per_s,
                growth,
                limit,
                flat: growth <= limit,
            }
        })
        .collect()
}

/// Plots the watched series against time, one panel each, with the warm-up shaded.
pub fn plot(samples: &[Sample], warmup_s: f64, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((WATCHED.len(), 1));
    let end = samples.last().map_or(1.0, |s| s.t_s.max(1.0));
    for (panel, watched) in panels.iter().zip(WATCHED.iter()) {
        let values: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_s, (watched.get)(s))).collect();
        let top = values.iter().map(|v| v.1).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(watched.name, ("sans-serif", 16))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..end, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_label_formatter(&|v| short_number(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (warmup_s.min(end), top)],
                RGBColor(235, 235, 235).filled(),
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                values,
                RGBColor(31, 119, 180).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// `4.2M`, `31k`, `512`.
fn short_number(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_slopes() {
        assert_eq!(slope(&[]), 0.0);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
        assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-9);
        assert!(slope(&[(0.0, 4.0), (1.0, 4.0), (2.0, 4.0)]).abs() < 1e-9);
    }

    /// A flat series passes, one that keeps growing after warm-up fails; the warm-up is left
    /// out of the fit.
    #[test]
    fn judges_growth_after_warmup() {
        let flat: Vec<Sample> = (0..100)
            .map(|t| Sample {
                t_s: t as f64,
                rss_bytes: if t < 20 { t as f64 * 1e6 } else { 20e6 },
                open_fds: 100.0 + (t % 3) as f64,
                ..Sample::default()
            })
            .collect();
        assert!(trends(&flat, 20.0).iter().all(|t| t.flat));
        let leaking: Vec<Sample> = (0..100)
            .map(|t| Sample {
                t_s: t as f64,
                rss_bytes: 20e6 + t as f64 * 500_000.0,
                ..Sample::default()
            })
            .collect();
        let rss = &trends(&leaking, 20.0)[0];
        assert_eq!(rss.name, "rss_bytes");
        assert!(!rss.flat, "{rss:?}");
    }
}
