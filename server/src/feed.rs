//! The delivery interface: how any broker pushes events (and publish answers) into the loops.
//!
//! Each event loop owns one [`LoopFeed`]: a queue guarded by a mutex, and the `mio` waker of the
//! loop's poll. A broker delivers an event to every loop with [`Feeds::deliver`], in increasing
//! id order. A loop takes everything queued once per iteration, so a push from the loop's own
//! thread (the in-process broker answering that loop's publisher) needs no wake-up: the loop
//! takes it before it polls again. A push from another thread wakes the loop only when its queue
//! was empty; a loop that already has a wake-up pending takes every queued item at once.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use crate::broker::{PublishError, Published};
use crate::event::EventId;

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

/// What a broker has queued for one loop.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Events, in id order.
    pub events: Vec<Arc<Published>>,
    /// Publish answers.
    pub completions: Vec<Completion>,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.completions.is_empty()
    }
}

/// One event loop's queue of events and publish answers, and the waker of its poll.
pub struct LoopFeed {
    queue: Mutex<Inbox>,
    waker: mio::Waker,
}

impl LoopFeed {
    /// A feed whose loop is woken through `waker`.
    pub fn new(waker: mio::Waker) -> LoopFeed {
        LoopFeed {
            queue: Mutex::new(Inbox::default()),
            waker,
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

    /// Wakes every loop.
    pub fn wake_all(&self) {
        for feed in self.loops.iter() {
            feed.wake();
        }
    }

    /// The loops' feeds.
    pub fn loops(&self) -> &[Arc<LoopFeed>] {
        &self.loops
    }
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("loops", &self.loops.len())
            .finish()
    }
}
