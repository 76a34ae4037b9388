//! What a set of subscribers observed during one phase, and its exact merge across threads and
//! worker processes.
//!
//! Latencies are recorded in microseconds into an HdrHistogram with a fixed range (1 µs to
//! [`MAX_LATENCY_US`], 3 significant digits), so recording never allocates. Histograms cross the
//! worker pipe as their raw `(value, count)` pairs, which re-record into identical buckets, so
//! the merge is exact.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::failure::FailureKind;
use crate::reply::ServerReply;

/// The largest latency recorded, in µs (100 s); larger values are clamped to it.
pub const MAX_LATENCY_US: u64 = 100_000_000;

/// A new latency histogram with the crate's fixed range and precision.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_max(MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Failures counted by kind (`connect_refused`, `status_500`, `closed_by_server`, ...).
pub type ErrorCounts = BTreeMap<FailureKind, u64>;

/// Adds `n` failures of `kind`.
pub fn count_error(errors: &mut ErrorCounts, kind: FailureKind, n: u64) {
    *errors.entry(kind).or_default() += n;
}

/// The counts by the kinds' names, as the report and its JSON show them.
pub fn counts_by_name(errors: &ErrorCounts) -> BTreeMap<String, u64> {
    errors
        .iter()
        .map(|(kind, n)| (kind.as_str().to_string(), *n))
        .collect()
}

/// What the subscribers of one thread, process or run saw during one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Connections that were streaming when the phase started.
    pub connections: u64,
    /// Distinct events received by those connections.
    pub deliveries: u64,
    /// Events of the phase a connection never received (by the end of the drain).
    pub lost: u64,
    /// Connections that missed at least one event.
    #[serde(default)]
    pub connections_with_loss: u64,
    /// Events a connection received more than once.
    pub duplicated: u64,
    /// Events received after an event with a higher sequence number.
    pub out_of_order: u64,
    /// Events of an earlier phase that arrived after that phase ended (counted lost there).
    pub late: u64,
    /// Connections that closed or failed during the phase.
    pub dropped: u64,
    /// Failures by kind.
    pub errors: ErrorCounts,
    /// Publish-to-receipt latency of every delivery, µs.
    #[serde(with = "histogram_serde")]
    pub latency: Histogram<u64>,
    /// Per event of the phase: the latest receipt across subscribers, in ns after its scheduled
    /// send time (0: nobody received it).
    pub last_receipt_ns: Vec<u64>,
    /// Wall-clock time of the last delivery, ns since the Unix epoch.
    pub last_delivery_unix_ns: u64,
    /// CPU time the subscriber threads spent during the phase, ns (the receive path's cost).
    #[serde(default)]
    pub subscriber_cpu_ns: u64,
    /// The first reply that was not an event stream (for the ramp: in the first phase's report).
    #[serde(default)]
    pub first_reply: Option<ServerReply>,
    /// `--reconnect`: streams that ended and came back (since the last report, as `errors`).
    #[serde(default)]
    pub reconnects: u64,
    /// Time from a stream's end to its new 200 event-stream head, µs.
    #[serde(with = "histogram_serde", default = "new_histogram")]
    pub reconnect_us: Histogram<u64>,
    /// When the first stream ended, ns since the Unix epoch (0: none ended).
    #[serde(default)]
    pub first_stream_end_unix_ns: u64,
    /// When the last reconnection got its head, ns since the Unix epoch (0: none).
    #[serde(default)]
    pub last_reconnect_unix_ns: u64,
    /// Connections still reconnecting when the phase ended.
    #[serde(default)]
    pub reconnecting: u64,
}

impl PhaseReport {
    /// An empty report for a phase of `events` events.
    pub fn new(events: usize) -> Self {
        PhaseReport {
            connections: 0,
            deliveries: 0,
            lost: 0,
            connections_with_loss: 0,
            duplicated: 0,
            out_of_order: 0,
            late: 0,
            dropped: 0,
            errors: ErrorCounts::new(),
            latency: new_histogram(),
            last_receipt_ns: vec![0; events],
            last_delivery_unix_ns: 0,
            subscriber_cpu_ns: 0,
            first_reply: None,
            reconnects: 0,
            reconnect_us: new_histogram(),
            first_stream_end_unix_ns: 0,
            last_reconnect_unix_ns: 0,
            reconnecting: 0,
        }
    }

