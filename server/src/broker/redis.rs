//! The Redis Streams backplane: several server processes (nodes) share one Redis and deliver
//! every event to every subscriber on every node, in one global id order.
//!
//! - **Publishing** (`publisher.rs`). The event loop hands the request to a
//!   bounded channel and returns at once. The publisher thread pipelines what is queued into one
//!   round trip of `EVALSHA` calls of `redis_script.lua`, which assigns the id from Redis `TIME`
//!   and appends the event to the feed and to its topics' streams atomically; the reply is
//!   completed with the id only after Redis answered. With Redis down the reply is `Unavailable`
//!   within [`MAX_PUBLISH_WAIT`] (the server answers 503).
//! - **Delivering** (`reader.rs`). One thread per node reads the feed with `XREAD BLOCK` from the
//!   last id it delivered and delivers to the loops in id order; the same node's publishes reach
//!   its own subscribers that way too, so every node sees the same order.
//! - **Backfill** (`backfill.rs`). At start, before the loops exist, the node reads the recent
//!   topics' streams up to the feed's newest entry and delivers them, so replay with
//!   `Last-Event-ID` works on a node started after the events; the loops vouch for ids from the
//!   oldest event backfilled.
//! - **Replay on demand** (`replayer.rs`). A client's `Last-Event-ID` older than a loop's logs
//!   vouch for is answered from the topic streams by a thread of its own, then live.
//! - **Trouble**. Both connections reconnect with exponential backoff and jitter; the reader
//!   resumes from the last id it delivered (nothing twice, nothing skipped that Redis still has).
//!   While either is down, `/healthz` answers 503 and `sse_backplane_up` is 0.

mod backfill;
mod entries;
mod publisher;
mod reader;
mod replayer;
mod stream_info;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::IntoConnectionInfo;

use super::{Broker, PublishReply, PublishRequest, ReplayReply, ReplayRequest};
use crate::config::Config;
use crate::event::EventId;
use crate::feed::Feeds;
use crate::metrics::Metrics;
use publisher::{Job, run_publisher};
use replayer::ReplayJob;

/// How long a publish may wait for Redis in all (queue, connect, script load, round trip)
/// before it is answered `Unavailable`.
pub const MAX_PUBLISH_WAIT: Duration = Duration::from_millis(900);

/// Time allowed to open a connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Replay requests queued for the replay thread at most; past it, "nothing older" at once.
const REPLAY_QUEUE_LENGTH: usize = 4096;

/// Publishes queued for the publisher thread at most; past it, `Unavailable` at once (the loop
/// never waits on the channel).
const QUEUE_LENGTH: usize = 16 * 1024;

/// Events the cluster-wide feed keeps (`MAXLEN ~`): what a node that was cut off from Redis can
/// still catch up on. Replay for clients comes from the per-topic streams and the loops' logs.
pub const FEED_LENGTH: usize = 100_000;

/// First and longest wait between reconnection attempts (jitter is added to each).
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The Redis keys, all with the hash tag `{sse}` so one script may touch them on Redis Cluster.
const ID_KEY: &str = "{sse}:id";
const FEED_KEY: &str = "{sse}:feed";
const TOPICS_KEY: &str = "{sse}:topics";
/// Ids above this one are all in this Redis's dataset (set by the first publish into it).
const SINCE_KEY: &str = "{sse}:since";

/// The stream key of one topic.
fn topic_key(topic: &str) -> String {
    format!("{{sse}}:topic:{topic}")
}

/// Microseconds since the Unix epoch on this host.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Why the backplane could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// `rediss://`: this build's Redis client has no TLS (see the README's dependency table).
    #[error(
        "--redis: rediss:// (TLS) is not supported; use redis:// to a Redis on this host or a \
         private network, or a TLS tunnel (stunnel, spiped) listening on loopback"
    )]
    TlsUnsupported,
    /// The URL is not a Redis URL the client understands.
    #[error("bad --redis URL: {0}")]
    BadUrl(#[source] redis::RedisError),
}

