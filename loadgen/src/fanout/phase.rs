//! The machinery of a run: the subscriber groups (threads here, or worker processes) and the
//! publisher, and one phase on them: track, publish, wait for the drain, collect.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::progress::{ProgressLine, ProgressStyle};
use super::settings::FanoutSettings;
use crate::error::{Error, Result};
use crate::group::{LocalGroup, SubscriberGroup};
use crate::publisher::{
    ClosedLoop, ClosedLoopOutcome, PublishOutcome, PublishProgress, PublishTarget,
    publish_closed_loop, publish_phase,
};
use crate::stats::PhaseReport;
use crate::subscriber::{ProgressSnapshot, SubscriberTarget};
use crate::sysinfo;
use crate::worker::{WorkerConfig, WorkerGroup};

/// The subscriber groups and the publisher of one run.
pub(super) struct Rig {
    /// Every group of subscribers.
    pub groups: Vec<Box<dyn SubscriberGroup>>,
    /// Where and how events are published.
    pub publish: PublishTarget,
    /// How long a phase waits for stragglers after its last publish.
    pub drain_timeout: Duration,
    /// What the run shows while it runs.
    pub progress_line: ProgressLine,
}

impl Rig {
    /// Starts the subscriber groups of `settings` for `target` in `processes` processes
    /// (1: threads in this one); they begin opening connections at once.
    pub fn start(
        settings: &FanoutSettings,
        target: SubscriberTarget,
        publish: PublishTarget,
        processes: usize,
    ) -> Result<Rig> {
        Ok(Rig {
            groups: start_groups(settings, target, processes)?,
            publish,
            drain_timeout: settings.drain_timeout,
            progress_line: ProgressLine::new(ProgressStyle::for_stderr(settings.quiet)),
        })
    }

    /// The sum of every group's counters.
    pub fn progress(&self) -> ProgressSnapshot {
        self.groups
            .iter()
            .map(|g| g.progress())
            .fold(ProgressSnapshot::default(), |a, b| a + b)
    }

    /// CPU seconds of this process and every worker so far.
    pub fn loadgen_cpu(&self) -> f64 {
        sysinfo::self_cpu_seconds() + self.groups.iter().map(|g| g.cpu_seconds()).sum::<f64>()
    }

    /// Resident memory of this process and every worker, bytes.
    pub fn loadgen_rss(&self) -> u64 {
        sysinfo::self_rss_bytes() + self.groups.iter().map(|g| g.rss_bytes()).sum::<u64>()
    }

    /// Runs one phase (called `step` in progress lines) of `count` events from `first_seq` at
    /// `rate`: track, publish, drain, collect.
    pub fn run_phase(
        &mut self,
        step: &str,
        first_seq: u64,
        count: usize,
        rate: f64,
    ) -> Result<(PhaseReport, PublishOutcome)> {
        for g in self.groups.iter_mut() {
            g.start_phase(first_seq, count)?;
        }
        self.progress_line.start();
        let published = PublishProgress::default();
        // The publishers run on their own threads while this one shows progress.
        let target = self.publish.clone();
        let out = std::thread::scope(|scope| {
            let publisher =
                scope.spawn(|| publish_phase(&target, first_seq, count, rate, &published));
            while !publisher.is_finished() {
                self.show_phase(step, count, &published);
                std::thread::sleep(Duration::from_millis(2));
            }
            publisher.join().expect("publisher thread")
        });
        let deadline = Instant::now() + self.drain_timeout;
        while self.progress().missing > 0 && Instant::now() < deadline {
            self.show_phase(step, count, &published);
            std::thread::sleep(Duration::from_millis(2));
        }
        let text = phase_text(count, &published, self.progress());
        self.progress_line.end(step, &text);
        let mut merged = PhaseReport::new(count);
        for g in self.groups.iter_mut() {
            merged.merge(&g.end_phase(count)?);
        }
        Ok((merged, out))
    }

