//! Per-user rate limits on the routes that cost money (generation, consultations):
//! a GCRA bucket per user id (`governor`), answered with 429 and `Retry-After`.
//!
//! The buckets live in this process: with N processes behind a balancer a user gets
//! up to N times the rate. Idle users' buckets are dropped by [`RateLimits::shrink`].

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::ApiError;

/// The per-user limiter of the generation routes.
pub struct RateLimits {
    generation: Option<RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>>,
    clock: DefaultClock,
}

impl RateLimits {
    /// `per_minute` requests a minute per user, in bursts of up to `burst`; 0 turns
    /// the limit off.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let clock = DefaultClock::default();
        let generation = NonZeroU32::new(per_minute).map(|n| {
            let burst = NonZeroU32::new(burst).unwrap_or(n);
            let period = Duration::from_secs(60) / n.get();
            #[allow(clippy::unwrap_used)] // period > 0: n <= u32::MAX and 60 s / n > 0 ns
            let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                .unwrap()
                .allow_burst(burst);
            RateLimiter::dashmap_with_clock(quota, clock.clone())
        });
        RateLimits { generation, clock }
    }

    /// Takes one generation request from `user_id`'s bucket, or a 429.
    pub fn generation(&self, user_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.generation else {
            return Ok(());
        };
        limiter
            .check_key(&user_id.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                ApiError::too_many(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            })
    }

    /// Forgets buckets that are full again (users idle long enough).
    pub fn shrink(&self) {
        if let Some(l) = &self.generation {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}
