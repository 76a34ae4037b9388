//! The broker seam: who assigns event ids, orders events and hands them to the event loops.
//!
//! An event loop never publishes by itself. It hands a validated [`PublishRequest`] to the
//! [`Broker`] together with a [`PublishReply`], and answers the HTTP request when the broker
//! completes that reply with the assigned id (or an error). The broker delivers every event, in
//! increasing id order, through the [`Feeds`] it was attached to. The in-process [`LocalBroker`]
//! does both at once on the caller's thread; a backplane (Redis Streams) may complete the reply
//! from its own thread after a network round trip, and deliver events later still: subscribers
//! take only ids above the last one they have, so late deliveries never cause a duplicate.
//!
//! A loop whose logs cannot vouch for a client's `Last-Event-ID` asks the broker for the events
//! after it ([`Broker::replay`], `replay.rs`), and starts the stream when the answer arrives.

mod live_topics;
mod local;
mod redis;
mod replay;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

pub use local::{IdClock, LocalBroker};
pub use redis::{FEED_LENGTH, MAX_PUBLISH_WAIT, RedisBroker, RedisSetupError};
pub use replay::{OlderEvents, ReplayReply, ReplayRequest};

use crate::event::{EncodedEvent, EventError, EventId, is_valid_name};
use crate::feed::{Feeds, Ticket};
use crate::metrics::Metrics;

pub use crate::feed::LoopFeed;

/// An event on its way to the event loops: its topics and its shared wire bytes.
#[derive(Debug)]
pub struct Published {
    /// Topics the event was published to (validated, deduplicated).
    pub topics: Box<[Box<str>]>,
    /// The encoded event, shared by every loop and every subscriber.
    pub event: EncodedEvent,
}

/// Why a publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No topic was named.
    #[error("at least one topic is required")]
    NoTopic,
    /// A name or the data was invalid.
    #[error("{0}")]
    Invalid(#[from] EventError),
    /// Publishing would create more topics than the server keeps.
    #[error("too many topics")]
    TooManyTopics,
    /// The fan-out is too far behind (`--max-backlog`) and the publish waited too long.
    #[error("the fan-out backlog is over --max-backlog")]
    Overloaded,
    /// The broker cannot take publishes now (a backplane is down, or the broker dropped the
    /// request without answering it).
    #[error("publishing is unavailable")]
    Unavailable,
}

/// A publish, checked: valid topic names (deduplicated, at least one), a valid event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    topics: Box<[Box<str>]>,
    event_type: Option<Box<str>>,
    data: Box<str>,
}

impl PublishRequest {
    /// Checks and builds a publish: every topic and the event type must pass
    /// [`is_valid_name`]; repeated topics count once.
    pub fn new(
        topics: &[&str],
        event_type: Option<&str>,
        data: &str,
    ) -> Result<PublishRequest, PublishError> {
        if topics.is_empty() {
            return Err(PublishError::NoTopic);
        }
        if !topics.iter().all(|t| is_valid_name(t)) {
            return Err(EventError::InvalidTopic.into());
        }
        if event_type.is_some_and(|kind| !is_valid_name(kind)) {
            return Err(EventError::InvalidEventType.into());
        }
        let mut unique: Vec<Box<str>> = Vec::with_capacity(topics.len());
        for topic in topics {
            if !unique.iter().any(|t| &**t == *topic) {
                unique.push((*topic).into());
            }
        }
        Ok(PublishRequest {
            topics: unique.into_boxed_slice(),
            event_type: event_type.map(Box::from),
            data: data.into(),
        })
    }

    /// The topics, deduplicated.
    pub fn topics(&self) -> &[Box<str>] {
        &self.topics
    }

    /// The event type, if any.
    pub fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }

    /// The event data.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// Encodes the event with its assigned id, ready for the loops.
    pub fn into_published(self, id: EventId) -> Published {
        Published {
            event: EncodedEvent::encode(id, self.event_type.as_deref(), &self.data),
            topics: self.topics,
        }
    }
}

/// The one answer a broker owes to a publish. Completing it tells the publisher the id; a reply
/// dropped without an answer completes with [`PublishError::Unavailable`], so no publisher ever
/// waits forever.
pub struct PublishReply {
    to: Option<ReplyTo>,
}

enum ReplyTo {
    /// A connection of an event loop waits for the answer.
    Loop { feed: Arc<LoopFeed>, ticket: Ticket },
    /// An in-process publisher (demo source, tests) waits on a channel.
    Channel(mpsc::SyncSender<Result<EventId, PublishError>>),
}

impl PublishReply {
    /// A reply delivered to the connection `ticket` of the loop fed by `feed`.
    pub(crate) fn to_loop(feed: Arc<LoopFeed>, ticket: Ticket) -> PublishReply {
        PublishReply {
            to: Some(ReplyTo::Loop { feed, ticket }),
        }
    }

