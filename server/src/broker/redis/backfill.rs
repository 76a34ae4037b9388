//! Backfill at start: the recent history of every live topic, from Redis, so a node started
//! after events were published replays them to clients with `Last-Event-ID`.
//!
//! The feed's newest entry fixes a position first. Every event at or below it is read from the
//! topics' streams (each is appended with the feed in one script, so they hold it), and every
//! event above it from the feed by the reader: nothing is missed or read twice. Each topic gives
//! its last `--history` events plus one: when that one more exists, the loop's log holds an event
//! outside its history window, and replay from before it is told as a gap, as for local history.
//!
//! Topics are read most recently published first, up to `--history-memory` bytes of data and
//! `--max-topics` topics. When a bound stops the backfill early, the loops vouch for nothing
//! before the position: replay from before it is told as a gap on every topic (a gap told where
//! none was is the safe error).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry::Vacant;
use std::time::Duration;

use redis::Value;

use super::{FEED_KEY, Shared, TOPICS_KEY, entries, topic_key};
use crate::broker::Published;
use crate::event::EventId;

/// Topic streams read per pipelined round trip.
const TOPICS_PER_TRIP: usize = 256;

/// What a backfill found.
pub(super) struct Backfill {
    /// Events at or below `position`, in id order.
    pub(super) events: Vec<Published>,
    /// Topics read.
    pub(super) topics: usize,
    /// The feed position the reader continues after.
    pub(super) position: EventId,
    /// Ids up to this one are older than anything backfilled: the loops cannot vouch for them.
    pub(super) known_from: EventId,
}

/// Reads the backfill (blocking; the server calls it at start, before the loops run).
pub(super) fn run(shared: &Shared) -> redis::RedisResult<Backfill> {
    let mut connection = shared.connect(Duration::from_secs(1))?;
    connection.set_read_timeout(Some(Duration::from_secs(10)))?;
    let newest: Value = redis::cmd("XREVRANGE")
        .arg(FEED_KEY)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut connection)?;
    let newest = match &newest {
        Value::Array(entries) => entries.first().and_then(|entry| match entry {
            Value::Array(parts) => parts.first().and_then(entries::entry_id),
            _ => None,
        }),
        _ => None,
    };
    let Some(position) = newest else {
        // An empty feed (a new cluster, or a Redis that lost its data): start from Redis's clock;
        // every id the script assigns from now on is above it.
        let (seconds, micros): (u64, u64) = redis::cmd("TIME").query(&mut connection)?;
        let now = seconds * 1_000_000 + micros;
        return Ok(Backfill {
            events: Vec::new(),
            topics: 0,
            position: now,
            known_from: now,
        });
    };
    let oldest_live = position.saturating_sub(shared.topic_ttl_ms.saturating_mul(1000));
    let topics: Vec<String> = redis::cmd("ZREVRANGEBYSCORE")
        .arg(TOPICS_KEY)
        .arg("+inf")
        .arg(oldest_live)
        .arg("LIMIT")
        .arg(0)
        .arg(shared.max_topics)
        .query(&mut connection)?;
    let mut by_id = BTreeMap::new();
    let mut bytes = 0u64;
    let mut topics_read = 0;
    for chunk in topics.chunks(TOPICS_PER_TRIP) {
        if bytes > shared.backfill_bytes {
            break;
        }
        let mut pipe = redis::pipe();
        for topic in chunk {
            pipe.cmd("XREVRANGE")
                .arg(topic_key(topic))
                .arg(format!("{position}-0"))
                .arg("-")
                .arg("COUNT")
                .arg(shared.history + 1);
        }
        let replies: Vec<Value> = pipe.query(&mut connection)?;
        topics_read += chunk.len();
        for reply in &replies {
            // An event of several topics is in each of their streams: it is delivered once.
            for entry in entries::range_entries(reply) {
                if let Vacant(slot) = by_id.entry(entry.id) {
                    bytes += entry.request.data().len() as u64;
                    slot.insert(entry);
                }
            }
        }
    }
    // Stopped by the byte budget, or more live topics than --max-topics: some topics were not
    // read, so nothing before the position can be vouched for.
    let truncated = topics_read < topics.len() || topics.len() >= shared.max_topics;
    let known_from = if truncated {
        position
    } else {
        by_id.keys().next().map_or(position, |&oldest| oldest - 1)
    };
    Ok(Backfill {
        events: by_id
            .into_values()
            .map(|entry| entry.into_published())
            .collect(),
        topics: topics_read,
        position,
        known_from,
    })
}
