//! `ApiError`: the one error type that becomes an HTTP response.
//!
//! Each stage has its own error enum and says which `ErrorCode` it is;
//! this module is the single table that maps them to a status. A 5xx body is
//! generic: its cause is logged here, once, and never sent to the client.

use crate::auth::AuthError;
use crate::code::ErrorCode;
use crate::exec::ExecError;
use crate::plan::PlanError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The body is not JSON of the expected shape.
    #[error("{message}")]
    InvalidBody { message: String },
    #[error("request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {timeout_secs} s")]
    BodyTimeout { timeout_secs: u64 },
    /// A JSON endpoint was sent something else.
    #[error("Content-Type {media_type:?} is not JSON: send application/json")]
    UnsupportedMediaType { media_type: String },
    /// A saved widget whose stored configuration does not parse.
    #[error("the saved widget's {field} is invalid: {message}")]
    InvalidSavedWidget { field: String, message: String },
    /// A valid token whose role may not do this.
    #[error("{message}")]
    Forbidden { message: &'static str },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// An object was asked for (`Accept: application/vnd.pgrst.object+json`)
    /// but the result has `rows` rows. PostgREST's message; its `details`
    /// say how many rows, which supabase-js's `.maybeSingle()` reads.
    #[error("Cannot coerce the result to a single JSON object")]
    NotSingle { rows: usize },
    /// A read with a count asked for whose offset is past the `total`
    /// rows (PostgREST's 416, as it words it).
    #[error("Requested range not satisfiable")]
    OffsetPastEnd { offset: u64, total: u64 },
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    /// A `Range` header that names no rows PostgreSQL could give.
    #[error("{message}")]
    RangeNotSatisfiable { message: String },
    /// Over the caller's requests per second (`RATE_LIMIT_PER_SEC`).
    #[error("too many requests: try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A bulk insert of more rows than `REST_MAX_BULK_ROWS`.
    #[error("at most {limit} rows per insert (got {rows}); send them in several requests")]
    TooManyRows { limit: usize, rows: usize },
    /// A statement would need more bind parameters than PostgreSQL takes.
    #[error(
        "the request needs {parameters} values; one statement takes at most {limit}: send fewer rows or values at once"
    )]
    TooManyParameters { parameters: usize, limit: usize },
    /// The user already owns as many rows of the table as allowed.
    #[error("you may own at most {limit} {what}")]
    QuotaExceeded { what: &'static str, limit: u64 },
    /// A widget bundle could not be pinned: its fetch was refused or
    /// failed (`code` says which); nothing was stored.
    #[error("{message}")]
    BundleRefused { code: ErrorCode, message: String },
    /// `/ready`: the database cannot serve yet. Expected while it is down,
    /// so neither logged as a failure nor given a `Retry-After`.
    #[error("{message}")]
    NotReady { message: &'static str },
}

/// The JSON shape of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, snake_case; one per condition.
    pub code: ErrorCode,
    pub message: String,
    /// An object for the service's own codes; for PostgREST's (`PGRST…`)
    /// a sentence, as PostgREST gives it.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
    pub hint: Option<String>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::Plan(_)
            | ApiError::InvalidBody { .. }
            | ApiError::InvalidSavedWidget { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } | ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::NotSingle { .. } => StatusCode::NOT_ACCEPTABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RangeNotSatisfiable { .. } | ApiError::OffsetPastEnd { .. } => {
                StatusCode::RANGE_NOT_SATISFIABLE
            }
            ApiError::TooManyRows { .. } | ApiError::TooManyParameters { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            ApiError::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BundleRefused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Exec(e) => match e {
                ExecError::PermissionDenied { .. } => StatusCode::FORBIDDEN,
                ExecError::Rejected { conflict: true, .. } => StatusCode::CONFLICT,
                ExecError::Rejected { .. } => StatusCode::BAD_REQUEST,
                ExecError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ExecError::Unavailable(_) | ExecError::NoAnswer | ExecError::Down => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ExecError::TooManyQueries { .. } => StatusCode::TOO_MANY_REQUESTS,
                ExecError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Auth(e) => e.code(),
            ApiError::Plan(e) => e.code(),
            ApiError::InvalidBody { .. } => ErrorCode::InvalidBody,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::BodyTimeout { .. } => ErrorCode::BodyTimeout,
            ApiError::UnsupportedMediaType { .. } => ErrorCode::UnsupportedMediaType,
            ApiError::InvalidSavedWidget { .. } => ErrorCode::InvalidSavedWidget,
            ApiError::Forbidden { .. } => ErrorCode::Forbidden,
            ApiError::NotFound { .. } => ErrorCode::NotFound,
            ApiError::NoRoute { .. } => ErrorCode::NoRoute,
            ApiError::NotSingle { .. } => ErrorCode::NotSingle,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::RangeNotSatisfiable { .. } => ErrorCode::RangeNotSatisfiable,
            ApiError::OffsetPastEnd { .. } => ErrorCode::OffsetPastEnd,
            ApiError::TooManyRows { .. } => ErrorCode::TooManyRows,
            ApiError::TooManyParameters { .. } => ErrorCode::TooManyParameters,
            ApiError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            ApiError::NotReady { .. } => ErrorCode::NotReady,
            ApiError::BundleRefused { code, .. } => *code,
            ApiError::Exec(e) => match e {
                ExecError::PermissionDenied { .. } => ErrorCode::PermissionDenied,
                ExecError::Rejected { conflict: true, .. } => ErrorCode::Conflict,
                ExecError::Rejected { .. } => ErrorCode::RejectedByDatabase,
                ExecError::Timeout => ErrorCode::QueryTimeout,
                ExecError::Unavailable(_) | ExecError::NoAnswer | ExecError::Down => {
                    ErrorCode::DatabaseUnavailable
                }
                ExecError::TooManyQueries { .. } => ErrorCode::TooManyQueries,
                ExecError::Internal(_) => ErrorCode::InternalError,
            },
        }
    }

    fn body(&self) -> ErrorBody {
        let (message, details, hint) = match self {
            ApiError::Plan(e) => (
                e.to_string(),
                Some(serde_json::json!({ "field": e.field() })),
                None,
            ),
            ApiError::InvalidSavedWidget { field, .. } => (
                self.to_string(),
                Some(serde_json::json!({ "field": field })),
                None,
            ),
            ApiError::Auth(AuthError::MissingToken) => (
                self.to_string(),
                None,
                Some("supabase-js sends it when the client has a session or a key".into()),
            ),
            // A row the policies refuse (an upsert onto another user's
            // key or row): the grant is there, so no GRANT hint.
            ApiError::Exec(ExecError::PermissionDenied { message })
                if message.contains("row-level security") =>
            {
                (
                    "row-level security refused the write: a row may be written only by the user it belongs to".into(),
                    Some(serde_json::json!({ "reason": message })),
                    None,
                )
            }
            ApiError::Exec(ExecError::PermissionDenied { message }) => (
                "the caller's role may not do this".into(),
                Some(serde_json::json!({ "reason": message })),
                Some("GRANT SELECT on the table to the role, or use a role that has it".into()),
            ),
            ApiError::Exec(ExecError::Timeout) => (
                "the query took longer than QUERY_TIMEOUT_MS and was cancelled".into(),
                None,
                Some("narrow the data source with filters or a smaller time range".into()),
            ),
            // 5xx: nothing of the cause reaches the client.
            ApiError::Exec(ExecError::Unavailable(_) | ExecError::NoAnswer | ExecError::Down) => (
                "the database is unavailable; try again shortly".into(),
                None,
                None,
            ),
            ApiError::Exec(ExecError::TooManyQueries { limit }) => (
                format!(
                    "you already run {limit} queries at once (MAX_QUERIES_PER_CALLER); \
                     try again when one has finished"
                ),
                Some(serde_json::json!({ "limit": limit })),
                None,
            ),
            ApiError::RateLimited { retry_after_secs } => (
                self.to_string(),
                Some(serde_json::json!({ "retry_after_secs": retry_after_secs })),
                Some("RATE_LIMIT_PER_SEC and RATE_LIMIT_BURST set the limit".into()),
            ),
            ApiError::TooManyRows { limit, .. } => (
                self.to_string(),
                Some(serde_json::json!({ "limit": limit })),
                Some("REST_MAX_BULK_ROWS sets the limit".into()),
            ),
            ApiError::TooManyParameters { limit, .. } => (
                self.to_string(),
                Some(serde_json::json!({ "limit": limit })),
                None,
            ),
            ApiError::QuotaExceeded { limit, .. } => (
                self.to_string(),
                Some(serde_json::json!({ "limit": limit })),
                Some("delete some first, or ask for a larger quota".into()),
            ),
            // PostgREST's `details` for its codes are a sentence, not an
            // object: supabase-js's `.maybeSingle()` looks for "0 rows" in it.
            ApiError::NotSingle { rows } => (
                self.to_string(),
                Some(Value::String(format!("The result contains {rows} rows"))),
                None,
            ),
            ApiError::OffsetPastEnd { offset, total } => (
                self.to_string(),
                Some(Value::String(format!(
                    "An offset of {offset} was requested, but there are only {total} rows."
                ))),
                None,
            ),
            ApiError::Exec(ExecError::Internal(_)) => ("internal error".into(), None, None),
            _ => (self.to_string(), None, None),
        };
        ErrorBody {
            code: self.code(),
            message,
            details,
            hint,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let expected = matches!(self, ApiError::NotReady { .. });
        if status.is_server_error() && !expected {
            // Logged once, here, inside the request's span (which carries
            // the request id).
            tracing::error!(code = self.code().as_str(), cause = ?self, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            // The caller's own queries finish in well under a second; the
            // database is probed twice a second while down.
            ApiError::Exec(ExecError::TooManyQueries { .. }) => Some(1),
            _ if status == StatusCode::SERVICE_UNAVAILABLE && !expected => Some(1),
            _ => None,
        };
        if let ApiError::OffsetPastEnd { total, .. } = &self
            && let Ok(range) = axum::http::HeaderValue::from_str(&format!("*/{total}"))
        {
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_RANGE, range);
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
