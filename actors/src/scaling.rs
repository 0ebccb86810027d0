//! How many workers a pool should run: a pure decision from one measured signal,
//! with a cooldown after scaling up and a stabilisation window before scaling
//! down, so the count follows load without flapping. The sampling (Redis, `/proc`,
//! a clock) is the caller's; [`crate::Engine::resize`] applies the answer.
//!
//! The formulas:
//! - queue length: `ceil(depth / per_worker)`, where `depth` is the group's pending
//!   plus lag and `per_worker` the design's threshold (file-processor: 50);
//! - CPU: `ceil(current × usage / target)` (the Kubernetes HPA's), left alone
//!   within 10% of the target;
//! - schedule: the window open, `max`; closed, `min`;
//!
//! each clamped to `[min, max]`. Up: at once, but not again within `up_cooldown`
//! of the last change. Down: to the highest count asked for during the last
//! `down_stabilization`, so one quiet sample does not stop workers a busy minute
//! needs.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use strategist_actors::scaling::{ScalePolicy, Scaler, Signal};
//! let policy = ScalePolicy {
//!     min: 2,
//!     max: 10,
//!     up_cooldown: Duration::from_secs(15),
//!     down_stabilization: Duration::from_secs(60),
//! };
//! let mut s = Scaler::new(policy);
//! let t0 = Instant::now();
//! // 230 entries waiting at 50 per worker: 5 workers.
//! let want = s.policy().desired(&Signal::Queue { depth: 230, per_worker: 50.0 }, 2);
//! assert_eq!(want, 5);
//! assert_eq!(s.decide(t0, want, 2), Some(5));
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bounds and timing of one pool's scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePolicy {
    /// Fewest workers.
    pub min: usize,
    /// Most workers.
    pub max: usize,
    /// No second step up within this long of the last change.
    pub up_cooldown: Duration,
    /// A step down goes to the highest count asked for within this window.
    pub down_stabilization: Duration,
}

/// One measurement of what drives a pool's size.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Entries the group still has to finish, and how many one worker should hold.
    Queue {
        /// Pending plus lag.
        depth: u64,
        /// The threshold: entries per worker.
        per_worker: f64,
    },
    /// This process's CPU use and its target, in percent of one core (the design's
    /// `80%`).
    Cpu {
        /// Measured now.
        percent: f64,
        /// The target.
        target: f64,
    },
    /// A time window: open means as many workers as allowed.
    Window {
        /// Whether now is inside it.
        open: bool,
    },
}

impl ScalePolicy {
    /// The worker count `signal` asks for, with `current` running, in `[min, max]`.
    pub fn desired(&self, signal: &Signal, current: usize) -> usize {
        let (min, max) = (self.min.max(1), self.max.max(self.min.max(1)));
        let want = match *signal {
            Signal::Queue { depth, per_worker } => {
                if per_worker <= 0.0 {
                    current
                } else {
                    (depth as f64 / per_worker).ceil() as usize
                }
            }
            Signal::Cpu { percent, target } => {
                let ratio = if target > 0.0 { percent / target } else { 1.0 };
                if (ratio - 1.0).abs() <= 0.1 {
                    current
                } else {
                    (current.max(1) as f64 * ratio).ceil() as usize
                }
            }
            Signal::Window { open } => {
                if open {
                    max
                } else {
                    min
                }
            }
        };
        want.clamp(min, max)
    }
}

/// The memory of one pool's scaling: what was asked for lately, and when the
/// count last changed.
#[derive(Debug)]
pub struct Scaler {
    policy: ScalePolicy,
    asked: VecDeque<(Instant, usize)>,
    last_change: Option<Instant>,
}

impl Scaler {
    /// A scaler that has seen nothing yet.
    pub fn new(policy: ScalePolicy) -> Self {
        Scaler {
            policy,
            asked: VecDeque::new(),
            last_change: None,
        }
    }

    /// Its policy.
    pub fn policy(&self) -> &ScalePolicy {
        &self.policy
    }

    /// Given `desired` now and `current` running, the new count, if it changes.
    pub fn decide(&mut self, now: Instant, desired: usize, current: usize) -> Option<usize> {
        self.asked.push_back((now, desired));
        while let Some((at, _)) = self.asked.front() {
            if now.saturating_duration_since(*at) > self.policy.down_stabilization {
                self.asked.pop_front();
            } else {
                break;
            }
        }
        let cooling = self
            .last_change
            .is_some_and(|t| now.saturating_duration_since(t) < self.policy.up_cooldown);
        let next = if desired > current {
            if cooling {
                return None;
            }
            desired
        } else {
            // The most any sample of the window asked for: a dip must last.
            let floor = self.asked.iter().map(|(_, n)| *n).max().unwrap_or(desired);
            floor.min(current)
        };
        if next == current {
            return None;
        }
        self.last_change = Some(now);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScalePolicy {
        ScalePolicy {
            min: 1,
            max: 8,
            up_cooldown: Duration::from_secs(10),
            down_stabilization: Duration::from_secs(30),
        }
    }

    #[test]
    fn queue_length_asks_for_one_worker_per_threshold_within_bounds() {
        let p = policy();
        let q = |depth| Signal::Queue {
            depth,
            per_worker: 20.0,
        };
        assert_eq!(p.desired(&q(0), 3), 1);
        assert_eq!(p.desired(&q(21), 1), 2);
        assert_eq!(p.desired(&q(100), 1), 5);
        assert_eq!(p.desired(&q(10_000), 1), 8);
    }

    #[test]
    fn cpu_follows_the_hpa_formula_with_a_tolerance() {
        let p = policy();
        let c = |percent| Signal::Cpu {
            percent,
            target: 80.0,
        };
        assert_eq!(p.desired(&c(85.0), 2), 2, "within 10%: unchanged");
        assert_eq!(p.desired(&c(160.0), 2), 4);
        assert_eq!(p.desired(&c(20.0), 4), 1);
    }

    #[test]
    fn a_window_means_max_or_min() {
        let p = policy();
        assert_eq!(p.desired(&Signal::Window { open: true }, 1), 8);
        assert_eq!(p.desired(&Signal::Window { open: false }, 8), 1);
    }

    #[test]
    fn up_at_once_then_cooling_and_down_only_after_the_window() {
        let mut s = Scaler::new(policy());
        let t = Instant::now();
        let at = |secs| t + Duration::from_secs(secs);
        assert_eq!(s.decide(at(0), 4, 1), Some(4));
        // Cooling: no second step up for 10 s.
        assert_eq!(s.decide(at(5), 6, 4), None);
        assert_eq!(s.decide(at(11), 6, 4), Some(6));
        // Quiet samples: the window still remembers 6.
        assert_eq!(s.decide(at(15), 1, 6), None);
        assert_eq!(s.decide(at(30), 1, 6), None);
        // 30 s after the last ask for 6 (at 11 s), the dip has lasted: down.
        assert_eq!(s.decide(at(42), 1, 6), Some(1));
        assert_eq!(s.decide(at(43), 1, 1), None);
    }

    #[test]
    fn a_flapping_signal_does_not_flap_the_count() {
        let mut s = Scaler::new(policy());
        let t = Instant::now();
        let mut current = 1;
        let mut changes = 0;
        for i in 0..60u64 {
            let want = if i % 2 == 0 { 4 } else { 1 };
            if let Some(n) = s.decide(t + Duration::from_secs(i), want, current) {
                current = n;
                changes += 1;
            }
        }
        assert_eq!(changes, 1, "up once, never down while it keeps asking");
        assert_eq!(current, 4);
    }
}
