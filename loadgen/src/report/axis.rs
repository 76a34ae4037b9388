//! The axes of the plots: whether an axis is linear or logarithmic, and where its ticks go. [`Axis`] is a plotters coordinate ([`Ranged`]) whose ticks are chosen here, so
//! every tick lands on a value that reads well in its unit: powers of two for bytes, 1-2-5 per
//! decade for times and counts.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

use super::unit::Unit;

/// Most labelled ticks on an axis; more crowd a 540-pixel-high plot.
const MAX_TICKS: usize = 10;
/// Room left on a log axis beyond the smallest and largest value (a factor), so markers and
/// their labels stay off the frame.
const LOG_PADDING: f64 = 1.1;
/// When the largest value of a plot is more than this many times its smallest, a linear axis
/// squeezes the small values into the bottom tenth, where they cannot be read: the axis is
/// logarithmic then.
pub const LOG_SPAN: f64 = 10.0;

/// How values map to an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// From zero, evenly.
    Linear,
    /// Each factor of ten takes the same room.
    Log,
}

/// When an axis is logarithmic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalePolicy {
    /// Always: memory per connection runs from ~100 B to ~30 KiB between servers.
    AlwaysLog,
    /// When the values span more than [`LOG_SPAN`] (a factor).
    LogOverSpan,
}

/// The scale for `values` under `policy`. A log axis needs every value above zero, so any
/// zero or negative value keeps the axis linear.
pub fn choose_scale(policy: ScalePolicy, values: &[f64]) -> Scale {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    // No value at all (`min` is infinite), or one a log axis cannot show.
    if !(min > 0.0 && min.is_finite()) {
        return Scale::Linear;
    }
    match policy {
        ScalePolicy::AlwaysLog => Scale::Log,
        ScalePolicy::LogOverSpan if max / min > LOG_SPAN => Scale::Log,
        ScalePolicy::LogOverSpan => Scale::Linear,
    }
}

/// One axis: its range, scale and ticks, usable as a plotters coordinate.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// What the values measure.
    pub unit: Unit,
    /// How they map to the axis.
    pub scale: Scale,
    /// The axis runs from here...
    pub lo: f64,
    /// ...to here.
    pub hi: f64,
    /// Labelled ticks, each with a bold grid line.
    pub major: Vec<f64>,
    /// Unlabelled ticks between them, with light grid lines.
    pub minor: Vec<f64>,
}

impl Axis {
    /// An axis in `unit` and `scale` that shows every value from `min` to `max`.
    pub fn fit(unit: Unit, scale: Scale, min: f64, max: f64) -> Axis {
        let (min, max) = if min.is_finite() && max.is_finite() && min <= max {
            (min, max)
        } else {
            (1.0, 1.0)
        };
        match scale {
            Scale::Log if min > 0.0 => log_axis(unit, min, max),
            _ => linear_axis(unit, max),
        }
    }

    /// A linear axis from zero that ends just past `max` rather than at the next tick, with
    /// ticks at a round step up to there: for the connections of a plot, whose largest step
    /// should sit near the right edge.
    pub fn linear_just_past(unit: Unit, max: f64) -> Axis {
        let mut axis = linear_axis(unit, max);
        let hi = if max > 0.0 { max * 1.04 } else { 1.0 };
        axis.hi = hi;
        axis.major.retain(|&v| v <= hi);
        axis.minor.retain(|&v| v <= hi);
        axis
    }

    /// Where `value` falls between `lo` (0.0) and `hi` (1.0).
    fn fraction(&self, value: f64) -> f64 {
        match self.scale {
            Scale::Linear => (value - self.lo) / (self.hi - self.lo),
            Scale::Log => {
                (value.max(f64::MIN_POSITIVE).ln() - self.lo.ln()) / (self.hi / self.lo).ln()
            }
        }
    }
}

