//! What each plot draws: its figure ([`Figure`]: title, unit, scale policy, the value of a
//! run), the lines of that figure (one [`Series`] per server, and per scenario when several
//! are drawn), and what is left out of it and why ([`Omission`]), so the summary can say so.

use std::collections::BTreeMap;

use super::axis::ScalePolicy;
use super::by_scenario;
use super::unit::Unit;
use crate::fanout::FanoutReport;

/// The value of one run in a figure, or why it has none.
type ValueOf = Box<dyn Fn(&FanoutReport) -> Result<f64, String>>;

/// One plot's figure.
pub(super) struct Figure {
    /// The SVG file it is drawn into.
    pub file: &'static str,
    /// The title, before the scenario.
    pub title: &'static str,
    /// The y-axis description.
    pub y_desc: &'static str,
    /// How values read.
    pub unit: Unit,
    /// When its axis is logarithmic.
    pub policy: ScalePolicy,
    /// The value of one run.
    value: ValueOf,
}

/// The figures plotted against connections, in the order of the plots. The deliveries plot
/// shows the rate search's max sustained rate when any run searched, else the rate measured at
/// the steady rate: two different figures are never mixed on one line.
pub(super) fn figures(reports: &[FanoutReport]) -> Vec<Figure> {
    let searched = reports.iter().any(|r| r.rate_search);
    let deliveries = if searched {
        Figure {
            file: "deliveries_per_sec.svg",
            title: "Max sustained deliveries/s (no loss, p99 within the limit)",
            y_desc: "deliveries / s",
            unit: Unit::Count,
            policy: ScalePolicy::LogOverSpan,
            value: Box::new(|r| match r.max_sustained_deliveries_per_sec {
                Some(v) => Ok(v),
                None if r.rate_search => Err("no rate-search phase passed".into()),
                None => Err("no rate search in this run".into()),
            }),
        }
    } else {
        Figure {
            file: "deliveries_per_sec.svg",
            title: "Deliveries/s at the steady rate",
            y_desc: "deliveries / s",
            unit: Unit::Count,
            policy: ScalePolicy::LogOverSpan,
            value: Box::new(|r| Ok(r.deliveries_per_sec)),
        }
    };
    vec![
        Figure {
            file: "memory_per_conn.svg",
            title: "Server memory per connection",
            y_desc: "RSS growth / connection",
            unit: Unit::Bytes,
            policy: ScalePolicy::AlwaysLog,
            // Figures flagged unreliable (memory did not grow) are left out, not drawn as fact.
            value: Box::new(|r| match r.server_rss_per_conn_bytes {
                Some(_) if r.server_rss_unreliable => {
                    Err("unreliable: the server's memory did not grow as connections opened".into())
                }
                Some(v) => Ok(v),
                None => Err("server memory not measured".into()),
            }),
        },
        Figure {
            file: "latency_p99.svg",
            title: "p99 publish-to-receipt latency",
            y_desc: "p99 latency",
            unit: Unit::Micros,
            policy: ScalePolicy::LogOverSpan,
            value: Box::new(|r| Ok(r.latency_p99_us as f64)),
        },
        Figure {
            file: "latency_p50.svg",
            title: "p50 publish-to-receipt latency",
            y_desc: "p50 latency",
            unit: Unit::Micros,
            policy: ScalePolicy::LogOverSpan,
            value: Box::new(|r| Ok(r.latency_p50_us as f64)),
        },
        deliveries,
    ]
}

/// One line of a plot.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Series {
    /// Its name: the server's label (and the scenario when several are drawn).
    pub name: String,
    /// Index of the server's label among every label of the report: its colour in every plot.
    pub colour: usize,
    /// (connections, value) points, by connections.
    pub points: Vec<(f64, f64)>,
}

/// A run, or a whole scenario, that a plot leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Omission {
    /// The server.
    pub label: String,
    /// The scenario.
    pub scenario: String,
    /// Its connections.
    pub connections: u64,
    /// Why.
    pub why: String,
}

