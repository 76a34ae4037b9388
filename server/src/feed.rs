//! The delivery interface: how any broker pushes events (and publish and replay answers) into
//! the loops.
//!
//! Each event loop owns one [`LoopFeed`]: a queue guarded by a mutex, and the `mio` waker of the
//! loop's poll. A broker delivers an event to every loop with [`Feeds::deliver`], in increasing
//! id order. A loop takes everything queued once per iteration, so a push from the loop's own
//! thread (the in-process broker answering that loop's publisher) needs no wake-up: the loop
//! takes it before it polls again. A push from another thread wakes the loop only when its queue
//! was empty; a loop that already has a wake-up pending takes every queued item at once.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::broker::{OlderEvents, PublishError, Published};
use crate::event::EventId;
use crate::fanout::Topics;

thread_local! {
    /// The feed of the event loop running on this thread (its address), if any.
    static CURRENT_FEED: Cell<usize> = const { Cell::new(0) };
}

/// Which connection of a loop waits for a publish answer: its slab key and a number the loop
/// gave that request, so an answer never reaches a newer connection that reused the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The connection's key in the loop.
    pub key: usize,
    /// The loop's number for this publish.
    pub serial: u64,
}

/// A broker's answer to one publish of a loop's connection.
#[derive(Debug)]
pub struct Completion {
    /// Who asked.
    pub ticket: Ticket,
    /// The assigned id, or why the publish was refused.
    pub result: Result<EventId, PublishError>,
}

/// A broker's answer to one replay request of a loop's connection.
#[derive(Debug)]
pub struct ReplayAnswer {
    /// Who asked.
    pub ticket: Ticket,
    /// What the broker holds beyond the loop's logs.
    pub older: OlderEvents,
}

/// What a broker has queued for one loop.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Events, in id order.
    pub events: Vec<Arc<Published>>,
    /// Publish answers.
    pub completions: Vec<Completion>,
    /// Replay answers (taken after the events queued before them).
    pub replays: Vec<ReplayAnswer>,
    /// Events up to this id may never reach the loop (the broker lost them: a backplane's feed
    /// trimmed while the node was cut off); 0 for none. Taken before the events queued with it.
    pub lost_through: EventId,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.completions.is_empty()
            && self.replays.is_empty()
            && self.lost_through == 0
    }
}

/// Figures one loop publishes for the others and for `/metrics`.
#[derive(Debug, Default)]
pub struct LoopStats {
    /// How long the loop's oldest event not yet through its fan-out pass has waited (µs).
    backlog_us: AtomicU64,
    /// Bytes of events the loop retains for replay and slow subscribers.
    retained_bytes: AtomicU64,
    /// Topics the loop knows.
    topics: AtomicU64,
    /// Events the loop dropped to keep within `--history-memory`.
    evicted: AtomicU64,
    /// Topics the loop forgot after `--topic-ttl`.
    expired: AtomicU64,
    /// Client sockets the loop holds (lingering ones included): how evenly the kernel spreads
    /// connections over the loops' listeners.
    connections: AtomicU64,
}

impl LoopStats {
    /// Records the loop's backlog.
    pub fn set_backlog(&self, backlog: Duration) {
        let micros = backlog.as_micros().min(u64::MAX as u128) as u64;
        self.backlog_us.store(micros, Ordering::Relaxed);
    }

    /// The loop's backlog.
    pub fn backlog(&self) -> Duration {
        Duration::from_micros(self.backlog_us.load(Ordering::Relaxed))
    }

    /// Records how many client sockets the loop holds.
    pub fn set_connections(&self, connections: usize) {
        self.connections
            .store(connections as u64, Ordering::Relaxed);
    }

    /// Records what the loop's topic logs hold.
    pub fn report_topics(&self, topics: &Topics) {
        self.retained_bytes
            .store(topics.retained_bytes(), Ordering::Relaxed);
        self.topics.store(topics.len() as u64, Ordering::Relaxed);
        let (evicted, expired) = topics.evicted_and_expired();
        self.evicted.store(evicted, Ordering::Relaxed);
        self.expired.store(expired, Ordering::Relaxed);
    }
}

/// One event loop's queue of events and publish answers, the waker of its poll, and the
/// figures it shares.
pub struct LoopFeed {
    queue: Mutex<Inbox>,
    waker: mio::Waker,
    /// What the loop reports about itself.
    pub stats: LoopStats,
}

impl LoopFeed {
    /// A feed whose loop is woken through `waker`.
    pub fn new(waker: mio::Waker) -> LoopFeed {
        LoopFeed {
            queue: Mutex::new(Inbox::default()),
            waker,
            stats: LoopStats::default(),
        }
    }

    /// Queues an event for this loop. Events must be pushed in increasing id order.
    pub fn push_event(&self, event: Arc<Published>) {
        let was_empty = self.with_queue(|queue| {
            let was_empty = queue.is_empty();
            queue.events.push(event);
            was_empty
        });
        self.wake_unless_own_thread(was_empty);
    }

