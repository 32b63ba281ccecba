//! Counters and latencies of the cache, for the stats endpoint and
//! `/metrics`. Lock-free counters; latencies in a small window of recent
//! answers per kind (the stats endpoint's mean and p95) and in a
//! Prometheus histogram in seconds (`/metrics`, which sums across
//! instances). Takes nothing but what it is told; does no I/O.

use chrono::{DateTime, Utc};
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub use super::history::{History, Sample, Totals};

/// Latencies kept per kind for mean and p95.
const WINDOW: usize = 2048;

/// The exporter keeps each recorded latency until it is folded into the
/// histogram's buckets, which a scrape does; folding every so many answers
/// too bounds that memory when nobody scrapes.
const FOLD_EVERY: u64 = 4096;

const ANSWER_SECONDS: &str = "widget_data_answer_duration_seconds";

/// From 100 µs (a hit) to 10 s (a slow query; QUERY_TIMEOUT_MS is 5 s by
/// default), about three buckets per decade.
const ANSWER_SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub coalesced: AtomicU64,
    pub stale_serves: AtomicU64,
    /// Queries actually run against the database.
    pub executions: AtomicU64,
    /// Change notifications applied.
    pub invalidations: AtomicU64,
    /// Hits found in Redis, and in the cache table (the rest of `hits`
    /// were in memory).
    pub redis_hits: AtomicU64,
    pub table_hits: AtomicU64,
    /// Entries computed again by warming after a change, warmings that
    /// failed, and those another instance claimed.
    pub warmed: AtomicU64,
    pub warm_failures: AtomicU64,
    pub warmed_elsewhere: AtomicU64,
    last_invalidation_ms: AtomicI64,
    /// Answers by kind and their summed latency (µs), for the history.
    cached_answers: AtomicU64,
    cached_us: AtomicU64,
    uncached_answers: AtomicU64,
    uncached_us: AtomicU64,
    pub history: History,
    cached_latency: Window,
    uncached_latency: Window,
    metrics: Metrics,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            hits: AtomicU64::default(),
            misses: AtomicU64::default(),
            coalesced: AtomicU64::default(),
            stale_serves: AtomicU64::default(),
            executions: AtomicU64::default(),
            invalidations: AtomicU64::default(),
            redis_hits: AtomicU64::default(),
            table_hits: AtomicU64::default(),
            warmed: AtomicU64::default(),
            warm_failures: AtomicU64::default(),
            warmed_elsewhere: AtomicU64::default(),
            last_invalidation_ms: AtomicI64::default(),
            cached_answers: AtomicU64::default(),
            cached_us: AtomicU64::default(),
            uncached_answers: AtomicU64::default(),
            uncached_us: AtomicU64::default(),
            history: History::default(),
            cached_latency: Window::default(),
            uncached_latency: Window::default(),
            metrics: Metrics::new(),
        }
    }
}

