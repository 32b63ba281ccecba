//! Runs generated SQL under the caller's Postgres role.
//!
//! Takes a pool, a `Principal` and a statement from `sql`; gives the rows as
//! one JSON array. Every query runs in its own READ ONLY transaction that
//! first sets the role, the JWT claims and the statement timeout, so
//! PostgreSQL's GRANTs and row-level security decide what the caller sees.
//! Builds no SQL of its own beyond that fixed preamble.
//!
//! Every wait is bounded by the request's [`Deadline`]: a pooled connection,
//! the caller's query slot ([`slots`]), the query, the commit. A database
//! that fails or does not answer is reported to [`Health`], and while it is
//! known to be down nothing here waits on it.
//!
//! Reads that say which write they must see ([`Lsn`]) may run on a
//! streaming replica ([`replicas`]) that has replayed it, else on the
//! primary; a replica's lag or failure is never the caller's to see.

use crate::auth::Principal;
use crate::db::Health;
use crate::deadline::{Deadline, SERVER_MARGIN};
use serde_json::value::RawValue;
use sqlx::postgres::Postgres;
use sqlx::{IntoArguments, PgPool, SqlSafeStr, SqlStr, types::Json};
use std::sync::Arc;
use std::time::Duration;

pub mod replicas;
mod slots;

pub use replicas::{Lsn, ReplicaFigures, Replicas};
pub use slots::{CallerSlots, Slot};

use replicas::{Outcome, Replica};

/// The least a query gets once it has its slot: waiting longer for one
/// would only start a query PostgreSQL must cancel at once.
const SLOT_MARGIN: Duration = Duration::from_millis(100).saturating_add(SERVER_MARGIN);

/// One round trip sets everything the transaction needs. `set_config(...,
/// true)` is `SET LOCAL`: it ends with the transaction, so a pooled
/// connection never carries one caller's role into the next request.
const PREAMBLE: &str = "SELECT set_config('role', $1, true), \
    set_config('request.jwt.claims', $2, true), \
    set_config('statement_timeout', $3, true), \
    set_config('TimeZone', 'UTC', true)";

/// A replica's reads: READ COMMITTED whatever the server's default, so
/// that each statement takes a snapshot of its own (see [`CAUGHT_UP`]).
const BEGIN_ON_REPLICA: &str = "BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY";

/// Whether the replica has replayed the WAL up to `$1`. Asked as a
/// statement of its own before the query: the query's snapshot, taken
/// after this one's, holds everything replayed by then. NULL (a server
/// never in recovery: its positions are not the primary's) is not.
const CAUGHT_UP: &str = "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)";

/// How long a read waits for a replica that is behind before going to the
/// primary: replay usually catches up within milliseconds of a write.
const LAG_PATIENCE: Duration = Duration::from_millis(80);
/// The first pause between two looks at a lagging replica, doubled each
/// time up to [`LAG_PAUSE_MAX`].
const LAG_PAUSE: Duration = Duration::from_millis(2);
const LAG_PAUSE_MAX: Duration = Duration::from_millis(16);

/// The most a replica may take to give a connection, start the
/// transaction and say how far it has replayed: past it, the replica
/// counts as silent and the read goes elsewhere with the time left.
const REPLICA_READY: Duration = Duration::from_secs(1);

/// Where a read ran: the primary, or the replica at this place in
/// `DATABASE_READ_URLS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Primary,
    Replica(usize),
}