    /// Queues the answer to a publish of one of this loop's connections.
    pub(crate) fn push_completion(&self, ticket: Ticket, result: Result<EventId, PublishError>) {
        let was_empty = self.with_queue(|queue| {
            let was_empty = queue.is_empty();
            queue.completions.push(Completion { ticket, result });
            was_empty
        });
        self.wake_unless_own_thread(was_empty);
    }

    /// Queues the answer to a replay request of one of this loop's connections.
    pub(crate) fn push_replay(&self, ticket: Ticket, older: OlderEvents) {
        let was_empty = self.with_queue(|queue| {
            let was_empty = queue.is_empty();
            queue.replays.push(ReplayAnswer { ticket, older });
            was_empty
        });
        self.wake_unless_own_thread(was_empty);
    }

    /// Tells the loop that events up to `through` may never reach it.
    pub fn push_lost_through(&self, through: EventId) {
        let was_empty = self.with_queue(|queue| {
            let was_empty = queue.is_empty();
            queue.lost_through = queue.lost_through.max(through);
            was_empty
        });
        self.wake_unless_own_thread(was_empty);
    }

    /// True when something is queued (the loop then polls without blocking).
    pub(crate) fn has_pending(&self) -> bool {
        self.with_queue(|queue| !queue.is_empty())
    }

    /// Wakes the loop (shutdown uses it too).
    pub fn wake(&self) {
        // A failed wake-up (the loop is gone) only matters at shutdown.
        let _ = self.waker.wake();
    }

    /// Swaps everything queued into `into`, which must be empty (and keeps its capacity).
    pub(crate) fn take_all(&self, into: &mut Inbox) {
        self.with_queue(|queue| std::mem::swap(queue, into));
    }

    /// Marks the calling thread as this feed's loop: pushes from it need no wake-up.
    pub(crate) fn enter_loop_thread(&self) {
        CURRENT_FEED.with(|current| current.set(self as *const LoopFeed as usize));
    }

    fn with_queue<T>(&self, f: impl FnOnce(&mut Inbox) -> T) -> T {
        f(&mut self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn wake_unless_own_thread(&self, was_empty: bool) {
        let own_thread = CURRENT_FEED.with(|c| c.get()) == self as *const LoopFeed as usize;
        if was_empty && !own_thread {
            self.wake();
        }
    }
}

/// Every event loop's feed: what a broker delivers to. Cheap to clone.
#[derive(Clone, Default)]
pub struct Feeds {
    loops: Arc<[Arc<LoopFeed>]>,
}

impl Feeds {
    /// The feeds of these loops.
    pub fn new(loops: Vec<Arc<LoopFeed>>) -> Feeds {
        Feeds {
            loops: loops.into(),
        }
    }

    /// Delivers an event to every loop. Call in increasing id order, from one thread at a time
    /// (or under the broker's lock), so every loop sees the same order.
    pub fn deliver(&self, event: Arc<Published>) {
        for feed in self.loops.iter() {
            feed.push_event(event.clone());
        }
    }

    /// Tells every loop that events up to `through` may never reach it: each then vouches for
    /// nothing up to it and ends its open streams, so clients reconnect with `Last-Event-ID`
    /// and replay from the broker's store or are told of a gap. Call in order with
    /// [`Feeds::deliver`]: before delivering anything newer than `through`.
    pub fn lost_through(&self, through: EventId) {
        for feed in self.loops.iter() {
            feed.push_lost_through(through);
        }
    }

    /// Wakes every loop.
    pub fn wake_all(&self) {
        for feed in self.loops.iter() {
            feed.wake();
        }
    }

    /// The largest backlog of any loop.
    pub fn max_backlog(&self) -> Duration {
        self.loops
            .iter()
            .map(|feed| feed.stats.backlog())
            .max()
            .unwrap_or_default()
    }

    /// Client sockets each loop holds, in loop order.
    pub fn loop_connections(&self) -> Vec<u64> {
        self.loops
            .iter()
            .map(|feed| feed.stats.connections.load(Ordering::Relaxed))
            .collect()
    }

    /// Totals over the loops: (retained bytes of the fullest loop, topics of the loop knowing
    /// most, events evicted, topics expired). Loops hold the same shared event buffers, so the
    /// fullest loop is what the process holds.
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let mut totals = (0, 0, 0, 0);
        for feed in self.loops.iter() {
            let stats = &feed.stats;
            totals.0 = totals.0.max(stats.retained_bytes.load(Ordering::Relaxed));
            totals.1 = totals.1.max(stats.topics.load(Ordering::Relaxed));
            totals.2 += stats.evicted.load(Ordering::Relaxed);
            totals.3 += stats.expired.load(Ordering::Relaxed);
        }
        totals
    }
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("loops", &self.loops.len())
            .finish()
    }
}
