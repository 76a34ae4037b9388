//! Opening a stream: subscribing in the topic logs, asking the broker for events older than
//! the logs vouch for (and waiting for its answer in `State::Replaying`), then the response head,
//! the preamble, a gap notice when asked for, and the replay.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::EventLoop;
use crate::broker::{OlderEvents, ReplayReply, ReplayRequest};
use crate::connection::{PendingStream, State, Stream};
use crate::console;
use crate::event::EncodedEvent;
use crate::fanout::{PendingBytes, Replay, Subscriber};
use crate::feed::Ticket;
use crate::params::Subscription;
use crate::sys;

impl EventLoop {
    /// Turns an exchange into an event stream: response head, preamble, then events (a replay
    /// first when the client sent `Last-Event-ID`). When the loop's logs cannot vouch for that
    /// id, the broker is asked for what came before it, and the stream opens when the answer
    /// arrives ([`EventLoop::complete_replay`]). False: close the connection now.
    pub(super) fn start_stream(&mut self, key: usize, subscription: Subscription) -> bool {
        if !self.take_stream_slot() {
            return self.refuse_stream(key, &subscription.cors_headers);
        }
        let names: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
        // Replay and live join by id: the subscriber takes only ids above the one it has, or
        // above the broker's newest, whatever this loop has received so far.
        let subscribed = self.topics.subscribe(
            key,
            &names,
            subscription.last_event_id,
            self.broker.newest_id(),
        );
        let Ok((subscriber, replay)) = subscribed else {
            // The router allows no more topics than a subscriber may have.
            self.release_stream_slot();
            return false;
        };
        for (topic, seq) in subscriber.positions() {
            self.passes.note_join(topic, seq);
        }
        let State::Exchanging(exchange) = &self.connections[key].state else {
            self.topics.unsubscribe(&subscriber);
            self.release_stream_slot();
            return true;
        };
        // Responses already queued on this connection (pipelined) go first.
        let output = exchange.output[exchange.written..].to_vec();
        if let (Replay::Gap, Some(after)) = (replay, subscription.last_event_id) {
            // The subscriber stays registered meanwhile (and keeps its stream slot): what arrives
            // from now on is held for it.
            let serial = self.next_serial;
            self.next_serial += 1;
            let request = ReplayRequest {
                topics: names.iter().map(|&name| Box::from(name)).collect(),
                after,
            };
            self.connections[key].state = State::Replaying(Box::new(PendingStream {
                serial,
                subscription,
                subscriber,
                output,
            }));
            let reply = ReplayReply::to_loop(self.feed.clone(), Ticket { key, serial });
            self.broker.replay(request, reply);
            return true;
        }
        self.open_stream(key, subscription, subscriber, replay, output, &[])
    }

    /// The broker answered a replay request: the stream opens with the broker's events when
    /// they reach further back than the loop's own (or are complete), the loop's otherwise.
    pub(super) fn complete_replay(&mut self, ticket: Ticket, older: OlderEvents) {
        let key = ticket.key;
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if !matches!(&connection.state, State::Replaying(p) if p.serial == ticket.serial) {
            return;
        }
        // Replaced at once by `open_stream` (which sets the state before anything can close it).
        let placeholder = State::Lingering {
            deadline: Instant::now(),
        };
        let State::Replaying(pending) = std::mem::replace(&mut connection.state, placeholder)
        else {
            return;
        };
        let PendingStream {
            subscription,
            mut subscriber,
            output,
            ..
        } = *pending;
        let after = subscription.last_event_id.unwrap_or_default();
        let mut events = older.events;
        events.retain(|event| event.id > after);
        let local_first = subscriber.next_id(&self.topics);
        let from_broker = older.complete
            || events
                .first()
                .is_some_and(|event| local_first.is_none_or(|id| event.id < id));
        let (replay, events) = if from_broker {
            // Log events up to the newest the broker sent are in its answer: skip them.
            let through = events.last().map_or(after, |event| event.id).max(after);
            subscriber.skip_through(through, &self.topics);
            self.metrics()
                .backplane_replays
                .fetch_add(1, Ordering::Relaxed);
            let replay = if older.complete {
                Replay::Complete
            } else {
                Replay::Gap
            };
            (replay, events)
        } else {
            (Replay::Gap, Vec::new())
        };
        if self.open_stream(key, subscription, subscriber, replay, output, &events) {
            // The broker's events go out in the stream's prefix, not through the logs' passes
            // that count the others: counted here, as queued on an open stream.
            self.metrics()
                .deliveries
                .fetch_add(events.len() as u64, Ordering::Relaxed);
        } else {
            self.to_close.push(key);
        }
    }

