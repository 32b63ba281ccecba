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

/// What a key was made of, kept beside its row so the purge can tell when
/// a data or permission change made the row unreachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `schema.table` of every table read, with its version then.
    pub tables: Vec<String>,
    pub versions: Vec<String>,
    pub permissions: String,
}

/// A fresh entry for `key`, if another instance (or an earlier run) stored
/// one; marks it used.
pub async fn load(pool: &PgPool, key: &Key) -> Result<Option<Entry>, sqlx::Error> {
    let row: Option<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE app.widget_data_cache SET last_used_at = now() \
         WHERE cache_key = $1 AND expires_at > now() \
         RETURNING data::text, cached_at, expires_at",
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
    stamp: &Stamp,
    announce: &str,
    widget: Option<Uuid>,
    entry: &Entry,
) -> Result<(), sqlx::Error> {
    let key = key.to_string();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO app.widget_data_cache (cache_key, widget_instance_id, data, cached_at, \
           expires_at, bytes, last_used_at, tables, versions, permissions) \
         VALUES ($1, $2, $3::json, $4, $5, octet_length($3), now(), $6, $7, $8) \
         ON CONFLICT (cache_key) DO UPDATE SET widget_instance_id = excluded.widget_instance_id, \
           data = excluded.data, cached_at = excluded.cached_at, expires_at = excluded.expires_at, \
           bytes = excluded.bytes, last_used_at = excluded.last_used_at, tables = excluded.tables, \
           versions = excluded.versions, permissions = excluded.permissions",
    )
    .bind(&key)
    .bind(widget)
    .bind(entry.data.get())
    .bind(entry.cached_at)
    .bind(entry.expires_at)
    .bind(&stamp.tables)
    .bind(&stamp.versions)
    .bind(&stamp.permissions)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ENTRIES_CHANNEL)
        .bind(announce)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Saved widgets with an unexpired row.
pub async fn active_widgets(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT widget_instance_id) FROM app.widget_data_cache \
         WHERE widget_instance_id IS NOT NULL AND expires_at > now()",
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
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

/// Deletes rows no key can reach any more: made under other permissions
/// than `permissions`, under a version of the older scheme, or reading a
/// table at a version numbered below a change heard since (`heard`:
/// `(table, highest change number)`; versions only grow).
pub async fn purge_superseded(
    pool: &PgPool,
    heard: &[(String, u64)],
    permissions: &str,
) -> Result<u64, sqlx::Error> {
    let (tables, numbers): (Vec<&str>, Vec<i64>) = heard
        .iter()
        .map(|(t, n)| (t.as_str(), i64::try_from(*n).unwrap_or(i64::MAX)))
        .unzip();
    Ok(sqlx::query(
        "DELETE FROM app.widget_data_cache c \
         WHERE c.permissions <> $3 \
            OR EXISTS (SELECT 1 FROM unnest(c.versions) AS r(v) WHERE r.v !~ '^[0-9]+\\.[0-9]+$') \
            OR EXISTS (SELECT 1 FROM unnest(c.tables, c.versions) AS r(t, v) \
                       JOIN unnest($1::text[], $2::bigint[]) AS cur(t, n) ON cur.t = r.t \
                       WHERE CASE WHEN r.v ~ '^[0-9]+\\.[0-9]+$' \
                             THEN split_part(r.v, '.', 2)::bigint < cur.n END)",
    )
    .bind(&tables)
    .bind(&numbers)
    .bind(permissions)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes the least recently used rows until the rows' data takes at
/// most `max_bytes`.
pub async fn evict(pool: &PgPool, max_bytes: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM app.widget_data_cache WHERE cache_key IN ( \
           SELECT cache_key FROM ( \
             SELECT cache_key, sum(bytes) OVER (ORDER BY last_used_at DESC, cache_key) AS kept \
             FROM app.widget_data_cache) s \
           WHERE kept > $1)",
    )
    .bind(max_bytes)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Claims the warming of `key` for the instance that asks: true for the
/// first to ask since the claim was made (claims last ten minutes, then
/// the purge forgets them).
pub async fn claim(pool: &PgPool, key: &Key) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO app.widget_data_warming (cache_key) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(key.to_string())
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Forgets warming claims older than ten minutes; returns how many.
pub async fn purge_claims(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM app.widget_data_warming WHERE claimed_at < now() - interval '10 minutes'",
    )
    .execute(pool)
    .await?
    .rows_affected())
}
