//! Replay from Redis on demand: a client's `Last-Event-ID` is older than this node's logs vouch
//! for (a node started late, history evicted for `--history-memory`, a topic forgotten after
//! `--topic-ttl`), so the loop asks the broker, and this thread reads the topics' streams.
//!
//! One request is one pipelined round trip: `TIME`, the last id, the dataset's start (`since`,
//! set by the publish script: every event above it is in this Redis's dataset), and per topic
//! `XINFO STREAM` (what was trimmed) and `XREVRANGE` of the newest `--history` + 1 entries after
//! the id. Redis *vouches* for a topic after the id when nothing after it can be missing:
//! - the id is not older than the dataset (`since`; a Redis that restarted empty vouches for
//!   nothing from before);
//! - nothing after it was trimmed or deleted (`entries-added` against `length` and the first
//!   entry; `max-deleted-entry-id`);
//! - and no earlier incarnation of the stream can have held events after it: a topic stream
//!   expires only after `--topic-ttl` without a publish, so a missing stream vouches for ids
//!   within the TTL of now, and a stream whose first entry is more than the TTL after the id
//!   may have expired and started again (a gap told where none was is the safe error).
//!
//! The answer is complete when every topic is vouched for and no window (`--history`,
//! `--history-bytes` per topic, as for the loops' logs) cut it short. A failed round trip, or a
//! Redis that cannot be reached, answers "nothing older": the loop's own verdict (a gap) stands.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redis::Value;

use super::{Backoff, CONNECT_TIMEOUT, ID_KEY, SINCE_KEY, Shared, entries, topic_key};
use crate::broker::{OlderEvents, ReplayReply, ReplayRequest};
use crate::event::{EncodedEvent, EventId};
use crate::log::RateLimited;

/// How long one replay round trip may take before the answer is "nothing older".
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// One replay request waiting for the thread.
pub(super) struct ReplayJob {
    pub(super) request: ReplayRequest,
    pub(super) reply: ReplayReply,
}

