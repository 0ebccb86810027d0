//! Readiness of the engine's parts, as one shared board that `/readyz` reads.
//!
//! Each part (a router, a worker pool, the shared Redis connection) sets its own
//! line; the board is ready when every line is up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A shared readiness board.
///
/// ```
/// use strategist_actors::Health;
/// let h = Health::default();
/// h.up("redis");
/// h.down("router:ai.events/g", "reconnecting");
/// assert_eq!(h.not_ready(), vec![("router:ai.events/g".to_string(), "reconnecting".to_string())]);
/// h.up("router:ai.events/g");
/// assert!(h.not_ready().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, Option<String>>>>);

impl Health {
    /// Marks `part` up.
    pub fn up(&self, part: &str) {
        self.with(|m| {
            m.insert(part.to_owned(), None);
        });
    }

    /// Marks `part` down, saying why.
    pub fn down(&self, part: &str, why: impl Into<String>) {
        let why = why.into();
        self.with(|m| {
            m.insert(part.to_owned(), Some(why));
        });
    }

    /// Forgets `part` (it stopped on purpose).
    pub fn remove(&self, part: &str) {
        self.with(|m| {
            m.remove(part);
        });
    }

    /// The parts that are down, with the reason each gave.
    pub fn not_ready(&self) -> Vec<(String, String)> {
        self.with(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_ref().map(|why| (k.clone(), why.clone())))
                .collect()
        })
    }

    /// Every part and whether it is up.
    pub fn parts(&self) -> Vec<(String, bool)> {
        self.with(|m| m.iter().map(|(k, v)| (k.clone(), v.is_none())).collect())
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, Option<String>>) -> R) -> R {
        // A panic while holding this lock leaves the map consistent (every update
        // is one insert or remove), so a poisoned lock is still usable.
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    }
}
