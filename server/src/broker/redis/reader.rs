//! The feed reader: one thread per node reads the cluster-wide feed with `XREAD BLOCK` from the
//! last id it delivered and delivers each event to every loop, in id order. A lost connection
//! is retried with backoff; reading resumes after the last id delivered, so an event is never
//! delivered twice and none that Redis still holds is skipped.
//!
//! The feed keeps [`FEED_LENGTH`](super::FEED_LENGTH) events. A node cut off for longer finds it
//! trimmed past its last id when it reconnects: the events in between never reach it. That is
//! made honest, not silent: the loops are told ([`Feeds::lost_through`]) to vouch for nothing up
//! to the feed's oldest entry and to end every open stream, so clients reconnect with
//! `Last-Event-ID` and get the missed events from the topic streams (replay on demand), or are
//! told of a gap where Redis no longer holds them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;

use super::stream_info::StreamInfo;
use super::{Backoff, CONNECT_TIMEOUT, FEED_KEY, Shared, entries};
use crate::event::EventId;
use crate::log::RateLimited;

/// How long one `XREAD` blocks; the thread notices a stop within this.
const BLOCK_MS: u64 = 500;

/// Entries taken per `XREAD` at most.
const READ_COUNT: usize = 1024;

/// Reads and delivers the feed after `last` until the broker stops.
pub(super) fn run(shared: &Shared, mut last: EventId) {
    let Some(feeds) = shared.feeds.get() else {
        return;
    };
    let mut backoff = Backoff::new();
    let mut warning = RateLimited::default();
    while !shared.stopped() {
        let mut connection = match connect(shared) {
            Ok(connection) => connection,
            Err(error) => {
                shared.set_up(&shared.reader_up, false);
                warning.warn(&format!("backplane: cannot reach Redis: {error}"));
                shared.pause(backoff.next_delay());
                continue;
            }
        };
        match trimmed_past(&mut connection, last) {
            Ok(None) => {}
            Ok(Some(oldest)) => {
                warning.warn(&format!(
                    "backplane: the feed was trimmed past this node's last event ({last}) while \
                     it was cut off; ending every stream so clients replay from the topic \
                     streams (or are told of a gap)"
                ));
                if let Some(metrics) = shared.metrics.get() {
                    metrics.count_backplane_feed_gap();
                }
                feeds.lost_through(oldest.saturating_sub(1));
            }
            Err(error) => {
                shared.set_up(&shared.reader_up, false);
                warning.warn(&format!("backplane: reading the feed failed: {error}"));
                shared.pause(backoff.next_delay());
                continue;
            }
        }
        // Counted once Redis answered: a stopped Redis still accepts connections.
        let reconnect = shared.epoch.fetch_add(1, Ordering::AcqRel) > 0;
        if let Some(metrics) = shared.metrics.get()
            && reconnect
        {
            metrics.count_backplane_reconnect();
        }
        shared.set_up(&shared.reader_up, true);
        backoff.reset();
        while !shared.stopped() {
            let reply: redis::RedisResult<Value> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(FEED_KEY)
                .arg(format!("{last}-0"))
                .query(&mut connection);
            match reply {
                Ok(value) => {
                    for entry in entries::read_entries(&value) {
                        // Entries come in id order after `last`; the check keeps that a promise.
                        if entry.id <= last {
                            continue;
                        }
                        last = entry.id;
                        feeds.deliver(Arc::new(entry.into_published()));
                        shared.delivered.store(last, Ordering::Release);
                    }
                }
                Err(error) => {
                    shared.set_up(&shared.reader_up, false);
                    warning.warn(&format!("backplane: reading the feed failed: {error}"));
                    break;
                }
            }
        }
    }
}

/// Whether the feed lost entries after `last` (trimmed while this node was not reading); then
/// the id of its oldest entry (everything from it on is still there), or the last id generated
/// plus one for an emptied feed. A Redis before 7.0 does not say what it trimmed: the feed's
/// oldest entry being newer than `last` counts as a loss then (the safe error).
fn trimmed_past(
    connection: &mut redis::Connection,
    last: EventId,
) -> redis::RedisResult<Option<EventId>> {
    // No feed yet (nothing published, or a Redis that restarted empty): nothing was trimmed.
    let exists: bool = redis::cmd("EXISTS").arg(FEED_KEY).query(connection)?;
    if !exists {
        return Ok(None);
    }
    let info: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(FEED_KEY)
        .query(connection)?;
    let Some(info) = StreamInfo::parse(&info) else {
        return Ok(None);
    };
    let lost = info.removed_after(last).unwrap_or_else(|| {
        info.first
            .is_some_and(|first| first > last.saturating_add(1))
    });
    Ok(lost.then(|| info.first.unwrap_or(last.saturating_add(1))))
}

fn connect(shared: &Shared) -> redis::RedisResult<redis::Connection> {
    let connection = shared.connect(CONNECT_TIMEOUT)?;
    // A Redis that stops answering shows up within one block plus this.
    connection.set_read_timeout(Some(
        Duration::from_millis(BLOCK_MS) + Duration::from_secs(2),
    ))?;
    connection.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(connection)
}
