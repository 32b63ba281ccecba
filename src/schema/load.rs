//! Loads the schema cache from PostgreSQL's catalogs.
//!
//! Takes a pool and the exposed schema names; gives a `SchemaCache`. Reads
//! catalogs only.

use super::{Column, ColumnKind, Grants, RelationKind, SchemaCache, Table, UniqueKey};
use sqlx::PgPool;
use std::collections::HashMap;

/// `NOTIFY widget_data, 'reload schema'` reloads the cache.
pub const RELOAD_CHANNEL: &str = "widget_data";
pub const RELOAD_PAYLOAD: &str = "reload schema";

const QUERY: &str = r#"
WITH request_roles(r) AS (
  -- those that exist: the privilege functions fail on a role that does not
  SELECT rolname::text FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')
)
SELECT n.nspname::text AS schema,
       c.relname::text AS name,
       c.relkind::text AS relkind,
       c.relrowsecurity AS rls,
       -- a partitioned table's statement triggers miss writes made
       -- straight into its partitions: never tracked
       c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_trigger g
               WHERE g.tgrelid = c.oid AND g.tgname = 'widget_data_changed'
                 AND g.tgfoid = to_regproc('app.announce_data_change')) AS tracked,
       a.attname::text AS column,
       NOT a.attnotnull AS nullable,
       ARRAY(SELECT r FROM request_roles WHERE has_any_column_privilege(r, c.oid, 'SELECT')) AS select,
       ARRAY(SELECT r FROM request_roles WHERE has_any_column_privilege(r, c.oid, 'INSERT')) AS insert,
       ARRAY(SELECT r FROM request_roles WHERE has_any_column_privilege(r, c.oid, 'UPDATE')) AS update,
       ARRAY(SELECT r FROM request_roles WHERE has_table_privilege(r, c.oid, 'DELETE')) AS delete,
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

/// One row of [`QUERY`]: a column of a relation.
#[derive(sqlx::FromRow)]
struct ColumnRow {
    schema: String,
    name: String,
    relkind: String,
    rls: bool,
    tracked: bool,
    column: String,
    nullable: bool,
    select: Vec<String>,
    insert: Vec<String>,
    update: Vec<String>,
    delete: Vec<String>,
    typname: String,
}

/// Every view of the exposed schemas with the relations it reads, through
/// nested views: its rewrite rule's dependencies (`pg_depend`).
const VIEW_BASES: &str = r#"
WITH RECURSIVE deps(view, rel) AS (
  SELECT v.oid, d.refobjid
  FROM pg_class v
  JOIN pg_namespace n ON n.oid = v.relnamespace
  JOIN pg_rewrite r ON r.ev_class = v.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
   AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
  WHERE n.nspname = ANY($1) AND v.relkind = 'v'
  UNION
  SELECT deps.view, d.refobjid
  FROM deps
  JOIN pg_class c ON c.oid = deps.rel AND c.relkind = 'v'
  JOIN pg_rewrite r ON r.ev_class = c.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
   AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid
)
SELECT DISTINCT vn.nspname::text, v.relname::text, bn.nspname::text, b.relname::text,
       b.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_trigger g
               WHERE g.tgrelid = b.oid AND g.tgname = 'widget_data_changed'
                 AND g.tgfoid = to_regproc('app.announce_data_change')) AS tracked
FROM deps
JOIN pg_class v ON v.oid = deps.view JOIN pg_namespace vn ON vn.oid = v.relnamespace
JOIN pg_class b ON b.oid = deps.rel JOIN pg_namespace bn ON bn.oid = b.relnamespace
WHERE b.relkind <> 'v'
"#;

/// The primary keys and unique indexes of the exposed tables that an
/// `ON CONFLICT (<columns>)` can infer: on plain columns only (no
/// expression), not partial (no predicate) and not deferrable (PostgreSQL
/// refuses a deferrable constraint as an arbiter).
const UNIQUE_KEYS: &str = r#"
SELECT n.nspname::text, c.relname::text, i.indisprimary,
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey) WITH ORDINALITY k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             ORDER BY k.pos) AS columns
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1)
  AND i.indisunique AND i.indisvalid AND i.indimmediate
  AND i.indpred IS NULL AND i.indexprs IS NULL