/// A log axis from `min` to `max` (both above zero).
fn log_axis(unit: Unit, min: f64, max: f64) -> Axis {
    let finest = |lo: f64, hi: f64| ladder(unit, 0, lo, hi);
    // The ends snap outwards to the finest ticks, so even a narrow range has two labelled ticks.
    let (padded_lo, padded_hi) = (min / LOG_PADDING, max * LOG_PADDING);
    let lo = finest(padded_lo / 3.0, padded_lo)
        .last()
        .copied()
        .unwrap_or(padded_lo);
    let hi = finest(padded_hi, padded_hi * 3.0)
        .first()
        .copied()
        .unwrap_or(padded_hi);
    // The densest ladder that keeps the labels few; the finest ticks it skips are minor ones.
    let mut coarseness = 0;
    let major = loop {
        let ticks = ladder(unit, coarseness, lo, hi);
        if ticks.len() <= MAX_TICKS || ticks.len() <= 2 {
            break ticks;
        }
        coarseness += 1;
    };
    let minor = if coarseness == 0 {
        Vec::new()
    } else {
        minor_log_ticks(unit, lo, hi, &major)
    };
    // A narrow range (ours alone on the memory plot: 128 B to 512 B) reads better with a
    // tick between each two: at 1.5 times each power of two, or 1, 1.5, 2, 3, 5, 7 per decade.
    let major = if major.len() < 4 {
        between(unit, lo, hi)
    } else {
        major
    };
    Axis {
        unit,
        scale: Scale::Log,
        lo,
        hi,
        major,
        minor,
    }
}

/// The ticks of a log axis in `unit` from `lo` to `hi` (both included when on the ladder),
/// at `coarseness` 0 the finest: bytes at every power of two, then every second, third...
/// power; times and counts at 1, 2 and 5 of each decade, then 1 of each decade, then of every
/// second decade, and so on.
fn ladder(unit: Unit, coarseness: u32, lo: f64, hi: f64) -> Vec<f64> {
    let (base, mantissas): (f64, &[f64]) = match (unit, coarseness) {
        (Unit::Bytes, _) => (2f64.powi(coarseness as i32 + 1), &[1.0]),
        (_, 0) => (10.0, &[1.0, 2.0, 5.0]),
        (_, c) => (10f64.powi(c as i32), &[1.0]),
    };
    ticks_on(base, mantissas, lo, hi)
}

/// Every `m * base^k` (m in `mantissas`) from `lo` to `hi`, ends included.
fn ticks_on(base: f64, mantissas: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let first = (lo.ln() / base.ln()).floor() as i32 - 1;
    let last = (hi.ln() / base.ln()).ceil() as i32 + 1;
    let mut ticks = Vec::new();
    for exponent in first..=last {
        for &m in mantissas {
            // Rounded to what it should be exactly: 0.2, not 0.20000000000000004.
            let v = tidy(m * base.powi(exponent));
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                ticks.push(v);
            }
        }
    }
    ticks
}

/// Ticks of a narrow log axis in `unit` from `lo` to `hi`: the finest ladder with values in
/// between.
fn between(unit: Unit, lo: f64, hi: f64) -> Vec<f64> {
    let (base, mantissas): (f64, &[f64]) = match unit {
        Unit::Bytes => (2.0, &[1.0, 1.5]),
        Unit::Micros | Unit::Count => (10.0, &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]),
    };
    ticks_on(base, mantissas, lo, hi)
}

/// The finest ticks of a log axis that are not major: every power of two for bytes, each
/// whole multiple of a decade (2, 3, ... 9) for the others.
fn minor_log_ticks(unit: Unit, lo: f64, hi: f64, major: &[f64]) -> Vec<f64> {
    let all = match unit {
        Unit::Bytes => ladder(unit, 0, lo, hi),
        Unit::Micros | Unit::Count => {
            let mut ticks = Vec::new();
            let first = lo.log10().floor() as i32;
            let last = hi.log10().ceil() as i32;
            for exponent in first..=last {
                for m in 1..10 {
                    let v = tidy(f64::from(m) * 10f64.powi(exponent));
                    if v >= lo && v <= hi {
                        ticks.push(v);
                    }
                }
            }
            ticks
        }
    };
    all.into_iter()
        .filter(|v| !major.iter().any(|m| (m - v).abs() <= v * 1e-9))
        .collect()
}

