//! A group of subscriber threads behind one interface, whether they run in this process
//! ([`LocalGroup`]) or in a worker process ([`crate::worker::WorkerGroup`]).

use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Waker};

use crate::error::{Error, Result};
use crate::stats::PhaseReport;
use crate::subscriber::{
    Command, Progress, ProgressSnapshot, SubscriberLoop, SubscriberTarget, ThreadPlan, WAKER,
};

/// How long a thread or worker may take to answer a phase command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// CPU and memory a group used beyond this process (worker processes report theirs).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct GroupUsage {
    /// CPU seconds (user + system) of the worker process.
    pub cpu_s: f64,
    /// Peak resident memory of the worker process, bytes.
    pub rss_bytes: u64,
}

/// A set of subscriber connections the controller drives through phases.
pub trait SubscriberGroup {
    /// The group's counters now.
    fn progress(&self) -> ProgressSnapshot;
    /// Starts tracking events `first_seq..first_seq + count`; returns once every thread does.
    fn start_phase(&mut self, first_seq: u64, count: usize) -> Result<()>;
    /// Publishing of the phase ended after `count` events, of which those at the indices
    /// `unowed` (sorted) are not owed; returns once every thread took it in.
    fn end_publishing(&mut self, count: usize, unowed: &[u64]) -> Result<()>;
    /// Ends the phase and returns the merged report.
    fn end_phase(&mut self, count: usize) -> Result<PhaseReport>;
    /// Resident memory of the group's process(es) beyond this one, bytes, now.
    fn rss_bytes(&self) -> u64 {
        0
    }
    /// CPU seconds of the group's process(es) beyond this one, so far.
    fn cpu_seconds(&self) -> f64 {
        0.0
    }
    /// Closes every connection and stops.
    fn shutdown(self: Box<Self>) -> Result<GroupUsage>;
}

/// One thread of a [`LocalGroup`].
struct ThreadHandle {
    /// Commands to the thread.
    commands: Sender<Command>,
    /// Wakes the thread's poll after a command.
    waker: Arc<Waker>,
    /// The thread.
    join: JoinHandle<std::io::Result<()>>,
}

/// Subscriber threads in this process.
pub struct LocalGroup {
    /// The threads.
    threads: Vec<ThreadHandle>,
    /// Counters shared by all of them.
    progress: Arc<Progress>,
}

impl LocalGroup {
    /// Starts `threads` threads opening `connections` connections in total at `rate` per
    /// second; `first_index` is the global index of the first (it picks source addresses).
    pub fn start(
        target: Arc<SubscriberTarget>,
        connections: usize,
        threads: usize,
        rate: f64,
        first_index: usize,
    ) -> Result<LocalGroup> {
        let threads = threads.clamp(1, connections.max(1));
        let progress = Arc::new(Progress::default());
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let lo = connections * t / threads;
            let hi = connections * (t + 1) / threads;
            let plan = ThreadPlan {
                connections: hi - lo,
                rate_per_sec: (rate * (hi - lo) as f64 / connections as f64).max(1e-3),
                first_index: first_index + lo,
            };
            let poll = Poll::new().map_err(|e| Error::io("cannot create a poll", e))?;
            let waker = Arc::new(
                Waker::new(poll.registry(), WAKER)
                    .map_err(|e| Error::io("cannot create a waker", e))?,
            );
            let (tx, rx) = mpsc::channel();
            let lp = SubscriberLoop::new(poll, target.clone(), plan, progress.clone(), rx);
            let join = std::thread::Builder::new()
                .name(format!("subscribers-{t}"))
                .spawn(move || lp.run())
                .map_err(|e| Error::io("cannot start a thread", e))?;
            handles.push(ThreadHandle {
                commands: tx,
                waker,
                join,
            });
        }
        Ok(LocalGroup {
            threads: handles,
            progress,
        })
    }

    /// Sends `cmd` to thread `t` and wakes it.
    fn send(&self, t: usize, cmd: Command) -> Result<()> {
        let h = &self.threads[t];
        h.commands
            .send(cmd)
            .map_err(|_| Error::Worker("a subscriber thread stopped".into()))?;
        h.waker
            .wake()
            .map_err(|e| Error::io("cannot wake a subscriber thread", e))
    }
}

impl SubscriberGroup for LocalGroup {
    fn progress(&self) -> ProgressSnapshot {
        self.progress.snapshot()
    }

    fn start_phase(&mut self, first_seq: u64, count: usize) -> Result<()> {
        let (ack, acks) = mpsc::channel();
        for t in 0..self.threads.len() {
            self.send(
                t,
                Command::StartPhase {
                    first_seq,
                    count,
                    ack: ack.clone(),
                },
            )?;
        }
        for _ in 0..self.threads.len() {
            acks.recv_timeout(COMMAND_TIMEOUT)
                .map_err(|_| Error::Worker("a subscriber thread did not start the phase".into()))?;
        }
        Ok(())
    }

    fn end_publishing(&mut self, count: usize, unowed: &[u64]) -> Result<()> {
        let (ack, acks) = mpsc::channel();
        for t in 0..self.threads.len() {
            self.send(
                t,
                Command::EndPublishing {
                    count,
                    unowed: unowed.to_vec(),
                    ack: ack.clone(),
                },
            )?;
        }
        for _ in 0..self.threads.len() {
            acks.recv_timeout(COMMAND_TIMEOUT).map_err(|_| {
                Error::Worker("a subscriber thread did not take the end of publishing".into())
            })?;
        }
        Ok(())
    }

    fn end_phase(&mut self, count: usize) -> Result<PhaseReport> {
        let (reply, replies) = mpsc::channel();
        for t in 0..self.threads.len() {
            self.send(
                t,
                Command::EndPhase {
                    reply: reply.clone(),
                },
            )?;
        }
        let mut merged = PhaseReport::new(count);
        for _ in 0..self.threads.len() {
            let r = replies
                .recv_timeout(COMMAND_TIMEOUT)
                .map_err(|_| Error::Worker("a subscriber thread did not report".into()))?;
            merged.merge(&r);
        }
        Ok(merged)
    }

    fn shutdown(self: Box<Self>) -> Result<GroupUsage> {
        for t in 0..self.threads.len() {
            let _ = self.send(t, Command::Shutdown);
        }
        for h in self.threads {
            match h.join.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::io("a subscriber thread failed", e)),
                Err(_) => return Err(Error::Worker("a subscriber thread panicked".into())),
            }
        }
        Ok(GroupUsage::default())
    }
}
