//! Fan-out passes: which subscribers a loop visits next, fairly between topics.
//!
//! A *pass* visits every subscriber of one topic once, after events were appended to it. Passes
//! take turns: each gets up to [`QUANTUM`] subscribers, then the next topic's pass goes, so a
//! topic with tens of thousands of subscribers never makes a small topic wait for its whole
//! pass. Events that arrive during a pass mark it to go round again (a subscriber visited
//! earlier has not written them); events coalesce, so the work per pass does not grow with the
//! publish rate, only the bytes per write.
//!
//! Each round remembers the topic's tail when it began: once the round has visited everyone,
//! every subscriber still open is at most `max_pending` behind that tail, so the log is trimmed
//! against it (never against the newer tail, which would cut off subscribers visited early in
//! the round for the time the round took). Each round also remembers when its oldest event
//! arrived: the oldest of those is the loop's fan-out backlog.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::fanout::Topics;

/// Subscribers one pass visits before the next topic's pass takes its turn.
pub const QUANTUM: usize = 32;

/// A fan-out pass over one topic's subscribers.
#[derive(Debug)]
struct Pass {
    /// The topic.
    topic: usize,
    /// The next subscriber slot to visit.
    next_slot: usize,
    /// The topic's tail offset when this round began.
    round_tail: u64,
    /// When the oldest event this round delivers arrived.
    round_since: Instant,
    /// Events arrived after this round began (when the first of them did): go round again.
    again_since: Option<Instant>,
    /// The lowest cursor (sequence number in the topic) of the subscribers this round visited.
    owed_from: u64,
}

/// A round that has visited every subscriber of its topic: trim the topic against `tail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundDone {
    /// The topic.
    pub topic: usize,
    /// Its tail when the round began.
    pub tail: u64,
    /// The lowest cursor in the topic of the subscribers the round visited (`u64::MAX` for
    /// none): no subscriber it visited is owed an event before it any more.
    pub owed_from: u64,
}

/// The passes under way in one loop, one per topic at most, taking turns.
#[derive(Debug, Default)]
pub struct Passes {
    queue: VecDeque<Pass>,
}

impl Passes {
    /// True when no pass is under way.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Events were appended to `topic` (whose tail is now `tail`) at `now`: start a pass, or
    /// make the one under way go round again.
    pub fn schedule(&mut self, topic: usize, tail: u64, now: Instant) {
        match self.queue.iter_mut().find(|pass| pass.topic == topic) {
            Some(pass) => {
                // Subscribers already visited in this round must be visited again.
                if pass.next_slot > 0 {
                    pass.again_since.get_or_insert(now);
                }
            }
            None => self.queue.push_back(Pass {
                topic,
                next_slot: 0,
                round_tail: tail,
                round_since: now,
                again_since: None,
                owed_from: u64::MAX,
            }),
        }
    }

    /// A subscriber joined `topic` starting at sequence number `seq`: a round under way may
    /// not visit it (its slot may be behind the round's), so the round counts it as owed.
    pub fn note_join(&mut self, topic: usize, seq: u64) {
        if let Some(pass) = self.queue.iter_mut().find(|pass| pass.topic == topic) {
            pass.owed_from = pass.owed_from.min(seq);
        }
    }

    /// Visits up to `budget` subscribers, passes taking turns of [`QUANTUM`]; `visit` gets each
    /// subscriber's connection key and the topic, and answers the subscriber's cursor in the
    /// topic after the visit (`None` once it is closed). Rounds that visited everyone go to
    /// `done`.
    pub fn advance(
        &mut self,
        mut budget: usize,
        topics: &Topics,
        done: &mut Vec<RoundDone>,
        mut visit: impl FnMut(usize, usize) -> Option<u64>,
    ) {
        while budget > 0 {
            let Some(mut pass) = self.queue.pop_front() else {
                return;
            };
            let end = topics.slot_end(pass.topic);
            let mut turn = QUANTUM.min(budget);
            while pass.next_slot < end && turn > 0 {
                let slot = pass.next_slot;
                pass.next_slot += 1;
                if let Some(key) = topics.subscriber_at(pass.topic, slot) {
                    turn -= 1;
                    budget -= 1;
                    if let Some(seq) = visit(key, pass.topic) {
                        pass.owed_from = pass.owed_from.min(seq);
                    }
                }
            }
            if pass.next_slot < end {
                self.queue.push_back(pass);
                continue;
            }
            done.push(RoundDone {
                topic: pass.topic,
                tail: pass.round_tail,
                owed_from: pass.owed_from,
            });
            if let Some(since) = pass.again_since.take() {
                pass.next_slot = 0;
                pass.owed_from = u64::MAX;
                pass.round_tail = topics.tail_offset(pass.topic);
                pass.round_since = since;
                self.queue.push_back(pass);
            }
        }
    }