/// One try of a read on a replica.
enum Attempt {
    Answered(Box<RawValue>),
    /// It had not replayed the LSN asked for in time.
    Behind,
    /// It failed; another may answer.
    Failed,
    /// The caller's own error (permissions, timeout, the SQL): the same
    /// anywhere, so not tried again.
    Refused(ExecError),
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// SQLSTATE 42501: the role lacks a GRANT.
    #[error("permission denied: {message}")]
    PermissionDenied { message: String },
    /// SQLSTATE 57014: PostgreSQL cancelled the query at `statement_timeout`.
    #[error("query timed out")]
    Timeout,
    /// The caller's data broke a rule of the table (SQLSTATE class 23:
    /// unique, foreign key, check, not null) or is not a value of the
    /// column's type (class 22). `conflict`: a duplicate key.
    #[error("{message}")]
    Rejected { message: String, conflict: bool },
    /// Cannot reach PostgreSQL, lost it, or it is shutting down.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// PostgreSQL did not answer before the request's deadline (a frozen
    /// server, a partition, or a pool kept busy until then).
    #[error("the database did not answer in time")]
    NoAnswer,
    /// Known to be down ([`Health`]): not tried.
    #[error("the database is down")]
    Down,
    /// The caller already runs its share of queries, and none finished
    /// before the deadline.
    #[error("already running {limit} queries")]
    TooManyQueries { limit: u32 },
    /// Anything else: a bug in the SQL we generated, or in us.
    #[error("database error: {0}")]
    Internal(#[source] sqlx::Error),
}

impl ExecError {
    /// The database could not give an answer: a cached one may stand in.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ExecError::Unavailable(_) | ExecError::NoAnswer | ExecError::Down
        )
    }
}

impl From<sqlx::Error> for ExecError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("42501") => ExecError::PermissionDenied {
                    message: db.message().to_owned(),
                },
                Some("57014") => ExecError::Timeout,
                Some(code) if code.starts_with("23") || code.starts_with("22") => {
                    ExecError::Rejected {
                        message: db.message().to_owned(),
                        conflict: code == "23505",
                    }
                }
                // connection exceptions, insufficient resources, operator
                // intervention (shutdown, crash of another backend), cannot
                // connect now, system errors (I/O on the server)
                Some(code)
                    if code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || code.starts_with("58") =>
                {
                    ExecError::Unavailable(e)
                }
                // PostgreSQL reports a parallel worker killed under a query
                // (the server crashing or being stopped) as an internal
                // error; it is the server going away, not our SQL.
                Some("XX000") if db.message().contains("parallel worker") => {
                    ExecError::Unavailable(e)
                }
                _ => ExecError::Internal(e),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => ExecError::Unavailable(e),
            _ => ExecError::Internal(e),
        }
    }
}

/// Rows PostgreSQL rendered that we cannot read: our bug.
impl From<serde_json::Error> for ExecError {
    fn from(e: serde_json::Error) -> Self {
        ExecError::Internal(sqlx::Error::Decode(Box::new(e)))
    }
}

/// The callers' side of the database: their pool, the breaker and their
/// query slots.
pub struct Database {
    pool: PgPool,
    health: Arc<Health>,
    slots: CallerSlots,
    query_timeout: Duration,
    replicas: Arc<Replicas>,
}

