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
    /// One bit per event of the phase: received. Grown as events arrive, so a phase whose
    /// length is not known in advance (`--overload`) costs only what was published.
    seen: Vec<u64>,
    /// Distinct events received that the connection owes.
    received: u64,
    /// Highest sequence number received, for out-of-order detection.
    highest: Option<u64>,
}

/// The current phase, as a thread knows it.
#[derive(Debug, Clone, Default)]
struct Phase {
    /// Events are being tracked.
    active: bool,
    /// First sequence number.
    first_seq: u64,
    /// Number of events: sequence numbers `first_seq..first_seq + count`.
    count: usize,
    /// Events each connection of the phase owes: `count` less those in `unowed`.
    owed: u64,
    /// Indices (from 0) of events within `count` that no connection owes, sorted: publishes
    /// the server refused or never answered (`--overload`). Delivered anyway, they count as
    /// deliveries, never as loss.
    unowed: Vec<u64>,
}

impl Phase {
    /// Whether event index `i` is owed.
    fn owes(&self, i: u64) -> bool {
        self.unowed.is_empty() || self.unowed.binary_search(&i).is_err()
    }
}

impl Tracking {
    /// Whether event index `i` of the phase was received.
    fn has(&self, i: u64) -> bool {
        let word = (i / 64) as usize;
        self.seen
            .get(word)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// What one event's arrival meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Receipt {
    /// A new delivery of the phase.
    Delivered,
    /// A new delivery of an event the phase does not owe (its publish got no 2xx answer).
    Unowed,
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
            streaming += u64::from(t.in_phase);
        }
        // The per-event figures grow as events arrive, too.
        self.report = PhaseReport::new(0);
        self.report.connections = streaming;
        self.dropped = 0;
        self.phase_cpu_start_ns = thread_cpu_ns();
        self.phase = Phase {
            active: true,
            first_seq,
            count,
            owed: count as u64,
            unowed: Vec::new(),
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
                let missed = self.phase.owed - conn.track.received;
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
            let owed = self.phase.owed - track.received;
            self.progress.missing.fetch_sub(owed, Relaxed);
        }
    }

    /// Publishing of the phase ended after `count` events (at most the count it started
    /// with), of which those at the indices `unowed` (sorted) are not owed: no connection
    /// waits for the rest, and what a connection already received of `unowed` no longer counts
    /// toward what it owes. Used by `--overload`, whose length is known only at its end.
    pub(super) fn end_publishing(
        &mut self,
        conns: &mut [Subscriber],
        count: usize,
        unowed: Vec<u64>,
    ) {
        let count = count.min(self.phase.count);
        let unowed: Vec<u64> = unowed.into_iter().filter(|&i| i < count as u64).collect();
        let owed = count as u64 - unowed.len() as u64;
        let mut released = 0u64;
        for conn in conns {
            let t = &mut conn.track;
            if !t.in_phase {
                continue;
            }
            let had = unowed.iter().filter(|&&i| t.has(i)).count() as u64;
            // A closed connection stopped owing when it closed.
            if conn.state != ConnState::Closed {
                released += (self.phase.owed - t.received) - (owed - (t.received - had));
            }
            t.received -= had;
        }
        self.progress.missing.fetch_sub(released, Relaxed);
        self.phase.count = count;
        self.phase.owed = owed;
        self.phase.unowed = unowed;
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
    let phase = &rec.phase;
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
    let owed = phase.owes(i);
    let i = i as usize;
    let (word, bit) = (i / 64, 1u64 << (i % 64));
    if word >= track.seen.len() {
        track.seen.resize(word + 1, 0);
    }
    if track.seen[word] & bit != 0 {
        report.duplicated += 1;
        return Receipt::Duplicate;
    }
    track.seen[word] |= bit;
    track.received += u64::from(owed);
    match track.highest {
        Some(h) if h > stamp.seq => report.out_of_order += 1,
        _ => track.highest = Some(stamp.seq),
    }
    let latency_ns = now_ns.saturating_sub(stamp.scheduled_ns);
    report.latency.saturating_record(latency_ns / 1000);
    report.deliveries += 1;
    if i >= report.last_receipt_ns.len() {
        report.last_receipt_ns.resize(i + 1, 0);
    }
    let last = &mut report.last_receipt_ns[i];
    *last = (*last).max(latency_ns.max(1));
    report.last_delivery_unix_ns = report.last_delivery_unix_ns.max(now_ns);
    if owed {
        Receipt::Delivered
    } else {
        Receipt::Unowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data of event `seq` of run 7.
    fn event(seq: u64) -> Vec<u8> {
        let mut data = Vec::new();
        payload::encode(
            payload::Stamp {
                run: 7,
                seq,
                scheduled_ns: 1,
            },
            64,
            &mut data,
        );
        data
    }

    /// A burst tracked up to a cap of 100 events ends after 10, of which 3 and 5 are not owed
    /// (refused, or unanswered): nobody waits for events 10..100, a delivery of event 5 counts
    /// as a delivery but not toward what is owed, and only owed events missing are lost.
    #[test]
    fn end_of_publishing_releases_what_was_never_published_or_owed() {
        let progress = Arc::new(Progress::default());
        let mut rec = Recorder::new(7, progress.clone());
        let mut conns: Vec<Subscriber> = (0..3).map(|_| Subscriber::unconnected()).collect();
        conns[0].state = ConnState::Streaming;
        conns[1].state = ConnState::Streaming;
        rec.start_phase(&mut conns, 0, 100);
        assert_eq!(progress.missing.load(Relaxed), 200);
        // Connection 0 gets every event but 3 (never accepted); connection 1 misses event 7
        // and gets event 5 only after publishing ended.
        let mut receipts = Vec::new();
        for seq in (0..10).filter(|&s| s != 3) {
            receipts.push(record(&mut conns[0].track, &mut rec, &event(seq), 2));
        }
        for seq in [0, 1, 2, 4, 6, 8, 9] {
            receipts.push(record(&mut conns[1].track, &mut rec, &event(seq), 2));
        }
        assert!(receipts.iter().all(|&r| r == Receipt::Delivered));
        progress.missing.fetch_sub(receipts.len() as u64, Relaxed);
        rec.end_publishing(&mut conns, 10, vec![3, 5]);
        // Owed: 8 events each; connection 0 has them all, connection 1 lacks event 7.
        assert_eq!(progress.missing.load(Relaxed), 1);
        assert_eq!(
            record(&mut conns[1].track, &mut rec, &event(5), 2),
            Receipt::Unowed
        );
        assert_eq!(
            record(&mut conns[1].track, &mut rec, &event(12), 2),
            Receipt::Late
        );
        let report = rec.end_phase(&mut conns);
        assert_eq!(report.connections, 2);
        assert_eq!(report.deliveries, 9 + 8);
        assert_eq!((report.lost, report.connections_with_loss), (1, 1));
        assert_eq!(progress.missing.load(Relaxed), 0);
    }
}
