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

fn connect_publisher(shared: &Shared) -> redis::RedisResult<PublishLink> {
    let epoch = shared.epoch.load(Ordering::Acquire);
    let mut connection = shared.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    // A Redis that accepts connections but does not answer (stopped, overloaded) must not
    // hold the queued publishes past their wait.
    connection.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    connection.set_write_timeout(Some(MAX_PUBLISH_WAIT))?;
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
    /// Connects unless connected or waiting out a backoff; drops a link opened before the
    /// reader's last reconnection first.
    fn ensure_link(&mut self, shared: &Shared) {
        let epoch = shared.epoch.load(Ordering::Acquire);
        if self.link.as_ref().is_some_and(|link| link.epoch != epoch) {
            self.link = None;
            self.next_attempt = Instant::now();
        }
        if self.link.is_some() || Instant::now() < self.next_attempt {
            return;
        }
        match connect_publisher(shared) {
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
        // Reconnecting also while idle keeps `/healthz` true to what the next publish meets.
        publisher.ensure_link(shared);
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
        publisher.ensure_link(shared);
        let Some(link) = publisher.link.as_mut() else {
            // Down: every dropped reply answers Unavailable at once.
            batch.clear();
            continue;
        };
        // A publish that already waited too long is refused rather than answered late.
        let now = Instant::now();
        batch.retain(|job| now.duration_since(job.queued) < MAX_PUBLISH_WAIT);
        let Some(oldest) = batch.iter().map(|job| job.queued).min() else {
            continue;
        };
        // Wait for Redis only as long as the oldest publish of the batch may still wait.
        let left = MAX_PUBLISH_WAIT.saturating_sub(oldest.elapsed());
        let sent = link
            .connection
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
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