ORDER BY n.nspname, c.relname, NOT i.indisprimary, i.indexrelid
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
    let rows: Vec<ColumnRow> = sqlx::query_as(QUERY).bind(schemas).fetch_all(pool).await?;
    let mut tables: HashMap<(String, String), Table> = HashMap::new();
    for ColumnRow {
        schema,
        name,
        relkind,
        rls,
        tracked,
        column,
        nullable,
        select,
        insert,
        update,
        delete,
        typname,
    } in rows
    {
        let table = tables
            .entry((schema.clone(), name.clone()))
            .or_insert_with(|| {
                let kind = if relkind == "r" || relkind == "p" || relkind == "f" {
                    RelationKind::Table
                } else {
                    RelationKind::View
                };
                Table {
                    reads: match relkind.as_str() {
                        "r" | "p" => vec![(schema.clone(), name.clone())],
                        _ => Vec::new(), // views: below; others: unknown
                    },
                    schema,
                    name,
                    rls_enabled: rls || kind == RelationKind::View,
                    kind,
                    change_tracked: tracked,
                    columns: Vec::new(),
                    grants: Grants {
                        select,
                        insert,
                        update,
                        delete,
                    },
                    unique_keys: Vec::new(),
                }
            });
        table.columns.push(Column {
            name: column,
            kind: ColumnKind::from_pg_type(&typname),
            pg_type: typname,
            nullable,
        });
    }
    let bases: Vec<(String, String, String, String, bool)> = sqlx::query_as(VIEW_BASES)
        .bind(schemas)
        .fetch_all(pool)
        .await?;
    // view -> (base tables, all of them tracked)
    type Bases = (Vec<(String, String)>, bool);
    let mut views: HashMap<(String, String), Bases> = HashMap::new();
    for (schema, name, base_schema, base_name, tracked) in bases {
        let view = views.entry((schema, name)).or_insert((Vec::new(), true));
        view.0.push((base_schema, base_name));
        view.1 &= tracked;
    }
    for (id, (reads, tracked)) in views {
        if let Some(view) = tables.get_mut(&id)
            && view.kind == RelationKind::View
        {
            view.reads = reads;
            view.change_tracked = tracked;
        }
    }
    let keys: Vec<(String, String, bool, Vec<String>)> = sqlx::query_as(UNIQUE_KEYS)
        .bind(schemas)
        .fetch_all(pool)
        .await?;
    for (schema, name, primary, columns) in keys {
        if let Some(table) = tables.get_mut(&(schema, name)) {
            table.unique_keys.push(UniqueKey { columns, primary });
        }
    }
    Ok(SchemaCache::new(schemas.to_vec(), tables.into_values()))
}

/// Everything that decides what a role may read, as one digest: privileges
/// on schemas, tables and columns, row-level security switches and
/// policies, the functions policies call (`auth`), role memberships and
/// the roles that bypass RLS. Equal on every instance for the same
/// catalogs, so instances keep sharing cache entries; different after any
/// GRANT, REVOKE, policy or RLS change, so no entry outlives the
/// permissions it was computed under.
const PERMISSIONS: &str = r#"
WITH RECURSIVE request_roles(oid) AS (
  SELECT oid FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')
  UNION
  SELECT m.roleid FROM pg_auth_members m JOIN request_roles r ON r.oid = m.member
)
SELECT md5(coalesce(string_agg(x, E'\n' ORDER BY x), '')) FROM (
  SELECT format('schema %s %s', n.oid, n.nspacl) AS x
  FROM pg_namespace n
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
  UNION ALL
  SELECT format('relation %s %s %s %s %s', c.oid, c.relowner, c.relacl, c.relrowsecurity, c.relforcerowsecurity)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
    AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  UNION ALL
  SELECT format('column %s %s %s', a.attrelid, a.attnum, a.attacl)
  FROM pg_attribute a WHERE a.attacl IS NOT NULL
  UNION ALL
  SELECT format('policy %s %s %s %s %s %s %s', p.oid, p.polrelid, p.polcmd, p.polpermissive, p.polroles,
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
  FROM pg_policy p
  UNION ALL
  SELECT format('function %s %s %s', p.oid, p.proacl, md5(p.prosrc))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = 'auth'
  UNION ALL
  -- The roles requests run as, and every role they are members of,
  -- however indirectly (other roles of the cluster change nothing here).
  SELECT format('member %s %s', m.roleid, m.member)
  FROM pg_auth_members m JOIN request_roles r ON r.oid = m.member
  UNION ALL
  SELECT format('role %s %s %s %s', r.oid, r.rolsuper, r.rolbypassrls, r.rolinherit)
  FROM pg_roles r JOIN request_roles q ON q.oid = r.oid
) s
"#;

/// The digest of everything that decides what each role may read (see
/// [`PERMISSIONS`]).
pub async fn permissions(pool: &PgPool) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(PERMISSIONS).fetch_one(pool).await
}
