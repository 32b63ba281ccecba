//! The result cache: answers by key, kept fresh by change notifications.
//!
//! Takes a validated plan, the caller and a way to compute the answer;
//! gives the answer, from memory when an entry for the same query, data
//! versions and scope exists (see `key` for what a key holds). Concurrent
//! identical misses run the query once and share the result.
//!
//! A fill cannot store an old result as current: the key is taken before
//! the query runs, with the data versions known then. A write that commits
//! meanwhile draws a new version, so later requests use a new key and
//! never see the entry the slow fill stored under the old one.
//!
//! Versions live in PostgreSQL and read the same from every instance
//! (`versions`), so instances share entries through the durable level
//! from the first request, and a reconnect forgets nothing that is still
//! exact.
//!
//! The cache's own database work (the durable level, watching) is
//! optional: each step gets a short slice of the request's deadline, and a
//! step that fails or runs out of time is skipped, never an error.

mod history;
mod key;
mod memory;
mod shared;
mod stats;
mod table;
mod versions;
mod warm;
mod watch;

pub use history::EVERY as HISTORY_EVERY;
pub use key::{Key, per_user, scope};
pub use stats::{Latency, QueryFigures, Snapshot, Stats, TableState};
pub use table::{ENTRIES_CHANNEL, Stamp, purge};
pub use versions::{CHANNEL as CHANGES_CHANNEL, Versions};
pub use warm::Recipe;
pub use watch::Watch;

use crate::auth::Principal;
use crate::deadline::Deadline;
use crate::exec::Lsn;
use crate::plan::QueryPlan;
use chrono::{DateTime, Utc};
use memory::Memory;
use serde_json::value::RawValue;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};
use uuid::Uuid;
use versions::Lookup;
use warm::Warmable;

/// The most of a request's budget a read of the durable level may take:
/// past it, running the query is the better bet.
const DURABLE_READ_BUDGET: Duration = Duration::from_millis(250);
/// The most of a request's budget watching its tables may take (the
/// listener's round trip and the barrier, itself capped by
/// [`watch::BARRIER_TIMEOUT`]).
const WATCH_BUDGET: Duration = Duration::from_secs(1);
/// Writes to the durable level in flight at once; past that, entries stay
/// in memory only (other instances then miss), so a flood of distinct
/// misses cannot pile up tasks and connections.
const DURABLE_WRITES: usize = 32;
/// How long one write to the durable level may take.
const DURABLE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// One computed answer.
#[derive(Debug)]
pub struct Entry {
    /// The rows, a JSON array, exactly as PostgreSQL rendered them.
    pub data: Box<RawValue>,
    pub cached_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The response body of a hit on this entry, rendered by the first hit
    /// and reused by the rest.
    pub hit_body: std::sync::OnceLock<axum::body::Bytes>,
    /// The answer's `total`, made from the rows by the first answer that
    /// renders it (its kind depends on the plan, which the key fixes).
    pub total: std::sync::OnceLock<Option<serde_json::Value>>,
    /// Names this answer for HTTP revalidation, as an `ETag` value: a
    /// digest of the rows and of when they were computed.
    pub etag: axum::body::Bytes,
    /// How to compute it again after a change, once it has been served
    /// (cache warming).
    recipe: std::sync::OnceLock<Arc<Recipe>>,
}

impl Entry {
    pub fn new(data: Box<RawValue>, cached_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> Self {
        use chrono::SubsecRound;
        use sha2::{Digest, Sha256};
        // PostgreSQL keeps microseconds: an entry read back from the
        // durable level has the same timestamps, and so the same tag.
        let (cached_at, expires_at) = (cached_at.trunc_subsecs(6), expires_at.trunc_subsecs(6));
        let digest = Sha256::new()
            .chain_update(data.get().as_bytes())
            .chain_update(cached_at.timestamp_micros().to_le_bytes())
            .finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            data,
            cached_at,
            expires_at,
            hit_body: Default::default(),
            total: Default::default(),
            // Weak: a hit's body and a miss's differ in `cached` only.
            etag: format!("W/\"{hex}\"").into(),
            recipe: Default::default(),
        }
    }

