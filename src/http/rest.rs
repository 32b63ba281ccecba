//! `/rest/v1/<table>`: the dashboard tables, PostgREST-style (see `rest`).
//!
//! Every statement runs as the caller's role in one transaction, so GRANTs
//! and the ownership policies of `migrations/0002` decide what a caller
//! reads and changes. Widget and data-source writes are checked in that
//! transaction, after the write and before the commit: a data source that
//! would not compile is a 400 naming the field, and nothing is saved.

use super::Caller;
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::exec;
use crate::rest;
use crate::schema::{Privilege, Table};
use crate::sql::{self, TooManyParameters};
use crate::widgets;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

type Params = Vec<(String, String)>;

/// Bodies larger than this are refused (a page of widgets is far smaller).
const BODY_LIMIT_BYTES: usize = 1024 * 1024;

pub async fn read(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let deadline = Deadline::for_request(app.config.query_timeout);
    let table = table(&app, &name)?;
    allowed(&table, &principal, Privilege::Select)?;
    let range = headers
        .get("range")
        .map_or(Ok(None), |h| rest::range(h.to_str().unwrap_or_default()));
    // The parameters are checked first: a bad one is a 400 whatever the
    // Range says.
    let read = rest::read(&table, &params, range.clone().unwrap_or(None))?;
    if let Err(message) = range {
        return Err(ApiError::RangeNotSatisfiable { message });
    }
    let (sql, values) = sql::rest::read(&table, &read);
    let rows = app
        .db
        .query_json(&principal, deadline, sqlx::AssertSqlSafe(sql), values)
        .await?;
    let rows: Vec<Value> = parse(rows.get())?;
    let range = match rows.len() {
        0 => "*/*".to_owned(),
        n => format!("{}-{}/*", read.offset, read.offset + n as u64 - 1),
    };
    let mut response = respond(&headers, StatusCode::OK, rows)?;
    if let Ok(v) = HeaderValue::from_str(&range) {
        response.headers_mut().insert("content-range", v);
    }
    Ok(response)
}

pub async fn write(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    method: Method,
    Path(name): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = if method == Method::DELETE {
        Value::Null
    } else {
        super::body::parse(&super::body::read(&headers, body, BODY_LIMIT_BYTES).await?)?
    };
    let deadline = Deadline::for_request(app.config.query_timeout);
    let one_row = wants_object(&headers);
    let (rows, select) = change(
        &app, &principal, &name, &method, &params, &body, one_row, deadline,
    )
    .await?;
    let status = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let representation = prefers_representation(&headers);
    if !representation {
        // PostgREST answers a minimal insert with an empty 201; an empty
        // array keeps the one documented shape of a 201 (supabase-js reads
        // no body either way).
        return Ok(if method == Method::POST {
            (StatusCode::CREATED, Json(Vec::<Value>::new())).into_response()
        } else {
            StatusCode::NO_CONTENT.into_response()
        });
    }
    let rows = rows.into_iter().map(|r| project(r, &select)).collect();
    respond(&headers, status, rows)
}

/// Inserts (POST), updates (PATCH) or deletes (DELETE) in table `name` as
/// `principal`, checking saved widgets and data sources before the commit.
/// With `one_row` (`.single()`), a write of any other number of rows is
/// rolled back. Gives the rows written, all columns, and the columns the
/// caller selected.
#[allow(clippy::too_many_arguments)]
pub(super) async fn change(
    app: &App,
    principal: &Principal,
    name: &str,
    method: &Method,
    params: &[(String, String)],
    body: &Value,
    one_row: bool,
    deadline: Deadline,
) -> Result<(Vec<Value>, Vec<String>), ApiError> {
    let table = table(app, name)?;
    let privilege = if *method == Method::POST {
        Privilege::Insert
    } else if *method == Method::PATCH {
        Privilege::Update
    } else {
        Privilege::Delete
    };
    allowed(&table, principal, privilege)?;
    let mut inserted = 0;
    let (sql, values, select) = if method == Method::POST {
        let limit = app.config.rest_max_bulk_rows;
        if let Value::Array(rows) = body
            && rows.len() > limit
        {
            return Err(ApiError::TooManyRows {
                limit,
                rows: rows.len(),
            });
        }
        let insert = rest::insert(&table, params, body)?;
        inserted = insert.rows.len();
        let select = insert.select.clone();
        let (sql, values) = sql::rest::insert(
            &table,
            &rest::Insert {
                select: all(&table),
                ..insert
            },
        )
        .map_err(too_many_parameters)?;
        (sql, values, select)
    } else if method == Method::PATCH {
        let update = rest::update(&table, params, body)?;
        let select = update.select.clone();
        let (sql, values) = sql::rest::update(
            &table,
            &rest::Update {
                select: all(&table),
                ..update
            },
        )
        .map_err(too_many_parameters)?;
        (sql, values, select)
    } else {
        let delete = rest::delete(&table, params)?;
        let select = delete.select.clone();
        let (sql, values) = sql::rest::delete(
            &table,
            &rest::Delete {
                select: all(&table),
                ..delete
            },
        )
        .map_err(too_many_parameters)?;
        (sql, values, select)
    };
    widgets::check_body(app, &table.name, body)?;
    let mut tx = app.db.begin_write(principal, deadline).await?;
    if inserted > 0 {
        check_quota(app, principal, &table, &mut tx, inserted).await?;
    }
    let rows: Vec<Value> = parse(tx.json(sqlx::AssertSqlSafe(sql), values).await?.get())?;
    if one_row && rows.len() != 1 {
        // Dropping `tx` rolls the write back: nothing changed.
        return Err(ApiError::NotSingle { rows: rows.len() });
    }
    if *method != Method::DELETE {
        widgets::check_saved(app, &mut tx, &table.name, &rows).await?;
    }
    tx.commit().await?;
    Ok((rows, select))
}

