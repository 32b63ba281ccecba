//! The columns `/rest/v1` documents are the migrated tables' columns: the
//! same names in the same order, types, nullability and defaults (which
//! decide what an insert must give), so the document cannot drift from the
//! schema.

use crate::harness::*;
use widget_data::http::rest_doc::columns::TABLES;

/// (name, type, nullable, has a default) of each column, in the table's
/// order.
type Described = Vec<(String, String, bool, bool)>;

async fn live_columns(pool: &sqlx::PgPool, table: &str) -> Described {
    sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.atthasdef
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(widget_data::rest::SCHEMA)
    .bind(table)
    .fetch_all(pool)
    .await
    .expect("read the catalog")
}

#[tokio::test]
async fn the_documented_columns_are_the_live_schemas() {
    let (pool, _) = fresh_db().await;
    let names: Vec<_> = TABLES.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        widget_data::rest::TABLES,
        "a served table is undocumented"
    );
    for table in TABLES {
        let documented: Described = table
            .columns
            .iter()
            .map(|c| (c.name.into(), c.ty.sql().into(), c.nullable, c.has_default))
            .collect();
        let live = live_columns(&pool, table.name).await;
        let column_names =
            |columns: &Described| columns.iter().map(|c| c.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            column_names(&documented),
            column_names(&live),
            "the columns of {}.{}, in order",
            widget_data::rest::SCHEMA,
            table.name
        );
        for (documented, live) in documented.iter().zip(&live) {
            assert_eq!(
                documented, live,
                "{}.{} (name, type, nullable, has a default): src/http/rest_doc/columns.rs \
                 against the migrations",
                table.name, live.0
            );
        }
    }
}
