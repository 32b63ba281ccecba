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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedPostgres;
    use sqlx::{Connection, PgConnection};

    #[tokio::test]
    async fn migrations_apply_to_several_databases_of_one_cluster_and_seed_once() {
        let dir = std::env::temp_dir().join(format!("widget-data-db-{}", std::process::id()));
        // Also proves the URL form: sqlx connects over the unix socket.
        let _ = std::fs::remove_dir_all(&dir);
        let pg = EmbeddedPostgres::start(&dir).await.unwrap();
        let mut admin = PgConnection::connect(&pg.url("postgres")).await.unwrap();
        for db in ["one", "two"] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut admin)
                .await
                .unwrap();
            let pool = connect(&pg.url(db), 2).await.unwrap();
            assert!(!is_ready(&pool).await.unwrap(), "not migrated yet");
            migrate(&pool).await.unwrap();
            migrate(&pool).await.unwrap();
            assert!(is_ready(&pool).await.unwrap());
            pool.close().await;
        }
        let pool = connect(&pg.url("one"), 2).await.unwrap();
        assert!(seed(&pool).await.unwrap());
        assert!(!seed(&pool).await.unwrap(), "a second seed does nothing");
        let servers: i64 = sqlx::query_scalar("SELECT count(*) FROM servers")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(servers, 5000);
        let statuses: i64 = sqlx::query_scalar("SELECT count(DISTINCT status) FROM servers")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(statuses, 4);
        let widgets: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM app.dashboard_widgets WHERE owner_id = $1::uuid",
        )
        .bind(DEMO_USER_ID)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(widgets, 4);

        let mut tx = pool.begin().await.unwrap();
        let (_, uid): (String, Option<String>) =
            sqlx::query_as("SELECT set_config('request.jwt.claims', $1, true), auth.uid()::text")
                .bind(format!(r#"{{"sub":"{DEMO_USER_ID}"}}"#))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(uid.as_deref(), Some(DEMO_USER_ID));
        let (_, uid): (String, Option<String>) =
            sqlx::query_as("SELECT set_config('request.jwt.claims', '{\"sub\":\"not-a-uuid\"}', true), auth.uid()::text")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(uid, None);
        for claims in ["", "{}", r#"{"sub":null}"#, r#"{"role":"anon"}"#] {
            let uid: Option<String> = sqlx::query_scalar(
                "SELECT auth.uid()::text FROM (SELECT set_config('request.jwt.claims', $1, true)) s",
            )
            .bind(claims)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            assert_eq!(uid, None, "claims {claims:?}");
        }
        tx.rollback().await.unwrap();
        // Never set in this session at all.
        let uid: Option<String> = sqlx::query_scalar("SELECT auth.uid()::text")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(uid, None);

        // Grants and row-level security, as the service uses them.
        let other = r#"{"sub":"9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a","role":"authenticated"}"#;
        let demo = format!(r#"{{"sub":"{DEMO_USER_ID}","role":"authenticated"}}"#);
        let count = |role: &'static str, claims: String, table: &'static str| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
                    .bind(claims)
                    .execute(&mut *tx)
                    .await?;
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT count(*) FROM {table}"
                )))
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                Ok::<i64, sqlx::Error>(n)
            }
        };
        assert_eq!(
            count("authenticated", demo.clone(), "app.dashboard_widgets")
                .await
                .unwrap(),
            4
        );
        assert_eq!(
            count("authenticated", other.into(), "app.dashboard_widgets")
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            count("authenticated", demo.clone(), "app.dashboards")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            count("service_role", "{}".into(), "app.dashboards")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            count("anon", "{}".into(), "public.servers").await.unwrap(),
            5000
        );
        assert!(
            count("anon", "{}".into(), "app.dashboards").await.is_err(),
            "anon: no grant"
        );
        assert!(
            count("authenticated", demo, "app.widget_data_cache")
                .await
                .is_err(),
            "the cache is the service's own"
        );
        pool.close().await;
        admin.close().await.unwrap();
        pg.stop().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
