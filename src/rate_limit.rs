//! Requests per second per caller (SPEC §6: 429 with `Retry-After`), with
//! the `governor` crate's keyed GCRA limiter, and the same GCRA in Redis
//! when instances share one, so the limit holds for the whole fleet.
//!
//! Takes a caller's keys ([`crate::auth::Principal::caller_key`] for this
//! instance, [`crate::auth::Principal::fleet_key`] for Redis); gives `Ok`
//! or how long to wait. When Redis cannot answer, this instance's own
//! limiter decides: a request is never failed because Redis is down. Keys
//! of callers gone quiet are dropped by [`RateLimiter::forget_idle`], run
//! periodically, so memory stays bounded by the callers of the last few
//! seconds (Redis's keys expire by themselves).

use crate::shared::{self, Redis};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter as Governor};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub struct RateLimiter {
    /// `None`: no limit (`RATE_LIMIT_PER_SEC=0`).
    limiter: Option<Governor<u64, DashMapStateStore<u64>, DefaultClock>>,
    per_sec: u32,
    burst: u32,
    /// Counts for the whole fleet when instances share a Redis.
    fleet: Option<Arc<Redis>>,
}

impl RateLimiter {
    /// `per_sec` requests a second on average, up to `burst` at once (0:
    /// `per_sec`), counted by this instance.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let burst = if burst == 0 { per_sec } else { burst };
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Governor::dashmap(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            per_sec,
            burst,
            fleet: None,
        }
    }

    /// The same limit, counted in `redis` for every instance that shares
    /// it (`None`: by this instance alone, as [`RateLimiter::new`]).
    pub fn fleet_wide(self, redis: Option<Arc<Redis>>) -> Self {
        Self {
            fleet: redis,
            ..self
        }
    }

    /// `Ok` when `caller` may make a request now; else how long until it
    /// may. `fleet_key` names the caller in Redis; it is asked for only
    /// when there is a fleet-wide limit.
    pub async fn check(
        &self,
        caller: u64,
        fleet_key: impl FnOnce() -> String,
    ) -> Result<(), Duration> {
        if self.limiter.is_none() {
            return Ok(());
        }
        if let Some(redis) = &self.fleet {
            let key = shared::key("rl", &fleet_key());
            if let Some(decided) = redis.gcra(&key, self.per_sec, self.burst).await {
                return decided;
            }
        }
        self.check_here(caller)
    }

    /// [`RateLimiter::check`] with this instance's own limiter.
    fn check_here(&self, caller: u64) -> Result<(), Duration> {
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

    /// Without Redis there is no fleet key to ask for.
    fn no_fleet_key() -> String {
        panic!("asked for a fleet key without a fleet-wide limit")
    }

    #[tokio::test]
    async fn a_caller_past_its_burst_is_told_how_long_to_wait_and_others_are_not() {
        let limiter = RateLimiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check(7, no_fleet_key).await.is_ok());
        }
        let wait = limiter.check(7, no_fleet_key).await.unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limiter.check(8, no_fleet_key).await.is_ok(),
            "another caller has its own bucket"
        );
        assert_eq!(limiter.len(), 2);
    }

    #[tokio::test]
    async fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0, 1);
        for _ in 0..10_000 {
            assert!(limiter.check(1, no_fleet_key).await.is_ok());
        }
        assert!(limiter.is_empty());
    }

    #[tokio::test]
    async fn when_redis_cannot_answer_this_instance_counts_alone() {
        // A port that was just free on loopback: nothing answers there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let redis = Redis::start(
            &format!("redis://127.0.0.1:{port}"),
            Duration::from_millis(50),
        )
        .expect("started");
        let limiter = RateLimiter::new(1, 2).fleet_wide(Some(Arc::clone(&redis)));
        let mut asked = 0;
        for _ in 0..2 {
            let check = limiter.check(7, || {
                asked += 1;
                "k".to_owned()
            });
            assert!(check.await.is_ok());
        }
        assert!(limiter.check(7, || "k".to_owned()).await.is_err());
        assert_eq!(asked, 2, "Redis was asked first");
        assert_eq!(limiter.len(), 1, "then the local limiter counted");
        assert!(redis.figures().skipped + redis.figures().errors >= 3);
    }
}