/// What the broker's threads share.
struct Shared {
    client: redis::Client,
    /// Replies the client reads while setting up a connection (`AUTH`, `SELECT`): each read may
    /// take the whole connect timeout, so [`Shared::connect`] divides its budget by them.
    setup_replies: u32,
    /// Events kept per topic stream (`--history`).
    history: usize,
    /// Bytes replayed per topic at most (`--history-bytes`, as the loops' history window).
    history_bytes: u64,
    /// Topic stream expiry (`--topic-ttl`), in milliseconds.
    topic_ttl_ms: u64,
    /// Topics backfilled at most (`--max-topics`).
    max_topics: usize,
    /// Bytes of event data backfilled at most (`--history-memory`, what the loops would keep).
    backfill_bytes: u64,
    /// The loops and counters, set once by [`Broker::attach`].
    feeds: OnceLock<Feeds>,
    metrics: OnceLock<Arc<Metrics>>,
    /// The newest id delivered to the loops (the feed position).
    delivered: AtomicU64,
    /// The newest id this node's publishers were answered with.
    acknowledged: AtomicU64,
    /// Ids up to this one are from before what the loops were given at start.
    known_from: AtomicU64,
    /// Counts the reader's successful connections; the publisher reconnects when it changes
    /// (Redis may have restarted: its socket may be dead and the script cache is empty).
    epoch: AtomicU64,
    reader_up: AtomicBool,
    publisher_up: AtomicBool,
    /// Set when the broker is dropped; the threads end.
    stop: AtomicBool,
}

impl Shared {
    /// The newest id this node knows of: no id Redis assigns may be at or below it.
    fn high_water(&self) -> EventId {
        self.delivered
            .load(Ordering::Acquire)
            .max(self.acknowledged.load(Ordering::Acquire))
    }

    fn set_up(&self, flag: &AtomicBool, up: bool) {
        flag.store(up, Ordering::Release);
        if let Some(metrics) = self.metrics.get() {
            let up =
                self.reader_up.load(Ordering::Acquire) && self.publisher_up.load(Ordering::Acquire);
            metrics.set_backplane_up(up);
        }
    }

