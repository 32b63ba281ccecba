//! Fixtures of the PostgREST subset's tests and of its SQL's: the
//! widgets table, and query strings.

use crate::schema::{Column, ColumnKind, RelationKind, Table, UniqueKey};

pub fn widgets() -> Table {
    let col = |name: &str, pg_type: &str| Column {
        name: name.into(),
        pg_type: pg_type.into(),
        kind: ColumnKind::from_pg_type(pg_type),
        nullable: !matches!(name, "id" | "dashboard_id" | "title"),
    };
    Table {
        schema: "app".into(),
        name: "dashboard_widgets".into(),
        kind: RelationKind::Table,
        rls_enabled: true,
        reads: vec![],
        change_tracked: false,
        grants: Default::default(),
        unique_keys: vec![UniqueKey {
            columns: vec!["id".into()],
            primary: true,
        }],
        columns: vec![
            col("id", "uuid"),
            col("dashboard_id", "uuid"),
            col("title", "text"),
            col("data_source", "jsonb"),
            col("refresh_interval", "int4"),
            col("updated_at", "timestamptz"),
        ],
    }
}

pub fn params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}
