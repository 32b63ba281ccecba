//! Watching tables and reading their versions (`versions` has the
//! argument for why this is exact).
//!
//! Writers announce a table's changes only while some instance watches it
//! (`migrations/0006`): watching is a shared advisory lock held by the
//! listening session, so it ends with that session, together with hearing
//! changes. The listener takes these locks ([`Watch::serve`]) and lets go
//! of one when it hears the table's next change ([`release`]). A fill
//! that needs a version asks for the watch, then reads the versions and
//! waits out the writes in flight, in one transaction ([`Watch::settle`]).

use super::versions::{Current, TableName, Versions};
use crate::exec::Lsn;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Advisory lock class every write to a tracked table holds shared.
const WRITERS: i32 = 1_464_139_777;
/// Advisory lock class a watching instance holds shared.
const WATCHERS: i32 = 1_464_139_778;
/// How long a fill waits for in-flight writes before giving up on storing
/// its result (it still answers the request).
pub const BARRIER_TIMEOUT: Duration = Duration::from_millis(200);

/// A fill's request to watch tables, answered by the listener.
pub struct Request {
    tables: Vec<(String, String)>,
    done: oneshot::Sender<bool>,
}

pub struct Watch {
    requests: mpsc::UnboundedSender<Request>,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Request>>,
    generation: std::sync::atomic::AtomicU64,
    /// One read of versions at a time: after a change, the requests that
    /// all find the table's version unknown wait for the first one's read
    /// instead of each reading (and each waiting out the writers).
    reading: tokio::sync::Mutex<()>,
}

impl Default for Watch {
    fn default() -> Self {
        let (requests, inbox) = mpsc::unbounded_channel();
        Self {
            requests,
            inbox: tokio::sync::Mutex::new(inbox),
            generation: Default::default(),
            reading: tokio::sync::Mutex::new(()),
        }
    }
}

impl Watch {
    /// Makes sure `tables` (`(schema, name)`) are watched and their
    /// versions known; `false` when they cannot be (not listening, a table
    /// gone, writes that outlast [`BARRIER_TIMEOUT`], a change heard
    /// meanwhile): the result is then not stored.
    pub async fn settle(
        &self,
        pool: &PgPool,
        versions: &Versions,
        tables: &[(String, String)],
    ) -> Result<bool, sqlx::Error> {
        let unwatched: Vec<_> = tables
            .iter()
            .filter(|(s, t)| !versions.is_watched(&format!("{s}.{t}")))
            .cloned()
            .collect();
        if !unwatched.is_empty() {
            let (done, answer) = oneshot::channel();
            let request = Request {
                tables: unwatched,
                done,
            };
            if self.requests.send(request).is_err() || !answer.await.unwrap_or(false) {
                return Ok(false);
            }
        }
        let names: Vec<TableName> = tables.iter().map(|(s, t)| format!("{s}.{t}")).collect();
        if versions.unsettled(&names).is_some_and(|u| u.is_empty()) {
            return Ok(true);
        }
        let _reading = self.reading.lock().await;
        // Let go of meanwhile: a change was heard; the next request tries again.
        let Some(unsettled) = versions.unsettled(&names) else {
            return Ok(false);
        };
        if unsettled.is_empty() {
            return Ok(true);
        }
        let oids: Vec<i32> = unsettled.iter().map(|(_, oid, _)| *oid).collect();
        let (read, lsn) = read_versions(pool, &oids).await?;
        let mut settled = true;
        for (table, oid, generation) in unsettled {
            let Some((_, version)) = read.iter().find(|(o, _)| *o == oid) else {
                settled = false; // no longer tracked
                continue;
            };
            let current = Current {
                version: version.clone(),
                lsn,
            };
            settled &= versions.settle(&table, generation, current);
        }
        Ok(settled)
    }

    /// Runs on the listening session, between notifications: takes the
    /// locks `request` asks for. `pid` is the session's backend, to notice
    /// a connection the listener replaced behind our back (its locks and
    /// its notifications are gone).
    pub async fn serve(
        &self,
        listener: &mut PgListener,
        pid: i32,
        versions: &Versions,
        request: Request,
    ) -> Result<(), sqlx::Error> {
        let mut ok = true;
        for (schema, table) in &request.tables {
            let name = format!("{schema}.{table}");
            if versions.is_watched(&name) {
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
                    versions.watching(name, oid, generation);
                }
                None => ok = false, // dropped meanwhile
            }
        }
        let _ = request.done.send(ok);
        Ok(())
    }

    /// The request queue, held by the one listening task.
    pub async fn inbox(&self) -> tokio::sync::MutexGuard<'_, mpsc::UnboundedReceiver<Request>> {
        self.inbox.lock().await
    }
}

/// Lets go of the watch on table `oid` (a change to it was heard).
pub async fn release(listener: &mut PgListener, oid: i32) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock_shared($1, $2)")
        .bind(WATCHERS)
        .bind(oid)
        .execute(&mut *listener)
        .await?;
    Ok(())
}

/// Reads the versions of the tables `oids`, *then* waits until every write
/// to them that began before has ended (the barrier), then reads the
/// primary's WAL insert position: `((oid, version), lsn)`. A table no
/// longer tracked has no version.
async fn read_versions(
    pool: &PgPool,
    oids: &[i32],
) -> Result<(Vec<(i32, String)>, u64), sqlx::Error> {
    let mut tx: sqlx::Transaction<'_, Postgres> = pool.begin().await?;
    let (_, _, relids, versions): (String, String, Vec<i32>, Vec<String>) = sqlx::query_as(
        "SELECT set_config('lock_timeout', $2, true), set_config('synchronous_commit', 'on', true), \
           coalesce(array_agg(d.relid::integer), '{}'), \
           coalesce(array_agg(format('%s.%s', d.sequence::oid, \
             coalesce(pg_sequence_last_value(d.sequence), 0))), '{}') \
         FROM app.data_versions d WHERE d.relid::integer = ANY($1)",
    )
    .bind(oids)
    .bind(format!("{}ms", BARRIER_TIMEOUT.as_millis()))
    .fetch_one(&mut *tx)
    .await?;
    // An aggregate's target list is evaluated after every row: the
    // position is read once every lock has been granted. The insert
    // position may hold WAL not yet flushed (commits that waited for no
    // flush, or records of other transactions still running), and a
    // replica is sent flushed WAL only. A commit flushes only when its
    // transaction wrote WAL: a transaction id alone does not (PostgreSQL
    // then commits asynchronously). So this transaction writes one empty
    // logical message (executable by any role, ignored by physical
    // replicas and by decoders that do not ask for the prefix), and its
    // commit flushes up to its own commit record, past the position,
    // before `commit` returns.
    let (_, lsn, _): (i64, Lsn, String) = sqlx::query_as(
        "SELECT count(pg_advisory_xact_lock($1, o)), pg_current_wal_insert_lsn(), \
           pg_logical_emit_message(true, 'widget-data', '')::text \
         FROM unnest($2::integer[]) o",
    )
    .bind(WRITERS)
    .bind(&relids)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((relids.into_iter().zip(versions).collect(), lsn.into()))
}