    /// How long the oldest event not yet through its pass has waited: the loop's backlog.
    pub fn backlog(&self, now: Instant) -> Duration {
        self.queue
            .iter()
            .map(|pass| now.saturating_duration_since(pass.round_since))
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Published;
    use crate::event::EncodedEvent;
    use crate::fanout::Retention;

    fn topics_with(subscribers: &[(&str, usize)]) -> Topics {
        let mut topics = Topics::new(Retention::default(), 0);
        let mut conn = 0;
        for &(name, count) in subscribers {
            for _ in 0..count {
                topics.subscribe(conn, &[name], None, 0).unwrap();
                conn += 1;
            }
        }
        topics
    }

    fn append(topics: &mut Topics, name: &str) -> usize {
        let published = Published {
            topics: vec![Box::from(name)].into_boxed_slice(),
            event: EncodedEvent::encode(1, None, "x"),
        };
        let mut touched = Vec::new();
        topics.append(&published, &mut touched);
        touched[0]
    }

    /// A small topic published after a big one is served within the first turns, not after
    /// the big topic's whole pass. (Guards against passes served one after the other.)
    #[test]
    fn passes_take_turns_between_topics() {
        let mut topics = topics_with(&[("big", 1000), ("small", 1)]);
        let now = Instant::now();
        let mut passes = Passes::default();
        let big = append(&mut topics, "big");
        passes.schedule(big, topics.tail_offset(big), now);
        let small = append(&mut topics, "small");
        passes.schedule(small, topics.tail_offset(small), now);
        let mut visited = Vec::new();
        let mut done = Vec::new();
        passes.advance(128, &topics, &mut done, |key, _| {
            visited.push(key);
            None
        });
        assert_eq!(visited.len(), 128);
        let small_at = visited.iter().position(|&key| key == 1000);
        assert_eq!(
            small_at,
            Some(QUANTUM),
            "the small topic's subscriber goes second"
        );
        assert_eq!(
            done,
            [RoundDone {
                topic: small,
                tail: topics.tail_offset(small),
                owed_from: u64::MAX,
            }]
        );
        // The big pass goes on where it stopped, and ends after its 1,000 subscribers.
        while !passes.is_empty() {
            passes.advance(128, &topics, &mut done, |key, _| {
                visited.push(key);
                None
            });
        }
        assert_eq!(visited.len(), 1001);
        assert_eq!(done.len(), 2);
    }

    /// Events during a round make it go round again, trimmed against the tail each round began
    /// with, and the backlog is the age of the oldest event not through its pass.
    #[test]
    fn rounds_restart_with_their_own_tail() {
        let mut topics = topics_with(&[("t", 100)]);
        let start = Instant::now();
        let mut passes = Passes::default();
        let topic = append(&mut topics, "t");
        let first_tail = topics.tail_offset(topic);
        passes.schedule(topic, first_tail, start);
        let mut done = Vec::new();
        passes.advance(50, &topics, &mut done, |_, _| None);
        let later = start + Duration::from_millis(300);
        append(&mut topics, "t");
        passes.schedule(topic, topics.tail_offset(topic), later);
        assert_eq!(passes.backlog(later), Duration::from_millis(300));
        // The other 50 (and the empty slots after them), then 10 of the second round.
        passes.advance(60, &topics, &mut done, |_, _| None);
        assert_eq!(
            done,
            [RoundDone {
                topic,
                tail: first_tail,
                owed_from: u64::MAX,
            }]
        );
        assert!(!passes.is_empty(), "goes round again for the second event");
        assert_eq!(passes.backlog(later), Duration::ZERO);
        passes.advance(100, &topics, &mut done, |_, _| None);
        assert_eq!(done[1].tail, topics.tail_offset(topic));
        assert!(passes.is_empty());
    }
}
