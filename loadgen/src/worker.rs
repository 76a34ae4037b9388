//! Worker processes: past the per-process open-file limit the parent re-executes its own binary
//! with the hidden `worker` subcommand and talks to each worker over its stdin and stdout, one
//! JSON object per line.
//!
//! Parent to worker: first a [`WorkerConfig`], then [`WorkerCommand`]s. Worker to parent:
//! [`WorkerMessage`]s: `progress` every 100 ms, `phase_started` after a `start_phase`,
//! `publishing_ended` after an `end_publishing`, `phase` (the full [`PhaseReport`], histogram
//! as raw counts) after an `end_phase`, `done` with the worker's CPU and memory after
//! `shutdown`. A worker whose stdin closes shuts down, so workers
//! never outlive their parent; the parent kills them when it stops early.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::group::{COMMAND_TIMEOUT, GroupUsage, LocalGroup, SubscriberGroup};
use crate::stats::PhaseReport;
use crate::subscriber::{ProgressSnapshot, SubscriberTarget};
use crate::sysinfo;

/// What a worker is asked to do, sent as its first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// What to connect to.
    pub target: SubscriberTarget,
    /// How many connections this worker opens.
    pub connections: usize,
    /// Event loops in this worker.
    pub threads: usize,
    /// Connections per second for this worker.
    pub rate: f64,
    /// Global index of its first connection.
    pub first_index: usize,
}

/// A command from the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum WorkerCommand {
    /// See [`SubscriberGroup::start_phase`].
    StartPhase {
        /// First sequence number.
        first_seq: u64,
        /// Number of events.
        count: usize,
    },
    /// See [`SubscriberGroup::end_publishing`].
    EndPublishing {
        /// Events published.
        count: usize,
        /// Indices of the events not owed, sorted.
        unowed: Vec<u64>,
    },
    /// See [`SubscriberGroup::end_phase`].
    EndPhase {
        /// Number of events.
        count: usize,
    },
    /// Close everything and exit.
    Shutdown,
}

/// A message from a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// Counters now.
    Progress(ProgressSnapshot),
    /// The phase is being tracked.
    PhaseStarted,
    /// The end of publishing was taken in.
    PublishingEnded,
    /// The report of the phase that just ended.
    Phase {
        /// The worker's merged report.
        report: Box<PhaseReport>,
    },
    /// The worker is done.
    Done(GroupUsage),
    /// The worker failed.
    Error {
        /// Why.
        message: String,
    },
}

/// Writes one message line to stdout.
fn emit(msg: &WorkerMessage) -> Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(|e| Error::Json {
        context: "cannot encode a worker message".into(),
        source: e,
    })?;
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write to the parent", e))
}

