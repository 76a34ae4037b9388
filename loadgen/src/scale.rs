//! `sse-loadgen scale`: `fanout` at several sizes against the same server, one JSON line per
//! step, and a table of connections vs memory per connection, latency and throughput.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fanout::{FanoutReport, FanoutSettings, run_fanout};
use crate::server_probe::ServerProbe;
use crate::sysinfo::ServerPids;
use crate::url::HttpUrl;

/// How `scale` runs.
#[derive(Debug, Clone)]
pub struct ScaleSettings {
    /// Everything but the connection count.
    pub base: FanoutSettings,
    /// Connection counts, in order.
    pub steps: Vec<u64>,
    /// JSON lines are appended here.
    pub json: Option<PathBuf>,
    /// Longest wait for the server's memory to settle between steps.
    pub settle_timeout: Duration,
    /// The steps that run the overload phase (`base.overload`); `None`: every step.
    pub overload_steps: Option<Vec<u64>>,
}

impl ScaleSettings {
    /// Checks what clap cannot: overload steps need `--overload`, and each must be a step.
    fn validate(&self) -> Result<()> {
        let Some(steps) = &self.overload_steps else {
            return Ok(());
        };
        if self.base.overload.is_none() {
            return Err(Error::Config(
                "--overload-steps needs --overload (how long to publish back to back)".into(),
            ));
        }
        match steps.iter().find(|s| !self.steps.contains(s)) {
            Some(s) => Err(Error::Config(format!(
                "--overload-steps {s} is not one of --steps"
            ))),
            None => Ok(()),
        }
    }

    /// The settings of the step at `connections`.
    fn step(&self, connections: u64) -> FanoutSettings {
        let overload_here = self
            .overload_steps
            .as_ref()
            .is_none_or(|steps| steps.contains(&connections));
        FanoutSettings {
            connections,
            overload: self.base.overload.filter(|_| overload_here),
            ..self.base.clone()
        }
    }
}

/// Appends `report` as one JSON line to `path`.
pub fn append_json_line(path: &std::path::Path, report: &FanoutReport) -> Result<()> {
    let mut line = serde_json::to_vec(report).map_err(|e| Error::Json {
        context: "cannot encode the report".into(),
        source: e,
    })?;
    line.push(b'\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&line))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Waits (at most `timeout`) until two readings of the server's RSS 500 ms apart differ by less
/// than 1 % or 256 KiB, so the next step's baseline is not still shrinking.
fn wait_for_settle(probe: &ServerProbe, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = probe.rss_bytes();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = probe.rss_bytes();
        match (last, now) {
            (Some(a), Some(b)) if a.abs_diff(b) < (a / 100).max(256 * 1024) => return,
            (None, _) | (_, None) => return,
            _ => last = now,
        }
    }
}

/// Runs every step, printing the table to `out`; stops with [`Error::NothingMeasured`] at a
/// step that measured nothing (no JSON line for it; the table of the steps before it printed).
pub fn run_scale(s: &ScaleSettings, out: &mut impl Write) -> Result<Vec<FanoutReport>> {
    let probe = match (&s.base.server_pids[..], &s.base.metrics_url) {
        ([_, ..], _) => ServerProbe::Pids(ServerPids::new(s.base.server_pids.clone())),
        ([], Some(u)) => ServerProbe::Metrics(HttpUrl::parse(u)?),
        _ => ServerProbe::None,
    };
    s.validate()?;
    let mut reports = Vec::new();
    for (i, &connections) in s.steps.iter().enumerate() {
        if i > 0 {
            wait_for_settle(&probe, s.settle_timeout);
        }
        let settings = s.step(connections);
        if !settings.quiet {
            eprintln!("sse-loadgen: scale step {connections} connections");
        }
        let run = run_fanout(&settings)?;
        // A step that measured nothing ends the scale run: later steps would measure nothing
        // either, and a table row of zeros would read as a result. The steps before it stand.
        if let Some(why) = run.report.nothing_measured() {
            print_scale_table(&reports, out).map_err(|e| Error::io("cannot write", e))?;
            return Err(Error::NothingMeasured(format!(
                "step {connections} connections: {why}"
            )));
        }
        if let Some(path) = &s.json {
            append_json_line(path, &run.report)?;
        }
        reports.push(run.report);
    }
    print_scale_table(&reports, out).map_err(|e| Error::io("cannot write", e))?;
    Ok(reports)
}

/// The table of a scale run; with overload columns when a step ran the overload phase.
pub fn print_scale_table(reports: &[FanoutReport], out: &mut impl Write) -> std::io::Result<()> {
    let overload = reports.iter().any(|r| r.overload.is_some());
    write!(
        out,
        "{:>11} {:>6} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>11} {:>12} {:>12} {:>6} {:>5}",
        "connections",
        "open",
        "rss B/conn",
        "sock B/conn",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "last p99 ms",
        "deliveries/s",
        "max sust d/s",
        "lost",
        "dup"
    )?;
    if overload {
        write!(
            out,
            " {:>12} {:>11} {:>12} {:>12} {:>9}",
            "ovl accepted", "ovl refused", "ovl deliv/s", "ovl p99 ms", "ovl lost"
        )?;
    }
    writeln!(out)?;
    for r in reports {
        let opt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0}"));
        write!(
            out,
            "{:>11} {:>6} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>11.2} {:>12.0} {:>12} {:>6} {:>5}",
            r.connections,
            r.connections_open,
            opt(r.server_rss_per_conn_bytes),
            opt(r.kernel_sock_mem_per_conn_bytes),
            r.latency_p50_us,
            r.latency_p99_us,
            r.latency_p999_us,
            r.latency_max_us,
            r.last_subscriber_p99_ms,
            r.deliveries_per_sec,
            opt(r.max_sustained_deliveries_per_sec),
            r.lost,
            r.duplicated
        )?;
        match (&r.overload, overload) {
            (Some(o), _) => write!(
                out,
                " {:>12} {:>11} {:>12.0} {:>12.1} {:>9}",
                o.accepted,
                o.refused,
                o.deliveries_per_sec,
                o.latency_p99_us as f64 / 1000.0,
                o.lost
            )?,
            (None, true) => write!(
                out,
                " {:>12} {:>11} {:>12} {:>12} {:>9}",
                "-", "-", "-", "-", "-"
            )?,
            (None, false) => {}
        }
        writeln!(out)?;
    }
    Ok(())
}
