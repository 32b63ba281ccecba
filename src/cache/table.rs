//! The durable level: `app.widget_data_cache`, shared by every instance on
//! the database. Written and read as the service's own login role, never as
//! a caller (callers have no grants on it). Fixed SQL only.

use super::Entry;
use super::key::Key;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::PgPool;
use uuid::Uuid;

/// Announces a stored entry so other instances drop their memory copy.
pub const ENTRIES_CHANNEL: &str = "widget_data_entries";

/// A fresh entry for `key`, if another instance (or an earlier run) stored one.
pub async fn load(pool: &PgPool, key: &Key) -> Result<Option<Entry>, sqlx::Error> {
    let row: Option<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT data::text, cached_at, expires_at FROM app.widget_data_cache \
         WHERE cache_key = $1 AND expires_at > now()",
    )
    .bind(key.to_string())
    .fetch_optional(pool)
    .await?;
    row.map(|(data, cached_at, expires_at)| {
        let data = RawValue::from_string(data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Entry::new(data, cached_at, expires_at))
    })
    .transpose()
}

/// Stores (or replaces) the entry and tells the other instances
/// (`announce` is `<instance>:<key>`).
pub async fn store(
    pool: &PgPool,
    key: &Key,
    announce: &str,
    widget: Option<Uuid>,
    entry: &Entry,
) -> Result<(), sqlx::Error> {
    let key = key.to_string();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO app.widget_data_cache (cache_key, widget_instance_id, data, cached_at, expires_at) \
         VALUES ($1, $2, $3::json, $4, $5) \
         ON CONFLICT (cache_key) DO UPDATE SET widget_instance_id = excluded.widget_instance_id, \
           data = excluded.data, cached_at = excluded.cached_at, expires_at = excluded.expires_at",
    )
    .bind(&key)
    .bind(widget)
    .bind(entry.data.get())
    .bind(entry.cached_at)
    .bind(entry.expires_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ENTRIES_CHANNEL)
        .bind(announce)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Deletes expired rows; returns how many.
pub async fn purge(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM app.widget_data_cache WHERE expires_at <= now()")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