impl Database {
    pub fn new(
        pool: PgPool,
        health: Arc<Health>,
        query_timeout: Duration,
        queries_per_caller: u32,
        replicas: Arc<Replicas>,
    ) -> Self {
        Self {
            pool,
            health,
            slots: CallerSlots::new(queries_per_caller),
            query_timeout,
            replicas,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn replicas(&self) -> &Arc<Replicas> {
        &self.replicas
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Whether the database answers within `timeout` with the newest
    /// migration applied; otherwise why not. A database that does not
    /// answer is suspected (the probe looks).
    pub async fn ready(&self, timeout: Duration) -> Result<(), &'static str> {
        const UNAVAILABLE: &str = "the database is unavailable";
        if self.health.is_down() {
            return Err(UNAVAILABLE);
        }
        match tokio::time::timeout(timeout, crate::db::is_ready(&self.pool)).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err("the database schema is not migrated"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness check failed");
                self.health.suspect();
                Err(UNAVAILABLE)
            }
            Err(_) => {
                tracing::warn!("readiness check timed out");
                self.health.suspect();
                Err(UNAVAILABLE)
            }
        }
    }

    /// Runs `sql` (which must return one row with one `json` column) as
    /// `principal` in a READ ONLY transaction, and returns that JSON
    /// untouched.
    pub async fn query_json<A>(
        &self,
        principal: &Principal,
        deadline: Deadline,
        sql: impl SqlSafeStr,
        arguments: A,
    ) -> Result<Box<RawValue>, ExecError>
    where
        A: IntoArguments<Postgres> + Send,
    {
        let _slot = self.admit(principal, deadline).await?;
        self.read_on_primary(principal, deadline, sql, arguments)
            .await
    }

    /// [`query_json`](Self::query_json), on a replica when one has
    /// replayed the WAL up to `caught_up_to` (so its answer holds every
    /// write the primary had made by then), else on the primary.
    ///
    /// `None`, or no healthy replica: the primary, as `query_json`. A
    /// replica that is behind is looked at again for up to
    /// [`LAG_PATIENCE`] (never past the deadline), then the primary
    /// answers; an answer of a replica that had not replayed
    /// `caught_up_to` is never returned. A replica that fails is marked
    /// down and the read goes to the next healthy one or the primary,
    /// within the same deadline: the caller sees only the primary's
    /// errors and its own (permissions, timeout), which are not retried.
    /// `arguments` are cloned for each try.
    pub async fn query_json_read<A>(
        &self,
        principal: &Principal,
        deadline: Deadline,
        sql: impl SqlSafeStr,
        arguments: A,
        caught_up_to: Option<Lsn>,
    ) -> Result<(Box<RawValue>, Served), ExecError>
    where
        A: IntoArguments<Postgres> + Clone + Send,
    {
        let Some(lsn) = caught_up_to.filter(|_| self.replicas.any_healthy()) else {
            let _slot = self.admit(principal, deadline).await?;
            self.replicas.count(Outcome::OnPrimary);
            let rows = self
                .read_on_primary(principal, deadline, sql, arguments)
                .await?;
            return Ok((rows, Served::Primary));
        };
        // The primary being down does not stop a replica answering.
        let _slot = self.take_slot(principal, deadline).await?;
        let sql = sql.into_sql_str();
        let mut tried = Vec::new();
        while let Some(replica) = self.replicas.pick(&tried) {
            tried.push(replica.index());
            let attempt = self
                .read_on_replica(
                    replica,
                    principal,
                    deadline,
                    sql.clone(),
                    arguments.clone(),
                    lsn,
                )
                .await;
            match attempt {
                Attempt::Answered(rows) => {
                    self.replicas.count(Outcome::OnReplica);
                    return Ok((rows, Served::Replica(replica.index())));
                }
                // The others stream from the same primary: as likely
                // behind, and each would cost the same wait.
                Attempt::Behind => {
                    self.replicas.count(Outcome::Behind);
                    break;
                }
                Attempt::Failed => self.replicas.count(Outcome::Failed),
                Attempt::Refused(e) => return Err(e),
            }
        }
        if self.health.is_down() {
            return Err(ExecError::Down);
        }
        // A replica that went silent used the whole budget: that is no
        // sign of the primary's health.
        if deadline.is_past() {
            return Err(ExecError::NoAnswer);
        }
        self.replicas.count(Outcome::OnPrimary);
        let rows = self
            .read_on_primary(principal, deadline, sql, arguments)
            .await?;
        Ok((rows, Served::Primary))
    }

    /// The read on the primary, the caller's slot already taken.
    async fn read_on_primary<A>(
        &self,
        principal: &Principal,
        deadline: Deadline,
        sql: impl SqlSafeStr,
        arguments: A,
    ) -> Result<Box<RawValue>, ExecError>
    where
        A: IntoArguments<Postgres> + Send,
    {
        let run = async {
            let mut tx = self.pool.begin_with("BEGIN READ ONLY").await?;
            act_as(&mut tx, principal, self.statement_timeout(deadline)).await?;
            let Json(rows): Json<Box<RawValue>> = sqlx::query_scalar_with(sql, arguments)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        };
        self.settle(deadline.run(run).await)
    }

    /// The read on `replica`, in one READ ONLY, READ COMMITTED
    /// transaction: the preamble, then [`CAUGHT_UP`] until it says yes
    /// (or [`LAG_PATIENCE`] is spent), then the query.
    async fn read_on_replica<A>(
        &self,
        replica: &Replica,
        principal: &Principal,
        deadline: Deadline,
        sql: SqlStr,
        arguments: A,
        lsn: Lsn,
    ) -> Attempt
    where
        A: IntoArguments<Postgres> + Send,
    {
        // Time is kept back for the primary, should this replica fail.
        let ready_by = deadline.sooner_by(SLOT_MARGIN).within(REPLICA_READY);
        let statement_timeout = self.statement_timeout(deadline);
        let begin = async {
            let mut tx = replica.pool().begin_with(BEGIN_ON_REPLICA).await?;
            act_as(&mut tx, principal, statement_timeout).await?;
            Ok::<_, sqlx::Error>(tx)
        };
        let mut tx = match ready_by.run(begin).await {
            Ok(Ok(tx)) => tx,
            Ok(Err(e)) => return replica_error(replica, e),
            Err(_) => return replica_silent(replica),
        };
        let patience = deadline.sooner_by(SLOT_MARGIN).within(LAG_PATIENCE);
        let mut pause = LAG_PAUSE;
        loop {
            let check = sqlx::query_scalar::<_, bool>(CAUGHT_UP)
                .bind(lsn)
                .fetch_one(&mut *tx);
            match ready_by.run(check).await {
                Ok(Ok(true)) => break,
                Ok(Ok(false)) if Deadline::after(pause) <= patience => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LAG_PAUSE_MAX);
                }
                Ok(Ok(false)) => {
                    tracing::debug!(replica = replica.index(), %lsn, "read replica behind");
                    return Attempt::Behind;
                }
                Ok(Err(e)) => return replica_error(replica, e),
                Err(_) => return replica_silent(replica),
            }
        }
        let run = async {
            let Json(rows): Json<Box<RawValue>> = sqlx::query_scalar_with(sql, arguments)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        };
        match deadline.run(run).await {
            Ok(Ok(rows)) => Attempt::Answered(rows),
            Ok(Err(e)) => replica_error(replica, e),
            Err(_) => replica_silent(replica),
        }
    }

    /// A read-write transaction as `principal`, every step bounded by
    /// `deadline`.
    pub async fn begin_write(
        &self,
        principal: &Principal,
        deadline: Deadline,
    ) -> Result<WriteTx<'_>, ExecError> {
        let slot = self.admit(principal, deadline).await?;
        let begin = async {
            let mut tx = self.pool.begin().await?;
            act_as(&mut tx, principal, self.statement_timeout(deadline)).await?;
            Ok::<_, sqlx::Error>(tx)
        };
        let tx = self.settle(deadline.run(begin).await)?;
        Ok(WriteTx {
            tx,
            deadline,
            db: self,
            _slot: slot,
        })
    }

    /// Refuses at once while the database is down; else waits for one of
    /// the caller's query slots, as long as a query would still have time
    /// to run after it.
    async fn admit(
        &self,
        principal: &Principal,
        deadline: Deadline,
    ) -> Result<Slot<'_>, ExecError> {
        if self.health.is_down() {
            return Err(ExecError::Down);
        }
        self.take_slot(principal, deadline).await
    }

    /// One of the caller's query slots, as long as a query would still
    /// have time to run after it.
    async fn take_slot(
        &self,
        principal: &Principal,
        deadline: Deadline,
    ) -> Result<Slot<'_>, ExecError> {
        let slot = self
            .slots
            .acquire(principal.caller_key(), deadline.sooner_by(SLOT_MARGIN))
            .await;
        slot.map_err(|_| {
            // The caller's earlier queries held every slot because the
            // database stopped answering them: say that, not "too many".
            if self.health.is_down() {
                ExecError::Down
            } else {
                ExecError::TooManyQueries {
                    limit: self.slots.per_caller(),
                }
            }
        })
    }

    /// `QUERY_TIMEOUT_MS`, or less when the request has less left, so that
    /// PostgreSQL itself cancels a slow query (a 504) a margin before we
    /// would stop waiting for it.
    fn statement_timeout(&self, deadline: Deadline) -> Duration {
        let left = deadline.remaining().saturating_sub(SERVER_MARGIN);
        self.query_timeout.min(left).max(Duration::from_millis(1))
    }

    /// The outcome of database work, telling [`Health`] when the server
    /// failed or went silent.
    fn settle<T>(
        &self,
        outcome: Result<Result<T, sqlx::Error>, crate::deadline::Elapsed>,
    ) -> Result<T, ExecError> {
        let result = match outcome {
            Ok(result) => result.map_err(ExecError::from),
            Err(_) => Err(ExecError::NoAnswer),
        };
        if let Err(e) = &result
            && e.is_unavailable()
        {
            self.health.suspect();
        }
        result
    }
}

