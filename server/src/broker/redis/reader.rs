//! The feed reader: one thread per node reads the cluster-wide feed with `XREAD BLOCK` from the
//! last id it delivered and delivers each event to every loop, in id order. A lost connection
//! is retried with backoff; reading resumes after the last id delivered, so an event is never
//! delivered twice and none that Redis still holds is skipped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;

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

fn connect(shared: &Shared) -> redis::RedisResult<redis::Connection> {
    let connection = shared.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    // A Redis that stops answering shows up within one block plus this.
    connection.set_read_timeout(Some(
        Duration::from_millis(BLOCK_MS) + Duration::from_secs(2),
    ))?;
    connection.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(connection)
}