fn too_many_parameters(e: TooManyParameters) -> ApiError {
    ApiError::TooManyParameters {
        parameters: e.parameters,
        limit: sql::MAX_PARAMETERS,
    }
}

/// Refuses an insert of `adding` rows that would take a user past their
/// quota of `table` (service_role has none). Holds the user's quota lock
/// for the rest of `tx`, so concurrent inserts are counted one after the
/// other.
async fn check_quota(
    app: &App,
    principal: &Principal,
    table: &Table,
    tx: &mut exec::WriteTx<'_>,
    adding: usize,
) -> Result<(), ApiError> {
    if principal.role != Role::Authenticated {
        return Ok(());
    }
    let quotas = &app.config.quotas;
    let (what, limit) = match table.name.as_str() {
        "dashboards" => ("dashboards", quotas.dashboards),
        "dashboard_widgets" => ("widgets", quotas.widgets),
        "widget_data_sources" => ("data sources", quotas.data_sources),
        "user_filter_preferences" => ("filter preferences", quotas.filter_preferences),
        _ => return Ok(()),
    };
    let (lock, key) = sql::rest::lock_own_rows(table);
    tx.count(sqlx::AssertSqlSafe(lock), key).await?;
    let owned = tx
        .count(
            sqlx::AssertSqlSafe(sql::rest::count_own_rows(table)),
            sqlx::postgres::PgArguments::default(),
        )
        .await?;
    if u64::try_from(owned).unwrap_or(0) + adding as u64 > limit {
        return Err(ApiError::QuotaExceeded { what, limit });
    }
    Ok(())
}

/// Refuses a role without `privilege` on `table` before anything of the
/// request is looked at: it learns nothing of the table's columns.
fn allowed(table: &Table, principal: &Principal, privilege: Privilege) -> Result<(), ApiError> {
    if table.grants.allows(principal.role.as_str(), privilege) {
        return Ok(());
    }
    Err(ApiError::Exec(exec::ExecError::PermissionDenied {
        message: format!("permission denied for table {}", table.name),
    }))
}

/// The served table `name`, from the schema cache.
fn table(app: &App, name: &str) -> Result<Arc<Table>, ApiError> {
    app.rest_table(name)
        .ok_or(ApiError::NotFound { what: "table" })
}

fn all(table: &Table) -> Vec<String> {
    table.columns.iter().map(|c| c.name.clone()).collect()
}

/// Keeps `select`'s columns of a row, in that order.
fn project(row: Value, select: &[String]) -> Value {
    match row {
        Value::Object(mut map) => Value::Object(
            select
                .iter()
                .filter_map(|c| map.remove(c).map(|v| (c.clone(), v)))
                .collect(),
        ),
        other => other,
    }
}

fn prefers_representation(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "return=representation")
}

/// The rows as JSON, or the one row when the client asked for an object
/// (supabase-js `.single()`: `Accept: application/vnd.pgrst.object+json`).
fn respond(
    headers: &HeaderMap,
    status: StatusCode,
    rows: Vec<Value>,
) -> Result<Response, ApiError> {
    if !wants_object(headers) {
        return Ok((status, Json(rows)).into_response());
    }
    if rows.len() != 1 {
        return Err(ApiError::NotSingle { rows: rows.len() });
    }
    let mut response = (status, Json(rows.into_iter().next())).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.pgrst.object+json"),
    );
    Ok(response)
}

/// supabase-js `.single()` / `.maybeSingle()` asks for one object.
fn wants_object(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("vnd.pgrst.object"))
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ApiError> {
    Ok(serde_json::from_str(json).map_err(exec::ExecError::from)?)
}