/// The `/metrics` figures, in a Prometheus recorder of this `Stats`'s own:
/// never the process-wide one, which can be installed only once, so every
/// `App` (tests start many in one process) counts for itself.
struct Metrics {
    /// Kept to register the service's other counters (`Stats::counter`).
    recorder: std::sync::Arc<metrics_exporter_prometheus::PrometheusRecorder>,
    handle: PrometheusHandle,
    cached_seconds: Histogram,
    uncached_seconds: Histogram,
    hits: Counter,
    misses: Counter,
    coalesced: Counter,
    stale_serves: Counter,
    executions: Counter,
    evictions: Counter,
    invalidations: Counter,
    /// Hits by level: memory, redis, table.
    level_hits: [Counter; 3],
    warmed: Counter,
    warm_failures: Counter,
    warmed_elsewhere: Counter,
    /// Widget queries by server: replica, primary.
    queries: [Counter; 2],
    replica_refused_for_lag: Counter,
    replica_failures: Counter,
    healthy_replicas: Gauge,
    redis_calls: [Counter; 4],
    redis_breaker_open: Gauge,
    redis_breaker_opened: Counter,
    hit_rate: Gauge,
    entries: Gauge,
    bytes: Gauge,
    last_invalidation: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(ANSWER_SECONDS.into()), ANSWER_SECONDS_BUCKETS)
            // The buckets are constants, never empty.
            .expect("histogram buckets")
            .build_recorder();
        let handle = recorder.handle();
        let recorder = std::sync::Arc::new(recorder);
        // The handles are made once: recording through one later costs no
        // lookup by name.
        metrics::with_local_recorder(&*recorder, || {
            use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
            describe_histogram!(
                ANSWER_SECONDS,
                metrics::Unit::Seconds,
                "Time to answer a widget's data request, by whether the cache answered."
            );
            let counters = [
                (
                    "widget_data_cache_hits_total",
                    "Answers served from the cache.",
                ),
                (
                    "widget_data_cache_misses_total",
                    "Answers computed by a query.",
                ),
                (
                    "widget_data_cache_coalesced_total",
                    "Answers that waited for an identical miss.",
                ),
                (
                    "widget_data_cache_stale_serves_total",
                    "Expired answers served because the database could not answer.",
                ),
                (
                    "widget_data_query_executions_total",
                    "Queries run against PostgreSQL.",
                ),
                (
                    "widget_data_cache_evictions_total",
                    "Entries evicted to stay within CACHE_MEMORY_MB.",
                ),
                (
                    "widget_data_cache_invalidations_total",
                    "Data changes heard.",
                ),
                (
                    "widget_data_cache_warmed_total",
                    "Entries computed again in the background after a change (cache warming).",
                ),
                (
                    "widget_data_cache_warm_failures_total",
                    "Warmings whose query failed.",
                ),
                (
                    "widget_data_cache_warmed_elsewhere_total",
                    "Warmings left to another instance that claimed the entry first.",
                ),
            ]
            .map(|(name, help)| {
                describe_counter!(name, help);
                counter!(name)
            });
            let gauges = [
                (
                    "widget_data_cache_hit_rate",
                    "Hits over all cacheable answers.",
                ),
                ("widget_data_cache_entries", "Entries in the memory level."),
                ("widget_data_cache_bytes", "Bytes held by the memory level."),
                (
                    "widget_data_cache_last_invalidation_timestamp_seconds",
                    "When the last data change was heard (0: never).",
                ),
            ]
            .map(|(name, help)| {
                describe_gauge!(name, help);
                gauge!(name)
            });
            let [
                hits,
                misses,
                coalesced,
                stale_serves,
                executions,
                evictions,
                invalidations,
                warmed,
                warm_failures,
                warmed_elsewhere,
            ] = counters;
            describe_counter!(
                "widget_data_cache_level_hits_total",
                "Hits by the level that held the entry: memory, redis or table."
            );
            let level_hits = ["memory", "redis", "table"]
                .map(|level| counter!("widget_data_cache_level_hits_total", "level" => level));
            describe_counter!(
                "widget_data_queries_total",
                "Widget queries by the server that ran them: replica or primary."
            );
            let queries = ["replica", "primary"]
                .map(|server| counter!("widget_data_queries_total", "server" => server));
            describe_counter!(
                "widget_data_replica_refused_for_lag_total",
                "Times a replica was passed over because it had not replayed far enough."
            );
            describe_counter!(
                "widget_data_replica_failures_total",
                "Replicas that failed under a query."
            );
            describe_gauge!("widget_data_healthy_replicas", "Replicas in use now.");
            describe_counter!(
                "widget_data_redis_calls_total",
                "Calls to Redis by outcome: hit, miss, error, or skipped while the breaker was open."
            );
            let redis_calls = ["hit", "miss", "error", "skipped"]
                .map(|outcome| counter!("widget_data_redis_calls_total", "outcome" => outcome));
            describe_gauge!(
                "widget_data_redis_breaker_open",
                "1 while the Redis breaker is open (Redis is not used), else 0."
            );
            describe_counter!(
                "widget_data_redis_breaker_opened_total",
                "Times the Redis breaker opened."
            );
            let [hit_rate, entries, bytes, last_invalidation] = gauges;
            Self {
                recorder: std::sync::Arc::clone(&recorder),
                handle,
                cached_seconds: metrics::histogram!(ANSWER_SECONDS, "cached" => "true"),
                uncached_seconds: metrics::histogram!(ANSWER_SECONDS, "cached" => "false"),
                hits,
                misses,
                coalesced,
                stale_serves,
                executions,
                evictions,
                invalidations,
                level_hits,
                warmed,
                warm_failures,
                warmed_elsewhere,
                queries,
                replica_refused_for_lag: counter!("widget_data_replica_refused_for_lag_total"),
                replica_failures: counter!("widget_data_replica_failures_total"),
                healthy_replicas: gauge!("widget_data_healthy_replicas"),
                redis_calls,
                redis_breaker_open: gauge!("widget_data_redis_breaker_open"),
                redis_breaker_opened: counter!("widget_data_redis_breaker_opened_total"),
                hit_rate,
                entries,
                bytes,
                last_invalidation,
            }
        })
    }
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
    /// Returns how many were recorded before this one.
    fn record(&self, ms: f64) -> u64 {
        let n = self.next.fetch_add(1, Relaxed);
        // Never 0.0 exactly, which marks an empty slot.
        self.slots[n as usize % WINDOW].store(ms.max(f64::MIN_POSITIVE).to_bits(), Relaxed);
        n
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
    /// Where the hits came from.
    pub levels: LevelHits,
    pub warming: WarmingFigures,
    /// Where widget queries ran.
    pub queries: QueryFigures,
    /// The shared level, when `REDIS_URL` is set.
    pub redis: Option<RedisStats>,
    /// The tables this instance has heard of: watched or not, with the
    /// version it vouches for.
    pub tables: Vec<TableState>,
    /// Saved widgets with an unexpired entry in the cache table (shared by
    /// every instance); `null` when the database could not say.
    pub active_widgets: Option<u64>,
    /// One sample every 5 s over the last ten minutes, oldest first.
    pub history: Vec<Sample>,
}

