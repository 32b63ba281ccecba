//! `Handle`: the current schema cache, swapped whole when the schema is
//! reloaded. Readers take a snapshot without a lock (`arc-swap`), so a
//! reload never stalls a request and a request plans against one
//! consistent schema.

use super::{SchemaCache, Table, load};
use arc_swap::ArcSwap;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;

/// The tables served at `/rest/v1`, by the name clients use.
pub type Served = HashMap<String, Arc<Table>>;

pub struct Handle {
    /// The schemas widget queries may read (`EXPOSED_SCHEMAS`).
    exposed_schemas: Vec<String>,
    /// The schema of the tables served at `/rest/v1`, and their names.
    served_schema: &'static str,
    served_tables: &'static [&'static str],
    exposed: ArcSwap<SchemaCache>,
    served: ArcSwap<Served>,
}

/// A schema read from the catalogs, not yet in use.
pub struct Fetched {
    exposed: SchemaCache,
    served: Served,
}

impl Fetched {
    /// Tables and views of the exposed schemas.
    pub fn len(&self) -> usize {
        self.exposed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exposed.is_empty()
    }
}

impl Handle {
    /// Reads the schema; fails when the catalogs cannot be read.
    pub async fn load(
        pool: &PgPool,
        exposed_schemas: Vec<String>,
        served_schema: &'static str,
        served_tables: &'static [&'static str],
    ) -> Result<Self, sqlx::Error> {
        let handle = Self {
            exposed_schemas,
            served_schema,
            served_tables,
            exposed: ArcSwap::from_pointee(SchemaCache::default()),
            served: ArcSwap::from_pointee(Served::new()),
        };
        let fetched = handle.fetch(pool).await?;
        handle.install(fetched);
        Ok(handle)
    }

    pub fn exposed_schemas(&self) -> &[String] {
        &self.exposed_schemas
    }

    /// The current schema cache of the exposed schemas.
    pub fn schema(&self) -> Arc<SchemaCache> {
        self.exposed.load_full()
    }

    /// A table served at `/rest/v1`, by name.
    pub fn served(&self, name: &str) -> Option<Arc<Table>> {
        self.served.load().get(name).cloned()
    }

    /// Reads the schema afresh from the catalogs, without using it yet.
    pub async fn fetch(&self, pool: &PgPool) -> Result<Fetched, sqlx::Error> {
        let exposed = load(pool, &self.exposed_schemas).await?;
        let served = load(pool, &[self.served_schema.to_owned()])
            .await?
            .tables()
            .filter(|t| self.served_tables.contains(&t.name.as_str()))
            .map(|t| (t.name.clone(), Arc::new(t.clone())))
            .collect();
        Ok(Fetched { exposed, served })
    }

    /// Makes `fetched` the schema every later request uses.
    pub fn install(&self, fetched: Fetched) {
        self.exposed.store(Arc::new(fetched.exposed));
        self.served.store(Arc::new(fetched.served));
    }
}