    /// Bytes this entry holds or will hold: the rows, the hit body
    /// rendered from them (the rows again plus a small envelope), and the
    /// bookkeeping around them. Counted in full from the start, so the
    /// memory bound holds whether or not the entry is ever hit.
    pub fn weight(&self) -> usize {
        /// The hit body's envelope around the rows, and the entry's own
        /// fields, key and index slots.
        const AROUND_BYTES: usize = 512;
        2 * self.data.get().len() + AROUND_BYTES
    }
}

/// Whether a request's answer can be cached, and under which key.
#[derive(Debug)]
pub enum KeyState {
    Ready(Key),
    /// A table's version must be read first ([`Cache::settle`]).
    Unsettled,
    /// It reads a table whose changes are not tracked, or changes are not
    /// being heard right now.
    Uncacheable,
}

/// How an answer was obtained: the `x-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    /// Waited for an identical miss already running.
    Coalesced,
    /// Expired, served because the database could not answer.
    Stale,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
            Outcome::Stale => "stale",
        }
    }
}

/// A miss being computed: its answer, shared with identical misses, even
/// one that is not stored; `None` when it failed (each waiter then tries
/// for itself).
///
/// Hand-written rather than moka's `try_get_with`, which does not fit:
/// it answers with any entry present, expired or not (only `get_with_if`
/// can replace one, and it has no fallible form), while the expired entry
/// must stay for stale-if-error if the query fails; it stores every
/// answer it computes, while one computed without a settled watch must
/// not be stored (`watch`); and it needs `moka::future::Cache`, whose
/// `get` is async, on the hit path.
type Flight = Arc<OnceCell<Option<Arc<Entry>>>>;

pub struct Cache {
    versions: Versions,
    watch: Watch,
    pub stats: Stats,
    memory: Memory,
    in_flight: Mutex<HashMap<Key, Flight>>,
    /// The durable level's database (the service's own pool, not callers').
    pool: PgPool,
    durable_writes: Arc<Semaphore>,
    /// Tells this instance's entry announcements from other instances'.
    instance: Uuid,
    /// Entries read lately, by table, for warming; `None`: no warming.
    warming: Option<Warming>,
    /// The level shared by every instance in Redis (`REDIS_URL`).
    shared: Option<shared::Level>,
}

/// Cache warming's side of the cache.
struct Warming {
    /// Only entries read within this many seconds are warmed.
    window_secs: i64,
    recipes: Warmable,
    /// Tables whose change was heard, for the warming task.
    changed: tokio::sync::mpsc::UnboundedSender<String>,
    inbox: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl Cache {
    pub fn new(memory_bytes: usize, pool: PgPool) -> Self {
        Self {
            versions: Versions::default(),
            watch: Watch::default(),
            stats: Stats::default(),
            memory: Memory::new(memory_bytes),
            in_flight: Mutex::new(HashMap::new()),
            pool,
            durable_writes: Arc::new(Semaphore::new(DURABLE_WRITES)),
            instance: Uuid::new_v4(),
            warming: None,
            shared: None,
        }
    }

    /// Puts `redis` between memory and the cache table: entries live there
    /// as long as in memory, and at most `max_ttl_secs`.
    pub fn with_redis(mut self, redis: Arc<crate::shared::Redis>, max_ttl_secs: u64) -> Self {
        self.shared = Some(shared::Level::new(redis, max_ttl_secs));
        self
    }

    /// The Redis client's own figures, when there is one.
    pub fn redis_figures(&self) -> Option<crate::shared::RedisFigures> {
        self.shared.as_ref().map(shared::Level::figures)
    }

    /// Keeps what warming needs: entries read within `window_secs` are
    /// handed out again when their tables change ([`Cache::due`]).
    pub fn with_warming(mut self, window_secs: u64) -> Self {
        let (changed, inbox) = tokio::sync::mpsc::unbounded_channel();
        self.warming = Some(Warming {
            window_secs: i64::try_from(window_secs).unwrap_or(i64::MAX),
            recipes: Warmable::default(),
            changed,
            inbox: tokio::sync::Mutex::new(inbox),
        });
        self
    }

    /// Tables whose change was heard, for the one warming task; `None`
    /// without warming.
    pub async fn changed_tables(
        &self,
    ) -> Option<tokio::sync::MutexGuard<'_, tokio::sync::mpsc::UnboundedReceiver<String>>> {
        Some(self.warming.as_ref()?.inbox.lock().await)
    }

