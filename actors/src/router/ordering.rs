//! Ordering keys: entries that share a key (say `file_id=42`) run one after another
//! in the order they were read; different keys run side by side.
//!
//! A plain struct, no actors and no Redis, so its rules are unit-tested here.
//! Invariants:
//! - a key has at most one holder: the entry running, or parked waiting for its
//!   retry; later entries with the key wait in read order;
//! - a parked holder is given up on after its deadline (another process may have
//!   claimed it), so a queue never waits forever;
//! - waiting entries can be dropped at once (drain): they were never started and
//!   stay pending in Redis for another consumer.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The state of one ordering key.
struct KeyState<T> {
    /// The entry that holds the key.
    holder: String,
    /// Set while the holder waits for its retry: when to stop waiting for it.
    parked_until: Option<Instant>,
    /// Later entries with the key, in read order.
    waiting: VecDeque<(String, T)>,
}

/// Every ordering key in use by one router; `T` is what it takes to run an entry.
pub(crate) struct OrderingKeys<T> {
    keys: HashMap<String, KeyState<T>>,
}

impl<T> Default for OrderingKeys<T> {
    fn default() -> Self {
        OrderingKeys {
            keys: HashMap::new(),
        }
    }
}

impl<T> OrderingKeys<T> {
    /// An entry with `key` arrives. Returns it back when it may run now (it
    /// becomes the key's holder, or already was: a retry of the holder); keeps it
    /// queued otherwise.
    pub(crate) fn admit(&mut self, key: &str, id: &str, item: T) -> Option<T> {
        match self.keys.get_mut(key) {
            Some(state) if state.holder != id => {
                state.waiting.push_back((id.to_owned(), item));
                None
            }
            Some(state) => {
                state.parked_until = None;
                Some(item)
            }
            None => {
                self.keys.insert(
                    key.to_owned(),
                    KeyState {
                        holder: id.to_owned(),
                        parked_until: None,
                        waiting: VecDeque::new(),
                    },
                );
                Some(item)
            }
        }
    }

    /// The holder of `key` is done with it (handled, dead-lettered, lost): the next
    /// waiting entry becomes the holder and is returned to run.
    pub(crate) fn release(&mut self, key: &str) -> Option<(String, T)> {
        let state = self.keys.get_mut(key)?;
        match state.waiting.pop_front() {
            Some((id, item)) => {
                state.holder.clone_from(&id);
                state.parked_until = None;
                Some((id, item))
            }
            None => {
                self.keys.remove(key);
                None
            }
        }
    }

    /// The holder of `key` waits for a retry until `until`; the key stays held.
    pub(crate) fn park(&mut self, key: &str, until: Instant) {
        if let Some(state) = self.keys.get_mut(key) {
            state.parked_until = Some(until);
        }
    }

    /// Keys whose parked holder did not come back by its deadline.
    pub(crate) fn abandoned(&self, now: Instant) -> Vec<String> {
        self.keys
            .iter()
            .filter(|(_, s)| s.parked_until.is_some_and(|t| t < now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// How many keys wait for their holder's retry.
    pub(crate) fn parked(&self) -> usize {
        self.keys
            .values()
            .filter(|s| s.parked_until.is_some())
            .count()
    }

    /// Takes every waiting entry out (none of them has started); returns their ids.
    pub(crate) fn drop_waiting(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.keys.values_mut() {
            out.extend(s.waiting.drain(..).map(|(id, _)| id));
        }
        out
    }

    /// Forgets everything (the router restarts; Redis still has every entry).
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_holder_per_key_the_rest_in_read_order() {
        let mut k = OrderingKeys::default();
        assert_eq!(k.admit("a", "1", 1), Some(1));
        assert_eq!(k.admit("a", "2", 2), None);
        assert_eq!(k.admit("a", "3", 3), None);
        assert_eq!(k.admit("b", "4", 4), Some(4), "other keys run side by side");
        assert_eq!(k.release("a"), Some(("2".into(), 2)));
        assert_eq!(k.release("a"), Some(("3".into(), 3)));
        assert_eq!(k.release("a"), None);
        assert_eq!(k.admit("a", "5", 5), Some(5), "a released key is free");
    }

    #[test]
    fn a_parked_holder_keeps_its_key_and_runs_again_when_it_comes_back() {
        let mut k = OrderingKeys::default();
        let now = Instant::now();
        k.admit("a", "1", 1);
        assert_eq!(k.admit("a", "2", 2), None);
        k.park("a", now + Duration::from_secs(60));
        assert_eq!(k.parked(), 1);
        assert!(k.abandoned(now).is_empty());
        assert_eq!(
            k.admit("a", "1", 1),
            Some(1),
            "the retry of the holder runs"
        );
        assert_eq!(k.parked(), 0);
    }

    #[test]
    fn an_abandoned_key_is_found_and_waiting_entries_can_be_dropped() {
        let mut k = OrderingKeys::default();
        let now = Instant::now();
        k.admit("a", "1", 1);
        k.admit("a", "2", 2);
        k.admit("b", "3", 3);
        k.admit("b", "4", 4);
        k.park("a", now);
        assert_eq!(k.abandoned(now + Duration::from_millis(1)), vec!["a"]);
        let mut dropped = k.drop_waiting();
        dropped.sort();
        assert_eq!(dropped, vec!["2", "4"]);
        assert_eq!(k.release("b"), None);
    }
}
