//! The machinery of a run: the subscriber groups (threads here, or worker processes) and the
//! publisher, and one phase on them: track, publish, wait for the drain, collect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::settings::FanoutSettings;
use crate::error::{Error, Result};
use crate::group::{LocalGroup, SubscriberGroup};
use crate::publisher::{PublishOutcome, PublishTarget, publish_phase};
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

    /// Runs one phase of `count` events from `first_seq` at `rate`: track, publish, drain,
    /// collect.
    pub fn run_phase(
        &mut self,
        first_seq: u64,
        count: usize,
        rate: f64,
    ) -> Result<(PhaseReport, PublishOutcome)> {
        for g in self.groups.iter_mut() {
            g.start_phase(first_seq, count)?;
        }
        let out = publish_phase(&self.publish, first_seq, count, rate);
        let deadline = Instant::now() + self.drain_timeout;
        while self.progress().missing > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut merged = PhaseReport::new(count);
        for g in self.groups.iter_mut() {
            merged.merge(&g.end_phase(count)?);
        }
        Ok((merged, out))
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
