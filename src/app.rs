//! `App`: the service's components, made once at start and shared by every
//! request: configuration, the callers' database, the schema, the cache,
//! the pipeline, the dashboard tables, the JWT verifier and the rate
//! limiter. It holds them and starts the background tasks; the work is
//! done by each component's own module.

use crate::auth::JwtVerifier;
use crate::bundles::fetch::{FetchPolicy, Fetcher};
use crate::bundles::store::Blobs;
use crate::bundles::{self, Bundles, PinnedCopies};
use crate::cache::Cache;
use crate::config::Config;
use crate::dashboards::Dashboards;
use crate::db::Health;
use crate::exec::{Database, Replicas};
use crate::listener::Listener;
use crate::pipeline::{self, Lifetimes, Warmed};
use crate::plan::Limits;
use crate::rate_limit::RateLimiter;
use crate::schema::{self, SchemaCache};
use crate::shared::Redis;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Connections of the service's own pool (the durable cache level, the
/// listener, watching, the purge, readiness): a few, apart from callers'.
const OWN_POOL_SIZE: u32 = 6;

pub struct App {
    pub config: Config,
    /// Callers' queries: their pool, query slots and the breaker.
    pub db: Arc<Database>,
    /// The service's own work, never as a caller.
    pub pool: PgPool,
    pub schema: Arc<schema::Handle>,
    pub cache: Arc<Cache>,
    /// `POST /functions/v1/widget-data`'s queries.
    pub pipeline: pipeline::Context,
    /// `/rest/v1` and the action form.
    pub dashboards: Dashboards,
    /// Widget bundles: registry, pinned copies, re-verification.
    pub bundles: Arc<Bundles>,
    pub rate_limiter: RateLimiter,
    /// The Redis instances share (`REDIS_URL`; `None`: none). A URL the
    /// client refuses fails `new`; an unreachable server does not.
    pub redis: Option<Arc<Redis>>,
    pub jwt: JwtVerifier,
    pub limits: Limits,
}

