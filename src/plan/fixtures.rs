//! Fixtures of the planner's tests and of the SQL stage's: a schema
//! cache with every column type, and data sources from JSON.

use super::*;
use crate::schema::{Column, RelationKind, Table};
use serde_json::Value as Json;

pub fn col(name: &str, pg_type: &str) -> Column {
    Column {
        name: name.into(),
        pg_type: pg_type.into(),
        kind: ColumnKind::from_pg_type(pg_type),
        nullable: true,
    }
}

pub fn schema() -> SchemaCache {
    let servers = Table {
        schema: "public".into(),
        name: "servers".into(),
        kind: RelationKind::Table,
        rls_enabled: false,
        reads: vec![("public".into(), "servers".into())],
        change_tracked: true,
        grants: Default::default(),
        unique_keys: vec![],
        columns: vec![
            col("id", "int8"),
            col("hostname", "text"),
            col("status", "text"),
            col("region", "text"),
            col("cpu_pct", "float8"),
            col("memory_mb", "int4"),
            col("price", "numeric"),
            col("active", "bool"),
            col("owner", "uuid"),
            col("created_at", "timestamptz"),
            col("seen", "timestamp"),
            col("day", "date"),
            col("meta", "jsonb"),
            col("tags", "_text"),
            col("we\"ird", "text"),
        ],
    };
    let notes = Table {
        schema: "public".into(),
        name: "notes".into(),
        kind: RelationKind::Table,
        rls_enabled: true,
        reads: vec![("public".into(), "notes".into())],
        change_tracked: true,
        grants: Default::default(),
        unique_keys: vec![],
        columns: vec![col("id", "int4"), col("body", "text")],
    };
    SchemaCache::new(vec!["public".into()], [servers, notes])
}

pub fn source(json: Json) -> DataSource {
    serde_json::from_value(json).expect("a well-formed data source")
}

pub fn try_plan(json: Json) -> Result<QueryPlan, PlanError> {
    plan(&source(json), &[], &schema(), &Limits::default())
}
