//! Plans remembered by the request body that asked for them, so a repeated
//! ad-hoc query skips parsing and planning: most of a cache hit's own work.
//!
//! A plan depends only on the body and the schema cache (never on the
//! caller), so it is reused only while the schema cache it was made from is
//! the current one. Bounded (moka): small bodies only, and the bodies asked
//! for least often go first, since a dashboard sends the same few bodies
//! over and over.

use crate::plan::QueryPlan;
use crate::schema::SchemaCache;
use bytes::Bytes;
use std::sync::Arc;

/// Larger bodies are planned every time.
const MAX_BODY_BYTES: usize = 4096;
const MAX_ENTRIES: u64 = 4096;

/// What a body asked for.
#[derive(Clone)]
pub struct Planned {
    pub plan: Arc<QueryPlan>,
    pub force_refresh: bool,
}

/// A plan, with the schema cache it was made under.
#[derive(Clone)]
struct PlannedUnder {
    schema: Arc<SchemaCache>,
    planned: Planned,
}

pub struct PlansByBody {
    by_body: moka::sync::Cache<Bytes, PlannedUnder>,
}

impl Default for PlansByBody {
    fn default() -> Self {
        Self {
            by_body: moka::sync::Cache::new(MAX_ENTRIES),
        }
    }
}

impl PlansByBody {
    /// The plan `body` gave under `schema`, if remembered.
    pub fn get(&self, body: &[u8], schema: &Arc<SchemaCache>) -> Option<Planned> {
        let r = self.by_body.get(body)?;
        Arc::ptr_eq(&r.schema, schema).then_some(r.planned)
    }

    pub fn remember(&self, body: Bytes, schema: Arc<SchemaCache>, planned: Planned) {
        if body.len() > MAX_BODY_BYTES {
            return;
        }
        self.by_body.insert(body, PlannedUnder { schema, planned });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DataSource, Limits, plan};
    use crate::schema::{Column, ColumnKind, RelationKind, Table};

    fn schema() -> Arc<SchemaCache> {
        let t = Table {
            schema: "public".into(),
            name: "t".into(),
            kind: RelationKind::Table,
            rls_enabled: false,
            reads: vec![("public".into(), "t".into())],
            change_tracked: true,
            grants: Default::default(),
            unique_keys: vec![],
            columns: vec![Column {
                name: "a".into(),
                pg_type: "int4".into(),
                kind: ColumnKind::Integer,
                nullable: true,
            }],
        };
        Arc::new(SchemaCache::new(vec!["public".into()], [t]))
    }

    #[test]
    fn a_plan_is_reused_only_for_the_same_body_and_schema() {
        let plans = PlansByBody::default();
        let (s1, s2) = (schema(), schema());
        let source: DataSource = serde_json::from_str(r#"{"table":"t"}"#).unwrap();
        let planned = Planned {
            plan: Arc::new(plan(&source, &[], &s1, &Limits::default()).unwrap()),
            force_refresh: false,
        };
        let body = Bytes::from_static(br#"{"config":{"table":"t"}}"#);
        plans.remember(body.clone(), Arc::clone(&s1), planned);
        assert!(plans.get(&body, &s1).is_some());
        assert!(plans.get(br#"{"config":{"table":"t"} }"#, &s1).is_none());
        // A reloaded schema cache (even an equal one) plans afresh.
        assert!(plans.get(&body, &s2).is_none());
    }
}
