//! The publisher thread: takes the loops' publishes from a bounded channel, pipelines what is
//! queued into one round trip of `EVALSHA` calls of `redis_script.lua` (which assigns the id and
//! appends the event atomically), and completes each reply with its id once Redis answered. It
//! reconnects with backoff (and whenever the reader reconnected: Redis may have restarted, its
//! script cache empty); a publish is answered `Unavailable` rather than late.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redis::Value;

use super::{
    Backoff, CONNECT_TIMEOUT, FEED_KEY, FEED_LENGTH, ID_KEY, MAX_PUBLISH_WAIT, SINCE_KEY, Shared,
    TOPICS_KEY, entries, topic_key,
};
use crate::broker::{PublishReply, PublishRequest};
use crate::event::EventId;
use crate::log::RateLimited;

/// The Lua script run once per publish.
const SCRIPT: &str = include_str!("../redis_script.lua");

/// Publishes sent in one pipelined round trip at most.
const MAX_BATCH: usize = 256;

/// Time kept back for the publish round trip when connecting with publishes waiting.
const MIN_SEND_TIME: Duration = Duration::from_millis(100);

/// A connection attempt needs at least this much time to be worth trying.
const MIN_CONNECT_BUDGET: Duration = Duration::from_millis(20);

/// One publish waiting for the publisher thread.
pub(super) struct Job {
    pub(super) request: PublishRequest,
    pub(super) reply: PublishReply,
    /// When the loop handed it over: it is answered within [`MAX_PUBLISH_WAIT`] of this.
    pub(super) queued: Instant,
}

/// The publisher's connection: the socket, the script's digest, and the reader epoch it was
/// opened in.
struct PublishLink {
    connection: redis::Connection,
    digest: String,
    epoch: u64,
}

/// Connects and loads the script within `budget` in all (connect, set-up, `SCRIPT LOAD`): a
/// Redis that accepts connections but does not answer (stopped, overloaded) must not hold the
/// queued publishes past their wait.
fn connect_publisher(shared: &Shared, budget: Duration) -> redis::RedisResult<PublishLink> {
    let started = Instant::now();
    let epoch = shared.epoch.load(Ordering::Acquire);
    let mut connection = shared.connect(budget)?;
    let left = budget.saturating_sub(started.elapsed());
    if left.is_zero() {
        return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into());
    }
    connection.set_read_timeout(Some(left))?;
    connection.set_write_timeout(Some(left))?;
    let digest: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(SCRIPT)
        .query(&mut connection)?;
    Ok(PublishLink {
        connection,
        digest,
        epoch,
    })
}

/// The publisher's connection state: the link when connected, and when to try again if not.
struct Publisher {
    link: Option<PublishLink>,
    backoff: Backoff,
    next_attempt: Instant,
    warning: RateLimited,
}

impl Publisher {
    /// Connects, taking at most `budget`, unless connected, waiting out a backoff, or the
    /// budget is too short to try; drops a link opened before the reader's last reconnection
    /// first.
    fn ensure_link(&mut self, shared: &Shared, budget: Duration) {
        let epoch = shared.epoch.load(Ordering::Acquire);
        if self.link.as_ref().is_some_and(|link| link.epoch != epoch) {
            self.link = None;
            self.next_attempt = Instant::now();
        }
        if self.link.is_some() || Instant::now() < self.next_attempt || budget < MIN_CONNECT_BUDGET
        {
            return;
        }
        match connect_publisher(shared, budget) {
            Ok(connected) => {
                self.link = Some(connected);
                self.backoff.reset();
                shared.set_up(&shared.publisher_up, true);
            }
            Err(error) => self.lost(shared, &format!("cannot connect to Redis: {error}")),
        }
    }

    fn lost(&mut self, shared: &Shared, why: &str) {
        self.link = None;
        shared.set_up(&shared.publisher_up, false);
        self.next_attempt = Instant::now() + self.backoff.next_delay();
        self.warning.warn(&format!("backplane: {why}"));
    }
}

