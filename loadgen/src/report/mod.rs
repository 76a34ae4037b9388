//! `sse-loadgen report`: reads the JSON lines of `fanout --json` / `scale --json` runs (one
//! label per server) and writes `summary.md` (a table per scenario, and what the plots leave
//! out) and SVG plots drawn with plotters: memory per connection, p99 and p50 latency and
//! deliveries per second against connections, one colour per server in every plot.
//!
//! - [`summary`]: the markdown summary.
//! - `series`: what each plot draws (its figure, one line per server) and what it leaves out.
//! - [`mod@unit`]: how values read: `160 B`, `10 KiB`, `500 µs`, `2 s`, `30k`, `1.5M`.
//! - [`axis`]: log or linear scale, and where the ticks go.
//! - `palette`: ten colours that read on white.
//! - `plot`: drawing one plot, each line's last value labelled.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fanout::FanoutReport;

pub mod axis;
mod palette;
mod plot;
mod series;
pub mod summary;
pub mod unit;

pub use summary::summary_markdown;

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

/// Writes `summary.md` and the plots into `out_dir`, returns the summary text.
pub fn write_report(reports: &[FanoutReport], out_dir: &Path) -> Result<String> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| Error::io(format!("cannot create {}", out_dir.display()), e))?;
    let summary = summary_markdown(reports);
    std::fs::File::create(out_dir.join("summary.md"))
        .and_then(|mut f| f.write_all(summary.as_bytes()))
        .map_err(|e| Error::io("cannot write summary.md", e))?;
    for figure in series::figures(reports) {
        let data = figure.data(reports);
        plot::draw(&out_dir.join(figure.file), &figure, &data)?;
    }
    Ok(summary)
}