    /// `table` changed: the recipes of entries read from it within the
    /// warm window, newest first. Every recipe filed under it is
    /// forgotten, read lately or not.
    pub fn due(&self, table: &str) -> Vec<Arc<Recipe>> {
        let Some(warming) = &self.warming else {
            return Vec::new();
        };
        let since = Utc::now().timestamp().saturating_sub(warming.window_secs);
        warming.recipes.due(table, since)
    }

    /// `entry`, served under `key` at `now` (Unix seconds), will be warmed
    /// after a change if it is read within the window: files its recipe
    /// (made by `recipe` the first time), or marks it read.
    pub fn remember(&self, key: &Key, entry: &Entry, now: i64, recipe: impl FnOnce() -> Recipe) {
        let Some(warming) = &self.warming else {
            return;
        };
        let mut made = None;
        let filed = entry.recipe.get_or_init(|| {
            let recipe = Arc::new(recipe());
            made = Some(Arc::clone(&recipe));
            recipe
        });
        match made {
            Some(recipe) => warming.recipes.file(key, &recipe, warming.window_secs),
            None => filed.read_at(now),
        }
    }

    /// Recipes filed for warming now.
    pub fn warmable(&self) -> usize {
        self.warming.as_ref().map_or(0, |w| w.recipes.count())
    }

    /// Whether an unexpired entry for `key` is in memory or the durable
    /// level (not counted as a hit: warming asks, not a caller).
    pub async fn present(&self, key: &Key, deadline: Deadline) -> bool {
        let now = Utc::now();
        if self.memory.get(key).is_some_and(|e| e.expires_at > now) {
            return true;
        }
        if let Some(shared) = &self.shared
            && let Some(entry) = shared.get(key).await
        {
            self.memory.insert(key.clone(), Arc::new(entry));
            return true;
        }
        let stored = deadline
            .within(DURABLE_READ_BUDGET)
            .run(table::load(&self.pool, key));
        match stored.await {
            Ok(Ok(Some(entry))) => {
                self.memory.insert(key.clone(), Arc::new(entry));
                true
            }
            _ => false,
        }
    }

