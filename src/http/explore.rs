//! What a query builder asks before it queries: the tables and columns the
//! caller may read (the pages' pickers), and the statement a data source
//! compiles to (the playground, for `service_role`).

use super::Caller;
use super::widget_data::WidgetDataRequest;
use crate::app::App;
use crate::auth::Role;
use crate::deadline::Deadline;
use crate::error::{ApiError, ErrorBody};
use crate::schema::{Privilege, RelationKind};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueryableTables {
    /// By schema, then name.
    tables: Vec<QueryableTable>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueryableTable {
    schema: String,
    name: String,
    /// `table` or `view`.
    kind: &'static str,
    /// In ordinal order.
    columns: Vec<QueryableColumn>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueryableColumn {
    name: String,
    /// PostgreSQL's type name (`pg_type.typname`: `int4`, `timestamptz`, ...).
    #[serde(rename = "type")]
    pg_type: String,
    /// How the column may be used: `integer`, `float` and `numeric` may be
    /// summed and averaged; `timestamptz`, `timestamp` and `date` may be
    /// bucketed; `text`, `boolean` and `uuid` grouped and filtered; `json`
    /// selected and grouped only; `other` counted only.
    #[schema(value_type = String)]
    kind: crate::schema::ColumnKind,
    nullable: bool,
}

/// The tables a data source may name.
///
/// Every table and view of the exposed schemas on which the caller's role
/// holds `SELECT`, with its columns and how each may be used: what a query
/// builder offers. Row-level security still decides which rows a query
/// sees.
#[utoipa::path(
    get,
    path = "/functions/v1/widget-data/schema",
    tag = "widget-data",
    operation_id = "get_widget_data_schema",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tables and columns the caller may query", body = QueryableTables),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 429, description = "Over the caller's rate limit; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn get_widget_data_schema(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
) -> Json<QueryableTables> {
    let schema = app.schema();
    let role = principal.role.as_str();
    let mut tables: Vec<QueryableTable> = schema
        .tables()
        .filter(|t| t.grants.allows(role, Privilege::Select))
        .map(|t| QueryableTable {
            schema: t.schema.clone(),
            name: t.name.clone(),
            kind: match t.kind {
                RelationKind::Table => "table",
                RelationKind::View => "view",
            },
            columns: t
                .columns
                .iter()
                .map(|c| QueryableColumn {
                    name: c.name.clone(),
                    pg_type: c.pg_type.clone(),
                    kind: c.kind,
                    nullable: c.nullable,
                })
                .collect(),
        })
        .collect();
    tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Json(QueryableTables { tables })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Statement {
    /// The statement as sent to PostgreSQL, with `$1`, `$2`, ... for the
    /// parameters. It runs after `SET LOCAL ROLE` and the caller's claims,
    /// in a read-only transaction.
    sql: String,
    /// The bound parameters, in order.
    #[schema(value_type = Vec<Object>)]
    params: Vec<serde_json::Value>,
}

/// The SQL a data source compiles to (service_role only).
///
/// Takes the same body as `POST /functions/v1/widget-data` (a `config`,
/// or a `widget_id` with the dashboard's filters merged) and answers the
/// statement it would run, without running it.
#[utoipa::path(
    post,
    path = "/functions/v1/widget-data/sql",
    tag = "widget-data",
    operation_id = "get_widget_data_sql",
    request_body = WidgetDataRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The statement and its parameters", body = Statement),
        (status = 400, description = "The body or its data source is invalid; `details.field` names what", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not service_role", body = ErrorBody),
        (status = 404, description = "Widget not found", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`Content-Type`)", body = ErrorBody),
        (status = 429, description = "Over the caller's rate limit; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "The database cannot load the widget", body = ErrorBody),
        (status = 504, description = "Loading the widget timed out", body = ErrorBody),
    )
)]
pub async fn get_widget_data_sql(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Statement>, ApiError> {
    // The statement shows every table and column a query reads, and any
    // value a saved widget filters on: the operator's, like the stats.
    if principal.role != Role::ServiceRole {
        return Err(ApiError::Forbidden {
            message: "the generated SQL is shown to service_role only",
        });
    }
    let bytes = super::body::read(&headers, body, super::body::WIDGET_DATA_LIMIT_BYTES).await?;
    let request: WidgetDataRequest =
        serde_json::from_value(super::body::parse(&bytes)?).map_err(|e| ApiError::InvalidBody {
            message: format!("invalid request body: {e}"),
        })?;
    let query = request.into_query(&app, bytes, &principal)?;
    let deadline = Deadline::for_request(app.config.query_timeout);
    let (sql, params) = app.pipeline.statement(&principal, &query, deadline).await?;
    Ok(Json(Statement { sql, params }))
}
