//! Delivery tracking: which events of the current phase each connection received (one bit per
//! event), and the thread's report of the phase (latency, loss, duplicates, order, lateness).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::connection::{ConnState, Subscriber};
use super::{Progress, thread_cpu_ns};
use crate::payload;
use crate::reply::ServerReply;
use crate::stats::{ErrorCounts, PhaseReport, count_error};

/// What one connection has received of the current phase.
#[derive(Default)]
pub(super) struct Tracking {
    /// The connection was streaming when the phase started, so it owes every event.
    pub(super) in_phase: bool,
    /// One bit per event of the phase: received.
    seen: Vec<u64>,
    /// Distinct events received.
    received: u64,
    /// Highest sequence number received, for out-of-order detection.
    highest: Option<u64>,
}

/// The current phase, as a thread knows it.
#[derive(Debug, Clone, Copy, Default)]
struct Phase {
    /// Events are being tracked.
    active: bool,
    /// First sequence number.
    first_seq: u64,
    /// Number of events.
    count: usize,
}

/// What one event's arrival meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Receipt {
    /// A new delivery of the phase.
    Delivered,
    /// Not ours (another source, or an earlier run): ignored.
    Foreign,
    /// An event of another phase, or on a connection that owes nothing.
    Late,
    /// Received before on this connection.
    Duplicate,
}

/// Everything a delivery updates, apart from the connection itself.
pub(super) struct Recorder {
    /// The phase.
    phase: Phase,
    /// What the thread saw in the phase so far.
    report: PhaseReport,
    /// Failures since the last report (the ramp's go into the first phase's report).
    pub(super) errors: ErrorCounts,
    /// Connections dropped during the current phase.
    dropped: u64,
    /// The run id that counts.
    run_id: u64,
    /// This thread's CPU time when the phase started, ns.
    phase_cpu_start_ns: u64,
    /// Shared counters.
    pub(super) progress: Arc<Progress>,
    /// The first reply that was not an event stream, since the last report.
    first_reply: Option<ServerReply>,
}

impl Recorder {
    /// A recorder for events of `run_id`, no phase active.
    pub(super) fn new(run_id: u64, progress: Arc<Progress>) -> Self {
        Recorder {
            phase: Phase::default(),
            report: PhaseReport::new(0),
            errors: ErrorCounts::new(),
            dropped: 0,
            run_id,
            phase_cpu_start_ns: 0,
            progress,
            first_reply: None,
        }
    }

    /// Keeps `reply` if it is the first refusal since the last report.
    pub(super) fn refused(&mut self, reply: impl FnOnce() -> ServerReply) {
        if self.first_reply.is_none() {
            self.first_reply = Some(reply());
        }
    }

    /// Starts tracking events `first_seq..first_seq + count`: every connection streaming now
    /// owes each of them.
    pub(super) fn start_phase(&mut self, conns: &mut [Subscriber], first_seq: u64, count: usize) {
        let words = count.div_ceil(64);
        let mut streaming = 0u64;
        for conn in conns {
            let t = &mut conn.track;
            t.in_phase = conn.state == ConnState::Streaming;
            t.received = 0;
            t.highest = None;
            t.seen.clear();
            if t.in_phase {
                t.seen.resize(words, 0);
                streaming += 1;
            }
        }
        self.report = PhaseReport::new(count);
        self.report.connections = streaming;
        self.dropped = 0;
        self.phase_cpu_start_ns = thread_cpu_ns();
        self.phase = Phase {
            active: true,
            first_seq,
            count,
        };
        self.progress.delivered.store(0, Relaxed);
        self.progress
            .missing
            .fetch_add(streaming * count as u64, Relaxed);
    }

    /// Ends the phase: whatever has not arrived is lost. Returns the thread's report, with the
    /// failures counted since the last one.
    pub(super) fn end_phase(&mut self, conns: &mut [Subscriber]) -> PhaseReport {
        let mut report = std::mem::replace(&mut self.report, PhaseReport::new(0));
        for conn in conns {
            if conn.track.in_phase {
                let missed = self.phase.count as u64 - conn.track.received;
                report.lost += missed;
                report.connections_with_loss += u64::from(missed > 0);
                let owed = if conn.state == ConnState::Closed {
                    0
                } else {
                    missed
                };
                self.progress.missing.fetch_sub(owed, Relaxed);
            }
            conn.track = Tracking::default();
        }
        report.dropped = self.dropped;
        report.subscriber_cpu_ns = thread_cpu_ns().saturating_sub(self.phase_cpu_start_ns);
        for (k, v) in std::mem::take(&mut self.errors) {
            count_error(&mut report.errors, k, v);
        }
        report.first_reply = self.first_reply.take();
        self.phase.active = false;
        report
    }

    /// A connection with `track` closed: if it owed events of the active phase, it dropped,
    /// and nobody waits for what it still owed.
    pub(super) fn closed(&mut self, track: &Tracking) {
        if track.in_phase && self.phase.active {
            self.dropped += 1;
            let owed = self.phase.count as u64 - track.received;
            self.progress.missing.fetch_sub(owed, Relaxed);
        }
    }
}

/// Records one event's data received at `now_ns` on the connection tracked by `track`.
pub(super) fn record(
    track: &mut Tracking,
    rec: &mut Recorder,
    data: &[u8],
    now_ns: u64,
) -> Receipt {
    let Some(stamp) = payload::decode(data) else {
        return Receipt::Foreign; // someone else's event
    };
    if stamp.run != rec.run_id {
        return Receipt::Foreign; // an earlier run's event
    }
    let phase = rec.phase;
    let report = &mut rec.report;
    if !phase.active || !track.in_phase {
        report.late += 1;
        return Receipt::Late;
    }
    let Some(i) = stamp
        .seq
        .checked_sub(phase.first_seq)
        .filter(|&i| i < phase.count as u64)
    else {
        report.late += 1;
        return Receipt::Late;
    };
    let i = i as usize;
    let (word, bit) = (i / 64, 1u64 << (i % 64));
    if track.seen[word] & bit != 0 {
        report.duplicated += 1;
        return Receipt::Duplicate;
    }
    track.seen[word] |= bit;
    track.received += 1;
    match track.highest {
        Some(h) if h > stamp.seq => report.out_of_order += 1,
        _ => track.highest = Some(stamp.seq),
    }
    let latency_ns = now_ns.saturating_sub(stamp.scheduled_ns);
    report.latency.saturating_record(latency_ns / 1000);
    report.deliveries += 1;
    let last = &mut report.last_receipt_ns[i];
    *last = (*last).max(latency_ns.max(1));
    report.last_delivery_unix_ns = report.last_delivery_unix_ns.max(now_ns);
    Receipt::Delivered
}
