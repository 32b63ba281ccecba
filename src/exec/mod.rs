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

use crate::auth::Principal;
use crate::db::Health;
use crate::deadline::{Deadline, SERVER_MARGIN};
use serde_json::value::RawValue;
use sqlx::postgres::Postgres;
use sqlx::{IntoArguments, PgPool, SqlSafeStr, types::Json};
use std::sync::Arc;
use std::time::Duration;

mod slots;

pub use slots::{CallerSlots, Slot};

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
}

impl Database {
    pub fn new(
        pool: PgPool,
        health: Arc<Health>,
        query_timeout: Duration,
        queries_per_caller: u32,
    ) -> Self {
        Self {
            pool,
            health,
            slots: CallerSlots::new(queries_per_caller),
            query_timeout,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
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
