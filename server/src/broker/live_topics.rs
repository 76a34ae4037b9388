//! The in-process broker's set of live topics: those published to within the topic TTL, kept in
//! a list ordered by their last publish (an intrusive LRU list in a slab), so that the work per
//! publish stays bounded whatever the number of topics.
//!
//! A publish touches each of its topics (moves it to the back of the list, or adds it there).
//! The front of the list is the topic published to longest ago, so the idle topics past the
//! TTL are exactly a prefix of the list: forgetting them pops from the front and stops at the
//! first live one. A publish forgets at most [`LiveTopics::expire`]'s `at_most` of them, and at
//! the `--max-topics` limit exactly as many as its new topics need, so a flood of new topics at
//! the limit pays O(1) per topic, never a scan of the whole set under the broker's lock.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

/// No neighbour in the list.
const NONE: u32 = u32::MAX;

/// Below this many slots the slab and the map are never compacted (not worth it).
const MIN_COMPACT_CAPACITY: usize = 1024;

/// One live topic.
#[derive(Debug)]
struct Node {
    /// The topic's name, shared with the map's key.
    name: Arc<str>,
    /// When it was last published to (ms on the broker's clock).
    last_ms: u64,
    /// The topic published to just before this one (towards the front), or [`NONE`].
    prev: u32,
    /// The topic published to just after this one (towards the back), or [`NONE`].
    next: u32,
}

/// Live topics, least recently published first.
#[derive(Debug)]
pub(super) struct LiveTopics {
    nodes: Slab<Node>,
    by_name: HashMap<Arc<str>, u32>,
    /// The least recently published topic.
    head: u32,
    /// The most recently published topic.
    tail: u32,
    /// Nodes looked at or moved since creation: what the tests hold the work per publish to.
    work: u64,
}

impl LiveTopics {
    /// No topics.
    pub(super) fn new() -> LiveTopics {
        LiveTopics {
            nodes: Slab::new(),
            by_name: HashMap::new(),
            head: NONE,
            tail: NONE,
            work: 0,
        }
    }

    /// Number of live topics.
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when `name` is live.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Nodes looked at or moved so far (for tests of the work per publish).
    #[cfg(test)]
    fn work(&self) -> u64 {
        self.work
    }

    /// Marks `name` as published to at `now_ms`: moves it to the back, or adds it there.
    /// `now_ms` never goes backwards between calls.
    pub(super) fn touch(&mut self, name: &str, now_ms: u64) {
        self.work += 1;
        match self.by_name.get(name) {
            Some(&key) => {
                self.unlink(key);
                self.nodes[key as usize].last_ms = now_ms;
                self.push_back(key);
            }
            None => {
                let name: Arc<str> = Arc::from(name);
                let key = self.nodes.insert(Node {
                    name: name.clone(),
                    last_ms: now_ms,
                    prev: NONE,
                    next: NONE,
                }) as u32;
                self.by_name.insert(name, key);
                self.push_back(key);
            }
        }
    }

    /// Forgets up to `at_most` topics not published to within `ttl_ms` of `now_ms`, least
    /// recently published first; returns how many it forgot. Stops at the first live topic:
    /// every topic behind it was published to later.
    pub(super) fn expire(&mut self, now_ms: u64, ttl_ms: u64, at_most: usize) -> usize {
        let mut forgotten = 0;
        while forgotten < at_most && self.head != NONE {
            self.work += 1;
            let key = self.head;
            if now_ms.saturating_sub(self.nodes[key as usize].last_ms) < ttl_ms {
                break;
            }
            self.unlink(key);
            let node = self.nodes.remove(key as usize);
            self.by_name.remove(&node.name);
            forgotten += 1;
        }
        if forgotten > 0 {
            self.compact_if_sparse();
        }
        forgotten
    }

    fn push_back(&mut self, key: u32) {
        let tail = self.tail;
        let node = &mut self.nodes[key as usize];
        node.prev = tail;
        node.next = NONE;
        if tail == NONE {
            self.head = key;
        } else {
            self.nodes[tail as usize].next = key;
        }
        self.tail = key;
    }

