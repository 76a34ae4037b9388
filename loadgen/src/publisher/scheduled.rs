//! Publishing on a fixed schedule: event `i` of a phase is due at `start + i / rate`, and its
//! payload carries that *scheduled* time, so subscribers measure latency from when the event
//! should have been sent and a publisher that falls behind shows up as latency instead of
//! hiding it (the coordinated-omission correction of wrk2). With `K` publishers, publisher `k`
//! sends events `k, k+K, k+2K, ...`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::{PublishProgress, PublishTarget};
use crate::failure::FailureKind;
use crate::payload::{self, Stamp};
use crate::reply::ServerReply;
use crate::stats::{ErrorCounts, count_error};
use crate::subscriber::unix_now_ns;

/// How a phase's publishing went.
#[derive(Debug, Clone, Default)]
pub struct PublishOutcome {
    /// Events answered with a 2xx status.
    pub published: u64,
    /// Publish failures by kind (`publish_status_500`, `publish_connect_refused`, ...).
    pub errors: ErrorCounts,
    /// Largest delay between an event's scheduled and actual send time, ns.
    pub max_lag_ns: u64,
    /// The send delay of the last event, ns.
    pub end_lag_ns: u64,
    /// Whether the schedule was kept: no event went out later than max(20 ms, 5 % of the
    /// phase's scheduled duration) after its time.
    pub kept_schedule: bool,
    /// The scheduled send time of event 0, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// Scheduled duration of the phase (`count / rate`).
    pub scheduled: Duration,
    /// Time from the scheduled start to the last response.
    pub actual: Duration,
    /// Publishing connections used.
    pub publishers: usize,
    /// The first answer outside 2xx, quoted when every publish failed.
    pub first_refusal: Option<ServerReply>,
}

/// What one publishing thread counted.
#[derive(Debug, Default)]
struct PublisherTally {
    /// Events answered 2xx.
    ok: u64,
    /// Failures by kind.
    errors: ErrorCounts,
    /// Largest send delay, ns.
    max_lag_ns: u64,
    /// Send delay of this thread's last event, ns.
    last_lag_ns: u64,
    /// Index of this thread's last event.
    last_i: u64,
    /// Its first answer outside 2xx.
    first_refusal: Option<ServerReply>,
}

/// Publishes events `first_seq..first_seq + count` at `rate` per second and returns when every
/// one has been answered (or has failed); counts each answer in `progress` as it comes.
pub fn publish_phase(
    target: &PublishTarget,
    first_seq: u64,
    count: usize,
    rate: f64,
    progress: &PublishProgress,
) -> PublishOutcome {
    let lead = Duration::from_millis(20);
    let schedule = Schedule {
        start: Instant::now() + lead,
        start_unix_ns: unix_now_ns() + lead.as_nanos() as u64,
        first_seq,
        count,
        rate,
    };
    let k = match target.publishers {
        0 => ((rate / 1000.0).ceil() as usize).clamp(1, 16),
        k => k,
    }
    .clamp(1, count.max(1));
    let tallies: Vec<PublisherTally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..k)
            .map(|p| scope.spawn(move || publish_share(target, &schedule, p, k, progress)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("publisher thread"))
            .collect()
    });
    let mut out = PublishOutcome {
        start_unix_ns: schedule.start_unix_ns,
        scheduled: Duration::from_secs_f64(count as f64 / rate),
        actual: Instant::now().saturating_duration_since(schedule.start),
        publishers: k,
        ..PublishOutcome::default()
    };
    let mut last = (0, 0);
    for tally in tallies {
        out.published += tally.ok;
        for (kind, n) in tally.errors {
            count_error(&mut out.errors, kind, n);
        }
        out.max_lag_ns = out.max_lag_ns.max(tally.max_lag_ns);
        if tally.last_i >= last.0 {
            last = (tally.last_i, tally.last_lag_ns);
        }
        if out.first_refusal.is_none() {
            out.first_refusal = tally.first_refusal;
        }
    }
    out.end_lag_ns = last.1;
    let allowed = Duration::from_millis(20).max(out.scheduled / 20);
    out.kept_schedule = Duration::from_nanos(out.max_lag_ns) <= allowed;
    out
}

/// When a phase's events are due.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// When event 0 is due.
    start: Instant,
    /// The same moment, ns since the Unix epoch (stamped into payloads).
    start_unix_ns: u64,
    /// The sequence number of event 0.
    first_seq: u64,
    /// Events in the phase.
    count: usize,
    /// Events per second.
    rate: f64,
}

/// Publisher `p` of `k`: posts events `p, p+k, p+2k, ...` of the phase, each at its time.
fn publish_share(
    target: &PublishTarget,
    schedule: &Schedule,
    p: usize,
    k: usize,
    progress: &PublishProgress,
) -> PublisherTally {
    let (mut conns, mut body) = target.thread_start();
    let mut tally = PublisherTally::default();
    for i in (p..schedule.count).step_by(k) {
        let offset = Duration::from_secs_f64(i as f64 / schedule.rate);
        let due = schedule.start + offset;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let lag = Instant::now().saturating_duration_since(due).as_nanos() as u64;
        tally.max_lag_ns = tally.max_lag_ns.max(lag);
        tally.last_lag_ns = lag;
        tally.last_i = i as u64;
        let stamp = Stamp {
            run: target.run_id,
            seq: schedule.first_seq + i as u64,
            scheduled_ns: schedule.start_unix_ns + offset.as_nanos() as u64,
        };
        payload::encode(stamp, target.payload, &mut body);
        let node = i % conns.len();
        let answer = conns[node].post(target, &body);
        let counter = match &answer {
            Ok(a) if (200..300).contains(&a.status) => &progress.published,
            _ => &progress.failed,
        };
        counter.fetch_add(1, Relaxed);
        match answer {
            Ok(answer) if (200..300).contains(&answer.status) => tally.ok += 1,
            Ok(answer) => {
                count_error(
                    &mut tally.errors,
                    FailureKind::publish_status(answer.status),
                    1,
                );
                if tally.first_refusal.is_none() {
                    tally.first_refusal = answer.refusal;
                }
            }
            Err(kind) => count_error(&mut tally.errors, kind, 1),
        }
    }
    tally
}