    /// Claims the warming of `key` for this instance; false when another
    /// instance claimed it first (or the claim could not be made).
    pub async fn claim(&self, key: &Key) -> bool {
        if let Some(shared) = &self.shared
            && let Some(claimed) = shared.claim(key).await
        {
            return claimed;
        }
        match table::claim(&self.pool, key).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::debug!(error = %e, "could not claim an entry to warm");
                false
            }
        }
    }

    /// Keeps an entry warming computed, as a miss would, and files its
    /// recipe (carrying the last read of the one it was made from).
    pub fn warmed(&self, key: &Key, stamp: Option<&Stamp>, recipe: &Recipe, entry: Arc<Entry>) {
        self.stats.executions.fetch_add(1, Relaxed);
        self.keep(key, stamp, recipe.widget, &entry);
        self.remember(key, &entry, recipe.last_read(), || recipe.again());
    }

    /// Changes are heard again, on a new session: the watches of the
    /// session before ended with it, so every version is read afresh
    /// before it is used. Entries whose data did not change stay reachable.
    pub fn listening(&self) {
        self.versions.listening();
    }

    /// Changes are no longer heard: nothing is cached until they are again,
    /// and the watches ended with the session.
    pub fn deaf(&self) {
        self.versions.suspend();
    }

    /// Whether changes are being heard (and so answers may be cached).
    pub fn is_listening(&self) -> bool {
        self.versions.is_listening()
    }

    /// Permissions changed (or were read afresh): keys made under other
    /// permissions become unreachable.
    pub fn set_permissions(&self, digest: String) {
        self.versions.set_permissions(digest);
    }

    /// Tables watched on the listening session now.
    pub fn watched(&self) -> usize {
        self.versions.watched()
    }

    /// Fills' requests to watch tables, for the listening session to serve
    /// (one session at a time holds them).
    pub async fn watch_requests(
        &self,
    ) -> tokio::sync::MutexGuard<'_, tokio::sync::mpsc::UnboundedReceiver<watch::Request>> {
        self.watch.inbox().await
    }

    /// Serves one fill's request to watch, on the listening session
    /// `listener` (backend `pid`).
    pub async fn serve_watch(
        &self,
        listener: &mut PgListener,
        pid: i32,
        request: watch::Request,
    ) -> Result<(), sqlx::Error> {
        self.watch
            .serve(listener, pid, &self.versions, request)
            .await
    }

    /// A table changed (a `schema.table:n` payload): its version is read
    /// afresh before the next key is made, so its entries become
    /// unreachable, and its watch ends until a fill needs it again.
    pub async fn table_changed(
        &self,
        listener: &mut PgListener,
        payload: &str,
    ) -> Result<(), sqlx::Error> {
        if let Some((table, watched)) = self.versions.changed(payload) {
            self.stats.invalidated();
            if let Some(warming) = &self.warming {
                let _ = warming.changed.send(table);
            }
            if let Some(oid) = watched {
                watch::release(listener, oid).await?;
            }
        }
        Ok(())
    }

    /// Another instance stored an entry (`<instance>:<key>`): drop our
    /// memory copy, so the next request reads theirs from the table.
    pub fn entry_announced(&self, payload: &str) {
        let Some((instance, key)) = payload.split_once(':') else {
            return;
        };
        if instance != self.instance.to_string()
            && let Some(key) = Key::parse(key)
        {
            self.memory.remove(&key);
        }
    }

    /// Keeps `entry` in memory now and in the table in the background: a
    /// miss does not wait for the durable write, and a failed write only
    /// costs other instances a miss.
    fn keep(&self, key: &Key, stamp: Option<&Stamp>, widget: Option<Uuid>, entry: &Arc<Entry>) {
        self.memory.insert(key.clone(), Arc::clone(entry));
        // Without a stamp the key was already out of date when the query
        // started: other instances could never reach it.
        let Some(stamp) = stamp.cloned() else {
            return;
        };
        let permit = Arc::clone(&self.durable_writes).try_acquire_owned();
        let shared = self.shared.clone();
        let (pool, key, entry) = (self.pool.clone(), key.clone(), Arc::clone(entry));
        let announce = format!("{}:{key}", self.instance);
        tokio::spawn(async move {
            // Redis first: an instance told of this entry by the table's
            // announcement then finds it there, not an older one.
            if let Some(shared) = &shared {
                shared.put(&key, &entry).await;
            }
            let Ok(permit) = permit else {
                tracing::debug!("durable cache level busy; this entry is not in the table");
                return;
            };
            let store = table::store(&pool, &key, &stamp, &announce, widget, &entry);
            match tokio::time::timeout(DURABLE_WRITE_TIMEOUT, store).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not store a cache entry in the table")
                }
                Err(_) => tracing::warn!("storing a cache entry in the table timed out"),
            }
            drop(permit);
        });
    }

    /// The key for `plan` as asked by `principal`, from the versions in
    /// memory (the hit path: no database).
    pub fn key(&self, plan: &QueryPlan, ttl_secs: u64, principal: &Principal) -> KeyState {
        if !plan.change_tracked() {
            return KeyState::Uncacheable;
        }
        let made = self
            .versions
            .with(plan.tables_qualified(), |versions, permissions| {
                key::key(plan, ttl_secs, versions, permissions, principal)
            });
        match made {
            Lookup::Known(key) => KeyState::Ready(key),
            Lookup::Unknown => KeyState::Unsettled,
            Lookup::Deaf => KeyState::Uncacheable,
        }
    }

    /// Watches `plan`'s tables and reads their versions, so that
    /// [`Cache::key`] can make its key; false when that could not be done
    /// within the request's share of `deadline` (its answer is then not
    /// cached). Never an error: the cache's own work fails quietly.
    pub async fn settle(&self, plan: &QueryPlan, deadline: Deadline) -> bool {
        let settled = self.watch.settle(&self.pool, &self.versions, plan.tables());
        match deadline.within(WATCH_BUDGET).run(settled).await {
            Ok(Ok(settled)) => settled,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "could not read data versions; not caching this answer");
                false
            }
            Err(_) => false,
        }
    }

    /// The primary's WAL position a replica must have replayed to answer
    /// `plan` at the versions its key holds.
    pub fn replayed_by(&self, plan: &QueryPlan) -> Option<Lsn> {
        self.versions.lsn(plan.tables_qualified()).map(Lsn::from)
    }

    /// What `key` (made for `plan`, `ttl_secs` and `principal`) was made
    /// of, for the durable level; `None` when the versions have moved on
    /// since (the key is out of date already).
    pub fn stamp(
        &self,
        key: &Key,
        plan: &QueryPlan,
        ttl_secs: u64,
        principal: &Principal,
    ) -> Option<Stamp> {
        let made = self
            .versions
            .with(plan.tables_qualified(), |versions, permissions| {
                (key::key(plan, ttl_secs, versions, permissions, principal) == *key).then(|| {
                    Stamp {
                        tables: versions.iter().map(|(t, _)| (*t).to_owned()).collect(),
                        versions: versions.iter().map(|(_, v)| (*v).to_owned()).collect(),
                        permissions: permissions.to_owned(),
                    }
                })
            });
        match made {
            Lookup::Known(stamp) => stamp,
            Lookup::Unknown | Lookup::Deaf => None,
        }
    }

    /// Deletes durable rows that have expired, that a heard change or a
    /// permission change made unreachable, and then the least recently
    /// used until the rows take at most `max_bytes`. Returns how many.
    pub async fn purge(&self, max_bytes: i64) -> Result<u64, sqlx::Error> {
        let (heard, permissions) = self.versions.heard();
        Ok(table::purge(&self.pool).await?
            + table::purge_superseded(&self.pool, &heard, &permissions).await?
            + table::purge_claims(&self.pool).await?
            + table::evict(&self.pool, max_bytes).await?)
    }

    /// Saved widgets with an unexpired entry in the cache table, which
    /// every instance shares.
    pub async fn active_widgets(&self) -> Result<u64, sqlx::Error> {
        table::active_widgets(&self.pool).await
    }

    /// A fresh entry for `key`, counting the hit.
    pub fn fresh(&self, key: &Key, now: DateTime<Utc>) -> Option<Arc<Entry>> {
        let entry = self.memory.get(key).filter(|e| e.expires_at > now)?;
        self.stats.hits.fetch_add(1, Relaxed);
        Some(entry)
    }

    /// Computes the entry for `key` once however many ask at the same time,
    /// and stores it. With `replace` (force_refresh) it always computes.
    /// The cache's own steps stay well within `deadline`; `compute` is
    /// bounded by the caller.
    #[allow(clippy::too_many_arguments)]
    pub async fn fill<E, Fut>(
        &self,
        key: &Key,
        stamp: Option<&Stamp>,
        widget: Option<Uuid>,
        replace: bool,
        deadline: Deadline,
        compute: impl FnOnce() -> Fut,
    ) -> Result<(Arc<Entry>, Outcome), E>
    where
        Fut: Future<Output = Result<Entry, E>>,
    {
        if replace {
            let entry = Arc::new(self.run(compute).await?);
            self.keep(key, stamp, widget, &entry);
            return Ok((entry, Outcome::Miss));
        }
        let flight = Arc::clone(self.flights().entry(key.clone()).or_default());
        let mut compute = Some(compute);
        let mut led = false;
        let mut reused = false;
        let mut failure = None;
        let shared = flight
            .get_or_init(|| async {
                led = true;
                // An identical fill may have finished between our lookup
                // and now: use it rather than run the query again.
                if let Some(entry) = self.memory.get(key).filter(|e| e.expires_at > Utc::now()) {
                    self.stats.hits.fetch_add(1, Relaxed);
                    reused = true;
                    return Some(entry);
                }
                // Another instance may have computed it: in Redis first,
                // then in the table.
                if let Some(shared) = &self.shared
                    && let Some(entry) = shared.get(key).await
                {
                    let entry = Arc::new(entry);
                    self.memory.insert(key.clone(), Arc::clone(&entry));
                    self.stats.hits.fetch_add(1, Relaxed);
                    self.stats.redis_hits.fetch_add(1, Relaxed);
                    reused = true;
                    return Some(entry);
                }
                let stored = deadline
                    .within(DURABLE_READ_BUDGET)
                    .run(table::load(&self.pool, key));
                match stored.await {
                    Ok(Ok(Some(entry))) => {
                        let entry = Arc::new(entry);
                        self.memory.insert(key.clone(), Arc::clone(&entry));
                        self.stats.hits.fetch_add(1, Relaxed);
                        self.stats.table_hits.fetch_add(1, Relaxed);
                        reused = true;
                        return Some(entry);
                    }
                    Ok(Ok(None)) => {}
                    // A cache failure never fails a request.
                    Ok(Err(e)) => tracing::warn!(error = %e, "cache table unreadable; computing"),
                    Err(_) => tracing::debug!("cache table too slow; computing"),
                }
                let compute = compute.take()?;
                match self.run(compute).await {
                    Ok(entry) => {
                        let entry = Arc::new(entry);
                        self.keep(key, stamp, widget, &entry);
                        Some(entry)
                    }
                    Err(e) => {
                        failure = Some(e);
                        None
                    }
                }
            })
            .await
            .clone();
        if led {
            let mut flights = self.flights();
            if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(key);
            }
        }
        match (shared, failure, compute) {
            (Some(entry), _, _) if reused => Ok((entry, Outcome::Hit)),
            (Some(entry), _, _) if led => Ok((entry, Outcome::Miss)),
            (Some(entry), _, _) => {
                self.stats.coalesced.fetch_add(1, Relaxed);
                Ok((entry, Outcome::Coalesced))
            }
            (None, Some(e), _) => Err(e),
            // The leader failed with an error of its own: try for ourselves.
            (None, None, Some(compute)) => Ok((Arc::new(self.run(compute).await?), Outcome::Miss)),
            (None, None, None) => unreachable!("a leader either fails with its error or fills"),
        }
    }

    async fn run<E, Fut>(&self, compute: impl FnOnce() -> Fut) -> Result<Entry, E>
    where
        Fut: Future<Output = Result<Entry, E>>,
    {
        self.stats.misses.fetch_add(1, Relaxed);
        self.stats.executions.fetch_add(1, Relaxed);
        compute().await
    }

    /// Every figure, for the stats endpoint and `/metrics`.
    pub fn snapshot(&self) -> Snapshot {
        let m = &self.memory;
        m.sync();
        let mut snapshot = self.stats.snapshot(m.len(), m.bytes(), m.evictions());
        snapshot.warming.tracked = self.warmable();
        snapshot.tables = self.versions.tables();
        snapshot.redis = self.redis_figures().map(|f| stats::RedisStats {
            hits: f.hits,
            misses: f.misses,
            errors: f.errors,
            timeouts: f.timeouts,
            skipped: f.skipped,
            breaker: f.breaker.as_str().to_owned(),
            breaker_opened: f.opened,
        });
        snapshot
    }

    /// When the database cannot answer: the entry for the same query and
    /// scope at the last data versions heard. Unexpired, it is a plain hit
    /// (no write can have reached a database nobody reaches; its lifetime
    /// bounds the rest); expired, it is served stale.
    pub fn fallback(
        &self,
        plan: &QueryPlan,
        ttl_secs: u64,
        principal: &Principal,
        now: DateTime<Utc>,
    ) -> Option<(Arc<Entry>, Outcome)> {
        if !plan.change_tracked() {
            return None;
        }
        let (versions, permissions) = self
            .versions
            .last_known(plan.tables_qualified().iter().map(String::as_str))?;
        let versions: Vec<(&str, &str)> = versions
            .iter()
            .map(|(t, v)| (t.as_str(), v.as_str()))
            .collect();
        let entry = self.memory.get(&key::key(
            plan,
            ttl_secs,
            &versions,
            &permissions,
            principal,
        ))?;
        if entry.expires_at > now {
            self.stats.hits.fetch_add(1, Relaxed);
            Some((entry, Outcome::Hit))
        } else {
            self.stats.stale_serves.fetch_add(1, Relaxed);
            Some((entry, Outcome::Stale))
        }
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Flight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}