/// The worker side: runs until told to shut down or until stdin closes.
pub fn run_worker() -> Result<()> {
    let mut stdin = BufReader::new(std::io::stdin());
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| Error::io("cannot read the worker configuration", e))?;
    let config: WorkerConfig = serde_json::from_str(&line).map_err(|e| Error::Json {
        context: "bad worker configuration".into(),
        source: e,
    })?;
    sysinfo::raise_fd_limit();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdin.lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<WorkerCommand>(&line) {
                Ok(cmd) => {
                    if tx.send(cmd).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    let mut group: Box<dyn SubscriberGroup> = Box::new(LocalGroup::start(
        Arc::new(config.target),
        config.connections,
        config.threads,
        config.rate,
        config.first_index,
    )?);
    loop {
        let cmd = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(cmd) => cmd,
            Err(RecvTimeoutError::Timeout) => {
                emit(&WorkerMessage::Progress(group.progress()))?;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => WorkerCommand::Shutdown,
        };
        match cmd {
            WorkerCommand::StartPhase { first_seq, count } => {
                group.start_phase(first_seq, count)?;
                // Progress first, so the parent never sees the previous phase's `missing`.
                emit(&WorkerMessage::Progress(group.progress()))?;
                emit(&WorkerMessage::PhaseStarted)?;
            }
            WorkerCommand::EndPublishing { count, unowed } => {
                group.end_publishing(count, &unowed)?;
                // Progress first, so the parent's next look at `missing` has the new count.
                emit(&WorkerMessage::Progress(group.progress()))?;
                emit(&WorkerMessage::PublishingEnded)?;
            }
            WorkerCommand::EndPhase { count } => {
                let report = group.end_phase(count)?;
                emit(&WorkerMessage::Progress(group.progress()))?;
                emit(&WorkerMessage::Phase {
                    report: Box::new(report),
                })?;
            }
            WorkerCommand::Shutdown => {
                let rss_bytes = sysinfo::self_rss_bytes();
                group.shutdown()?;
                let _ = emit(&WorkerMessage::Done(GroupUsage {
                    cpu_s: sysinfo::self_cpu_seconds(),
                    rss_bytes,
                }));
                return Ok(());
            }
        }
    }
}

/// The parent side of one worker process.
pub struct WorkerGroup {
    /// The process; killed on drop unless it exited.
    child: Child,
    /// Commands go here.
    stdin: ChildStdin,
    /// The latest progress line.
    progress: Arc<Mutex<ProgressSnapshot>>,
    /// Every other message.
    messages: Receiver<WorkerMessage>,
    /// The worker's pid, for its memory.
    pid: u32,
}

impl WorkerGroup {
    /// Starts `exe worker` and sends it `config`.
    pub fn spawn(exe: &Path, config: &WorkerConfig) -> Result<WorkerGroup> {
        let mut child = Command::new(exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::io(format!("cannot start worker {}", exe.display()), e))?;
        let pid = child.id();
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let progress = Arc::new(Mutex::new(ProgressSnapshot::default()));
        let (tx, messages) = mpsc::channel();
        let shared = progress.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let msg = match serde_json::from_str::<WorkerMessage>(&line) {
                    Ok(m) => m,
                    Err(e) => WorkerMessage::Error {
                        message: format!("unreadable message: {e}"),
                    },
                };
                match msg {
                    WorkerMessage::Progress(p) => {
                        *shared.lock().unwrap_or_else(|e| e.into_inner()) = p;
                    }
                    other => {
                        if tx.send(other).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut line = serde_json::to_vec(config).map_err(|e| Error::Json {
            context: "cannot encode the worker configuration".into(),
            source: e,
        })?;
        line.push(b'\n');
        stdin
            .write_all(&line)
            .map_err(|e| Error::io("cannot configure a worker", e))?;
        Ok(WorkerGroup {
            child,
            stdin,
            progress,
            messages,
            pid,
        })
    }

    /// Sends a command.
    fn send(&mut self, cmd: &WorkerCommand) -> Result<()> {
        let mut line = serde_json::to_vec(cmd).expect("commands serialize");
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .and_then(|()| self.stdin.flush())
            .map_err(|e| Error::io("cannot talk to a worker", e))
    }

    /// Waits for the next message that is not progress.
    fn next(&mut self) -> Result<WorkerMessage> {
        match self.messages.recv_timeout(COMMAND_TIMEOUT) {
            Ok(WorkerMessage::Error { message }) => Err(Error::Worker(message)),
            Ok(m) => Ok(m),
            Err(RecvTimeoutError::Timeout) => Err(Error::Worker("no answer in 60 s".into())),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                Err(Error::Worker(format!(
                    "exited unexpectedly ({})",
                    status.map_or("unknown status".into(), |s| s.to_string())
                )))
            }
        }
    }
}

impl SubscriberGroup for WorkerGroup {
    fn progress(&self) -> ProgressSnapshot {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_phase(&mut self, first_seq: u64, count: usize) -> Result<()> {
        self.send(&WorkerCommand::StartPhase { first_seq, count })?;
        match self.next()? {
            WorkerMessage::PhaseStarted => Ok(()),
            other => Err(Error::Worker(format!("unexpected {other:?}"))),
        }
    }

    fn end_publishing(&mut self, count: usize, unowed: &[u64]) -> Result<()> {
        self.send(&WorkerCommand::EndPublishing {
            count,
            unowed: unowed.to_vec(),
        })?;
        match self.next()? {
            WorkerMessage::PublishingEnded => Ok(()),
            other => Err(Error::Worker(format!("unexpected {other:?}"))),
        }
    }

    fn end_phase(&mut self, count: usize) -> Result<PhaseReport> {
        self.send(&WorkerCommand::EndPhase { count })?;
        match self.next()? {
            WorkerMessage::Phase { report } => Ok(*report),
            other => Err(Error::Worker(format!("unexpected {other:?}"))),
        }
    }

    fn rss_bytes(&self) -> u64 {
        sysinfo::tree_rss_bytes(self.pid).unwrap_or(0)
    }

    fn cpu_seconds(&self) -> f64 {
        sysinfo::tree_cpu_seconds(self.pid).unwrap_or(0.0)
    }

    fn shutdown(mut self: Box<Self>) -> Result<GroupUsage> {
        self.send(&WorkerCommand::Shutdown)?;
        let usage = match self.next()? {
            WorkerMessage::Done(u) => u,
            other => return Err(Error::Worker(format!("unexpected {other:?}"))),
        };
        let _ = self.child.wait();
        Ok(usage)
    }
}

impl Drop for WorkerGroup {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
