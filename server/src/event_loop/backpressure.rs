//! Backpressure on publishers: while the fan-out backlog of any loop (how long its oldest event
//! not yet through its pass has waited) is over `--max-backlog`, a publish is not handed to the
//! broker. It waits here, and goes as soon as the backlogs come down; one that waits longer than
//! `--header-timeout` is answered `503` with `Retry-After`. Nothing accepted is lost: a publish
//! either gets its id or is refused before it has one.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::EventLoop;
use crate::broker::{PublishError, PublishReply, PublishRequest};
use crate::feed::Ticket;

/// Publishes waiting for room, oldest first.
#[derive(Debug, Default)]
pub(super) struct Parked {
    queue: VecDeque<(Ticket, PublishRequest, Instant)>,
}

impl EventLoop {
    /// Hands a publish to the broker, or parks it while the fan-out is too far behind.
    pub(super) fn publish(&mut self, ticket: Ticket, request: PublishRequest) {
        if !self.parked.queue.is_empty() || self.over_backlog() {
            self.metrics()
                .backpressure_waits
                .fetch_add(1, Ordering::Relaxed);
            self.parked
                .queue
                .push_back((ticket, request, Instant::now()));
            return;
        }
        let reply = PublishReply::to_loop(self.feed.clone(), ticket);
        self.broker.publish(request, reply);
    }

    /// True when some loop's backlog is over `--max-backlog` (never when it is zero).
    fn over_backlog(&self) -> bool {
        let max = self.router.config.max_backlog;
        !max.is_zero() && self.feeds.max_backlog() > max
    }

    /// Publishes what waited, in order, while the backlogs allow.
    pub(super) fn release_parked(&mut self) {
        while !self.parked.queue.is_empty() && !self.over_backlog() {
            if let Some((ticket, request, _)) = self.parked.queue.pop_front() {
                let reply = PublishReply::to_loop(self.feed.clone(), ticket);
                self.broker.publish(request, reply);
            }
        }
    }

    /// Refuses publishes that waited longer than a request may take.
    pub(super) fn expire_parked(&mut self) {
        let limit = self
            .router
            .config
            .header_timeout
            .max(Duration::from_millis(100));
        while let Some((_, _, since)) = self.parked.queue.front() {
            if since.elapsed() < limit {
                break;
            }
            if let Some((ticket, _, _)) = self.parked.queue.pop_front() {
                self.complete_publish(ticket, Err(PublishError::Overloaded));
            }
        }
    }

    /// Tells the other loops how far behind this one is.
    pub(super) fn report_backlog(&self) {
        let backlog = self.passes.backlog(Instant::now());
        self.feed.stats.set_backlog(backlog);
    }
}
