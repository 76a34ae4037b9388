//! The memory budget over all of a loop's topic logs (`--history-memory`), and what it may take.
//!
//! Every retained event counts against the budget. Past it, events are evicted from the topics
//! least recently *used*, oldest first, where a topic is used when an event is published to it
//! or a client subscribes to it (live or with a replay): the list of topics holding evictable
//! events is kept in that order ([`Topics::lru_touch`]).
//!
//! Eviction takes only history: events that no open subscriber is still owed. Each log knows a
//! sequence number before which no subscriber's cursor can be (`owed_from`): a round of its
//! fan-out pass that has visited every subscriber sets it to the lowest cursor it saw (cursors
//! only move forward) or the lowest start of a subscriber that joined during the round (which
//! it may not have visited), and a subscriber that joins lowers it to its own start. Events from there
//! on stay until a later round has written them, so eviction never cuts off a subscriber that
//! keeps up; what it may hold beyond the budget is what the lag policy bounds (each subscriber
//! at most `--max-pending` behind once its socket is full), and it is evicted as soon as the
//! rounds have delivered it.
//!
//! A topic whose oldest event is still owed leaves the list when eviction reaches it, and comes
//! back at the end of the list when a round (or its last subscriber leaving) frees some of its
//! events, so eviction never walks the same owed topics twice: its work is constant per event
//! evicted or topic touched.

use super::Topics;
use super::log::NO_TOPIC;

impl Topics {
    /// Evicts events, least recently used topics first, until the retained bytes are within
    /// the budget or nothing left may be evicted.
    pub(super) fn evict_to_budget(&mut self) {
        while self.retained_bytes > self.retention.memory && self.lru_head != NO_TOPIC {
            let key = self.lru_head as usize;
            if self.logs[key].oldest_is_evictable() {
                self.drop_oldest(key);
                self.evicted += 1;
            } else {
                // Everything it holds may be owed to a subscriber: out of the list until a
                // round frees some of it. Ask for one: the bound may be stale (a replay that
                // has caught up on a topic nobody publishes to).
                self.lru_unlink(key);
                self.rounds_wanted.push(key);
            }
        }
    }

    /// A round over topic `key`'s subscribers has visited them all; the lowest cursor it saw,
    /// or start of a subscriber that joined during the round, was `owed_from`. Events before it
    /// may be evicted now.
    pub(super) fn round_done(&mut self, key: usize, owed_from: u64) {
        let log = &mut self.logs[key];
        log.owed_from = owed_from.min(log.end_seq());
        self.lru_relink(key);
        self.evict_to_budget();
    }

    /// Topic `key` was used (published to, or subscribed to): it goes to the back of the list,
    /// if it holds events.
    pub(super) fn lru_touch(&mut self, key: usize) {
        self.lru_unlink(key);
        if !self.logs[key].entries.is_empty() {
            self.lru_push_back(key);
        }
    }

    /// Puts topic `key` back in the list (at the back) if it left it while all its events were
    /// owed and some may be evicted now.
    pub(super) fn lru_relink(&mut self, key: usize) {
        let log = &self.logs[key];
        if !log.in_lru && log.oldest_is_evictable() {
            self.lru_push_back(key);
        }
    }

    /// Drops topic `key`'s oldest event, keeping the byte count and the list of topics holding
    /// events right.
    pub(super) fn drop_oldest(&mut self, key: usize) {
        let log = &mut self.logs[key];
        if let Some(len) = log.pop_oldest() {
            self.retained_bytes -= len as u64 + super::ENTRY_OVERHEAD;
        }
        if log.entries.is_empty() {
            self.lru_unlink(key);
        }
    }

    fn lru_push_back(&mut self, key: usize) {
        let tail = self.lru_tail;
        let log = &mut self.logs[key];
        debug_assert!(!log.in_lru);
        log.lru_prev = tail;
        log.lru_next = NO_TOPIC;
        log.in_lru = true;
        if tail == NO_TOPIC {
            self.lru_head = key as u32;
        } else {
            self.logs[tail as usize].lru_next = key as u32;
        }
        self.lru_tail = key as u32;
    }

    /// Takes topic `key` out of the list (nothing if it is not in it).
    pub(super) fn lru_unlink(&mut self, key: usize) {
        let (prev, next) = {
            let log = &mut self.logs[key];
            if !log.in_lru {
                return;
            }
            let links = (log.lru_prev, log.lru_next);
            log.lru_prev = NO_TOPIC;
            log.lru_next = NO_TOPIC;
            log.in_lru = false;
            links
        };
        if prev == NO_TOPIC {
            self.lru_head = next;
        } else {
            self.logs[prev as usize].lru_next = next;
        }
        if next == NO_TOPIC {
            self.lru_tail = prev;
        } else {
            self.logs[next as usize].lru_prev = prev;
        }
    }
}
