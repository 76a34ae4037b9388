//! The command line: the clap command tree (each `///` is the help text), the exit statuses,
//! and [`run`], which turns the options into settings and calls the subcommand. The options of
//! each subcommand are in `args.rs`.
//!
//! Every flag has an environment-variable twin, `SSE_LOADGEN_` and the flag's name
//! (`--connect-rate`: `SSE_LOADGEN_CONNECT_RATE`), as `sse-server`'s flags have `SSE_*`; a flag
//! several subcommands share has one variable, the same meaning everywhere. The one exception is
//! `watch --json` (a switch), `SSE_LOADGEN_WATCH_JSON`, since `SSE_LOADGEN_JSON` is the file of
//! `fanout --json FILE`. A repeatable flag takes one value from its variable; the command line
//! wins over the environment.

mod args;
pub use args::{FanoutArgs, ReportArgs, RunArgs, ScaleArgs, SoakArgs, WatchArgs};

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};
use crate::fanout::{print_report, run_fanout};
use crate::scale::{ScaleSettings, append_json_line, run_scale};
use crate::watch::{WatchSettings, run_watch};

/// The exit statuses, as `--help` shows them.
pub const EXIT_STATUS_HELP: &str = "Exit status:
  0  success
  1  the command could not be done, or measured nothing (the error says why, on one line)
  2  usage error: the command line is wrong (clap's message says how)
  3  fanout --fail-on-loss: a delivery was lost or duplicated";

/// How `sse-loadgen` exits. Each value is documented in `--help` ([`EXIT_STATUS_HELP`]) and the
/// README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exit {
    /// Done.
    Success,
    /// The command could not be done, or measured nothing.
    Failure,
    /// The command line is wrong (clap's status).
    Usage,
    /// `fanout --fail-on-loss` saw a delivery lost or duplicated.
    Loss,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Loss => 3,
        }
    }

    /// A short name, for messages and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::Loss => "loss",
        }
    }
}

/// Measures Server-Sent Events servers: fan-out latency, loss, memory and CPU per connection.
#[derive(Debug, Parser)]
#[command(name = "sse-loadgen", version, about, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the events of one stream (a debugging client).
    Watch(WatchArgs),
    /// Open N subscribers, publish events, measure latency, loss, memory and CPU.
    #[command(after_help = EXIT_STATUS_HELP)]
    Fanout(FanoutArgs),
    /// Run fanout at several sizes and tabulate memory and latency against connections.
    Scale(ScaleArgs),
    /// Write summary.md and SVG plots from the JSON lines of fanout/scale runs.
    Report(ReportArgs),
    /// Run mixed, abusive traffic against an sse-server for a bounded time; fail when memory,
    /// descriptors, sockets or topics keep growing, or a good subscriber loses an event.
    Soak(SoakArgs),
    /// Internal: a worker process started by fanout (JSON lines on stdin/stdout).
    #[command(hide = true)]
    Worker,
}

/// Runs the command; returns the exit status of a run that could be done.
pub fn run(cli: Cli) -> Result<Exit> {
    let stdout = std::io::stdout();
    let werr = |e| Error::io("cannot write to stdout", e);
    match cli.command {
        Command::Watch(a) => {
            let settings = WatchSettings {
                url: a.url,
                headers: a.headers,
                last_event_id: a.last_event_id,
                method: a.method,
                data: a.data,
                json: a.json,
                reconnect: a.reconnect,
                initial_retry: a.retry,
                max_events: a.max_events,
            };
            run_watch(&settings, &mut stdout.lock())?;
            Ok(Exit::Success)
        }
        Command::Fanout(a) => {
            let run = run_fanout(&a.run.settings(a.connections))?;
            print_report(&run.report, &mut stdout.lock()).map_err(werr)?;
            // A run that measured nothing is not a result: no JSON line, no histogram.
            if let Some(why) = run.report.nothing_measured() {
                return Err(Error::NothingMeasured(why));
            }
            if let Some(path) = &a.json {
                append_json_line(path, &run.report)?;
            }
            if let Some(path) = &a.hdr_log {
                let mut f = std::fs::File::create(path)
                    .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
                crate::stats::write_percentile_distribution(&run.latency, &mut f)
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            }
            let lossy = run.report.lost > 0 || run.report.duplicated > 0;
            Ok(if a.fail_on_loss && lossy {
                Exit::Loss
            } else {
                Exit::Success
            })
        }
        Command::Scale(a) => {
            let settings = ScaleSettings {
                base: a.run.settings(0),
                steps: a.steps.0,
                json: a.json,
                settle_timeout: a.settle_timeout,
                overload_steps: a.overload_steps.map(|s| s.0),
            };
            run_scale(&settings, &mut stdout.lock())?;
            Ok(Exit::Success)
        }
        Command::Report(a) => {
            let reports = crate::report::read_reports(&a.inputs)?;
            let summary = crate::report::write_report(&reports, &a.out_dir)?;
            stdout.lock().write_all(summary.as_bytes()).map_err(werr)?;
            Ok(Exit::Success)
        }
        Command::Soak(a) => {
            let settings = crate::soak::SoakSettings {
                base: crate::url::HttpUrl::parse(&a.base_url)?,
                duration: a.duration,
                warmup: a.warmup,
                sample_every: a.sample_every,
                server_pid: a.server_pid,
                busy_topics: a.busy_topics,
                good_subscribers: a.good_subscribers as usize,
                busy_rate: a.busy_rate,
                busy_payload: a.busy_payload as usize,
                fresh_rate: a.fresh_rate,
                fresh_threads: a.fresh_threads,
                churn_threads: a.churn_threads,
                churn_rate: a.churn_rate,
                stuck: a.stuck as usize,
                slow: a.slow as usize,
                out_dir: a.out_dir,
            };
            if settings.warmup >= settings.duration {
                return Err(Error::Config(format!(
                    "--warmup ({:?}) must be shorter than --duration ({:?})",
                    settings.warmup, settings.duration
                )));
            }
            let report = crate::soak::run_soak(&settings)?;
            stdout
                .lock()
                .write_all(crate::soak::summary_markdown(&report).as_bytes())
                .map_err(werr)?;
            Ok(if report.failures.is_empty() {
                Exit::Success
            } else {
                Exit::Failure
            })
        }
        Command::Worker => {
            crate::worker::run_worker()?;
            Ok(Exit::Success)
        }
    }
}

/// `error` and its sources, joined with `: ` (one line).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut s = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s.replace('\n', " ")
}