/// A replica's error: a failure of the replica (it is marked down, unless
/// replay merely cancelled the query) or the caller's own.
fn replica_error(replica: &Replica, e: sqlx::Error) -> Attempt {
    // SQLSTATE 40001 in a READ COMMITTED read: a hot standby cancelled
    // the query for a conflict with replay. The replica is well; the
    // primary has no such conflict.
    let replay_conflict =
        matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("40001"));
    let e = ExecError::from(e);
    if e.is_unavailable() {
        tracing::debug!(replica = replica.index(), error = %e, "read replica failed");
        replica.failed();
        Attempt::Failed
    } else if replay_conflict {
        tracing::debug!(replica = replica.index(), error = %e, "read cancelled by replay");
        Attempt::Failed
    } else {
        Attempt::Refused(e)
    }
}

/// A replica that did not answer within its part of the deadline.
fn replica_silent(replica: &Replica) -> Attempt {
    replica.failed();
    Attempt::Failed
}

/// Makes the rest of transaction `tx` run as `principal` (the preamble).
async fn act_as(
    tx: &mut sqlx::PgConnection,
    principal: &Principal,
    statement_timeout: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(PREAMBLE)
        .bind(principal.role.as_str())
        .bind(principal.claims.to_string())
        .bind(statement_timeout.as_millis().to_string())
        .execute(tx)
        .await?;
    Ok(())
}

