//! Counters and latencies of the cache, for the stats endpoint and
//! `/metrics`. Lock-free counters; latencies in a small window of recent
//! answers per kind.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Latencies kept per kind for mean and p95.
const WINDOW: usize = 2048;

#[derive(Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub coalesced: AtomicU64,
    pub stale_serves: AtomicU64,
    /// Queries actually run against the database.
    pub executions: AtomicU64,
    /// Change notifications applied.
    pub invalidations: AtomicU64,
    last_invalidation_ms: AtomicI64,
    cached_latency: Window,
    uncached_latency: Window,
}

/// A ring of the latest `WINDOW` latencies (as f64 bits; 0 = empty slot),
/// written without a lock: answers never wait on each other to be counted.
struct Window {
    slots: Box<[AtomicU64]>,
    next: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            slots: (0..WINDOW).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicU64::new(0),
        }
    }
}

impl Window {
    fn record(&self, ms: f64) {
        let i = self.next.fetch_add(1, Relaxed) as usize % WINDOW;
        // Never 0.0 exactly, which marks an empty slot.
        self.slots[i].store(ms.max(f64::MIN_POSITIVE).to_bits(), Relaxed);
    }

    fn summary(&self) -> Latency {
        let mut v: Vec<f64> = self
            .slots
            .iter()
            .map(|s| s.load(Relaxed))
            .filter(|&bits| bits != 0)
            .map(f64::from_bits)
            .collect();
        if v.is_empty() {
            return Latency::default();
        }
        v.sort_by(f64::total_cmp);
        let p95 = v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1];
        Latency {
            mean_ms: v.iter().sum::<f64>() / v.len() as f64,
            p95_ms: p95,
            samples: v.len(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Latency {
    pub mean_ms: f64,
    pub p95_ms: f64,
    /// How many recent answers these figures cover.
    pub samples: usize,
}

/// A snapshot of every figure.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses + coalesced), 0 when nothing was asked yet.
    pub hit_rate: f64,
    pub coalesced: u64,
    pub stale_serves: u64,
    pub executions: u64,
    pub entries: usize,
    pub bytes: usize,
    pub evictions: u64,
    pub invalidations: u64,
    pub last_invalidation_at: Option<DateTime<Utc>>,
    pub cached_latency: Latency,
    pub uncached_latency: Latency,
}

impl Stats {
    pub fn invalidated(&self) {
        // The time first: whoever sees the count sees its time too.
        self.last_invalidation_ms
            .store(Utc::now().timestamp_millis(), Relaxed);
        self.invalidations
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    pub fn record(&self, cached: bool, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        if cached {
            &self.cached_latency
        } else {
            &self.uncached_latency
        }
        .record(ms);
    }

    pub fn snapshot(&self, entries: usize, bytes: usize, evictions: u64) -> Snapshot {
        let (hits, misses, coalesced) = (
            self.hits.load(Relaxed),
            self.misses.load(Relaxed),
            self.coalesced.load(Relaxed),
        );
        let asked = hits + misses + coalesced;
        let invalidations = self
            .invalidations
            .load(std::sync::atomic::Ordering::Acquire);
        let last = self.last_invalidation_ms.load(Relaxed);
        Snapshot {
            hits,
            misses,
            hit_rate: if asked == 0 {
                0.0
            } else {
                hits as f64 / asked as f64
            },
            coalesced,
            stale_serves: self.stale_serves.load(Relaxed),
            executions: self.executions.load(Relaxed),
            entries,
            bytes,
            evictions,
            invalidations,
            last_invalidation_at: (last > 0)
                .then(|| DateTime::from_timestamp_millis(last))
                .flatten(),
            cached_latency: self.cached_latency.summary(),
            uncached_latency: self.uncached_latency.summary(),
        }
    }
}

impl Snapshot {
    /// The Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP widget_data_{name} {help}\n# TYPE widget_data_{name} {kind}\nwidget_data_{name} {value}\n"
            ));
        };
        metric(
            "cache_hits_total",
            "counter",
            "Answers served from the cache.",
            self.hits.to_string(),
        );
        metric(
            "cache_misses_total",
            "counter",
            "Answers computed by a query.",
            self.misses.to_string(),
        );
        metric(
            "cache_hit_rate",
            "gauge",
            "Hits over all cacheable answers.",
            self.hit_rate.to_string(),
        );
        metric(
            "cache_coalesced_total",
            "counter",
            "Answers that waited for an identical miss.",
            self.coalesced.to_string(),
        );
        metric(
            "cache_stale_serves_total",
            "counter",
            "Expired answers served because the database could not answer.",
            self.stale_serves.to_string(),
        );
        metric(
            "query_executions_total",
            "counter",
            "Queries run against PostgreSQL.",
            self.executions.to_string(),
        );
        metric(
            "cache_entries",
            "gauge",
            "Entries in the memory level.",
            self.entries.to_string(),
        );
        metric(
            "cache_bytes",
            "gauge",
            "Bytes held by the memory level.",
            self.bytes.to_string(),
        );
        metric(
            "cache_evictions_total",
            "counter",
            "Entries evicted to stay within CACHE_MEMORY_MB.",
            self.evictions.to_string(),
        );
        metric(
            "cache_invalidations_total",
            "counter",
            "Data changes heard.",
            self.invalidations.to_string(),
        );
        metric(
            "cache_last_invalidation_timestamp_seconds",
            "gauge",
            "When the last data change was heard (0: never).",
            self.last_invalidation_at
                .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0)
                .to_string(),
        );
        for (kind, l) in [
            ("cached", self.cached_latency),
            ("uncached", self.uncached_latency),
        ] {
            metric(
                &format!("{kind}_latency_mean_ms"),
                "gauge",
                &format!("Mean latency of recent {kind} answers."),
                l.mean_ms.to_string(),
            );
            metric(
                &format!("{kind}_latency_p95_ms"),
                "gauge",
                &format!("95th percentile latency of recent {kind} answers."),
                l.p95_ms.to_string(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_p95_cover_the_recent_window() {
        let s = Stats::default();
        for ms in 1..=100 {
            s.record(true, Duration::from_millis(ms));
        }
        let snap = s.snapshot(0, 0, 0);
        assert_eq!(snap.cached_latency.samples, 100);
        assert!((snap.cached_latency.mean_ms - 50.5).abs() < 0.01);
        assert!((snap.cached_latency.p95_ms - 95.0).abs() < 0.01);
        assert_eq!(snap.uncached_latency.samples, 0);
        assert!(
            snap.prometheus()
                .contains("widget_data_cached_latency_p95_ms 95\n")
        );
    }
}