/// `v` rounded to 12 significant digits, so that `2 * 10^-1` is `0.2`.
fn tidy(v: f64) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let digits = 11 - v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// A linear axis from zero to a little above `max`, with a nice step: a power of two times
/// the unit for bytes, 1, 2 or 5 times a power of ten for the others.
fn linear_axis(unit: Unit, max: f64) -> Axis {
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let step = nice_step(unit, top / MAX_TICKS as f64);
    let count = (top / step).ceil().max(1.0) as usize;
    let major: Vec<f64> = (0..=count).map(|i| tidy(i as f64 * step)).collect();
    let minor = (0..count).map(|i| tidy((i as f64 + 0.5) * step)).collect();
    Axis {
        unit,
        scale: Scale::Linear,
        lo: 0.0,
        hi: major[count],
        major,
        minor,
    }
}

/// The smallest step of the unit's ladder that is at least `at_least`.
fn nice_step(unit: Unit, at_least: f64) -> f64 {
    let at_least = at_least.max(f64::MIN_POSITIVE);
    match unit {
        Unit::Bytes => 2f64.powi(at_least.log2().ceil() as i32).max(1.0),
        Unit::Micros | Unit::Count => {
            let decade = 10f64.powi(at_least.log10().floor() as i32);
            [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| tidy(m * decade))
                .find(|&s| s >= at_least * (1.0 - 1e-9))
                .unwrap_or(10.0 * decade)
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (self.fraction(*value) * span).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            let mut all = self.major.clone();
            all.extend_from_slice(&self.minor);
            all.sort_by(f64::total_cmp);
            all
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory is always logarithmic; the others only past a tenfold span; anything at or below
    /// zero keeps an axis linear.
    #[test]
    fn scale_follows_the_policy_and_the_span() {
        use ScalePolicy::*;
        let table: &[(ScalePolicy, &[f64], Scale)] = &[
            (AlwaysLog, &[150.0, 190.0], Scale::Log),
            (AlwaysLog, &[150.0, 30_000.0], Scale::Log),
            (AlwaysLog, &[0.0, 30_000.0], Scale::Linear),
            (AlwaysLog, &[], Scale::Linear),
            (LogOverSpan, &[10_000.0, 100_000.0], Scale::Linear),
            (LogOverSpan, &[10_000.0, 100_001.0], Scale::Log),
            (LogOverSpan, &[10_247.0, 2_009_087.0], Scale::Log),
            (LogOverSpan, &[-1.0, 2_009_087.0], Scale::Linear),
            (LogOverSpan, &[5.0, f64::NAN, 6.0], Scale::Linear),
        ];
        for (policy, values, want) in table {
            assert_eq!(
                choose_scale(*policy, values),
                *want,
                "{policy:?} {values:?}"
            );
        }
    }

    /// Labels of an axis's major ticks.
    fn labels(axis: &Axis) -> Vec<String> {
        axis.major.iter().map(|&v| axis.unit.format(v)).collect()
    }

    /// Log axes put their labelled ticks on values that read well, few enough to fit, and
    /// reach past the smallest and largest value.
    #[test]
    fn log_ticks_land_on_round_values() {
        let table: &[(Unit, f64, f64, &[&str])] = &[
            // Ours alone: a narrow range still gets two labelled ticks.
            (Unit::Bytes, 150.0, 190.0, &["128 B", "192 B", "256 B"]),
            (
                Unit::Bytes,
                150.0,
                311.0,
                &["128 B", "192 B", "256 B", "384 B", "512 B"],
            ),
            (
                Unit::Micros,
                5_000.0,
                9_000.0,
                &["2 ms", "3 ms", "5 ms", "7 ms", "10 ms"],
            ),
            // Ours against the peers.
            (
                Unit::Bytes,
                150.46,
                29_581.0,
                &[
                    "128 B", "256 B", "512 B", "1 KiB", "2 KiB", "4 KiB", "8 KiB", "16 KiB",
                    "32 KiB",
                ],
            ),
            // Wider: every second power of two.
            (
                Unit::Bytes,
                100.0,
                900_000.0,
                &[
                    "64 B", "256 B", "1 KiB", "4 KiB", "16 KiB", "64 KiB", "256 KiB", "1 MiB",
                ],
            ),
            (
                Unit::Micros,
                10_247.0,
                2_009_087.0,
                &[
                    "5 ms", "10 ms", "20 ms", "50 ms", "100 ms", "200 ms", "500 ms", "1 s", "2 s",
                    "5 s",
                ],
            ),
            (
                Unit::Micros,
                300.0,
                2_009_087.0,
                &["1 ms", "10 ms", "100 ms", "1 s"],
            ),
            (
                Unit::Count,
                90_000.0,
                6_000_000.0,
                &["50k", "100k", "200k", "500k", "1M", "2M", "5M", "10M"],
            ),
        ];
        for &(unit, min, max, want) in table {
            let axis = Axis::fit(unit, Scale::Log, min, max);
            assert_eq!(labels(&axis), want, "{unit:?} {min}..{max}");
            assert!(axis.lo <= min && axis.hi >= max, "{axis:?}");
            assert!(axis.major.len() <= MAX_TICKS);
        }
    }

    /// A linear axis starts at zero, steps by a round amount and ends at a tick above the
    /// largest value.
    #[test]
    fn linear_ticks_start_at_zero_with_a_round_step() {
        let table: &[(Unit, f64, &[&str])] = &[
            (
                Unit::Count,
                75_739.0,
                &[
                    "0", "10k", "20k", "30k", "40k", "50k", "60k", "70k", "80k", "90k",
                ],
            ),
            (
                Unit::Micros,
                10_375.0,
                &["0 µs", "2 ms", "4 ms", "6 ms", "8 ms", "10 ms", "12 ms"],
            ),
            (
                Unit::Bytes,
                3000.0,
                &[
                    "0 B", "512 B", "1 KiB", "1.5 KiB", "2 KiB", "2.5 KiB", "3 KiB", "3.5 KiB",
                ],
            ),
            (
                Unit::Count,
                0.0,
                &[
                    "0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1",
                ],
            ),
        ];
        for &(unit, max, want) in table {
            let axis = Axis::fit(unit, Scale::Linear, 0.0, max);
            assert_eq!(labels(&axis), want, "{unit:?} {max}");
            assert!(axis.hi >= max);
        }
    }

    /// The connections axis ends just past the largest step, with round ticks up to it.
    #[test]
    fn connections_axis_ends_just_past_the_largest_step() {
        let axis = Axis::linear_just_past(Unit::Count, 15_000.0);
        assert_eq!(axis.hi, 15_600.0);
        assert_eq!(
            labels(&axis),
            ["0", "2k", "4k", "6k", "8k", "10k", "12k", "14k"]
        );
    }

    /// Values map into the pixel range in order, the ends onto the ends.
    #[test]
    fn mapping_is_monotonic_and_spans_the_pixels() {
        for scale in [Scale::Linear, Scale::Log] {
            let axis = Axis::fit(Unit::Micros, scale, 1_000.0, 2_000_000.0);
            let px = |v: f64| axis.map(&v, (500, 0));
            assert_eq!(px(axis.lo), 500, "{scale:?}");
            assert_eq!(px(axis.hi), 0, "{scale:?}");
            assert!(px(1_000.0) > px(10_000.0) && px(10_000.0) > px(2_000_000.0));
        }
        // On a log axis each decade takes the same room.
        let axis = Axis::fit(Unit::Micros, Scale::Log, 1_000.0, 1_000_000.0);
        let px = |v: f64| axis.map(&v, (0, 1000));
        assert!((px(10_000.0) - px(1_000.0) - (px(100_000.0) - px(10_000.0))).abs() <= 1);
    }
}
