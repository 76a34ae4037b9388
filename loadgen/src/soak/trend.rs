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
    /// Distinct new topics the soak has published to so far, each answered `200` (the
    /// `fresh-N` topics): with `--fresh-rate 10000`, a million within minutes.
    pub topics_published: f64,
    /// Publishes not answered `200` so far.
    pub publish_failures: f64,
}

/// Reads one series' value from a sample.
pub type Reading = fn(&Sample) -> f64;

/// A series the verdict watches, and what it tolerates after warm-up.
///
/// Two rules, both on the least-squares line fitted after warm-up:
/// - **bounded**: what the line grew by over the span stays within `slack + share x mean`;
///   this catches a large jump of any shape;
/// - **no steady growth**: the series fails when its slope is above `rate_per_min +
///   rate_share x mean` per minute *and* the growth is steady: the median of each quarter of
///   the span is above the previous quarter's by more than a noise floor (a quarter of what
///   the tolerated rate adds in a quarter). A leak grows all along and fails; an allocator
///   that takes one step (an arena grown once, a burst's memory kept) fits a steep line too,
///   but the quarters after the step stay level, so it passes.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// Its name in the report.
    pub name: &'static str,
    /// Reads it from a sample.
    pub get: Reading,
    /// Growth over the span always tolerated (noise), in the series' unit.
    pub slack: f64,
    /// Growth over the span tolerated as a share of the series' mean after warm-up.
    pub share: f64,
    /// Steady growth tolerated, in the series' unit per minute.
    pub rate_per_min: f64,
    /// Steady growth tolerated per minute, as a share of the series' mean.
    pub rate_share: f64,
}

