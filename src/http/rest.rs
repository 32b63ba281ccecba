//! `/rest/v1/<table>`: parses a PostgREST-style request (query string,
//! `Range`, `Prefer`, `Accept`), hands it to [`crate::dashboards`] and
//! renders the rows as PostgREST would. `HEAD` is routed here as `GET`
//! (axum answers it without the body).

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
        .read(
            &principal,
            &name,
            &params,
            range,
            prefers_count(&headers),
            deadline,
        )
        .await?;
    let rows = page.rows.len() as u64;
    let status = match page.total {
        // PostgREST's statuses once the total is known: past the end is
        // a 416, a page of fewer rows than the total a 206.
        Some(total) if page.offset > total => {
            return Err(ApiError::OffsetPastEnd {
                offset: page.offset,
                total,
            });
        }
        Some(total) if rows < total => StatusCode::PARTIAL_CONTENT,
        _ => StatusCode::OK,
    };
    let mut response = respond(&headers, status, page.rows)?;
    if let Ok(v) = HeaderValue::from_str(&content_range(page.offset, rows, page.total)) {
        response.headers_mut().insert("content-range", v);
    }
    Ok(response)
}

/// `<first>-<last>/<total>` as PostgREST writes it: `*` for the rows when
/// there are none (or the total is 0), and for the total when it was not
/// counted.
fn content_range(offset: u64, rows: u64, total: Option<u64>) -> String {
    let total_text = total.map_or_else(|| "*".to_owned(), |n| n.to_string());
    if rows == 0 || total == Some(0) {
        return format!("*/{total_text}");
    }
    format!("{offset}-{}/{total_text}", offset + rows - 1)
}

/// `Prefer: count=exact|planned|estimated` (supabase-js `{ count }`). All
/// three are counted exactly: the dashboard tables are small, so an exact
/// count costs what an estimate would.
fn prefers_count(headers: &HeaderMap) -> bool {
    preferences(headers).any(|p| matches!(p, "count=exact" | "count=planned" | "count=estimated"))
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
    preferences(headers).any(|p| p == "return=representation")
}

/// Every `Prefer` preference, from all the headers, comma-separated
/// (supabase-js appends them to one header).
fn preferences(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
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

#[cfg(test)]
mod tests {
    use super::content_range;

    #[test]
    fn content_range_is_written_as_postgrest_writes_it() {
        assert_eq!(content_range(0, 10, None), "0-9/*");
        assert_eq!(content_range(0, 0, None), "*/*");
        assert_eq!(content_range(0, 10, Some(42)), "0-9/42");
        assert_eq!(content_range(40, 2, Some(42)), "40-41/42");
        assert_eq!(content_range(0, 0, Some(0)), "*/0");
        assert_eq!(content_range(42, 0, Some(42)), "*/42");
    }
}