    /// A reply for an in-process publisher, and the receiver its answer arrives on.
    pub fn channel() -> (PublishReply, mpsc::Receiver<Result<EventId, PublishError>>) {
        let (sender, receiver) = mpsc::sync_channel(1);
        let reply = PublishReply {
            to: Some(ReplyTo::Channel(sender)),
        };
        (reply, receiver)
    }

    /// Answers the publisher. Call it only once the event is certain to be delivered to every
    /// loop (a `200` promises that every subscriber will get it).
    pub fn complete(mut self, result: Result<EventId, PublishError>) {
        self.send(result);
    }

    fn send(&mut self, result: Result<EventId, PublishError>) {
        match self.to.take() {
            Some(ReplyTo::Loop { feed, ticket }) => feed.push_completion(ticket, result),
            // The publisher may have given up waiting; nothing else is owed to it.
            Some(ReplyTo::Channel(sender)) => {
                let _ = sender.try_send(result);
            }
            None => {}
        }
    }
}

impl Drop for PublishReply {
    fn drop(&mut self) {
        self.send(Err(PublishError::Unavailable));
    }
}

impl std::fmt::Debug for PublishReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to = match &self.to {
            Some(ReplyTo::Loop { ticket, .. }) => format!("loop connection {ticket:?}"),
            Some(ReplyTo::Channel(_)) => "channel".to_owned(),
            None => "answered".to_owned(),
        };
        f.debug_struct("PublishReply").field("to", &to).finish()
    }
}

/// The source of event ids and the distributor of events: what a backplane implements.
///
/// Contract: every event is delivered to each loop through [`Feeds::deliver`] in increasing id
/// order (ids are strictly increasing across all topics); a reply is completed with `Ok(id)` only
/// once the event is certain to be delivered; [`Broker::newest_id`] never goes backwards.
pub trait Broker: Send + Sync {
    /// Connects the broker to the server's event loops and counters. The server calls it once,
    /// before any publish.
    fn attach(&self, feeds: Feeds, metrics: Arc<Metrics>);

    /// Starts a publish; `reply` is completed with the assigned id, now or later, from any
    /// thread. Must not block on a network round trip: it runs on an event loop's thread.
    fn publish(&self, request: PublishRequest, reply: PublishReply);

    /// The newest id acknowledged to a publisher so far (0 before the first). A subscriber that
    /// connects without `Last-Event-ID` takes only events newer than this.
    fn newest_id(&self) -> EventId;

    /// Ids up to this one may belong to events the loops were never given (from before the
    /// server started): a loop created now flags replay from before it as a gap. A broker that
    /// hands the loops earlier events at start (a backplane's backfill) answers the id before
    /// the oldest of them.
    fn known_from(&self) -> EventId {
        self.newest_id()
    }

    /// Starts a replay beyond the loops' logs: the events of `request.topics` after
    /// `request.after`, answered through `reply` now or later, from any thread. Must not block:
    /// it runs on an event loop's thread. A broker that keeps no history beyond the loops (the
    /// in-process one) answers at once with [`OlderEvents::nothing`], the default.
    fn replay(&self, request: ReplayRequest, reply: ReplayReply) {
        let _ = request;
        reply.complete(OlderEvents::nothing());
    }
}

impl dyn Broker {
    /// Publishes from outside an event loop (the demo source, tests) and waits up to `timeout`
    /// for the answer.
    pub fn publish_and_wait(
        &self,
        request: PublishRequest,
        timeout: Duration,
    ) -> Result<EventId, PublishError> {
        let (reply, answer) = PublishReply::channel();
        self.publish(request, reply);
        answer
            .recv_timeout(timeout)
            .unwrap_or(Err(PublishError::Unavailable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Topics are checked and deduplicated; names with control characters are refused.
    #[test]
    fn checks_publish_requests() {
        let request = PublishRequest::new(&["a", "b", "a"], Some("tick"), "x").unwrap();
        assert_eq!(request.topics(), [Box::from("a"), Box::from("b")]);
        assert_eq!(request.event_type(), Some("tick"));
        assert_eq!(
            PublishRequest::new(&[], None, "x"),
            Err(PublishError::NoTopic)
        );
        assert_eq!(
            PublishRequest::new(&["a\nb"], None, "x"),
            Err(EventError::InvalidTopic.into())
        );
        assert_eq!(
            PublishRequest::new(&["a"], Some(""), "x"),
            Err(EventError::InvalidEventType.into())
        );
    }

    /// A reply dropped unanswered tells its publisher that publishing is unavailable.
    #[test]
    fn a_dropped_reply_answers_unavailable() {
        let (reply, answer) = PublishReply::channel();
        drop(reply);
        assert_eq!(answer.recv().unwrap(), Err(PublishError::Unavailable));
        let (reply, answer) = PublishReply::channel();
        reply.complete(Ok(7));
        assert_eq!(answer.recv().unwrap(), Ok(7));
        assert!(answer.recv().is_err(), "answered once only");
    }
}