/// The series a soak must keep flat. RSS: a steady 0.4 MB/min on a 12 MB server fails (a
/// leak of 0.8 MB/min fails twice over); one step of a few MB passes.
pub const WATCHED: [Watched; 5] = [
    Watched {
        name: "rss_bytes",
        get: |s| s.rss_bytes,
        slack: 8.0 * 1024.0 * 1024.0,
        share: 0.10,
        rate_per_min: 256.0 * 1024.0,
        rate_share: 0.01,
    },
    Watched {
        name: "open_fds",
        get: |s| s.open_fds,
        slack: 64.0,
        share: 0.10,
        rate_per_min: 8.0,
        rate_share: 0.01,
    },
    Watched {
        name: "sockets",
        get: |s| s.sockets,
        slack: 64.0,
        share: 0.10,
        rate_per_min: 8.0,
        rate_share: 0.01,
    },
    Watched {
        name: "loop_topics",
        get: |s| s.loop_topics,
        slack: 500.0,
        share: 0.10,
        rate_per_min: 50.0,
        rate_share: 0.01,
    },
    Watched {
        name: "topics",
        get: |s| s.topics,
        slack: 500.0,
        share: 0.10,
        rate_per_min: 50.0,
        rate_share: 0.01,
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
    /// The slope tolerated when growth is steady, per minute.
    pub rate_limit_per_min: f64,
    /// Median of each quarter of the span after warm-up, in order.
    pub quarter_medians: [f64; 4],
    /// Whether each quarter's median is above the previous one's by more than the noise floor.
    pub steady_growth: bool,
    /// Whether the series passed both rules.
    pub flat: bool,
}

impl Trend {
    /// Why the series failed, in one line (`None` when it is flat).
    pub fn failure(&self) -> Option<String> {
        if self.flat {
            None
        } else if self.growth > self.limit {
            Some(format!(
                "{} grew by {:.0} after warm-up (tolerated {:.0})",
                self.name, self.growth, self.limit
            ))
        } else {
            Some(format!(
                "{} grew steadily by {:.1}/min after warm-up, every quarter above the last \
                 (tolerated {:.1}/min)",
                self.name,
                self.slope_per_s * 60.0,
                self.rate_limit_per_min
            ))
        }
    }
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

/// The median of `values` (0 for none).
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// The median of each quarter of `points` by time (`first` to `first + span`).
fn quarter_medians(points: &[(f64, f64)], first: f64, span: f64) -> [f64; 4] {
    let mut quarters: [Vec<f64>; 4] = Default::default();
    for &(t, y) in points {
        let index = if span > 0.0 {
            (((t - first) / span * 4.0) as usize).min(3)
        } else {
            0
        };
        quarters[index].push(y);
    }
    quarters.map(median)
}

/// The trend of every watched series over the samples taken at or after `warmup_s`.
pub fn trends(samples: &[Sample], warmup_s: f64) -> Vec<Trend> {
    WATCHED
        .iter()
        .map(|watched| {
            let points: Vec<(f64, f64)> = samples
                .iter()
                .filter(|s| s.t_s >= warmup_s)
                .map(|s| (s.t_s, (watched.get)(s)))
                .collect();
            judge(watched, &points)
        })
        .collect()
}

/// Judges one series' points after warm-up by both rules (see [`Watched`]).
pub fn judge(watched: &Watched, points: &[(f64, f64)]) -> Trend {
    let (first, span) = match (points.first(), points.last()) {
        (Some(first), Some(last)) => (first.0, last.0 - first.0),
        _ => (0.0, 0.0),
    };
    let mean = if points.is_empty() {
        0.0
    } else {
        points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64
    };
    let slope_per_s = slope(points);
    let growth = slope_per_s * span;
    let limit = watched.slack + watched.share * mean;
    let rate_limit_per_min = watched.rate_per_min + watched.rate_share * mean;
    let quarter_medians = quarter_medians(points, first, span);
    // What the tolerated rate adds in a quarter of the span, a quarter of it: steps smaller
    // than that between quarters are noise.
    let noise_floor = rate_limit_per_min * span / 60.0 / 4.0 / 4.0;
    let steady_growth = points.len() >= 8
        && quarter_medians
            .windows(2)
            .all(|pair| pair[1] - pair[0] > noise_floor);
    let too_steep = slope_per_s * 60.0 > rate_limit_per_min;
    Trend {
        name: watched.name,
        mean,
        slope_per_s,
        growth,
        limit,
        rate_limit_per_min,
        quarter_medians,
        steady_growth,
        flat: growth <= limit && !(too_steep && steady_growth),
    }
}

/// The series plotted: the watched ones, then the new topics published so far (so a plot shows
/// memory staying flat while topics come and go by the million).
const PLOTTED: [(&str, Reading); WATCHED.len() + 1] = [
    (WATCHED[0].name, WATCHED[0].get),
    (WATCHED[1].name, WATCHED[1].get),
    (WATCHED[2].name, WATCHED[2].get),
    (WATCHED[3].name, WATCHED[3].get),
    (WATCHED[4].name, WATCHED[4].get),
    (
        "topics_published (new topics so far, each answered 200)",
        |s| s.topics_published,
    ),
];

/// Plots the watched series and the topics published against time, one panel each, with the
/// warm-up shaded.
pub fn plot(samples: &[Sample], warmup_s: f64, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 1080)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((PLOTTED.len(), 1));
    let end = samples.last().map_or(1.0, |s| s.t_s.max(1.0));
    for (panel, (name, get)) in panels.iter().zip(PLOTTED.iter()) {
        let values: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_s, get(s))).collect();
        let top = values.iter().map(|v| v.1).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(*name, ("sans-serif", 16))
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

    /// Deterministic noise in [-1, 1) (a linear congruential generator), so the synthetic
    /// series are the same on every run.
    fn noise(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// RSS of a 10-minute soak sampled every 5 s after an 80 s warm-up, around 12 MB, with
    /// allocator noise (up to 300 KB either way), plus `extra(t)`.
    fn rss_series(extra: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        let mut state = 7;
        (16..=120)
            .map(|n| {
                let t = n as f64 * 5.0;
                (t, 12e6 + 300e3 * noise(&mut state) + extra(t))
            })
            .collect()
    }

    /// What a synthetic series adds to the noise at time `t`.
    type Extra = fn(f64) -> f64;

    fn judge_rss(points: &[(f64, f64)]) -> Trend {
        judge(&WATCHED[0], points)
    }

    /// Noise passes; so do allocator steps (one jump of 4 MB at a third, at three quarters of
    /// the span) and a slow creep like the committed soak's (90 KB/min), although a line
    /// fitted over a step is steep.
    #[test]
    fn rss_noise_and_allocator_steps_pass() {
        let cases: [(&str, Extra); 4] = [
            ("noise", |_| 0.0),
            (
                "4 MB step at a third",
                |t| if t > 253.0 { 4e6 } else { 0.0 },
            ),
            ("4 MB step at three quarters", |t| {
                if t > 470.0 { 4e6 } else { 0.0 }
            }),
            ("creep of 90 KB/min", |t| (t - 80.0) * 1.5e3),
        ];
        for (what, extra) in cases {
            let trend = judge_rss(&rss_series(extra));
            assert!(trend.flat, "{what}: {trend:?} {:?}", trend.failure());
        }
        // The step's fitted line is steeper than the tolerated rate: only steadiness tells.
        let step = judge_rss(&rss_series(|t| if t > 470.0 { 4e6 } else { 0.0 }));
        assert!(
            step.slope_per_s * 60.0 > step.rate_limit_per_min,
            "{step:?}"
        );
        assert!(!step.steady_growth);
    }

    /// A steady leak of 0.8 MB/min fails, and so does one of 0.5 MB/min; the old rule (8 MiB +
    /// 10% of the mean over the span) let both pass.
    #[test]
    fn a_steady_rss_leak_fails() {
        for rate_per_min in [0.8e6, 0.5e6] {
            let trend = judge_rss(&rss_series(|t| (t - 80.0) / 60.0 * rate_per_min));
            assert!(!trend.flat, "{rate_per_min} B/min passed: {trend:?}");
            assert!(
                trend.growth <= trend.limit,
                "caught by steadiness, not size"
            );
            assert!(trend.steady_growth);
            assert!(trend.failure().unwrap().contains("steadily"));
        }
    }
}
