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

use super::entries::{self, integer, time_micros};
use super::stream_info::StreamInfo;
use super::{Backoff, CONNECT_TIMEOUT, ID_KEY, SINCE_KEY, Shared, topic_key};
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
    let connection = shared.connect(CONNECT_TIMEOUT)?;
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
        other => {
            let info = StreamInfo::parse(other).ok_or_else(|| unexpected("XINFO STREAM"))?;
            let restarted = info
                .first
                .is_some_and(|first| after.saturating_add(ttl_us) < first);
            in_dataset && info.removed_after(after) == Some(false) && !restarted
        }
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

fn unexpected(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        what.to_owned(),
    ))
}
