//! Response handling: a connection's bytes through the response head (status and content
//! type), the body framing, and the event-stream parser, each event handed to tracking.

use std::sync::atomic::Ordering::Relaxed;

use super::connection::{ConnState, Subscriber};
use super::tracking::{Receipt, Recorder, record};
use crate::failure::FailureKind;
use crate::http::{self, BodyDecoder};
use crate::reply::ServerReply;
use crate::sse::Dispatch;

/// Feeds bytes read from `conn` through head parsing, body decoding and event parsing; adds the
/// new deliveries of the phase to `delivered`.
pub(super) fn process(
    conn: &mut Subscriber,
    bytes: &[u8],
    rec: &mut Recorder,
    now_ns: u64,
    delivered: &mut u64,
) -> Result<(), FailureKind> {
    match conn.state {
        ConnState::ReadingHead => {
            conn.head.extend_from_slice(bytes);
            let (head, len) = match http::parse_head(&conn.head) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.kind()),
            };
            if head.status != 200 || !head.is_event_stream() {
                rec.refused(|| ServerReply::new(&head, &conn.head[len..]));
                return Err(if head.status != 200 {
                    FailureKind::status(head.status)
                } else {
                    FailureKind::BadContentType
                });
            }
            conn.state = ConnState::Streaming;
            conn.body = BodyDecoder::new(head.body);
            match conn.reconnection.since_ns.take() {
                Some(since_ns) => rec.reconnected(since_ns, now_ns),
                None => {
                    rec.progress.opened.fetch_add(1, Relaxed);
                }
            }
            let rest = std::mem::take(&mut conn.head);
            process_body(conn, &rest[len..], rec, now_ns, delivered)
        }
        ConnState::Streaming => process_body(conn, bytes, rec, now_ns, delivered),
        ConnState::Connecting { .. } | ConnState::Waiting | ConnState::Closed => Ok(()),
    }
}

/// Decodes body bytes and parses the events in them.
fn process_body(
    conn: &mut Subscriber,
    bytes: &[u8],
    rec: &mut Recorder,
    now_ns: u64,
    delivered: &mut u64,
) -> Result<(), FailureKind> {
    let Subscriber {
        body,
        parser,
        track,
        reconnection,
        ..
    } = conn;
    body.feed(bytes, &mut |chunk| {
        parser.feed(chunk, &mut |d| match d {
            Dispatch::Event(e) => {
                if record(track, rec, e.data, now_ns) == Receipt::Delivered {
                    *delivered += 1;
                }
            }
            Dispatch::Retry(ms) => reconnection.retry_ms = Some(ms),
        })
    })
    .map_err(|e| e.kind())?;
    if body.is_done() {
        return Err(FailureKind::ClosedByServer);
    }
    Ok(())
}
