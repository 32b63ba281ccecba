//! `/rest/v1/<table>`: parses a PostgREST-style request (query string,
//! `Range`, `Prefer`, `Accept`), hands it to [`crate::dashboards`] and
//! renders the rows as PostgREST would.

use super::Caller;
use crate::app::App;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::rest::Resolution;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

type Params = Vec<(String, String)>;

pub async fn read(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let deadline = Deadline::for_request(app.config.query_timeout);
    let range = headers.get("range").map(|h| h.to_str().unwrap_or_default());
    let page = app
        .dashboards
        .read(&principal, &name, &params, range, deadline)
        .await?;
    let range = match page.rows.len() {
        0 => "*/*".to_owned(),
        n => format!("{}-{}/*", page.offset, page.offset + n as u64 - 1),
    };
    let mut response = respond(&headers, StatusCode::OK, page.rows)?;
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
        super::body::parse(
            &super::body::read(&headers, body, super::body::REST_LIMIT_BYTES).await?,
        )?
    };
    let deadline = Deadline::for_request(app.config.query_timeout);
    let one_row = wants_object(&headers);
    let dashboards = &app.dashboards;
    let written = match method {
        Method::POST => {
            let resolution = preferred_resolution(&headers);
            dashboards
                .insert(
                    &principal, &name, &params, &body, resolution, one_row, deadline,
                )
                .await?
        }
        Method::PATCH => {
            dashboards
                .update(&principal, &name, &params, &body, one_row, deadline)
                .await?
        }
        _ => {
            dashboards
                .delete(&principal, &name, &params, one_row, deadline)
                .await?
        }
    };
    // PostgREST: an upsert that only merged into existing rows is a 200.
    let status = if method == Method::POST && written.created {
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
            (status, Json(Vec::<Value>::new())).into_response()
        } else {
            StatusCode::NO_CONTENT.into_response()
        });
    }
    let select = &written.select;
    let rows = written
        .rows
        .into_iter()
        .map(|r| project(r, select))
        .collect();
    respond(&headers, status, rows)
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

/// `Prefer: resolution=merge-duplicates|ignore-duplicates` (supabase-js
/// `upsert`, `ignoreDuplicates`); the first one given wins.
fn preferred_resolution(headers: &HeaderMap) -> Option<Resolution> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| match p.trim() {
            "resolution=merge-duplicates" => Some(Resolution::Merge),
            "resolution=ignore-duplicates" => Some(Resolution::Ignore),
            _ => None,
        })
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
