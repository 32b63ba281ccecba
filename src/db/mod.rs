//! Connecting to PostgreSQL, applying `migrations/` and loading `seed/`.
//!
//! Takes a connection URL; gives a pool with the schema in place. Runs
//! only fixed SQL that ships with the binary.

pub mod health;

pub use health::{DatabaseState, Health};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

/// The seeded demo user, owner of the demo dashboard.
pub const DEMO_USER_ID: &str = "5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
const SEED: &str = include_str!("../../seed/seed.sql");

/// How long start-up, background jobs and tests wait for a pooled
/// connection. Requests wait less: their own deadline cuts every wait short.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of at most `max_connections`, connected once to check the URL.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    options(max_connections).connect(url).await
}

/// A pool of at most `max_connections` that connects on first use: for
/// read replicas, which may be down when we start. Fails only on a URL
/// that cannot be parsed.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    options(max_connections).connect_lazy(url)
}

/// A second pool on the same database as `pool`, connecting on demand:
/// the service's own work (the durable cache level, the listener, the
/// purge) never waits behind callers' queries, nor they behind it.
pub fn sibling(pool: &PgPool, max_connections: u32) -> PgPool {
    options(max_connections).connect_lazy_with((*pool.connect_options()).clone())
}

fn options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

/// Applies `migrations/` (embedded at build time); a no-op when current.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Loads the sample data unless `servers` already has rows; says whether
/// it inserted anything.
pub async fn seed(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM public.servers")
        .fetch_one(pool)
        .await?;
    if before > 0 {
        return Ok(false);
    }
    sqlx::raw_sql(SEED).execute(pool).await?;
    Ok(true)
}

/// The database answers and the newest embedded migration is applied
/// (false, not an error, on a database that was never migrated).
pub async fn is_ready(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let newest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !migrated {
        return Ok(false);
    }
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(applied.is_some_and(|v| v >= newest))
}
