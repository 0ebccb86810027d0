//! Retry policy: how long to wait before attempt `n + 1`, and when to give up.
//!
//! The attempt number always comes from Redis (the pending entry's delivery count),
//! never from memory, so a policy is a pure function of it and survives a crash.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the delay grows from one attempt to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackoffStrategy {
    /// `base * 2^(n-1)`.
    Exponential,
    /// `base * n`.
    Linear,
    /// `base` every time.
    Fixed,
}

/// The design's `RetryConfig`, with its defaults.
///
/// ```
/// use std::time::Duration;
/// use strategist_actors::{RetryPolicy, BackoffStrategy};
/// let p = RetryPolicy { jitter: false, ..RetryPolicy::default() };
/// assert_eq!(p.delay(1), Duration::from_millis(1000));
/// assert_eq!(p.delay(3), Duration::from_millis(4000));
/// assert_eq!(p.delay(10), Duration::from_millis(30000));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; after the last, the entry is dead-lettered.
    pub max_attempts: u32,
    /// How the delay grows.
    pub backoff_strategy: BackoffStrategy,
    /// The first delay.
    pub base_delay_ms: u64,
    /// No delay is longer than this.
    pub max_delay_ms: u64,
    /// Spread delays over `[d/2, d]` so that failures do not retry in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_strategy: BackoffStrategy::Exponential,
            base_delay_ms: 1000,
            max_delay_ms: 30000,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        let base = self.base_delay_ms;
        let raw = match self.backoff_strategy {
            BackoffStrategy::Fixed => base,
            BackoffStrategy::Linear => base.saturating_mul(u64::from(n)),
            BackoffStrategy::Exponential => base.saturating_mul(1u64 << (n - 1).min(40)),
        };
        let capped = raw.min(self.max_delay_ms);
        let ms = if self.jitter && capped > 1 {
            capped / 2 + fastrand::u64(0..=capped / 2)
        } else {
            capped
        };
        Duration::from_millis(ms)
    }

    /// Whether a failure at `attempt` still leaves attempts.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Checks the values make sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        if self.max_delay_ms < self.base_delay_ms {
            return Err("retry.max_delay_ms must not be below retry.base_delay_ms".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_grow_as_named_and_cap() {
        let p = |s| RetryPolicy {
            backoff_strategy: s,
            jitter: false,
            base_delay_ms: 100,
            max_delay_ms: 350,
            ..RetryPolicy::default()
        };
        let ms = |p: &RetryPolicy, n| p.delay(n).as_millis();
        let e = p(BackoffStrategy::Exponential);
        assert_eq!(
            [ms(&e, 1), ms(&e, 2), ms(&e, 3), ms(&e, 4)],
            [100, 200, 350, 350]
        );
        let l = p(BackoffStrategy::Linear);
        assert_eq!(
            [ms(&l, 1), ms(&l, 2), ms(&l, 3), ms(&l, 4)],
            [100, 200, 300, 350]
        );
        let f = p(BackoffStrategy::Fixed);
        assert_eq!([ms(&f, 1), ms(&f, 5)], [100, 100]);
        assert_eq!(ms(&e, 200), 350, "a huge attempt count does not overflow");
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let p = RetryPolicy::default();
        for _ in 0..200 {
            let d = p.delay(2).as_millis();
            assert!((1000..=2000).contains(&d), "{d}");
        }
    }
}