/// The scenarios worth a line against connections: those run at two or more connection
/// counts (a one-connection sanity run is a single point, and its per-connection figures are
/// page-sized noise); every scenario when none was. The others are returned as omissions.
pub(super) fn scaling_scenarios(
    reports: &[FanoutReport],
) -> (BTreeMap<&str, Vec<&FanoutReport>>, Vec<Omission>) {
    let scenarios = by_scenario(reports);
    let spans = |rows: &[&FanoutReport]| rows.iter().any(|r| r.connections != rows[0].connections);
    if !scenarios.values().any(|rows| spans(rows)) {
        return (scenarios, Vec::new());
    }
    let mut kept = BTreeMap::new();
    let mut left_out = Vec::new();
    for (scenario, rows) in scenarios {
        if spans(&rows) {
            kept.insert(scenario, rows);
        } else {
            left_out.extend(rows.iter().map(|r| {
                Omission {
                    label: r.label.clone(),
                    scenario: scenario.to_string(),
                    connections: r.connections,
                    why: "a single connection count, so no line against connections (its figures \
                      are in the table)"
                        .into(),
                }
            }));
        }
    }
    (kept, left_out)
}

/// The server labels of `reports`, sorted: a label's index is its colour.
pub(super) fn labels(reports: &[FanoutReport]) -> Vec<&str> {
    let mut labels: Vec<&str> = reports.iter().map(|r| r.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    labels
}

/// What one plot draws.
pub(super) struct PlotData {
    /// The lines.
    pub series: Vec<Series>,
    /// The scenarios drawn, for the title.
    pub scenarios: Vec<String>,
    /// The runs of the drawn scenarios without a value in this figure.
    pub omitted: Vec<Omission>,
}

impl Figure {
    /// The lines of this figure over the scaling scenarios of `reports`.
    pub fn data(&self, reports: &[FanoutReport]) -> PlotData {
        let labels = labels(reports);
        let (scenarios, _) = scaling_scenarios(reports);
        let several = scenarios.len() > 1;
        let mut lines: BTreeMap<String, (usize, Vec<(f64, f64)>)> = BTreeMap::new();
        let mut omitted = Vec::new();
        for (scenario, rows) in &scenarios {
            for r in rows {
                let value = (self.value)(r).and_then(|v| {
                    if v.is_finite() {
                        Ok(v)
                    } else {
                        Err("not a number".into())
                    }
                });
                let v = match value {
                    Ok(v) => v,
                    Err(why) => {
                        omitted.push(Omission {
                            label: r.label.clone(),
                            scenario: scenario.to_string(),
                            connections: r.connections,
                            why,
                        });
                        continue;
                    }
                };
                let name = if several {
                    format!("{} [{scenario}]", r.label)
                } else {
                    r.label.clone()
                };
                let colour = labels.binary_search(&r.label.as_str()).unwrap_or(0);
                lines
                    .entry(name)
                    .or_insert_with(|| (colour, Vec::new()))
                    .1
                    .push((r.connections as f64, v));
            }
        }
        PlotData {
            series: lines
                .into_iter()
                .map(|(name, (colour, points))| Series {
                    name,
                    colour,
                    points,
                })
                .collect(),
            scenarios: scenarios.keys().map(|s| s.to_string()).collect(),
            omitted,
        }
    }
}

/// The plots' notes for the summary: what each plot leaves out, and why. Empty when every run
/// of every scenario is drawn.
pub fn plot_notes(reports: &[FanoutReport]) -> Vec<String> {
    let mut notes = Vec::new();
    let (_, single) = scaling_scenarios(reports);
    let mut by_scenario: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for o in &single {
        by_scenario.entry(&o.scenario).or_default().push(format!(
            "{} at {}",
            o.label,
            connections(o.connections)
        ));
    }
    for (scenario, runs) in by_scenario {
        notes.push(format!(
            "Scenario `{scenario}` is in no plot: it ran at a single connection count ({}), so \
             it has no line against connections; its figures are in its table.",
            runs.join(", ")
        ));
    }
    for figure in figures(reports) {
        let data = figure.data(reports);
        let mut why: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for o in &data.omitted {
            let scenario = if data.scenarios.len() > 1 {
                format!(" [{}]", o.scenario)
            } else {
                String::new()
            };
            why.entry(&o.why).or_default().push(format!(
                "{}{scenario} at {}",
                o.label,
                connections(o.connections)
            ));
        }
        for (why, runs) in why {
            notes.push(format!(
                "`{}` leaves out {}: {why}.",
                figure.file,
                runs.join(", ")
            ));
        }
    }
    notes
}

/// `1 connection`, `5000 connections`.
fn connections(n: u64) -> String {
    if n == 1 {
        "1 connection".into()
    } else {
        format!("{n} connections")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn report(label: &str, scenario: &str, connections: u64, rss: f64) -> FanoutReport {
        FanoutReport {
            label: label.into(),
            scenario: scenario.into(),
            connections,
            server_rss_per_conn_bytes: Some(rss),
            ..FanoutReport::default()
        }
    }

    /// The memory figure of `reports`.
    fn memory(reports: &[FanoutReport]) -> PlotData {
        figures(reports).remove(0).data(reports)
    }

    /// An unreliable memory figure is left out of the memory plot, and the notes say so.
    /// Regression test for issue 15, defect 4.
    #[test]
    fn unreliable_memory_is_not_plotted_and_the_notes_say_so() {
        let mut reports = [
            report("ours", "64B@5/s", 1000, 160.0),
            report("ours", "64B@5/s", 5000, 4.0),
        ];
        reports[1].server_rss_unreliable = true;
        let data = memory(&reports);
        assert_eq!(data.series[0].points, vec![(1000.0, 160.0)]);
        assert_eq!(data.omitted.len(), 1);
        let notes = plot_notes(&reports);
        assert_eq!(
            notes,
            [
                "`memory_per_conn.svg` leaves out ours at 5000 connections: unreliable: the \
              server's memory did not grow as connections opened."
            ]
        );
    }

    /// A one-connection sanity run beside a scaling run is not drawn as a line of its own: its
    /// per-connection memory is a page of noise and would squash the real lines. The notes say
    /// it is in no plot. Regression test for issue 15, defect 12.
    #[test]
    fn single_point_scenarios_stay_out_of_plots_and_the_notes_say_so() {
        let reports = [
            report("ours", "64B@5/s", 1000, 300.0),
            report("ours", "64B@5/s", 5000, 190.0),
            report("ours", "sanity", 1, 4096.0),
        ];
        let data = memory(&reports);
        assert_eq!(data.series.len(), 1);
        assert_eq!(data.series[0].name, "ours");
        assert_eq!(
            data.series[0].points,
            vec![(1000.0, 300.0), (5000.0, 190.0)]
        );
        assert_eq!(data.scenarios, ["64B@5/s"]);
        assert_eq!(
            plot_notes(&reports),
            [
                "Scenario `sanity` is in no plot: it ran at a single connection count (ours at 1 \
              connection), so it has no line against connections; its figures are in its table."
            ]
        );
    }

    /// A run with one step per server still plots its points, and leaves nothing out.
    #[test]
    fn single_step_runs_are_plotted() {
        let reports = [
            report("go", "64B@5/s", 1000, 28000.0),
            report("ours", "64B@5/s", 1000, 300.0),
        ];
        assert_eq!(memory(&reports).series.len(), 2);
        assert!(plot_notes(&reports).is_empty());
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
        let all = memory(&reports).series;
        reports[0].server_rss_per_conn_bytes = None;
        reports[1].server_rss_per_conn_bytes = None;
        let without_axum = memory(&reports).series;
        assert_eq!(without_axum.len(), 1);
        assert_eq!(without_axum[0].colour, all[1].colour);
        assert_ne!(all[0].colour, all[1].colour);
    }

    /// With a rate search, the deliveries plot draws max sustained rates only; a run whose
    /// search found none is left out and named, not drawn at its steady-rate figure. Without
    /// any search, it draws the steady-rate figure.
    #[test]
    fn deliveries_plot_never_mixes_two_figures() {
        let mut reports = vec![
            report("node", "s", 1000, 0.0),
            report("node", "s", 5000, 0.0),
        ];
        for r in &mut reports {
            r.rate_search = true;
            r.deliveries_per_sec = 5_000.0;
        }
        reports[0].max_sustained_deliveries_per_sec = Some(100_000.0);
        let figures = figures(&reports);
        let deliveries = figures.last().unwrap();
        let data = deliveries.data(&reports);
        assert_eq!(data.series[0].points, vec![(1000.0, 100_000.0)]);
        assert_eq!(data.omitted[0].why, "no rate-search phase passed");
        for r in &mut reports {
            r.rate_search = false;
            r.max_sustained_deliveries_per_sec = None;
        }
        let figures = super::figures(&reports);
        let data = figures.last().unwrap().data(&reports);
        assert_eq!(
            data.series[0].points,
            vec![(1000.0, 5_000.0), (5000.0, 5_000.0)]
        );
    }
}
