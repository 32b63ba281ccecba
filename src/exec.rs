//! Runs generated SQL under the caller's Postgres role.
//!
//! Takes a pool, a `Principal` and a statement from `sql`; gives the rows as
//! one JSON array. Every query runs in its own READ ONLY transaction that
//! first sets the role, the JWT claims and the statement timeout, so
//! PostgreSQL's GRANTs and row-level security decide what the caller sees.
//! Builds no SQL of its own beyond that fixed preamble.

use crate::auth::Principal;
use serde_json::value::RawValue;
use sqlx::postgres::Postgres;
use sqlx::{IntoArguments, PgPool, SqlSafeStr, types::Json};
use std::time::Duration;

/// One round trip sets everything the transaction needs. `set_config(...,
/// true)` is `SET LOCAL`: it ends with the transaction, so a pooled
/// connection never carries one caller's role into the next request.
const PREAMBLE: &str = "SELECT set_config('role', $1, true), \
    set_config('request.jwt.claims', $2, true), \
    set_config('statement_timeout', $3, true), \
    set_config('TimeZone', 'UTC', true)";

/// How much longer than `statement_timeout` we wait for PostgreSQL before
/// giving up on the connection ourselves (a hung network, a dead server).
const CLIENT_TIMEOUT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// SQLSTATE 42501: the role lacks a GRANT.
    #[error("permission denied: {message}")]
    PermissionDenied { message: String },
    /// SQLSTATE 57014 (statement_timeout) or our own deadline.
    #[error("query timed out")]
    Timeout,
    /// The caller's data broke a rule of the table (SQLSTATE class 23:
    /// unique, foreign key, check, not null) or is not a value of the
    /// column's type (class 22). `conflict`: a duplicate key.
    #[error("{message}")]
    Rejected { message: String, conflict: bool },
    /// Cannot reach PostgreSQL, or it is shutting down.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug in the SQL we generated, or in us.
    #[error("database error: {0}")]
    Internal(#[source] sqlx::Error),
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
                // intervention (shutdown), cannot connect now
                Some(code)
                    if code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P") =>
                {
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

/// Runs `sql` (which must return one row with one `json` column) as
/// `principal`, and returns that JSON untouched.
pub async fn query_json<A>(
    pool: &PgPool,
    principal: &Principal,
    timeout: Duration,
    sql: impl SqlSafeStr,
    arguments: A,
) -> Result<Box<RawValue>, ExecError>
where
    A: IntoArguments<Postgres> + Send,
{
    let run = async {
        let mut tx = pool.begin_with("BEGIN READ ONLY").await?;
        act_as(&mut tx, principal, timeout).await?;
        let Json(rows): Json<Box<RawValue>> = sqlx::query_scalar_with(sql, arguments)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, ExecError>(rows)
    };
    match tokio::time::timeout(timeout + CLIENT_TIMEOUT_GRACE, run).await {
        Ok(result) => result,
        Err(_) => Err(ExecError::Timeout),
    }
}

/// Makes the rest of transaction `tx` run as `principal` (the preamble).
async fn act_as(
    tx: &mut sqlx::PgConnection,
    principal: &Principal,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(PREAMBLE)
        .bind(principal.role.as_str())
        .bind(principal.claims.to_string())
        .bind(timeout.as_millis().to_string())
        .execute(tx)
        .await?;
    Ok(())
}

/// A read-write transaction as the caller: for the REST tables, where one
/// request may write and then check what it wrote before committing.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, Postgres>,
}

impl WriteTx {
    pub async fn begin(
        pool: &PgPool,
        principal: &Principal,
        timeout: Duration,
    ) -> Result<Self, ExecError> {
        let mut tx = pool.begin().await?;
        act_as(&mut tx, principal, timeout).await?;
        Ok(Self { tx })
    }

    /// Runs a statement returning one row with one `json` column.
    pub async fn json<A>(
        &mut self,
        sql: impl SqlSafeStr,
        arguments: A,
    ) -> Result<Box<RawValue>, ExecError>
    where
        A: IntoArguments<Postgres> + Send,
    {
        let Json(rows): Json<Box<RawValue>> = sqlx::query_scalar_with(sql, arguments)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(rows)
    }

    pub async fn commit(self) -> Result<(), ExecError> {
        Ok(self.tx.commit().await?)
    }
}
