//! The restart budget that turns a crash loop into a report and a pause instead of a
//! spinning process.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Counts restarts in a sliding window.
///
/// ```
/// use std::time::Duration;
/// use strategist_actors::RestartBudget;
/// let mut b = RestartBudget::new(2, Duration::from_secs(60));
/// assert!(!b.record());
/// assert!(!b.record());
/// assert!(b.record(), "the third restart within a minute is over budget");
/// ```
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max: u32,
    window: Duration,
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    /// At most `max` restarts within `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        RestartBudget {
            max,
            window,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart now; true when this one is over budget.
    pub fn record(&mut self) -> bool {
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() > self.max as usize
    }

    /// Forgets past restarts (after a cool-down).
    pub fn reset(&mut self) {
        self.restarts.clear();
    }
}