    /// A connection opened within `budget` in all (TCP connect and set-up), or an error. The
    /// client gives each set-up read the whole timeout, hence the division.
    fn connect(&self, budget: Duration) -> redis::RedisResult<redis::Connection> {
        let per_read = budget / self.setup_replies.max(1);
        self.client
            .get_connection_with_timeout(per_read.max(Duration::from_millis(1)))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps `delay`, waking early when the broker stops.
    fn pause(&self, delay: Duration) {
        let end = Instant::now() + delay;
        while !self.stopped() {
            let now = Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}

/// Exponential backoff with jitter: each delay is between half and all of the current step, so
/// nodes that lost Redis together do not all come back in the same millisecond.
struct Backoff {
    step: Duration,
    seed: u64,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            step: BACKOFF_START,
            seed: now_micros() ^ (u64::from(std::process::id()) << 32) | 1,
        }
    }

    fn reset(&mut self) {
        self.step = BACKOFF_START;
    }

    fn next_delay(&mut self) -> Duration {
        // xorshift64: jitter needs spread, not quality.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = self.step.as_micros() as u64 / 2;
        let delay = Duration::from_micros(half + self.seed % half.max(1));
        self.step = (self.step * 2).min(BACKOFF_MAX);
        delay
    }
}

/// The Redis Streams backplane (`--redis URL`).
pub struct RedisBroker {
    jobs: SyncSender<Job>,
    /// The publisher thread's end of `jobs`, taken when the broker is attached.
    jobs_receiver: Mutex<Option<Receiver<Job>>>,
    replays: SyncSender<ReplayJob>,
    /// The replay thread's end of `replays`, taken when the broker is attached.
    replays_receiver: Mutex<Option<Receiver<ReplayJob>>>,
    shared: Arc<Shared>,
}

impl RedisBroker {
    /// A backplane at `url` (`redis://host:port/db`) keeping per-topic history and expiry as
    /// `config` says. Nothing connects until the server attaches the broker.
    pub fn new(url: &str, config: &Config) -> Result<RedisBroker, RedisSetupError> {
        if url
            .get(..9)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
        {
            return Err(RedisSetupError::TlsUnsupported);
        }
        let info = url
            .into_connection_info()
            .map_err(RedisSetupError::BadUrl)?;
        // No `CLIENT SETINFO` at connect: one read fewer that a hung Redis can hold up.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let setup_replies =
            u32::from(settings.password().is_some()) + u32::from(settings.db() != 0);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(RedisSetupError::BadUrl)?;
        let (jobs, jobs_receiver) = mpsc::sync_channel(QUEUE_LENGTH);
        let (replays, replays_receiver) = mpsc::sync_channel(REPLAY_QUEUE_LENGTH);
        Ok(RedisBroker {
            jobs,
            jobs_receiver: Mutex::new(Some(jobs_receiver)),
            replays,
            replays_receiver: Mutex::new(Some(replays_receiver)),
            shared: Arc::new(Shared {
                client,
                setup_replies,
                history: config.history.max(1),
                history_bytes: config.history_bytes,
                topic_ttl_ms: config.topic_ttl.as_millis().clamp(1, u64::MAX as u128) as u64,
                max_topics: config.max_topics,
                backfill_bytes: config.history_memory,
                feeds: OnceLock::new(),
                metrics: OnceLock::new(),
                delivered: AtomicU64::new(0),
                acknowledged: AtomicU64::new(0),
                known_from: AtomicU64::new(0),
                epoch: AtomicU64::new(0),
                reader_up: AtomicBool::new(false),
                publisher_up: AtomicBool::new(false),
                stop: AtomicBool::new(false),
            }),
        })
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        // The publisher thread ends when `jobs` is dropped; the reader within one XREAD block.
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl Broker for RedisBroker {
    fn attach(&self, feeds: Feeds, metrics: Arc<Metrics>) {
        let Some(jobs) = self
            .jobs_receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let shared = &self.shared;
        metrics.set_backplane_up(false);
        let _ = shared.metrics.set(metrics);
        // Backfill before the loops exist, so they start with the recent history and vouch
        // for ids from its start (`known_from`).
        let position = match backfill::run(shared) {
            Ok(backfill) => {
                eprintln!(
                    "sse-server: backplane: backfilled {} events of {} topics from Redis, \
                     resuming the feed after id {}",
                    backfill.events.len(),
                    backfill.topics,
                    backfill.position
                );
                for event in backfill.events {
                    feeds.deliver(Arc::new(event));
                }
                shared
                    .known_from
                    .store(backfill.known_from, Ordering::Release);
                backfill.position
            }
            Err(error) => {
                // Events published from now on are still read once Redis is reachable; what
                // came before is unknown here (replay from it is told as a gap).
                let now = now_micros();
                eprintln!(
                    "sse-server: backplane: Redis unreachable at start ({error}); \
                     no backfill, reading the feed after id {now} once it is reachable"
                );
                shared.known_from.store(now, Ordering::Release);
                now
            }
        };
        shared.delivered.store(position, Ordering::Release);
        let _ = shared.feeds.set(feeds);
        let reader_shared = shared.clone();
        let publisher_shared = shared.clone();
        let replay_shared = shared.clone();
        let replays = self
            .replays_receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // A thread that cannot start leaves the backplane down, which /healthz reports.
        let _ = std::thread::Builder::new()
            .name("redis-feed".into())
            .spawn(move || reader::run(&reader_shared, position));
        let _ = std::thread::Builder::new()
            .name("redis-publish".into())
            .spawn(move || run_publisher(&publisher_shared, jobs));
        if let Some(replays) = replays {
            // Without it every replay request is dropped, which answers "nothing older".
            let _ = std::thread::Builder::new()
                .name("redis-replay".into())
                .spawn(move || replayer::run(&replay_shared, replays));
        }
    }

    fn publish(&self, request: PublishRequest, reply: PublishReply) {
        let job = Job {
            request,
            reply,
            queued: Instant::now(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            // Full or gone: the dropped job's reply answers Unavailable.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }

    fn newest_id(&self) -> EventId {
        // Acknowledged here or delivered from the feed, whichever is newer: a subscriber that
        // connects now takes only what is published after it (as with the in-process broker),
        // even while this node's own publishes are still on their way back through the feed.
        self.shared.high_water()
    }

    fn known_from(&self) -> EventId {
        self.shared.known_from.load(Ordering::Acquire)
    }

    fn replay(&self, request: ReplayRequest, reply: ReplayReply) {
        // Full or gone: the dropped job's reply answers "nothing older".
        let _ = self.replays.try_send(ReplayJob { request, reply });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays grow, stay within [half, all] of their step, and stop growing at the maximum.
    #[test]
    fn backoff_grows_with_jitter_up_to_the_maximum() {
        let mut backoff = Backoff::new();
        let mut step = BACKOFF_START;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} for step {step:?}"
            );
            step = (step * 2).min(BACKOFF_MAX);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_START);
    }

    /// Every key shares the one hash tag (Redis Cluster runs a script only on one slot).
    #[test]
    fn keys_share_one_hash_tag() {
        for key in [ID_KEY, FEED_KEY, TOPICS_KEY, SINCE_KEY, &topic_key("a{b}c")] {
            assert!(key.starts_with("{sse}:"), "{key}");
        }
    }
}