    /// Runs the closed-loop burst `burst` (called `step` in progress lines): track up to its
    /// event cap, publish back to back for its duration, tell the groups how many events went
    /// out and which are not owed, wait (at most `drain`) for the rest, collect.
    pub fn run_closed_loop(
        &mut self,
        step: &str,
        burst: ClosedLoop,
        drain: Duration,
    ) -> Result<(PhaseReport, ClosedLoopOutcome)> {
        for g in self.groups.iter_mut() {
            g.start_phase(burst.first_seq, burst.max_events)?;
        }
        self.progress_line.start();
        let published = PublishProgress::default();
        let target = self.publish.clone();
        let out = std::thread::scope(|scope| {
            let publisher = scope.spawn(|| publish_closed_loop(&target, burst, &published));
            while !publisher.is_finished() {
                let progress = self.progress();
                self.progress_line
                    .tick(step, || burst_text(&published, progress, None));
                std::thread::sleep(Duration::from_millis(2));
            }
            publisher.join().expect("publisher thread")
        });
        for g in self.groups.iter_mut() {
            g.end_publishing(out.count, &out.unowed)?;
        }
        let deadline = Instant::now() + drain;
        while self.progress().missing > 0 && Instant::now() < deadline {
            let progress = self.progress();
            self.progress_line.tick(step, || {
                burst_text(&published, progress, Some(progress.missing))
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        let progress = self.progress();
        let text = burst_text(&published, progress, Some(progress.missing));
        self.progress_line.end(step, &text);
        let mut merged = PhaseReport::new(out.count);
        for g in self.groups.iter_mut() {
            merged.merge(&g.end_phase(out.count)?);
        }
        Ok((merged, out))
    }

    /// Collects what the groups counted (the ramp's failures, the first refusal) without a
    /// phase: nothing is published, as when no subscriber connected.
    pub fn collect_without_publishing(&mut self) -> Result<PhaseReport> {
        let mut merged = PhaseReport::new(0);
        for g in self.groups.iter_mut() {
            g.start_phase(0, 0)?;
            merged.merge(&g.end_phase(0)?);
        }
        Ok(merged)
    }

    /// Shows the phase's progress when it is due.
    fn show_phase(&mut self, step: &str, count: usize, published: &PublishProgress) {
        let progress = self.progress();
        self.progress_line
            .tick(step, || phase_text(count, published, progress));
    }

    /// Closes every connection and stops the groups; returns the CPU seconds the workers used
    /// beyond what this process already counted.
    pub fn shutdown(self) -> Result<f64> {
        let mut usage_cpu = 0.0;
        for g in self.groups {
            usage_cpu += g.shutdown()?.cpu_s;
        }
        Ok(usage_cpu)
    }
}

/// A phase's progress: `3/20 published, 0 failed, 300 delivered, 1700 missing`.
fn phase_text(count: usize, published: &PublishProgress, p: ProgressSnapshot) -> String {
    format!(
        "{}/{count} published, {} failed, {} delivered, {} missing",
        published.published.load(Relaxed),
        published.failed.load(Relaxed),
        p.delivered,
        p.missing
    )
}

/// A burst's progress: `1200 accepted, 30 refused, 180000 delivered`, and once publishing
/// ended, `, 4000 missing`.
fn burst_text(published: &PublishProgress, p: ProgressSnapshot, missing: Option<u64>) -> String {
    let mut text = format!(
        "{} accepted, {} refused or unanswered, {} delivered",
        published.published.load(Relaxed),
        published.failed.load(Relaxed),
        p.delivered
    );
    if let Some(missing) = missing {
        text.push_str(&format!(", {missing} missing"));
    }
    text
}

/// Starts the subscriber groups: threads here, or worker processes.
fn start_groups(
    settings: &FanoutSettings,
    target: SubscriberTarget,
    processes: usize,
) -> Result<Vec<Box<dyn SubscriberGroup>>> {
    let n = settings.connections as usize;
    if processes <= 1 {
        let g = LocalGroup::start(
            Arc::new(target),
            n,
            settings.threads,
            settings.connect_rate,
            0,
        )?;
        return Ok(vec![Box::new(g)]);
    }
    let exe = match &settings.worker_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| Error::io("cannot find this executable to start workers", e))?,
    };
    let threads = settings.threads.div_ceil(processes).max(1);
    let mut groups: Vec<Box<dyn SubscriberGroup>> = Vec::with_capacity(processes);
    for p in 0..processes {
        let lo = n * p / processes;
        let hi = n * (p + 1) / processes;
        let config = WorkerConfig {
            target: target.clone(),
            connections: hi - lo,
            threads,
            rate: settings.connect_rate * (hi - lo) as f64 / n as f64,
            first_index: lo,
        };
        // Workers already started are killed when `groups` drops on error.
        groups.push(Box::new(WorkerGroup::spawn(&exe, &config)?));
    }
    Ok(groups)
}
