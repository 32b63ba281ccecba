//! `App`: the state every request shares (pool, schema cache, JWT verifier,
//! configuration), and the task that keeps the schema cache current.

use crate::auth::JwtVerifier;
use crate::cache::{self, Cache};
use crate::config::Config;
use crate::db::Health;
use crate::exec::Database;
use crate::plan::Limits;
use crate::rate_limit::RateLimiter;
use crate::schema::{self, SchemaCache, Table};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Connections of the service's own pool (the durable cache level, the
/// listener, watching, the purge, readiness): a few, apart from callers'.
const OWN_POOL_SIZE: u32 = 6;

pub struct App {
    pub config: Config,
    /// Callers' queries: their pool, query slots and the breaker.
    pub db: Database,
    /// The service's own work, never as a caller.
    pub pool: PgPool,
    pub rate_limiter: RateLimiter,
    pub jwt: JwtVerifier,
    pub limits: Limits,
    pub cache: Cache,
    /// Plans of recent ad-hoc request bodies.
    pub plans: crate::pipeline::Plans,
    /// Saved widgets as last loaded, for stale-if-error.
    pub widget_definitions: crate::widgets::Remembered,
    schema: RwLock<Arc<SchemaCache>>,
    /// The dashboard tables served at `/rest/v1`.
    rest_tables: RwLock<Arc<HashMap<String, Arc<Table>>>>,
}

impl App {
    /// Loads the schema cache; fails when the database cannot be read.
    /// `pool` serves callers' queries; the service's own work gets a small
    /// pool of its own on the same database.
    pub async fn new(config: Config, pool: PgPool) -> Result<Arc<Self>, sqlx::Error> {
        let schema = schema::load(&pool, &config.exposed_schemas).await?;
        let rest_tables = load_rest_tables(&pool).await?;
        let own = crate::db::sibling(&pool, OWN_POOL_SIZE);
        Ok(Arc::new(Self {
            db: Database::new(
                pool,
                Arc::new(Health::default()),
                config.query_timeout,
                config.max_queries_per_caller,
            ),
            rate_limiter: RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst),
            jwt: JwtVerifier::new(
                &config.jwt_secret,
                &config.jwt_audience,
                &config.jwt_role_claim,
            ),
            limits: Limits {
                default_limit: 1000.min(config.max_rows),
                max_rows: config.max_rows,
            },
            schema: RwLock::new(Arc::new(schema)),
            rest_tables: RwLock::new(Arc::new(rest_tables)),
            cache: Cache::new(
                usize::try_from(config.cache_memory_mb.saturating_mul(1 << 20))
                    .unwrap_or(usize::MAX),
                own.clone(),
            ),
            plans: Default::default(),
            widget_definitions: Default::default(),
            config,
            pool: own,
        }))
    }

    /// The current schema cache (cheap: one `Arc` clone).
    pub fn schema(&self) -> Arc<SchemaCache> {
        Arc::clone(&self.schema.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A table served at `/rest/v1`, by name.
    pub fn rest_table(&self, name: &str) -> Option<Arc<Table>> {
        self.rest_tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Installs change tracking on new tables, then reloads the cache.
    pub async fn reload_schema(&self) -> Result<(), sqlx::Error> {
        match schema::track_changes(&self.pool, &self.config.exposed_schemas).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tables = n, "change tracking installed"),
            // Not fatal: untracked tables are simply never cached.
            Err(e) => tracing::warn!(error = %e, "could not install change tracking"),
        }
        let fresh = schema::load(&self.pool, &self.config.exposed_schemas).await?;
        // Before the new schema is used: a permission change must never
        // be planned under and keyed with the old digest.
        self.cache
            .versions
            .set_permissions(schema::permissions(&self.pool).await?);
        tracing::info!(tables = fresh.len(), "schema cache loaded");
        *self.schema.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        let rest = load_rest_tables(&self.pool).await?;
        *self.rest_tables.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rest);
        Ok(())
    }

    /// Listens until the process ends for `NOTIFY widget_data, 'reload
    /// schema'` and for the data changes the cache keys depend on. While
    /// not listening nothing is cached; after a lost connection the schema
    /// is reloaded and every data version renewed, since notifications may
    /// have been missed meanwhile.
    pub fn spawn_listener(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = app.listen_once().await {
                    tracing::warn!(error = %e, "listener lost its connection; retrying");
                }
                // Perhaps the database went away: let the probe look.
                app.db.health().suspect();
                app.cache.versions.suspend();
                // Its watch locks ended with the session.
                app.cache.watch.forget();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    /// Probes the database whenever a request suspects it is gone, and
    /// keeps probing while it is (see `db::health`).
    pub fn spawn_probe(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let health = Arc::clone(self.db.health());
        let options = (*self.pool.connect_options()).clone();
        tokio::spawn(crate::db::health::probe(health, options))
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

    async fn listen_once(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([
                schema::RELOAD_CHANNEL,
                cache::CHANGES_CHANNEL,
                cache::ENTRIES_CHANNEL,
            ])
            .await?;
        // Anything may have changed while we were not listening.
        self.reload_schema().await?;
        // A number no write and no other session will ever carry: entries
        // of an earlier session were made under watches that ended with
        // it, and writes since went unannounced, so none of them may be
        // reachable from this one (an equal base would revive them).
        let session: i64 = sqlx::query_scalar("SELECT nextval('app.data_version')")
            .fetch_one(&self.pool)
            .await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut listener)
            .await?;
        self.cache.watch.forget();
        self.cache.versions.reset(session);
        let mut requests = self.cache.watch.inbox().await;
        loop {
            // Notifications first: a change heard ends a watch before a
            // later request starts the next one.
            let request = tokio::select! {
                biased;
                n = listener.try_recv() => {
                    let Some(n) = n? else {
                        return Ok(()); // connection lost: reconnect and renew
                    };
                    self.notified(&mut listener, &n).await?;
                    continue;
                }
                Some(request) = requests.recv() => request,
            };
            self.cache.watch.serve(&mut listener, pid, request).await?;
        }
    }

    async fn notified(
        &self,
        listener: &mut PgListener,
        n: &sqlx::postgres::PgNotification,
    ) -> Result<(), sqlx::Error> {
        if n.channel() == cache::ENTRIES_CHANNEL {
            self.cache.entry_announced(n.payload());
        } else if n.channel() == cache::CHANGES_CHANNEL {
            if let Some(table) = self.cache.versions.apply(n.payload()) {
                self.cache.stats.invalidated();
                self.cache.watch.changed(listener, &table).await?;
            }
        } else if n.payload() == schema::RELOAD_PAYLOAD {
            self.reload_schema().await?;
        }
        Ok(())
    }
}

/// The dashboard tables' columns, from the catalogs like any other table.
async fn load_rest_tables(pool: &PgPool) -> Result<HashMap<String, Arc<Table>>, sqlx::Error> {
    let app_schema = schema::load(pool, &[crate::rest::SCHEMA.to_owned()]).await?;
    Ok(app_schema
        .tables()
        .filter(|t| crate::rest::TABLES.contains(&t.name.as_str()))
        .map(|t| (t.name.clone(), Arc::new(t.clone())))
        .collect())
}