/// A read-write transaction as the caller: for the REST tables, where one
/// request may write and then check what it wrote before committing.
/// Dropped without [`WriteTx::commit`], it rolls back.
pub struct WriteTx<'a> {
    tx: sqlx::Transaction<'static, Postgres>,
    deadline: Deadline,
    db: &'a Database,
    _slot: Slot<'a>,
}

impl WriteTx<'_> {
    /// Runs a statement returning one row with one `json` column.
    pub async fn json<A>(
        &mut self,
        sql: impl SqlSafeStr,
        arguments: A,
    ) -> Result<Box<RawValue>, ExecError>
    where
        A: IntoArguments<Postgres> + Send,
    {
        let run = async {
            let Json(rows): Json<Box<RawValue>> = sqlx::query_scalar_with(sql, arguments)
                .fetch_one(&mut *self.tx)
                .await?;
            Ok::<_, sqlx::Error>(rows)
        };
        let outcome = self.deadline.run(run).await;
        self.db.settle(outcome)
    }

    /// Runs a statement returning one row with one `bigint` column.
    pub async fn count<A>(&mut self, sql: impl SqlSafeStr, arguments: A) -> Result<i64, ExecError>
    where
        A: IntoArguments<Postgres> + Send,
    {
        let run = sqlx::query_scalar_with(sql, arguments).fetch_one(&mut *self.tx);
        let outcome = self.deadline.run(run).await;
        self.db.settle(outcome)
    }

    pub async fn commit(self) -> Result<(), ExecError> {
        let outcome = self.deadline.run(self.tx.commit()).await;
        self.db.settle(outcome)
    }
}
