//! The figures' recent past: every [`EVERY`], what changed since the last
//! sample, kept for [`KEEP`] samples (ten minutes), for the admin page's
//! chart. Takes the running totals it is given; does no I/O.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(5);

/// Samples kept: ten minutes.
pub const KEEP: usize = 120;

/// Running totals since start, as the counters hold them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub hits: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub invalidations: u64,
    /// Answers served from the cache, and their summed latency (µs).
    pub cached: u64,
    pub cached_us: u64,
    /// Answers computed, and their summed latency (µs).
    pub uncached: u64,
    pub uncached_us: u64,
}

/// What happened in one interval.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Sample {
    /// The end of the interval.
    pub at: DateTime<Utc>,
    pub hits: u64,
    pub misses: u64,
    pub coalesced: u64,
    /// hits + misses + coalesced.
    pub requests: u64,
    /// hits / requests; `null` when nothing was asked.
    pub hit_rate: Option<f64>,
    /// Mean latency of the answers served from the cache, and of those
    /// computed (ms); `null` when there were none.
    pub cached_ms: Option<f64>,
    pub uncached_ms: Option<f64>,
    /// Change notifications applied.
    pub invalidations: u64,
}

#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    last: Totals,
    samples: VecDeque<Sample>,
}

impl History {
    /// Records what changed between the last totals and `now`'s.
    pub fn sample(&self, at: DateTime<Utc>, now: Totals) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let was = std::mem::replace(&mut inner.last, now);
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let (hits, misses, coalesced) = (
            d(now.hits, was.hits),
            d(now.misses, was.misses),
            d(now.coalesced, was.coalesced),
        );
        let requests = hits + misses + coalesced;
        let mean_ms = |count: u64, us: u64| (count > 0).then(|| us as f64 / count as f64 / 1000.0);
        let sample = Sample {
            at,
            hits,
            misses,
            coalesced,
            requests,
            hit_rate: (requests > 0).then(|| hits as f64 / requests as f64),
            cached_ms: mean_ms(d(now.cached, was.cached), d(now.cached_us, was.cached_us)),
            uncached_ms: mean_ms(
                d(now.uncached, was.uncached),
                d(now.uncached_us, was.uncached_us),
            ),
            invalidations: d(now.invalidations, was.invalidations),
        };
        if inner.samples.len() == KEEP {
            inner.samples.pop_front();
        }
        inner.samples.push_back(sample);
    }

    /// Oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.samples.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sample_holds_what_changed_in_its_interval() {
        let h = History::default();
        let t0 = Utc::now();
        h.sample(
            t0,
            Totals {
                hits: 8,
                misses: 2,
                cached: 8,
                cached_us: 8_000,
                uncached: 2,
                uncached_us: 40_000,
                invalidations: 1,
                ..Totals::default()
            },
        );
        // Nothing happens in the third interval.
        let later = Totals {
            hits: 11,
            misses: 2,
            coalesced: 1,
            cached: 11,
            cached_us: 9_500,
            uncached: 3,
            uncached_us: 40_000,
            invalidations: 1,
        };
        h.sample(t0 + chrono::Duration::seconds(5), later);
        h.sample(t0 + chrono::Duration::seconds(10), later);
        let s = h.samples();
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].requests, s[0].hit_rate), (10, Some(0.8)));
        assert_eq!(
            (s[0].cached_ms, s[0].uncached_ms, s[0].invalidations),
            (Some(1.0), Some(20.0), 1)
        );
        assert_eq!((s[1].hits, s[1].coalesced, s[1].requests), (3, 1, 4));
        assert_eq!(s[1].hit_rate, Some(0.75));
        assert_eq!((s[1].cached_ms, s[1].uncached_ms), (Some(0.5), Some(0.0)));
        assert_eq!(s[1].invalidations, 0);
        assert_eq!(
            (s[2].requests, s[2].hit_rate, s[2].cached_ms),
            (0, None, None)
        );
    }

    #[test]
    fn only_the_last_ten_minutes_are_kept() {
        let h = History::default();
        let t0 = Utc::now();
        for i in 0..(KEEP as u64 + 5) {
            h.sample(
                t0 + chrono::Duration::seconds(5 * i as i64),
                Totals {
                    hits: i,
                    ..Totals::default()
                },
            );
        }
        let s = h.samples();
        assert_eq!(s.len(), KEEP);
        assert_eq!(s[0].at, t0 + chrono::Duration::seconds(25));
    }
}
