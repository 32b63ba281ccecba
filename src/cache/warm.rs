//! What cache warming needs to know (seed 001): which entries were read
//! lately, and how to compute each again.
//!
//! Every entry this instance serves carries its [`Recipe`]: the plan, its
//! lifetime, the caller it was computed for and the time it was last
//! read, which a hit updates with one atomic store. Recipes are filed by
//! the tables they read. When a change to a table is heard, its recipes
//! read within the warm window are handed out ([`Warmable::due`]) to be
//! computed again in the background, under the same caller, at the new
//! versions; the rest are dropped, so an entry nobody reads is never
//! warmed. Runs no queries itself (`pipeline` does, with
//! `CACHE_WARMING_WORKERS` at once).

use super::key::Key;
use super::versions::TableName;
use crate::auth::Principal;
use crate::plan::QueryPlan;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Recipes kept per table; past it, those not read within the window go
/// first, so the registry stays bounded by what was read lately.
const PER_TABLE: usize = 10_000;

/// How to compute an entry again.
#[derive(Debug)]
pub struct Recipe {
    pub plan: Arc<QueryPlan>,
    pub ttl_secs: u64,
    /// Whom it was computed for: warming runs under the same role and
    /// claims, so row-level security gives the same rows.
    pub principal: Principal,
    /// The saved widget it answers, if any.
    pub widget: Option<Uuid>,
    /// When it was last read (Unix seconds).
    last_read: AtomicI64,
}

impl Recipe {
    pub fn new(
        plan: Arc<QueryPlan>,
        ttl_secs: u64,
        principal: Principal,
        widget: Option<Uuid>,
        read_at: i64,
    ) -> Self {
        Self {
            plan,
            ttl_secs,
            principal,
            widget,
            last_read: AtomicI64::new(read_at),
        }
    }

    /// The same recipe for the entry computed from it by warming, which
    /// no one has read yet: it keeps the last read of this one.
    pub fn again(&self) -> Self {
        Self::new(
            Arc::clone(&self.plan),
            self.ttl_secs,
            self.principal.clone(),
            self.widget,
            self.last_read(),
        )
    }

    pub fn read_at(&self, unix_secs: i64) {
        self.last_read.store(unix_secs, Relaxed);
    }

    pub fn last_read(&self) -> i64 {
        self.last_read.load(Relaxed)
    }
}

/// Recipes by the tables they read.
#[derive(Default)]
pub struct Warmable {
    by_table: Mutex<HashMap<TableName, HashMap<Key, Arc<Recipe>>>>,
}

impl Warmable {
    /// Files `recipe` (for the entry under `key`) under each table it reads.
    pub fn file(&self, key: &Key, recipe: &Arc<Recipe>, window_secs: i64) {
        let mut by_table = self.lock();
        for table in recipe.plan.tables_qualified() {
            let recipes = by_table.entry(table.clone()).or_default();
            if recipes.len() >= PER_TABLE {
                let since = recipe.last_read() - window_secs;
                recipes.retain(|_, r| r.last_read() >= since);
                if recipes.len() >= PER_TABLE {
                    continue; // that many read lately: this one is not warmed
                }
            }
            recipes.insert(key.clone(), Arc::clone(recipe));
        }
    }

    /// `table` changed: every entry filed under it is unreachable now.
    /// Returns the recipes read since `since` (Unix seconds), newest first,
    /// and forgets them all.
    pub fn due(&self, table: &str, since: i64) -> Vec<Arc<Recipe>> {
        let Some(recipes) = self.lock().remove(table) else {
            return Vec::new();
        };
        let mut due: Vec<Arc<Recipe>> = recipes
            .into_values()
            .filter(|r| r.last_read() >= since)
            .collect();
        due.sort_by_key(|r| std::cmp::Reverse(r.last_read()));
        due
    }

    /// Recipes filed now, over all tables.
    pub fn count(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TableName, HashMap<Key, Arc<Recipe>>>> {
        self.by_table.lock().unwrap_or_else(|e| e.into_inner())
    }
}