/// A table's data version as this instance knows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TableState {
    /// `schema.table`.
    pub table: String,
    /// Watched on the listening session: a change to it is heard.
    pub watched: bool,
    /// The version this instance vouches for (`<sequence>.<number>`);
    /// `null` until it is read again after a change.
    pub version: Option<String>,
    /// The highest change number heard for it.
    pub changes_heard: Option<u64>,
}

/// Where widget queries ran (`DATABASE_READ_URLS`).
#[derive(Debug, Default, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct QueryFigures {
    /// Queries answered by a replica that had replayed the data versions
    /// they were keyed with.
    pub replica: u64,
    /// Queries sent to the primary: no replica configured or healthy, a
    /// replica behind, or an answer that cannot be cached.
    pub primary: u64,
    /// Times a replica was passed over because it had not replayed far
    /// enough.
    pub refused_for_lag: u64,
    /// Replicas that failed under a query (then marked down).
    pub replica_failures: u64,
    pub replicas: usize,
    pub healthy_replicas: usize,
}

/// The Redis level's client.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RedisStats {
    /// Reads that found an entry, and those that did not.
    pub hits: u64,
    pub misses: u64,
    /// Calls that failed or ran out of time.
    pub errors: u64,
    pub timeouts: u64,
    /// Calls not made because the breaker was open.
    pub skipped: u64,
    /// `closed`, `open` or `half-open`.
    pub breaker: String,
    /// Times the breaker opened.
    pub breaker_opened: u64,
}

/// Hits by the level that held the entry (they add up to `hits`).
#[derive(Debug, Default, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct LevelHits {
    pub memory: u64,
    pub redis: u64,
    pub table: u64,
}