    /// Adds `other` into `self`. Exact: counts add, histograms add bucket by bucket, per-event
    /// last receipts take the maximum.
    pub fn merge(&mut self, other: &PhaseReport) {
        self.connections += other.connections;
        self.deliveries += other.deliveries;
        self.lost += other.lost;
        self.connections_with_loss += other.connections_with_loss;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.late += other.late;
        self.dropped += other.dropped;
        for (k, v) in &other.errors {
            count_error(&mut self.errors, *k, *v);
        }
        self.latency
            .add(&other.latency)
            .expect("histograms share one configuration");
        if self.last_receipt_ns.len() < other.last_receipt_ns.len() {
            self.last_receipt_ns.resize(other.last_receipt_ns.len(), 0);
        }
        for (a, b) in self.last_receipt_ns.iter_mut().zip(&other.last_receipt_ns) {
            *a = (*a).max(*b);
        }
        self.last_delivery_unix_ns = self.last_delivery_unix_ns.max(other.last_delivery_unix_ns);
        self.subscriber_cpu_ns += other.subscriber_cpu_ns;
        if self.first_reply.is_none() {
            self.first_reply.clone_from(&other.first_reply);
        }
        self.reconnects += other.reconnects;
        self.reconnect_us
            .add(&other.reconnect_us)
            .expect("histograms share one configuration");
        self.first_stream_end_unix_ns = match (
            self.first_stream_end_unix_ns,
            other.first_stream_end_unix_ns,
        ) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.last_reconnect_unix_ns = self
            .last_reconnect_unix_ns
            .max(other.last_reconnect_unix_ns);
        self.reconnecting += other.reconnecting;
    }

    /// A histogram (ms, µs precision) of the per-event last-subscriber times, over the events
    /// that at least one subscriber received.
    pub fn last_subscriber_histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for &ns in self.last_receipt_ns.iter().filter(|&&ns| ns > 0) {
            h.saturating_record((ns / 1000).max(1));
        }
        h
    }
}

/// Serializes a histogram as its recorded `(value, count)` pairs, and back.
mod histogram_serde {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(u64, u64)> = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
        let pairs = Vec::<(u64, u64)>::deserialize(d)?;
        let mut h = new_histogram();
        for (v, c) in pairs {
            h.record_n(v.min(MAX_LATENCY_US), c)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(h)
    }
}

/// Writes `h` as a percentile distribution in HdrHistogram's classic text form (`Value
/// Percentile TotalCount 1/(1-Percentile)`, values in ms), as wrk2 and `HistogramLogProcessor`
/// print it, so existing plotters of `.hgrm` files read it.
pub fn write_percentile_distribution(
    h: &Histogram<u64>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let ms = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            writeln!(
                out,
                "{ms:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(out, "{ms:>12.3} {q:>14.12} {total:>10}")?;
        }
    }
    writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    )?;
    writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    )?;
    writeln!(
        out,
        "#[Values in milliseconds; measured from each event's scheduled send time]"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_exact_through_serialization() {
        let mut a = PhaseReport::new(3);
        let mut b = PhaseReport::new(3);
        let mut whole = new_histogram();
        for (i, v) in [1u64, 17, 999, 1234, 56_789, 1_000_001, 99_999_999]
            .iter()
            .enumerate()
        {
            let target = if i % 2 == 0 { &mut a } else { &mut b };
            target.latency.record(*v).unwrap();
            whole.record(*v).unwrap();
        }
        a.deliveries = 4;
        b.deliveries = 3;
        a.last_receipt_ns = vec![5, 0, 9];
        b.last_receipt_ns = vec![7, 1, 2];
        count_error(&mut a.errors, FailureKind::status(500), 2);
        count_error(&mut b.errors, FailureKind::status(500), 1);
        let b2: PhaseReport = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        a.merge(&b2);
        assert_eq!(a.deliveries, 7);
        assert_eq!(a.latency, whole);
        assert_eq!(a.last_receipt_ns, vec![7, 1, 9]);
        assert_eq!(counts_by_name(&a.errors)["status_500"], 3);
        let mut text = Vec::new();
        write_percentile_distribution(&a.latency, &mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("Total count"));
    }
}
