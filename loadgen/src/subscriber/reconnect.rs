//! Reconnecting as a browser's `EventSource` does (`--reconnect`): after a stream ends, wait the
//! server's `retry` (or the default) plus jitter, then ask the next node again with
//! `Last-Event-ID`. What each connection received stays in its tracking, so an event that
//! arrives on either connection counts once and a gap after the reconnect is loss.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::connect::connect;
use super::connection::{ConnState, Subscriber};
use super::event_loop::SubscriberLoop;
use super::unix_now_ns;
use crate::failure::FailureKind;
use crate::http::{BodyDecoder, BodyMode};
use crate::sse::EventStreamParser;
use crate::stats::count_error;

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

/// The loop's half of reconnecting: waiting, the timers, and opening again.
impl SubscriberLoop {
    /// `--reconnect`: connection `i`, whose stream ended or whose reconnection failed with
    /// `kind`, waits the server's `retry` (or the default) with jitter, then tries the next
    /// node. The end of a stream is a reconnect, not a failure; a failed attempt is counted.
    pub(super) fn wait_to_reconnect(&mut self, i: usize, kind: FailureKind) {
        let conn = &mut self.conns[i];
        if conn.state == ConnState::Streaming {
            let now_ns = unix_now_ns();
            conn.reconnection.since_ns = Some(now_ns);
            self.rec.stream_ended(now_ns);
        } else {
            count_error(&mut self.rec.errors, kind, 1);
        }
        conn.state = ConnState::Waiting;
        conn.head = Vec::new();
        conn.node = (conn.node + 1) % self.target.nodes.len();
        conn.reconnection.attempt += 1;
        let retry = Duration::from_millis(
            conn.reconnection
                .retry_ms
                .unwrap_or(self.target.default_retry_ms),
        );
        let global = self.plan.first_index + i;
        self.timers.push(Reverse(Due {
            due: Instant::now() + delay(retry, global, conn.reconnection.attempt),
            index: i,
            attempt: conn.reconnection.attempt,
        }));
    }

    /// Starts the reconnections that are due; `deadline` is their response deadline.
    pub(super) fn fire_timers(&mut self, now: Instant, deadline: Instant) {
        while let Some(&Reverse(due)) = self.timers.peek() {
            if due.due > now {
                break;
            }
            self.timers.pop();
            let conn = &self.conns[due.index];
            if conn.state == ConnState::Waiting && conn.reconnection.attempt == due.attempt {
                self.reopen(due.index, deadline);
            }
        }
    }

    /// Connects waiting connection `i` again, to its (next) node, with `Last-Event-ID` set to
    /// the last event id it saw, as `EventSource` does.
    fn reopen(&mut self, i: usize, deadline: Instant) {
        let src = self.target.source_for(self.plan.first_index + i);
        let conn = &mut self.conns[i];
        let node = &self.target.nodes[conn.node];
        let id = conn.parser.last_event_id().to_vec();
        conn.parser = EventStreamParser::with_last_event_id(&id);
        conn.body = BodyDecoder::new(BodyMode::Close);
        conn.reconnection.request = Some(request_with_last_event_id(&node.request, &id));
        let registered = connect(src, node.addr).and_then(|mut stream| {
            self.poll
                .registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map(|()| stream)
        });
        match registered {
            Ok(stream) => {
                conn.stream = Some(stream);
                conn.state = ConnState::Connecting { written: 0 };
                self.deadlines
                    .push_back((deadline, i, conn.reconnection.attempt));
            }
            Err(e) => self.wait_to_reconnect(i, FailureKind::from_io(&e)),
        }
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