/// Cache warming (`CACHE_WARMING_WORKERS`).
#[derive(Debug, Default, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct WarmingFigures {
    /// Entries computed again after a change.
    pub warmed: u64,
    /// Warmings whose query failed.
    pub failures: u64,
    /// Left to another instance that claimed the entry first.
    pub elsewhere: u64,
    /// Entries read lately enough to be warmed after their next change.
    pub tracked: usize,
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
        let (window, histogram, answers, us) = if cached {
            (
                &self.cached_latency,
                &self.metrics.cached_seconds,
                &self.cached_answers,
                &self.cached_us,
            )
        } else {
            (
                &self.uncached_latency,
                &self.metrics.uncached_seconds,
                &self.uncached_answers,
                &self.uncached_us,
            )
        };
        answers.fetch_add(1, Relaxed);
        us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
        let secs = elapsed.as_secs_f64();
        histogram.record(secs);
        if window.record(secs * 1000.0) % FOLD_EVERY == FOLD_EVERY - 1 {
            self.metrics.handle.run_upkeep();
        }
    }

    /// The running totals the history samples.
    pub fn totals(&self) -> Totals {
        Totals {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            cached: self.cached_answers.load(Relaxed),
            cached_us: self.cached_us.load(Relaxed),
            uncached: self.uncached_answers.load(Relaxed),
            uncached_us: self.uncached_us.load(Relaxed),
        }
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
            levels: {
                let (redis, table) = (self.redis_hits.load(Relaxed), self.table_hits.load(Relaxed));
                LevelHits {
                    memory: hits.saturating_sub(redis + table),
                    redis,
                    table,
                }
            },
            warming: WarmingFigures {
                warmed: self.warmed.load(Relaxed),
                failures: self.warm_failures.load(Relaxed),
                elsewhere: self.warmed_elsewhere.load(Relaxed),
                tracked: 0,
            },
            queries: QueryFigures::default(),
            redis: None,
            tables: Vec::new(),
            active_widgets: None,
            history: self.history.samples(),
        }
    }
}

impl Stats {
    /// A counter of the service's beside the cache's, served with them at
    /// `/metrics` (widget bundles' drifts, say).
    pub fn counter(&self, name: &'static str, help: &'static str) -> metrics::Counter {
        metrics::with_local_recorder(&*self.metrics.recorder, || {
            metrics::describe_counter!(name, help);
            metrics::counter!(name)
        })
    }

