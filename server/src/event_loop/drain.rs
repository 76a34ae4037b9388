//! Graceful shutdown of one loop: stop accepting, then close the streams spread over the drain
//! period (so clients do not all reconnect elsewhere at once), idle exchanges at once, and
//! anything left after the period and a linger.

use std::time::{Duration, Instant};

use super::{EventLoop, LINGER};
use crate::connection::State;

/// Progress of a graceful shutdown in one loop.
pub(super) struct Drain {
    /// When the drain began.
    started: Instant,
    /// How long closing the streams is spread over.
    period: Duration,
    /// Streams open when the drain began.
    total: usize,
    /// Streams not closed yet.
    streams: Vec<usize>,
}

impl EventLoop {
    /// Stops accepting and plans the spread-out closing of this loop's streams.
    pub(super) fn start_drain(&mut self) -> Drain {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let streams: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| matches!(c.state, State::Streaming(_)))
            .map(|(key, _)| key)
            .collect();
        Drain {
            started: Instant::now(),
            period: self.router.config.drain,
            total: streams.len(),
            streams,
        }
    }

    /// Closes the share of streams due by now, and idle exchanges; true when all are closed.
    pub(super) fn drain_step(&mut self, drain: &mut Drain) -> bool {
        let elapsed = drain.started.elapsed();
        let due = if elapsed >= drain.period || drain.period.is_zero() {
            drain.total
        } else {
            (drain.total as f64 * elapsed.as_secs_f64() / drain.period.as_secs_f64()).ceil()
                as usize
        };
        while drain.total - drain.streams.len() < due {
            let Some(key) = drain.streams.pop() else {
                break;
            };
            self.close(key);
        }
        let idle: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| match &c.state {
                State::Exchanging(exchange) => exchange.is_idle(),
                State::Streaming(_) => false,
                // Not streaming yet: nothing to spread out.
                State::Lingering { .. } | State::Replaying(_) => true,
            })
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close(key);
        }
        if elapsed >= drain.period + LINGER {
            let all: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
            for key in all {
                self.close(key);
            }
        }
        self.connections.is_empty()
    }
}