    /// Opens the stream: `output` (pipelined responses), the response head, the preamble, a gap
    /// event if asked for, `older` (events from the broker), then the subscriber's log events.
    /// False: close the connection now.
    fn open_stream(
        &mut self,
        key: usize,
        subscription: Subscription,
        subscriber: Subscriber,
        replay: Replay,
        output: Vec<u8>,
        older: &[EncodedEvent],
    ) -> bool {
        let older_bytes: usize = older.iter().map(EncodedEvent::len).sum();
        let mut head = output;
        head.reserve(256 + older_bytes);
        head.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
        );
        match replay {
            Replay::Live => {}
            Replay::Complete => head.extend_from_slice(b"Sse-Replay: complete\r\n"),
            Replay::Gap => head.extend_from_slice(b"Sse-Replay: gap\r\n"),
        }
        head.extend_from_slice(subscription.cors_headers.as_bytes());
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(&self.preamble);
        if replay == Replay::Gap {
            if subscription.gap_event {
                // Told in-band when asked: a named event (`EventSource` listeners for "gap"
                // see it, `onmessage` does not), without an id, so the client's last id stays
                // its own.
                let after = subscription.last_event_id.unwrap_or_default();
                head.extend_from_slice(format!("event: gap\ndata: {after}\n\n").as_bytes());
            }
            self.metrics().replay_gaps.fetch_add(1, Ordering::Relaxed);
        }
        for event in older {
            head.extend_from_slice(&event.wire);
        }
        if self.router.config.send_buffer > 0 {
            // Bounds the kernel memory a stuck subscriber can pin (autotuning grows it to
            // `tcp_wmem`'s maximum otherwise).
            let _ = sys::set_send_buffer(
                &self.connections[key].socket,
                self.router.config.send_buffer,
            );
        }
        let now = self.now_ms();
        let watches_stats = subscription
            .topics
            .iter()
            .any(|t| t == console::STATS_TOPIC);
        // The token's expiry, moved from the wall clock to loop time once, so the tick compares
        // two integers per stream; the stream's lifetime, if shorter, closes it first.
        let loop_time = self.loop_time_ms();
        let token_closes_at_ms = match subscription.valid_until {
            None => u64::MAX,
            Some(until) => {
                let left = until
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_millis();
                loop_time.saturating_add(left.min(u64::MAX as u128) as u64)
            }
        };
        let lifetime_ends_at_ms =
            lifetime_ms(self.router.config.stream_lifetime, key as u64 ^ loop_time)
                .map_or(u64::MAX, |ms| loop_time.saturating_add(ms));
        let token_expires =
            token_closes_at_ms <= lifetime_ends_at_ms && token_closes_at_ms != u64::MAX;
        let closes_at_ms = token_closes_at_ms.min(lifetime_ends_at_ms);
        self.connections[key].state = State::Streaming(Stream {
            subscriber,
            prefix: PendingBytes::Owned(head.into_boxed_slice(), 0),
            last_write_ms: now,
            blocked: false,
            watches_stats,
            closes_at_ms,
            token_expires,
        });
        // Counted in `subscribers` already, by `take_stream_slot` in `start_stream`.
        if watches_stats {
            self.metrics()
                .stats_watchers
                .fetch_add(1, Ordering::Relaxed);
        }
        self.flush_stream(key)
    }
}

/// This stream's share of `--stream-lifetime`, in ms: between 90% and 100% of it, picked by
/// `seed` (the connection and the time), so that streams opened in one burst (a deploy, a
/// reconnect storm) do not all end in the same tick. `None`: no lifetime.
fn lifetime_ms(lifetime: Duration, seed: u64) -> Option<u64> {
    let full = lifetime.as_millis().min(u64::MAX as u128 / 2) as u64;
    if full == 0 {
        return None;
    }
    // A multiplicative hash spreads consecutive seeds over 0..1024.
    let spread = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54;
    Some((full - full / 10 + full / 10 * spread / 1023).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_spread_over_the_last_tenth() {
        assert_eq!(lifetime_ms(Duration::ZERO, 7), None);
        let full = Duration::from_secs(600);
        let shares: Vec<u64> = (0..1000)
            .map(|seed| lifetime_ms(full, seed).unwrap())
            .collect();
        assert!(
            shares.iter().all(|&ms| (540_000..=600_000).contains(&ms)),
            "{shares:?}"
        );
        let (low, high) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
        assert!(
            high - low > 50_000,
            "spread over most of the tenth: {low}..{high}"
        );
        assert_eq!(lifetime_ms(Duration::from_millis(1), 3), Some(1));
    }
}