    /// The Prometheus text exposition format: the counters and gauges of
    /// `snapshot` (taken from this `Stats`) and the latency histograms.
    pub fn prometheus(&self, snapshot: &Snapshot) -> String {
        let m = &self.metrics;
        // The atomics above stay the one count, shared with the stats
        // endpoint; the exporter's counters only ever move up to them.
        for (counter, value) in [
            (&m.hits, snapshot.hits),
            (&m.misses, snapshot.misses),
            (&m.coalesced, snapshot.coalesced),
            (&m.stale_serves, snapshot.stale_serves),
            (&m.executions, snapshot.executions),
            (&m.evictions, snapshot.evictions),
            (&m.invalidations, snapshot.invalidations),
            (&m.level_hits[0], snapshot.levels.memory),
            (&m.level_hits[1], snapshot.levels.redis),
            (&m.level_hits[2], snapshot.levels.table),
            (&m.warmed, snapshot.warming.warmed),
            (&m.warm_failures, snapshot.warming.failures),
            (&m.warmed_elsewhere, snapshot.warming.elsewhere),
            (&m.queries[0], snapshot.queries.replica),
            (&m.queries[1], snapshot.queries.primary),
            (&m.replica_refused_for_lag, snapshot.queries.refused_for_lag),
            (&m.replica_failures, snapshot.queries.replica_failures),
        ] {
            counter.absolute(value);
        }
        m.healthy_replicas
            .set(snapshot.queries.healthy_replicas as f64);
        if let Some(redis) = &snapshot.redis {
            for (counter, value) in [
                (&m.redis_calls[0], redis.hits),
                (&m.redis_calls[1], redis.misses),
                (&m.redis_calls[2], redis.errors),
                (&m.redis_calls[3], redis.skipped),
                (&m.redis_breaker_opened, redis.breaker_opened),
            ] {
                counter.absolute(value);
            }
            m.redis_breaker_open
                .set(if redis.breaker == "closed" { 0.0 } else { 1.0 });
        }
        m.hit_rate.set(snapshot.hit_rate);
        m.entries.set(snapshot.entries as f64);
        m.bytes.set(snapshot.bytes as f64);
        m.last_invalidation.set(
            snapshot
                .last_invalidation_at
                .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0),
        );
        m.handle.render()
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
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn metrics_give_latencies_as_histograms_in_seconds() {
        let s = Stats::default();
        for ms in 1..=100 {
            s.record(true, Duration::from_millis(ms));
        }
        s.record(false, Duration::from_millis(2000));
        let text = s.prometheus(&s.snapshot(0, 0, 0));
        let lines = lines(&text);
        for line in [
            "# TYPE widget_data_answer_duration_seconds histogram",
            r#"widget_data_answer_duration_seconds_bucket{cached="true",le="0.05"} 50"#,
            r#"widget_data_answer_duration_seconds_bucket{cached="true",le="0.1"} 100"#,
            r#"widget_data_answer_duration_seconds_bucket{cached="true",le="+Inf"} 100"#,
            r#"widget_data_answer_duration_seconds_count{cached="true"} 100"#,
            r#"widget_data_answer_duration_seconds_bucket{cached="false",le="1"} 0"#,
            r#"widget_data_answer_duration_seconds_bucket{cached="false",le="2.5"} 1"#,
            r#"widget_data_answer_duration_seconds_sum{cached="false"} 2"#,
        ] {
            assert!(lines.contains(&line), "{line} missing from\n{text}");
        }
        // Windowed figures can't be summed across instances: none are shown.
        assert!(!text.contains("p95") && !text.contains("mean"), "{text}");
    }

    #[test]
    fn metrics_show_the_counts_the_stats_endpoint_shows() {
        let s = Stats::default();
        s.hits.fetch_add(3, Relaxed);
        s.misses.fetch_add(1, Relaxed);
        s.invalidated();
        let text = s.prometheus(&s.snapshot(7, 1024, 2));
        let lines = lines(&text);
        for line in [
            "# TYPE widget_data_cache_hits_total counter",
            "widget_data_cache_hits_total 3",
            "widget_data_cache_misses_total 1",
            "widget_data_cache_coalesced_total 0",
            "widget_data_cache_evictions_total 2",
            "widget_data_cache_invalidations_total 1",
            r#"widget_data_cache_level_hits_total{level="memory"} 3"#,
            r#"widget_data_cache_level_hits_total{level="redis"} 0"#,
            "widget_data_cache_warmed_total 0",
            "widget_data_cache_hit_rate 0.75",
            "# TYPE widget_data_cache_entries gauge",
            "widget_data_cache_entries 7",
            "widget_data_cache_bytes 1024",
        ] {
            assert!(lines.contains(&line), "{line} missing from\n{text}");
        }
        // Counted on: a second scrape after more hits.
        s.hits.fetch_add(1, Relaxed);
        let text = s.prometheus(&s.snapshot(7, 1024, 2));
        assert!(
            text.lines().any(|l| l == "widget_data_cache_hits_total 4"),
            "{text}"
        );
    }

    #[test]
    fn each_stats_counts_for_itself() {
        // As every App in one process (the tests') has its own.
        let (a, b) = (Stats::default(), Stats::default());
        a.hits.fetch_add(5, Relaxed);
        a.record(true, Duration::from_millis(1));
        let text = b.prometheus(&b.snapshot(0, 0, 0));
        let lines = lines(&text);
        assert!(lines.contains(&"widget_data_cache_hits_total 0"), "{text}");
        assert!(
            !text.contains(r#"_count{cached="true"} 1"#),
            "a's answer counted in b:\n{text}"
        );
    }
}
