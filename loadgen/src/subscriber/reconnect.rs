//! Reconnecting as a browser's `EventSource` does (`--reconnect`): after a stream ends, wait the
//! server's `retry` (or the default) plus jitter, then ask the next node again with
//! `Last-Event-ID`. What each connection received stays in its tracking, so an event that
//! arrives on either connection counts once and a gap after the reconnect is loss.

use std::time::{Duration, Instant};

use super::connection::Subscriber;
use crate::failure::FailureKind;

/// Whether a connection that failed with `kind` tries again. As `EventSource` does, a network
/// error or the end of the stream retries; an answer that is not a 200 event stream gives up
/// ("fail the connection" in the WHATWG spec).
pub(super) fn retries(kind: FailureKind) -> bool {
    !matches!(kind, FailureKind::Status(_) | FailureKind::BadContentType)
}

/// How long connection `index` waits before attempt `attempt`: `retry` plus up to half of it
/// again, spread by a hash of both so reconnects do not arrive in one burst.
pub(super) fn delay(retry: Duration, index: usize, attempt: u32) -> Duration {
    let mut x = (index as u64) << 32 | u64::from(attempt);
    // splitmix64: a cheap, well-spread hash; no state to keep per thread.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let fraction = (x >> 11) as f64 / (1u64 << 53) as f64;
    retry + retry.mul_f64(fraction / 2.0)
}

/// `request` (a complete GET without body) with `Last-Event-ID: id` added, when `id` is not
/// empty.
pub(super) fn request_with_last_event_id(request: &str, id: &[u8]) -> String {
    if id.is_empty() {
        return request.to_string();
    }
    let head = request.strip_suffix("\r\n").unwrap_or(request);
    format!(
        "{head}Last-Event-ID: {}\r\n\r\n",
        String::from_utf8_lossy(id)
    )
}

/// A reconnection timer: connection `index` tries attempt `attempt` at `due`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Due {
    /// When.
    pub(super) due: Instant,
    /// Which connection.
    pub(super) index: usize,
    /// Its attempt counter then; a timer for an older attempt is stale.
    pub(super) attempt: u32,
}

/// Where a reconnecting connection is.
#[derive(Debug, Clone, Default)]
pub(super) struct Reconnection {
    /// When its stream ended, ns since the Unix epoch; `None` while it streams.
    pub(super) since_ns: Option<u64>,
    /// The server's `retry` value, ms, when one was received.
    pub(super) retry_ms: Option<u64>,
    /// The request sent on the next attempt (with `Last-Event-ID`).
    pub(super) request: Option<String>,
    /// Attempts so far; deadlines and timers carry it, so stale ones are ignored.
    pub(super) attempt: u32,
}

impl Subscriber {
    /// Whether the connection is between streams, waiting or reconnecting.
    pub(super) fn is_reconnecting(&self) -> bool {
        self.reconnection.since_ns.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Last-Event-ID` goes before the blank line; none is sent before any id.
    #[test]
    fn last_event_id_goes_into_the_head() {
        let req = "GET /events HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(request_with_last_event_id(req, b""), req);
        assert_eq!(
            request_with_last_event_id(req, b"42"),
            "GET /events HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 42\r\n\r\n"
        );
    }

    /// The delay is `retry` to 1.5 x `retry`, and differs between connections.
    #[test]
    fn delay_has_bounded_jitter() {
        let retry = Duration::from_millis(100);
        let delays: Vec<Duration> = (0..100).map(|i| delay(retry, i, 1)).collect();
        assert!(delays.iter().all(|d| *d >= retry && *d < retry * 3 / 2));
        assert!(delays.iter().any(|d| *d != delays[0]));
    }

    /// Network errors and the end of a stream retry; refusals do not.
    #[test]
    fn refusals_give_up() {
        assert!(retries(FailureKind::ClosedByServer));
        assert!(retries(FailureKind::ConnectRefused));
        assert!(!retries(FailureKind::BadContentType));
        assert!(!retries(FailureKind::status(503)));
    }
}
