//! Loads the schema cache from PostgreSQL's catalogs.
//!
//! Takes a pool and the exposed schema names; gives a `SchemaCache`. Reads
//! catalogs only.

use super::{Column, ColumnKind, RelationKind, SchemaCache, Table};
use sqlx::PgPool;
use std::collections::HashMap;

/// `NOTIFY widget_data, 'reload schema'` reloads the cache.
pub const RELOAD_CHANNEL: &str = "widget_data";
pub const RELOAD_PAYLOAD: &str = "reload schema";

const QUERY: &str = r#"
SELECT n.nspname::text AS schema,
       c.relname::text AS name,
       c.relkind::text AS relkind,
       c.relrowsecurity AS rls,
       EXISTS (SELECT 1 FROM pg_trigger g
               WHERE g.tgrelid = c.oid AND g.tgname = 'widget_data_changed') AS tracked,
       a.attname::text AS column,
       CASE WHEN t.typtype = 'd' THEN bt.typname ELSE t.typname END::text AS typname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
WHERE n.nspname = ANY($1)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  -- sqlx's bookkeeping is not data
  AND c.relname <> '_sqlx_migrations'
ORDER BY n.nspname, c.relname, a.attnum
"#;

/// Installs the change-tracking trigger on the exposed tables that lack it
/// (see migrations/0004); returns how many it installed.
pub async fn track_changes(pool: &PgPool, schemas: &[String]) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT app.install_change_triggers($1)")
        .bind(schemas)
        .fetch_one(pool)
        .await
}

pub async fn load(pool: &PgPool, schemas: &[String]) -> Result<SchemaCache, sqlx::Error> {
    let rows: Vec<(String, String, String, bool, bool, String, String)> =
        sqlx::query_as(QUERY).bind(schemas).fetch_all(pool).await?;
    let mut tables: HashMap<(String, String), Table> = HashMap::new();
    for (schema, name, relkind, rls, tracked, column, typname) in rows {
        let table = tables
            .entry((schema.clone(), name.clone()))
            .or_insert_with(|| Table {
                schema,
                name,
                kind: if relkind == "r" || relkind == "p" || relkind == "f" {
                    RelationKind::Table
                } else {
                    RelationKind::View
                },
                rls_enabled: rls,
                change_tracked: tracked,
                columns: Vec::new(),
            });
        table.columns.push(Column {
            name: column,
            kind: ColumnKind::from_pg_type(&typname),
            pg_type: typname,
        });
    }
    Ok(SchemaCache::new(schemas.to_vec(), tables.into_values()))
}