/// The replay thread: answers requests in order until the broker is dropped. While Redis
/// cannot be reached, requests are answered "nothing older" at once (the loop tells a gap).
pub(super) fn run(shared: &Shared, jobs: Receiver<ReplayJob>) {
    let mut connection: Option<redis::Connection> = None;
    let mut backoff = Backoff::new();
    let mut next_attempt = Instant::now();
    let mut warning = RateLimited::default();
    loop {
        let job = match jobs.recv_timeout(Duration::from_millis(200)) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if shared.stopped() {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if connection.is_none() && Instant::now() >= next_attempt {
            match connect(shared) {
                Ok(connected) => {
                    connection = Some(connected);
                    backoff.reset();
                }
                Err(error) => {
                    next_attempt = Instant::now() + backoff.next_delay();
                    warning.warn(&format!("backplane: replay cannot reach Redis: {error}"));
                }
            }
        }
        let Some(link) = connection.as_mut() else {
            // Dropped: answers "nothing older".
            continue;
        };
        match fetch(shared, link, &job.request) {
            Ok(older) => job.reply.complete(older),
            Err(error) => {
                connection = None;
                next_attempt = Instant::now() + backoff.next_delay();
                warning.warn(&format!("backplane: replay from Redis failed: {error}"));
            }
        }
    }
}

fn connect(shared: &Shared) -> redis::RedisResult<redis::Connection> {
    let connection = shared.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    connection.set_read_timeout(Some(READ_TIMEOUT))?;
    connection.set_write_timeout(Some(READ_TIMEOUT))?;
    Ok(connection)
}

/// What Redis says about one topic after the id.
struct TopicWindow {
    /// The newest entries after the id, oldest first, within the window.
    entries: Vec<entries::Entry>,
    /// Every event of the topic after the id is in `entries`.
    complete: bool,
}

/// Reads the topics' streams after `request.after` in one round trip.
fn fetch(
    shared: &Shared,
    connection: &mut redis::Connection,
    request: &ReplayRequest,
) -> redis::RedisResult<OlderEvents> {
    let after = request.after;
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    pipe.cmd("TIME")
        .cmd("GET")
        .arg(ID_KEY)
        .cmd("GET")
        .arg(SINCE_KEY);
    for topic in request.topics.iter() {
        let key = topic_key(topic);
        pipe.cmd("XINFO").arg("STREAM").arg(&key);
        pipe.cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            // Entry ids are `ID-0`: `ID-1` is the first id after the client's.
            .arg(format!("{after}-1"))
            .arg("COUNT")
            .arg(shared.history + 1);
    }
    let replies: Vec<Value> = pipe.query(connection)?;
    let [time, last_id, since, streams @ ..] = replies.as_slice() else {
        return Err(unexpected("a short pipeline reply"));
    };
    let now = time_micros(time)
        .ok_or_else(|| unexpected("TIME"))?
        .max(integer(last_id).unwrap_or(0));
    let since = integer(since);
    let ttl_us = shared.topic_ttl_ms.saturating_mul(1000);
    let mut by_id = BTreeMap::new();
    let mut complete = true;
    for pair in streams.chunks_exact(2) {
        let window = topic_window(shared, after, since, now, ttl_us, &pair[0], &pair[1])?;
        complete &= window.complete;
        for entry in window.entries {
            // An event of several topics is in each of their streams: sent once.
            by_id.entry(entry.id).or_insert(entry);
        }
    }
    Ok(OlderEvents {
        events: by_id
            .into_values()
            .map(|entry| entry.into_published().event)
            .collect(),
        complete,
    })
}

/// One topic's window and verdict from its `XINFO STREAM` and `XREVRANGE` replies.
fn topic_window(
    shared: &Shared,
    after: EventId,
    since: Option<EventId>,
    now: EventId,
    ttl_us: u64,
    info: &Value,
    range: &Value,
) -> redis::RedisResult<TopicWindow> {
    let in_dataset = since.is_some_and(|since| after >= since);
    let vouched = match info {
        // No such key: never published in this dataset, or expired (no publish within the TTL).
        Value::ServerError(_) => in_dataset && after.saturating_add(ttl_us) >= now,
        Value::Array(_) | Value::Map(_) => {
            let fields = fields_of(info);
            let first = field(&fields, "first-entry").and_then(entry_head_id);
            let removed = removed_after(&fields, first, after);
            let restarted = first.is_some_and(|first| after.saturating_add(ttl_us) < first);
            in_dataset && removed == Some(false) && !restarted
        }
        _ => return Err(unexpected("XINFO STREAM")),
    };
    if let Value::ServerError(_) = range {
        // The key exists but is not a stream (not ours): nothing to send, nothing vouched for.
        return Ok(TopicWindow {
            entries: Vec::new(),
            complete: false,
        });
    }
    // Newest first; at most `history` are sent, and `history_bytes` of wire bytes.
    let newest_first = entries::range_entries(range);
    let mut window = Vec::with_capacity(newest_first.len().min(shared.history));
    let mut bytes = 0u64;
    let mut cut = false;
    for entry in newest_first {
        let len = EncodedEvent::encode(entry.id, entry.request.event_type(), entry.request.data())
            .len() as u64;
        if window.len() == shared.history || bytes + len > shared.history_bytes {
            cut = true;
            break;
        }
        bytes += len;
        window.push(entry);
    }
    window.reverse();
    Ok(TopicWindow {
        entries: window,
        complete: vouched && !cut,
    })
}

/// Whether entries after `after` may have been removed from a stream, from its `XINFO STREAM`
/// fields; `None` when a Redis before 7.0 does not say (nothing can be vouched for then).
/// Trimming (`MAXLEN`) removes the oldest entries, so all it removed is below the first entry
/// left (or, in an empty stream, up to the last id generated); `XDEL` is told apart by
/// `max-deleted-entry-id`.
fn removed_after(
    fields: &[(&[u8], &Value)],
    first: Option<EventId>,
    after: EventId,
) -> Option<bool> {
    let added = integer(field(fields, "entries-added")?)?;
    let length = integer(field(fields, "length")?)?;
    let deleted = entries::entry_id(field(fields, "max-deleted-entry-id")?)?;
    let last = entries::entry_id(field(fields, "last-generated-id")?)?;
    let below = first.unwrap_or(last.saturating_add(1));
    let trimmed = added > length && after.saturating_add(1) < below;
    Some(trimmed || deleted > after)
}

/// The key-value pairs of an `XINFO STREAM` reply (a flat array in RESP2, a map in RESP3).
fn fields_of(info: &Value) -> Vec<(&[u8], &Value)> {
    match info {
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|pair| Some((bytes(&pair[0])?, &pair[1])))
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(key, value)| Some((bytes(key)?, value)))
            .collect(),
        _ => Vec::new(),
    }
}

