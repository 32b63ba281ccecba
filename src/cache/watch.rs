//! Which tables this instance watches: writers announce a table's changes
//! only while some instance watches it (`migrations/0006`).
//!
//! Watching a table is a shared advisory lock held by the listening
//! session, so it ends with that session, together with hearing changes.
//! The listener takes and drops these locks ([`Watch::serve`]); a fill asks
//! it to with [`Watch::ensure`] before its query runs, then waits out the
//! writes that started before the watch (the barrier).
//!
//! Why an entry stays exact: its key holds the versions read *before*
//! `ensure`. A write after the barrier is announced while the watch lasts,
//! and the watch ends only on hearing a change, which gives the table a new
//! version; a write before the barrier is in the query's snapshot.

use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Advisory lock class every write to a tracked table holds shared.
const WRITERS: i32 = 1_464_139_777;
/// Advisory lock class a watching instance holds shared.
const WATCHERS: i32 = 1_464_139_778;
/// How long a fill waits for in-flight writes before giving up on storing
/// its result (it still answers the request).
pub const BARRIER_TIMEOUT: Duration = Duration::from_millis(200);

/// A `schema.table` name, as the versions and notifications spell it.
pub type TableName = String;

struct Watched {
    oid: i32,
    /// Distinguishes this watch from an earlier one of the same table.
    generation: u64,
    /// Every write that began before the watch has ended.
    settled: bool,
}

/// A fill's request to watch tables, answered by the listener.
pub struct Request {
    tables: Vec<(String, String)>,
    done: oneshot::Sender<bool>,
}

pub struct Watch {
    requests: mpsc::UnboundedSender<Request>,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Request>>,
    tables: Mutex<HashMap<TableName, Watched>>,
    generation: std::sync::atomic::AtomicU64,
}

impl Default for Watch {
    fn default() -> Self {
        let (requests, inbox) = mpsc::unbounded_channel();
        Self {
            requests,
            inbox: tokio::sync::Mutex::new(inbox),
            tables: Mutex::new(HashMap::new()),
            generation: Default::default(),
        }
    }
}

impl Watch {
    /// Makes sure `tables` (`(schema, name)`) are watched and settled;
    /// `false` when they cannot be (not listening, a table gone, writes
    /// that outlast [`BARRIER_TIMEOUT`]): the result must not be stored.
    pub async fn ensure(&self, pool: &PgPool, tables: &[(String, String)]) -> bool {
        let unwatched: Vec<_> = {
            let watched = self.lock();
            tables
                .iter()
                .filter(|(s, t)| !watched.contains_key(&format!("{s}.{t}")))
                .cloned()
                .collect()
        };
        if !unwatched.is_empty() {
            let (done, answer) = oneshot::channel();
            let request = Request {
                tables: unwatched,
                done,
            };
            if self.requests.send(request).is_err() || !answer.await.unwrap_or(false) {
                return false;
            }
        }
        let unsettled: Vec<(TableName, i32, u64)> = {
            let watched = self.lock();
            let mut unsettled = Vec::new();
            for (s, t) in tables {
                let name = format!("{s}.{t}");
                match watched.get(&name) {
                    // Let go of meanwhile: a change was heard, so the
                    // caller's key is already out of date; nothing to wait for.
                    None => {}
                    Some(w) if w.settled => {}
                    Some(w) => unsettled.push((name, w.oid, w.generation)),
                }
            }
            unsettled
        };
        if unsettled.is_empty() {
            return true;
        }
        let oids: Vec<i32> = unsettled.iter().map(|(_, oid, _)| *oid).collect();
        if let Err(e) = barrier(pool, &oids).await {
            tracing::debug!(error = %e, "writes still in flight; this result is not stored");
            return false;
        }
        let mut watched = self.lock();
        for (name, _, generation) in unsettled {
            if let Some(w) = watched.get_mut(&name)
                && w.generation == generation
            {
                w.settled = true;
            }
        }
        true
    }

    /// Runs on the listening session, between notifications: takes the
    /// locks `request` asks for. `pid` is the session's backend, to notice
    /// a connection the listener replaced behind our back (its locks and
    /// its notifications are gone).
    pub async fn serve(
        &self,
        listener: &mut PgListener,
        pid: i32,
        request: Request,
    ) -> Result<(), sqlx::Error> {
        let mut ok = true;
        for (schema, table) in &request.tables {
            let name = format!("{schema}.{table}");
            if self.lock().contains_key(&name) {
                continue;
            }
            let (backend, oid): (i32, Option<i32>) = sqlx::query_as(
                "SELECT pg_backend_pid(), \
                   (SELECT r::oid::integer FROM to_regclass(format('%I.%I', $2::text, $3::text)) r \
                    WHERE r IS NOT NULL AND pg_advisory_lock_shared($1, r::oid::integer) IS NOT NULL)",
            )
            .bind(WATCHERS)
            .bind(schema)
            .bind(table)
            .fetch_one(&mut *listener)
            .await?;
            if backend != pid {
                return Err(sqlx::Error::Protocol(
                    "the listening connection was replaced".into(),
                ));
            }
            match oid {
                Some(oid) => {
                    let generation = self
                        .generation
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.lock().insert(
                        name,
                        Watched {
                            oid,
                            generation,
                            settled: false,
                        },
                    );
                }
                None => ok = false, // dropped meanwhile
            }
        }
        let _ = request.done.send(ok);
        Ok(())
    }

    /// A change to `table` was heard: every entry made while watching it is
    /// unreachable now, so stop watching until the next fill.
    pub async fn changed(&self, listener: &mut PgListener, table: &str) -> Result<(), sqlx::Error> {
        let Some(watched) = self.lock().remove(table) else {
            return Ok(());
        };
        sqlx::query("SELECT pg_advisory_unlock_shared($1, $2)")
            .bind(WATCHERS)
            .bind(watched.oid)
            .execute(&mut *listener)
            .await?;
        Ok(())
    }

    /// The listening session ended: its locks went with it.
    pub fn forget(&self) {
        self.lock().clear();
    }

    /// The request queue, held by the one listening task.
    pub async fn inbox(&self) -> tokio::sync::MutexGuard<'_, mpsc::UnboundedReceiver<Request>> {
        self.inbox.lock().await
    }

    /// How many tables are watched now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TableName, Watched>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Waits until every write to the tables that began before now has ended.
async fn barrier(pool: &PgPool, oids: &[i32]) -> Result<(), sqlx::Error> {
    let mut tx: sqlx::Transaction<'_, Postgres> = pool.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", BARRIER_TIMEOUT.as_millis()))
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, o) FROM unnest($2::integer[]) o")
        .bind(WRITERS)
        .bind(oids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
