//! Replay beyond the loops' logs: a loop whose logs cannot vouch for a client's `Last-Event-ID`
//! asks the broker for the events after it. The broker answers asynchronously, from its own
//! thread, through a [`ReplayReply`] (as it answers publishes): the loop never waits on it.
//!
//! The loop registers the subscriber in its topic logs *before* it asks, so every event the
//! loop receives from then on is held for it; the broker's answer covers what came before. The
//! id rule joins the two: the subscriber skips log events up to the newest id the answer holds.

use std::sync::Arc;
use std::sync::mpsc;

use crate::event::{EncodedEvent, EventId};
use crate::feed::{LoopFeed, Ticket};

/// A request for the events of `topics` after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    /// The subscription's topics.
    pub topics: Box<[Box<str>]>,
    /// The client's `Last-Event-ID`.
    pub after: EventId,
}

/// What a broker found for a [`ReplayRequest`] beyond what the loops hold.
#[derive(Debug, Default)]
pub struct OlderEvents {
    /// The events after the id, in increasing id order, each once (an event of several of the
    /// topics too); at most a history window per topic (`--history`, `--history-bytes`), the
    /// newest ones.
    pub events: Vec<EncodedEvent>,
    /// True when `events` is every event of the topics after the id up to when the broker
    /// looked: nothing was trimmed, expired or lost in between, and no window cut it short.
    pub complete: bool,
}

impl OlderEvents {
    /// The broker holds nothing beyond the loops (or could not look): the loop's own verdict
    /// stands.
    pub fn nothing() -> OlderEvents {
        OlderEvents::default()
    }
}

/// The one answer a broker owes to a replay request. A reply dropped unanswered answers
/// [`OlderEvents::nothing`], so no subscriber waits forever.
pub struct ReplayReply {
    to: Option<ReplayTo>,
}

enum ReplayTo {
    /// A connection of an event loop waits for the answer.
    Loop { feed: Arc<LoopFeed>, ticket: Ticket },
    /// An in-process caller (tests) waits on a channel.
    Channel(mpsc::SyncSender<OlderEvents>),
}

impl ReplayReply {
    /// A reply delivered to the connection `ticket` of the loop fed by `feed`.
    pub(crate) fn to_loop(feed: Arc<LoopFeed>, ticket: Ticket) -> ReplayReply {
        ReplayReply {
            to: Some(ReplayTo::Loop { feed, ticket }),
        }
    }

    /// A reply for an in-process caller, and the receiver its answer arrives on.
    pub fn channel() -> (ReplayReply, mpsc::Receiver<OlderEvents>) {
        let (sender, receiver) = mpsc::sync_channel(1);
        let reply = ReplayReply {
            to: Some(ReplayTo::Channel(sender)),
        };
        (reply, receiver)
    }

    /// Answers the request.
    pub fn complete(mut self, older: OlderEvents) {
        self.send(older);
    }

    fn send(&mut self, older: OlderEvents) {
        match self.to.take() {
            Some(ReplayTo::Loop { feed, ticket }) => feed.push_replay(ticket, older),
            // The caller may have given up waiting; nothing else is owed to it.
            Some(ReplayTo::Channel(sender)) => {
                let _ = sender.try_send(older);
            }
            None => {}
        }
    }
}

impl Drop for ReplayReply {
    fn drop(&mut self) {
        self.send(OlderEvents::nothing());
    }
}

impl std::fmt::Debug for ReplayReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to = match &self.to {
            Some(ReplayTo::Loop { ticket, .. }) => format!("loop connection {ticket:?}"),
            Some(ReplayTo::Channel(_)) => "channel".to_owned(),
            None => "answered".to_owned(),
        };
        f.debug_struct("ReplayReply").field("to", &to).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply dropped unanswered answers "nothing older", so the subscriber starts anyway.
    #[test]
    fn a_dropped_reply_answers_nothing_older() {
        let (reply, answer) = ReplayReply::channel();
        drop(reply);
        let older = answer.recv().unwrap();
        assert!(older.events.is_empty() && !older.complete);
        let (reply, answer) = ReplayReply::channel();
        reply.complete(OlderEvents {
            events: vec![EncodedEvent::encode(5, None, "x")],
            complete: true,
        });
        assert_eq!(answer.recv().unwrap().events[0].id, 5);
        assert!(answer.recv().is_err(), "answered once only");
    }
}