/// The publisher thread: connects (and reconnects with backoff), then sends what is queued in
/// pipelined batches and answers each publish. Ends when the broker is dropped.
pub(super) fn run_publisher(shared: &Shared, jobs: Receiver<Job>) {
    let mut publisher = Publisher {
        link: None,
        backoff: Backoff::new(),
        next_attempt: Instant::now(),
        warning: RateLimited::default(),
    };
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Reconnecting also while idle keeps `/healthz` true to what the next publish meets;
        // a publish queued meanwhile waits for it at most `CONNECT_TIMEOUT`.
        publisher.ensure_link(shared, CONNECT_TIMEOUT);
        match jobs.recv_timeout(Duration::from_millis(100)) {
            Ok(job) => batch.push(job),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A link from before the reader's last reconnection is dropped here (Redis may have
        // restarted); connecting again takes only what the oldest publish may still wait, less
        // a round trip's share: a publish is answered within MAX_PUBLISH_WAIT, never after.
        let budget = time_left(&mut batch).saturating_sub(MIN_SEND_TIME);
        publisher.ensure_link(shared, budget);
        let Some(link) = publisher.link.as_mut() else {
            // Down: every dropped reply answers Unavailable at once.
            batch.clear();
            continue;
        };
        // A publish that already waited too long is refused rather than answered late.
        let left = time_left(&mut batch);
        if batch.is_empty() {
            continue;
        }
        // Wait for Redis only as long as the oldest publish of the batch may still wait.
        let left = Some(left.max(Duration::from_millis(1)));
        let sent = link
            .connection
            .set_read_timeout(left)
            .and_then(|()| link.connection.set_write_timeout(left))
            .and_then(|()| send_batch(shared, link, &batch));
        match sent {
            Ok(ids) => {
                let metrics = shared.metrics.get();
                for (job, id) in batch.drain(..).zip(ids) {
                    if let Some(id) = id {
                        shared.acknowledged.fetch_max(id, Ordering::AcqRel);
                        if let Some(metrics) = metrics {
                            metrics.events_published.fetch_add(1, Ordering::Relaxed);
                        }
                        job.reply.complete(Ok(id));
                    }
                }
                batch.clear();
            }
            Err(error) => {
                // The publishes of this batch may or may not be in Redis: they are answered
                // Unavailable, and delivered if Redis has them (a 503 is not a promise of absence).
                batch.clear();
                publisher.lost(shared, &format!("publishing to Redis failed: {error}"));
            }
        }
    }
}

/// Drops (answers Unavailable) the publishes that waited [`MAX_PUBLISH_WAIT`] already; returns
/// how long the oldest of the rest may still wait (zero when none is left).
fn time_left(batch: &mut Vec<Job>) -> Duration {
    let now = Instant::now();
    batch.retain(|job| now.duration_since(job.queued) < MAX_PUBLISH_WAIT);
    batch
        .iter()
        .map(|job| MAX_PUBLISH_WAIT.saturating_sub(now.duration_since(job.queued)))
        .min()
        .unwrap_or_default()
}

/// Runs one pipelined round trip of the publish script; one id per job (`None` where the reply
/// was not an id: that job is answered Unavailable).
fn send_batch(
    shared: &Shared,
    link: &mut PublishLink,
    batch: &[Job],
) -> redis::RedisResult<Vec<Option<EventId>>> {
    let high_water = shared.high_water();
    let mut pipe = redis::pipe();
    for job in batch {
        let request = &job.request;
        let topics = request.topics();
        pipe.cmd("EVALSHA")
            .arg(&link.digest)
            .arg(4 + topics.len())
            .arg(ID_KEY)
            .arg(FEED_KEY)
            .arg(TOPICS_KEY)
            .arg(SINCE_KEY);
        for topic in topics {
            pipe.arg(topic_key(topic));
        }
        pipe.arg(high_water)
            .arg(shared.history)
            .arg(FEED_LENGTH)
            .arg(shared.topic_ttl_ms)
            .arg(topics.join("\n"))
            .arg(request.event_type().unwrap_or(""))
            .arg(request.data());
    }
    let replies: Vec<Value> = pipe.query(&mut link.connection)?;
    Ok(replies.iter().map(entries::id_reply).collect())
}