fn field<'v>(fields: &[(&[u8], &'v Value)], name: &str) -> Option<&'v Value> {
    fields
        .iter()
        .find(|(key, _)| *key == name.as_bytes())
        .map(|(_, value)| *value)
}

/// The id of an entry `[ID, fields]` (`first-entry`); `None` for nil (an empty stream).
fn entry_head_id(entry: &Value) -> Option<EventId> {
    match entry {
        Value::Array(parts) => parts.first().and_then(entries::entry_id),
        _ => None,
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// An integer reply, or a decimal bulk string (`GET`); `None` for nil.
fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

/// `TIME`'s `[seconds, microseconds]` in microseconds.
fn time_micros(value: &Value) -> Option<u64> {
    match value {
        Value::Array(parts) => match parts.as_slice() {
            [seconds, micros] => Some(integer(seconds)? * 1_000_000 + integer(micros)?),
            _ => None,
        },
        _ => None,
    }
}

fn unexpected(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        what.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    /// `XINFO STREAM` fields as Redis 7 gives them (RESP2: a flat array).
    fn info(length: i64, added: i64, deleted: &str, last: &str, first: Option<&str>) -> Value {
        let first = first.map_or(Value::Nil, |id| {
            Value::Array(vec![bulk(id), Value::Array(vec![bulk("d"), bulk("x")])])
        });
        Value::Array(vec![
            bulk("length"),
            Value::Int(length),
            bulk("last-generated-id"),
            bulk(last),
            bulk("max-deleted-entry-id"),
            bulk(deleted),
            bulk("entries-added"),
            Value::Int(added),
            bulk("first-entry"),
            first,
        ])
    }

    /// Whether entries after an id may be gone, read from `XINFO STREAM`: trimming removes
    /// entries below the first one left, `XDEL` shows in `max-deleted-entry-id`, and a Redis
    /// that says neither vouches for nothing.
    #[test]
    fn tells_whether_entries_after_an_id_were_removed() {
        let cases: &[(Value, EventId, Option<bool>)] = &[
            // Nothing ever removed.
            (info(8, 8, "0-0", "8-0", Some("1-0")), 0, Some(false)),
            // 1..3 trimmed, 4..8 left: ids from 3 on lost nothing after them.
            (info(5, 8, "0-0", "8-0", Some("4-0")), 3, Some(false)),
            (info(5, 8, "0-0", "8-0", Some("4-0")), 6, Some(false)),
            (info(5, 8, "0-0", "8-0", Some("4-0")), 2, Some(true)),
            // Everything trimmed: only ids from the last generated one lost nothing.
            (info(0, 8, "0-0", "8-0", None), 8, Some(false)),
            (info(0, 8, "0-0", "8-0", None), 7, Some(true)),
            // An entry deleted after the id.
            (info(7, 8, "6-0", "8-0", Some("1-0")), 5, Some(true)),
            (info(7, 8, "6-0", "8-0", Some("1-0")), 6, Some(false)),
            // A Redis before 7.0: no entries-added, no max-deleted-entry-id.
            (Value::Array(vec![bulk("length"), Value::Int(3)]), 0, None),
        ];
        for (value, after, expected) in cases {
            let fields = fields_of(value);
            let first = field(&fields, "first-entry").and_then(entry_head_id);
            assert_eq!(
                removed_after(&fields, first, *after),
                *expected,
                "after {after}: {value:?}"
            );
        }
    }

    /// `TIME` and `GET` replies read as numbers.
    #[test]
    fn reads_time_and_integers() {
        let time = Value::Array(vec![bulk("1700000000"), bulk("123456")]);
        assert_eq!(time_micros(&time), Some(1_700_000_000_123_456));
        assert_eq!(integer(&bulk("42")), Some(42));
        assert_eq!(integer(&Value::Int(7)), Some(7));
        assert_eq!(integer(&Value::Nil), None);
    }
}
