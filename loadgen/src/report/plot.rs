//! Drawing one plot with plotters: a line per server against connections on the axes of
//! `axis` (log or linear, ticks in the figure's unit), the scenario in the title, and each
//! line's last value written at its right end in the line's colour (`ours 160 B`), moved apart
//! where two would overlap. The labels name the servers, so there is no legend box to hide
//! the lines.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Scale, choose_scale};
use super::palette;
use super::series::{Figure, PlotData};
use super::unit::Unit;
use crate::error::{Error, Result};

/// Pixels between two last-value labels' centres.
const LABEL_SPACING: i32 = 16;
/// Font size of the last-value labels.
const LABEL_FONT: u32 = 14;

/// The title of a plot of `figure` over `scenarios`.
pub(super) fn title(figure: &Figure, scenarios: &[String]) -> String {
    match scenarios {
        [] => figure.title.to_string(),
        [one] => format!("{}, scenario {one}", figure.title),
        many => format!("{}, scenarios {}", figure.title, many.join(", ")),
    }
}

/// The label at the end of a line: its name, its last value, and the connections of that
/// value when the line stops before the plot's largest connection count.
pub(super) fn end_label(name: &str, unit: Unit, last: (f64, f64), x_max: f64) -> String {
    let value = unit.format(last.1);
    if last.0 < x_max {
        format!("{name} {value} @{}", Unit::Count.format(last.0))
    } else {
        format!("{name} {value}")
    }
}

/// Label positions (pixel rows) near `wanted`, in the same order, at least `spacing` apart and
/// within `top..=bottom` where they fit: each moves as little as it can.
pub(super) fn spread(wanted: &[i32], spacing: i32, top: i32, bottom: i32) -> Vec<i32> {
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by_key(|&i| (wanted[i], i));
    let mut placed: Vec<i32> = order
        .iter()
        .map(|&i| wanted[i].clamp(top, bottom))
        .collect();
    // Downwards, each at least `spacing` below the one above...
    for k in 1..placed.len() {
        placed[k] = placed[k].max(placed[k - 1] + spacing);
    }
    // ...then, from the bottom up, back inside the area where that pushed some out.
    if let Some(last) = placed.last_mut() {
        *last = (*last).min(bottom);
    }
    for k in (0..placed.len().saturating_sub(1)).rev() {
        placed[k] = placed[k].min(placed[k + 1] - spacing);
    }
    let mut out = vec![0; wanted.len()];
    for (k, &i) in order.iter().enumerate() {
        out[i] = placed[k];
    }
    out
}

/// Draws `data` of `figure` into the SVG file `path`.
pub(super) fn draw(path: &Path, figure: &Figure, data: &PlotData) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Plot {
        file: path.display().to_string(),
        reason: e.to_string(),
    };
    let points = data.series.iter().flat_map(|s| s.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max);
    let values: Vec<f64> = points.map(|p| p.1).collect();
    let scale = choose_scale(figure.policy, &values);
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let y = Axis::fit(figure.unit, scale, lo, hi);
    let x = Axis::linear_just_past(Unit::Count, x_max);
    let labels: Vec<String> = data
        .series
        .iter()
        .map(|s| {
            let last = *s.points.last().expect("a series has a point");
            end_label(&s.name, figure.unit, last, x_max)
        })
        .collect();
    // Room on the right for the longest label (about 0.6 em per character).
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    let label_room = (longest * LABEL_FONT * 6 / 10 + 24).clamp(60, 300);
    let root = SVGBackend::new(path, (900 + label_room, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let y_desc = match y.scale {
        Scale::Log => format!("{} (log scale)", figure.y_desc),
        Scale::Linear => figure.y_desc.to_string(),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title(figure, &data.scenarios), ("sans-serif", 22))
        .margin(15)
        .margin_right(label_room)
        .x_label_area_size(45)
        .y_label_area_size(85)
        .build_cartesian_2d(x.clone(), y.clone())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc(y_desc)
        .x_labels(x.major.len() + 1)
        .y_labels(y.major.len() + 1)
        .x_label_formatter(&|v| Unit::Count.format(*v))
        .y_label_formatter(&|v| figure.unit.format(*v))
        .label_style(("sans-serif", 14))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(|e| err(&e))?;
    for s in &data.series {
        let colour = palette::colour(s.colour);
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(3),
            ))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(|e| err(&e))?;
    }
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    if data.series.is_empty() {
        // An empty frame says why it is empty rather than pass for a plot of nothing.
        let mut lines = vec!["No run has a value for this figure:".to_string()];
        lines.extend(
            data.omitted
                .iter()
                .take(4)
                .map(|o| format!("{} at {} connections: {}", o.label, o.connections, o.why)),
        );
        if data.omitted.len() > 4 {
            lines.push(format!(
                "and {} more (see summary.md)",
                data.omitted.len() - 4
            ));
        }
        let centre = (x_pixels.start + x_pixels.end) / 2;
        let top = (y_pixels.start + y_pixels.end) / 2 - 10 * lines.len() as i32;
        for (i, line) in lines.into_iter().enumerate() {
            let style = ("sans-serif", LABEL_FONT)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(line, (centre, top + 20 * i as i32), style))
                .map_err(|e| err(&e))?;
        }
    }
    // The last values, in the right margin beside each line's end.
    let ends: Vec<(i32, i32)> = data
        .series
        .iter()
        .map(|s| chart.backend_coord(s.points.last().expect("a series has a point")))
        .collect();
    let wanted: Vec<i32> = ends.iter().map(|e| e.1).collect();
    let rows = spread(
        &wanted,
        LABEL_SPACING,
        y_pixels.start + LABEL_SPACING / 2,
        y_pixels.end - LABEL_SPACING / 2,
    );
    let text_x = x_pixels.end + 10;
    for (i, s) in data.series.iter().enumerate() {
        let colour = palette::colour(s.colour);
        let at_right = s.points.last().is_some_and(|p| p.0 >= x_max);
        if at_right {
            // A short leader from the line's end to its label.
            root.draw(&PathElement::new(
                vec![(ends[i].0 + 6, ends[i].1), (text_x - 3, rows[i])],
                colour.stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
        }
        let style = ("sans-serif", LABEL_FONT)
            .into_font()
            .color(&colour)
            .pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(labels[i].clone(), (text_x, rows[i]), style))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels keep their order, stay `spacing` apart and inside the area, and move only as far
    /// as they must.
    #[test]
    fn labels_spread_apart_without_leaving_the_area() {
        let table: &[(&[i32], &[i32])] = &[
            // Far apart already: unchanged.
            (&[100, 300, 200], &[100, 300, 200]),
            // Two on one row: the second below the first.
            (&[200, 200], &[200, 216]),
            // Three close ones: pushed down in turn.
            (&[205, 200, 210], &[216, 200, 232]),
            // At the bottom: pushed back up inside.
            (&[495, 500], &[484, 500]),
            // Outside the area: clamped in.
            (&[-20, 900], &[10, 500]),
        ];
        for &(wanted, want) in table {
            assert_eq!(spread(wanted, 16, 10, 500), want, "{wanted:?}");
        }
    }

    /// A line that reaches the largest step shows its value; one that stops earlier says where.
    #[test]
    fn end_labels_name_the_value_and_where_a_short_line_stops() {
        assert_eq!(
            end_label("ours", Unit::Bytes, (15_000.0, 150.46), 15_000.0),
            "ours 150 B"
        );
        assert_eq!(
            end_label("flask", Unit::Micros, (5_000.0, 2_100_000.0), 15_000.0),
            "flask 2.1 s @5k"
        );
    }
}
