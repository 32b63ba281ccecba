//! Requests per second per caller (SPEC §6: 429 with `Retry-After`), with
//! the `governor` crate's keyed GCRA limiter.
//!
//! Takes a caller's key ([`crate::auth::Principal::caller_key`]); gives
//! `Ok` or how long to wait. Keys of callers gone quiet are dropped by
//! [`RateLimiter::forget_idle`], run periodically, so memory stays bounded
//! by the callers of the last few seconds.

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter as Governor};
use std::num::NonZeroU32;
use std::time::Duration;

pub struct RateLimiter {
    /// `None`: no limit (`RATE_LIMIT_PER_SEC=0`).
    limiter: Option<Governor<u64, DashMapStateStore<u64>, DefaultClock>>,
}

impl RateLimiter {
    /// `per_sec` requests a second on average, up to `burst` at once.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Governor::dashmap(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// `Ok` when `caller` may make a request now; else how long until it
    /// may.
    pub fn check(&self, caller: u64) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // The limiter's own clock: making a new one calibrates it, which
        // costs far more than the check.
        limiter
            .check_key(&caller)
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// Drops the state of callers whose buckets are full again (they would
    /// be allowed their whole burst anyway).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Callers with state right now.
    pub fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_past_its_burst_is_told_how_long_to_wait_and_others_are_not() {
        let limiter = RateLimiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check(7).is_ok());
        }
        let wait = limiter.check(7).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limiter.check(8).is_ok(),
            "another caller has its own bucket"
        );
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0, 1);
        assert!((0..10_000).all(|_| limiter.check(1).is_ok()));
        assert!(limiter.is_empty());
    }
}