impl App {
    /// Loads the schema cache; fails when the database cannot be read or
    /// the bundle store cannot be opened. `pool` serves callers' queries;
    /// the service's own work gets a small pool of its own on the same
    /// database.
    pub async fn new(config: Config, pool: PgPool) -> anyhow::Result<Arc<Self>> {
        let schema = Arc::new(
            schema::Handle::load(
                &pool,
                config.exposed_schemas.clone(),
                crate::rest::SCHEMA,
                crate::rest::TABLES,
            )
            .await?,
        );
        let own = crate::db::sibling(&pool, OWN_POOL_SIZE);
        let replicas = Replicas::new(&config.fleet.read_urls, config.db_pool_size)?;
        let db = Arc::new(Database::new(
            pool,
            Arc::new(Health::default()),
            config.query_timeout,
            config.max_queries_per_caller,
            Arc::new(replicas),
        ));
        let limits = Limits {
            default_limit: 1000.min(config.max_rows),
            max_rows: config.max_rows,
        };
        let redis = match &config.fleet.redis_url {
            Some(url) => {
                Some(Redis::start(url, config.fleet.redis_timeout).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        let mut cache = Cache::new(
            usize::try_from(config.cache_memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            own.clone(),
        );
        if let Some(redis) = &redis {
            cache = cache.with_redis(Arc::clone(redis), config.fleet.redis_max_ttl_secs);
        }
        if config.fleet.warming_workers > 0 {
            cache = cache.with_warming(config.fleet.warm_window_secs);
        }
        let cache = Arc::new(cache);
        let bundles = Arc::new(Bundles {
            db: Arc::clone(&db),
            pool: own.clone(),
            fetcher: Fetcher::new(FetchPolicy {
                max_bytes: config.bundles.max_bytes,
                timeout: config.bundles.fetch_timeout,
                max_redirects: FetchPolicy::DEFAULT_MAX_REDIRECTS,
                allow_hosts: config.bundles.allow_hosts.clone(),
            }),
            blobs: Blobs::open(&config.bundles.store)?,
            pinned: PinnedCopies::new(config.bundles.memory_mb.saturating_mul(1 << 20)),
            settings: bundles::Settings {
                auto_approve: config.bundles.auto_approve,
                verify_interval: config.bundles.verify_interval,
                quarantine_on_drift: config.bundles.quarantine_on_drift,
            },
            drifts: cache.stats.counter(
                "widget_data_bundle_drifts_total",
                "Re-verifications that found other bytes at a bundle's origin than the pinned ones.",
            ),
            unreachable: cache.stats.counter(
                "widget_data_bundle_unreachable_total",
                "Re-verifications that could not reach a bundle's origin.",
            ),
        });
        Ok(Arc::new(Self {
            bundles,
            pipeline: pipeline::Context::new(
                Arc::clone(&db),
                Arc::clone(&schema),
                Arc::clone(&cache),
                limits,
                Lifetimes {
                    default_secs: config.cache_default_ttl_secs,
                    max_secs: config.cache_max_ttl_secs,
                },
            ),
            dashboards: Dashboards {
                db: Arc::clone(&db),
                schema: Arc::clone(&schema),
                limits,
                max_ttl_secs: config.cache_max_ttl_secs,
                max_bulk_rows: config.rest_max_bulk_rows,
                quotas: config.quotas,
            },
            rate_limiter: RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst)
                .fleet_wide(redis.clone()),
            redis,
            jwt: JwtVerifier::new(
                &config.jwt_secret,
                &config.jwt_audience,
                &config.jwt_role_claim,
            ),
            limits,
            db,
            schema,
            cache,
            config,
            pool: own,
        }))
    }

    /// Every cache figure, with where widget queries ran.
    pub fn snapshot(&self) -> crate::cache::Snapshot {
        let mut snapshot = self.cache.snapshot();
        let r = self.db.replicas().figures();
        snapshot.queries = crate::cache::QueryFigures {
            replica: r.on_replicas,
            primary: r.on_primary,
            refused_for_lag: r.refused_for_lag,
            replica_failures: r.failures,
            replicas: r.replicas,
            healthy_replicas: r.healthy,
        };
        snapshot
    }

    /// The current schema cache (cheap: one `Arc` clone).
    pub fn schema(&self) -> Arc<SchemaCache> {
        self.schema.schema()
    }

    /// Installs change tracking on new tables, then reloads the schema.
    pub async fn reload_schema(&self) -> Result<(), sqlx::Error> {
        crate::listener::reload_schema(&self.pool, &self.schema, &self.cache).await
    }

    /// Listens until the process ends for schema reloads, data changes and
    /// other instances' entries (see `listener`).
    pub fn spawn_listener(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        Listener {
            pool: self.pool.clone(),
            schema: Arc::clone(&self.schema),
            cache: Arc::clone(&self.cache),
            bundles: Arc::clone(&self.bundles),
            health: Arc::clone(self.db.health()),
        }
        .spawn()
    }

    /// Cache warming: after each change heard, computes again the entries
    /// of the changed table read within `CACHE_WARM_WINDOW_SECS`, at most
    /// `CACHE_WARMING_WORKERS` at once (none when that is 0).
    pub fn spawn_warming(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let workers = self.config.fleet.warming_workers;
        if workers == 0 {
            return None;
        }
        let app = Arc::clone(self);
        Some(tokio::spawn(async move {
            let Some(mut changed) = app.cache.changed_tables().await else {
                return;
            };
            let slots = Arc::new(tokio::sync::Semaphore::new(workers));
            while let Some(table) = changed.recv().await {
                for recipe in app.cache.due(&table) {
                    let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                        return;
                    };
                    let (app, table) = (Arc::clone(&app), table.clone());
                    tokio::spawn(async move {
                        let stats = &app.cache.stats;
                        match app.pipeline.warm(&recipe).await {
                            Ok(Warmed::Computed) => stats.warmed.fetch_add(1, Relaxed),
                            Ok(Warmed::Elsewhere) => stats.warmed_elsewhere.fetch_add(1, Relaxed),
                            Ok(Warmed::Present | Warmed::Unkeyed) => 0,
                            Err(e) => {
                                tracing::debug!(error = %e, table, "warming an entry failed");
                                stats.warm_failures.fetch_add(1, Relaxed)
                            }
                        };
                        drop(slot);
                    });
                }
            }
        }))
    }

    /// Re-fetches approved bundle versions' origins every
    /// `BUNDLE_VERIFY_INTERVAL_SECS` (none when it is 0).
    pub fn spawn_bundle_verification(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        bundles::verify::spawn(Arc::clone(&self.bundles))
    }

    /// Probes the database whenever a request suspects it is gone, and
    /// keeps probing while it is (see `db::health`).
    pub fn spawn_probe(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let health = Arc::clone(self.db.health());
        let options = (*self.pool.connect_options()).clone();
        tokio::spawn(crate::db::health::probe(health, options))
    }

    /// Probes each read replica (`DATABASE_READ_URLS`): at once, when a
    /// read found it failing, and every so often (see `exec::replicas`).
    pub fn spawn_replica_probes(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        self.db.replicas().spawn_probes()
    }

    /// Forgets the rate-limit state of callers gone quiet, every 10 s.
    pub fn spawn_rate_limit_cleanup(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            loop {
                every.tick().await;
                app.rate_limiter.forget_idle();
            }
        })
    }

    /// Every minute, deletes the cache table's expired and unreachable
    /// rows, then the least recently used past `CACHE_TABLE_MAX_MB`.
    /// Samples the figures for their history (the admin page's chart)
    /// every [`crate::cache::HISTORY_EVERY`].
    pub fn spawn_history(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::cache::HISTORY_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is at once: it sets the baseline.
            loop {
                every.tick().await;
                let stats = &app.cache.stats;
                stats.history.sample(chrono::Utc::now(), stats.totals());
            }
        })
    }

    /// Saved widgets with an unexpired entry in the cache table, which
    /// every instance shares; `None` when the database cannot say within
    /// a second.
    pub async fn active_widgets(&self) -> Option<u64> {
        match tokio::time::timeout(Duration::from_secs(1), self.cache.active_widgets()).await {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "could not count the active widgets");
                None
            }
            Err(_) => None,
        }
    }

    pub fn spawn_purge(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let max_bytes =
                    i64::try_from(app.config.cache_table_max_mb.saturating_mul(1 << 20))
                        .unwrap_or(i64::MAX);
                match app.cache.purge(max_bytes).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "cache rows purged"),
                    Err(e) => tracing::warn!(error = %e, "cache purge failed"),
                }
            }
        })
    }
}
