//! Delivery tracking: which events of the current phase each connection received (one bit per
//! event), and the thread's report of the phase (latency, loss, duplicates, order, lateness).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::connection::{ConnState, Subscriber};
use super::{Progress, thread_cpu_ns};
use crate::payload;
use crate::reply::ServerReply;
use crate::stats::{ErrorCounts, PhaseReport, count_error, new_histogram};
use hdrhistogram::Histogram;

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
    /// `--reconnect`: streams that came back since the last report.
    reconnects: u64,
    /// Their times from the stream's end to the new head, µs.
    reconnect_us: Histogram<u64>,
    /// When the first stream ended since the last report, ns since the Unix epoch (0: none).
    first_stream_end_ns: u64,
    /// When the last reconnection got its head, ns since the Unix epoch (0: none).
    last_reconnect_ns: u64,
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
            reconnects: 0,
            reconnect_us: new_histogram(),
            first_stream_end_ns: 0,
            last_reconnect_ns: 0,
        }
    }

    /// A stream ended at `now_ns` and its connection will reconnect.
    pub(super) fn stream_ended(&mut self, now_ns: u64) {
        if self.first_stream_end_ns == 0 {
            self.first_stream_end_ns = now_ns;
        }
    }

    /// A connection whose stream ended at `since_ns` got a new event-stream head at `now_ns`.
    pub(super) fn reconnected(&mut self, since_ns: u64, now_ns: u64) {
        self.reconnects += 1;
        self.reconnect_us
            .saturating_record((now_ns.saturating_sub(since_ns) / 1000).max(1));
        self.last_reconnect_ns = self.last_reconnect_ns.max(now_ns);
    }

    /// Keeps `reply` if it is the first refusal since the last report.
    pub(super) fn refused(&mut self, reply: impl FnOnce() -> ServerReply) {
        if self.first_reply.is_none() {
            self.first_reply = Some(reply());
        }
    }

    /// Starts tracking events `first_seq..first_seq + count`: every connection streaming (or
    /// reconnecting) now owes each of them.
    pub(super) fn start_phase(&mut self, conns: &mut [Subscriber], first_seq: u64, count: usize) {
        let words = count.div_ceil(64);
        let mut streaming = 0u64;
        for conn in conns {
            // A connection between streams owes the phase too: it will reconnect and ask for
            // what it missed with `Last-Event-ID`.
            let owes = conn.state == ConnState::Streaming || conn.is_reconnecting();
            let t = &mut conn.track;
            t.in_phase = owes;
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
        for conn in conns.iter() {
            report.reconnecting += u64::from(conn.is_reconnecting());
        }
        report.reconnects = std::mem::take(&mut self.reconnects);
        report.reconnect_us = std::mem::replace(&mut self.reconnect_us, new_histogram());
        report.first_stream_end_unix_ns = std::mem::take(&mut self.first_stream_end_ns);
        report.last_reconnect_unix_ns = std::mem::take(&mut self.last_reconnect_ns);
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