    fn unlink(&mut self, key: u32) {
        let node = &mut self.nodes[key as usize];
        let (prev, next) = (node.prev, node.next);
        node.prev = NONE;
        node.next = NONE;
        if prev == NONE {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NONE {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Gives memory back once most topics have gone: when fewer than a quarter of the slots are
    /// used, the live topics are moved, in list order, into a slab and a map sized for twice
    /// their number. The cost is linear in the topics left, and it comes only after at least
    /// three times as many were forgotten one by one since the slab last grew or shrank, so it
    /// is constant per forgotten topic on average.
    fn compact_if_sparse(&mut self) {
        let capacity = self.nodes.capacity();
        if capacity < MIN_COMPACT_CAPACITY || self.nodes.len() >= capacity / 4 {
            return;
        }
        let live = self.nodes.len();
        let mut nodes = Slab::with_capacity(live * 2);
        let mut by_name = HashMap::with_capacity(live * 2);
        let mut key = self.head;
        let mut prev = NONE;
        while key != NONE {
            self.work += 1;
            let old = self.nodes.remove(key as usize);
            key = old.next;
            let new_key = nodes.insert(Node {
                prev,
                next: NONE,
                ..old
            }) as u32;
            if prev != NONE {
                nodes[prev as usize].next = new_key;
            }
            by_name.insert(nodes[new_key as usize].name.clone(), new_key);
            prev = new_key;
        }
        self.head = if live == 0 { NONE } else { 0 };
        self.tail = prev;
        self.nodes = nodes;
        self.by_name = by_name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in list order, front (least recently published) first.
    fn order(topics: &LiveTopics) -> Vec<String> {
        let mut names = Vec::new();
        let mut key = topics.head;
        while key != NONE {
            names.push(topics.nodes[key as usize].name.to_string());
            key = topics.nodes[key as usize].next;
        }
        names
    }

    /// A publish moves its topic to the back; expiry takes idle topics from the front and
    /// stops at the first live one.
    #[test]
    fn expires_least_recently_published_first() {
        let mut topics = LiveTopics::new();
        for (name, ms) in [("a", 0), ("b", 10), ("c", 20), ("a", 30)] {
            topics.touch(name, ms);
        }
        assert_eq!(order(&topics), ["b", "c", "a"]);
        assert_eq!(topics.expire(115, 100, usize::MAX), 1, "b, idle 105 ms");
        assert_eq!(order(&topics), ["c", "a"]);
        assert_eq!(topics.expire(115, 100, usize::MAX), 0, "c is live");
        assert_eq!(topics.expire(125, 100, 1), 1, "c, idle 105 ms");
        assert_eq!(order(&topics), ["a"]);
        assert!(!topics.contains("c") && topics.contains("a"));
        assert_eq!(topics.expire(129, 100, usize::MAX), 0, "a, idle 99 ms");
        assert_eq!(topics.expire(130, 100, usize::MAX), 1);
        assert_eq!(topics.len(), 0);
        assert_eq!(order(&topics), Vec::<String>::new());
    }

    /// A flood of new topics at the limit forgets one idle topic per new one, looking at a
    /// bounded number of nodes each time. (Guards against a scan of every topic per publish at
    /// the limit: 100,000 new topics against 100,000 idle ones would look at 10^10 nodes.)
    #[test]
    fn a_flood_at_the_limit_costs_constant_work_per_topic() {
        let limit = 100_000;
        let ttl = 1000;
        let mut topics = LiveTopics::new();
        for n in 0..limit {
            topics.touch(&format!("old{n}"), 0);
        }
        let before = topics.work();
        for n in 0..limit {
            let now = ttl + n as u64 / 100;
            assert_eq!(topics.len(), limit);
            assert_eq!(topics.expire(now, ttl, 1), 1, "old{n} is idle");
            topics.touch(&format!("new{n}"), now);
        }
        let per_topic = (topics.work() - before) as f64 / limit as f64;
        assert!(per_topic <= 3.0, "{per_topic} nodes per new topic");
        // Every topic now live: none can be forgotten for a new one.
        assert_eq!(topics.expire(ttl + 999, ttl, 1), 0);
        assert!(!topics.contains("old0") && topics.contains("new0"));
    }

    /// Once most topics are gone, the slab and map shrink, keeping the list order and names.
    #[test]
    fn compacts_after_most_topics_expire() {
        let mut topics = LiveTopics::new();
        for n in 0..10_000 {
            topics.touch(&format!("t{n}"), n);
        }
        let capacity = topics.nodes.capacity();
        assert_eq!(topics.expire(10_000 + 9_899, 10_000, usize::MAX), 9_900);
        assert!(topics.nodes.capacity() < capacity / 4);
        let expected: Vec<String> = (9_900..10_000).map(|n| format!("t{n}")).collect();
        assert_eq!(order(&topics), expected);
        topics.touch("t9950", 30_000);
        topics.touch("fresh", 30_000);
        assert_eq!(topics.len(), 101);
        assert_eq!(topics.expire(30_000, 10_000, usize::MAX), 99);
        assert_eq!(order(&topics), ["t9950", "fresh"]);
    }
}
