//! Publishing as fast as the server answers (`fanout --overload`): each of `K` publishing
//! threads posts its next event as soon as the reply to its last one arrives, for a fixed time.
//!
//! There is no schedule, so each payload carries its *actual* send time (taken just before the
//! request is written) and latency is measured from there: a server that makes publishers wait
//! shows it in the publish rate, not in delivery latency.
//!
//! Events are numbered from a counter shared by the threads. A refused publish (an answer
//! outside 2xx, such as backpressure's `503`) was not accepted, so its number is posted again on
//! the thread's next try: the accepted events keep consecutive numbers. A publish that got no
//! answer (timeout, closed connection) may or may not have been taken; its number is not used
//! again, and it is listed as not owed ([`ClosedLoopOutcome::unowed`]) so no subscriber counts it
//! lost, whether or not it arrives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{PublishProgress, PublishTarget};
use crate::failure::FailureKind;
use crate::payload::{self, Stamp};
use crate::reply::ServerReply;
use crate::stats::{ErrorCounts, count_error};
use crate::subscriber::unix_now_ns;

/// How a closed-loop burst runs.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    /// The sequence number of event 0.
    pub first_seq: u64,
    /// How long to keep publishing.
    pub duration: Duration,
    /// Publishing threads, each with one publish in flight.
    pub in_flight: usize,
    /// Most events (the subscribers track one bit per event and connection): publishing stops
    /// early when they are used.
    pub max_events: usize,
}

/// How a closed-loop burst went.
#[derive(Debug, Clone, Default)]
pub struct ClosedLoopOutcome {
    /// Events numbered: `first_seq..first_seq + count`; each was posted at least once.
    pub count: usize,
    /// Requests sent (a refused event is sent again, so this can exceed `count`).
    pub requests: u64,
    /// Publishes answered 2xx: events the server took, owed to every subscriber.
    pub accepted: u64,
    /// Answers outside 2xx (`503` from backpressure, say): the server did not take the event.
    pub refused: u64,
    /// Publishes without an answer (timeouts, closed connections): not owed.
    pub no_answer: u64,
    /// Refusals and failures by kind (`publish_status_503`, `publish_timeout`, ...).
    pub errors: ErrorCounts,
    /// Indices (from 0, within `count`) of the events not owed: never accepted, or sent without
    /// an answer. Sorted.
    pub unowed: Vec<u64>,
    /// When publishing started, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// How long publishing took, to the last reply.
    pub elapsed: Duration,
    /// Publishing stopped because `max_events` were used, before the time was up.
    pub stopped_at_cap: bool,
    /// The first answer outside 2xx.
    pub first_refusal: Option<ServerReply>,
}

/// What one publishing thread counted.
#[derive(Debug, Default)]
struct ThreadTally {
    /// Highest event index it sent, plus one.
    end: u64,
    /// Requests sent.
    requests: u64,
    /// Accepted.
    accepted: u64,
    /// Refused.
    refused: u64,
    /// Unanswered.
    no_answer: u64,
    /// Refusals and failures by kind.
    errors: ErrorCounts,
    /// Indices not owed.
    unowed: Vec<u64>,
    /// Its first answer outside 2xx.
    first_refusal: Option<ServerReply>,
}

/// Publishes back to back for `burst.duration` with `burst.in_flight` threads; counts each
/// answer in `progress` (accepted as published, the rest as failed).
pub fn publish_closed_loop(
    target: &PublishTarget,
    burst: ClosedLoop,
    progress: &PublishProgress,
) -> ClosedLoopOutcome {
    let start = Instant::now();
    let start_unix_ns = unix_now_ns();
    let deadline = start + burst.duration;
    let next = AtomicU64::new(0);
    let capped = AtomicBool::new(false);
    let threads = burst.in_flight.max(1);
    let tallies: Vec<ThreadTally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| publish_until(target, &burst, deadline, &next, &capped, progress))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("publisher thread"))
            .collect()
    });
    let mut out = ClosedLoopOutcome {
        start_unix_ns,
        elapsed: start.elapsed(),
        stopped_at_cap: capped.load(Relaxed),
        ..ClosedLoopOutcome::default()
    };
    for t in tallies {
        out.count = out.count.max(t.end as usize);
        out.requests += t.requests;
        out.accepted += t.accepted;
        out.refused += t.refused;
        out.no_answer += t.no_answer;
        for (kind, n) in t.errors {
            count_error(&mut out.errors, kind, n);
        }
        out.unowed.extend(t.unowed);
        if out.first_refusal.is_none() {
            out.first_refusal = t.first_refusal;
        }
    }
    // A thread sends every index it takes below the cap, so each index below `count` was
    // posted at least once: it was accepted, or it is listed here.
    out.unowed.sort_unstable();
    out
}

/// One publishing thread: posts the next event as soon as the last is answered, until the
/// deadline or the event cap.
fn publish_until(
    target: &PublishTarget,
    burst: &ClosedLoop,
    deadline: Instant,
    next: &AtomicU64,
    capped: &AtomicBool,
    progress: &PublishProgress,
) -> ThreadTally {
    let (mut conns, mut body) = target.thread_start();
    let mut tally = ThreadTally::default();
    // An event refused last time, posted again before a new one is taken.
    let mut retry: Option<u64> = None;
    while Instant::now() < deadline {
        let i = match retry.take() {
            Some(i) => i,
            None => {
                let i = next.fetch_add(1, Relaxed);
                if i >= burst.max_events as u64 {
                    capped.store(true, Relaxed);
                    break;
                }
                i
            }
        };
        tally.end = tally.end.max(i + 1);
        let stamp = Stamp {
            run: target.run_id,
            seq: burst.first_seq + i,
            scheduled_ns: unix_now_ns(),
        };
        payload::encode(stamp, target.payload, &mut body);
        let node = i as usize % conns.len();
        tally.requests += 1;
        match conns[node].post(target, &body) {
            Ok(a) if (200..300).contains(&a.status) => {
                tally.accepted += 1;
                progress.published.fetch_add(1, Relaxed);
            }
            Ok(a) => {
                tally.refused += 1;
                progress.failed.fetch_add(1, Relaxed);
                count_error(&mut tally.errors, FailureKind::publish_status(a.status), 1);
                if tally.first_refusal.is_none() {
                    tally.first_refusal = a.refusal;
                }
                retry = Some(i);
            }
            Err(kind) => {
                tally.no_answer += 1;
                progress.failed.fetch_add(1, Relaxed);
                count_error(&mut tally.errors, kind, 1);
                tally.unowed.push(i);
            }
        }
    }
    // An event still refused when time ran out was never taken.
    tally.unowed.extend(retry);
    tally
}
