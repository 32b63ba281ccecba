//! Cache warming (seed 001): after a change, an entry read lately is
//! computed again in the background, so that the next dashboard load is a
//! hit rather than the first reader paying for the query.
//!
//! Takes a [`Recipe`] the cache handed out for a changed table; gives
//! the entry at the table's new version, computed under the recipe's
//! caller (so row-level security gives the same rows), unless another
//! instance claimed it or it is already there. Never touches a request:
//! the service runs these on a task of their own, at most
//! `CACHE_WARMING_WORKERS` at once.
//!
//! The caller's token may have expired since; that is no wider than what
//! the cache already does (the entry is only ever served to a caller of
//! the same scope presenting a valid token).

use super::{Context, compute};
use crate::cache::{KeyState, Recipe};
use crate::deadline::Deadline;
use crate::error::ApiError;
use std::sync::Arc;
use std::time::Duration;

/// How long one warming may take in all (the query itself is bounded by
/// `QUERY_TIMEOUT_MS` as any other).
const WARM_DEADLINE: Duration = Duration::from_secs(30);

/// What became of one recipe handed to warming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warmed {
    /// Computed and stored under its new key.
    Computed,
    /// Already there: a request, or another instance, was first.
    Present,
    /// Another instance claimed it.
    Elsewhere,
    /// Its versions could not be read, or it is no longer cacheable:
    /// there is nothing to store it under.
    Unkeyed,
}

impl Context {
    /// Computes `recipe`'s entry at the current data versions, unless it
    /// is there already or another instance claimed it.
    pub async fn warm(&self, recipe: &Recipe) -> Result<Warmed, ApiError> {
        let deadline = Deadline::after(WARM_DEADLINE);
        let plan = &recipe.plan;
        if !self.cache.settle(plan, deadline).await {
            return Ok(Warmed::Unkeyed);
        }
        let KeyState::Ready(key) = self.cache.key(plan, recipe.ttl_secs, &recipe.principal) else {
            return Ok(Warmed::Unkeyed);
        };
        if self.cache.present(&key, deadline).await {
            return Ok(Warmed::Present);
        }
        if !self.cache.claim(&key).await {
            return Ok(Warmed::Elsewhere);
        }
        let stamp = self
            .cache
            .stamp(&key, plan, recipe.ttl_secs, &recipe.principal);
        let replayed = self.cache.replayed_by(plan);
        let entry = compute(
            self,
            plan,
            recipe.ttl_secs,
            &recipe.principal,
            deadline,
            replayed,
        )
        .await?;
        self.cache
            .warmed(&key, stamp.as_ref(), recipe, Arc::new(entry));
        Ok(Warmed::Computed)
    }
}
