//! `POST /functions/v1/widget-data`: a widget's data source in, its rows out.

use super::Caller;
use crate::app::App;
use crate::auth::Role;
use crate::cache::Snapshot;
use crate::error::{ApiError, ErrorBody};
use crate::pipeline::{self, Answer, Source};
use crate::plan::{DataSource, Filter};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::sync::Arc;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Exactly one of `config` or `widget_id` (alias `widget_instance_id`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetDataRequest {
    /// An ad-hoc data source: `{ "table", "aggregation", "column", "aggregations", "groupBy",
    /// "timeBucket", "filters", "orderBy", "limit" }`.
    #[schema(value_type = Option<Object>, example = json!({"table": "servers", "aggregation": "count", "groupBy": "status"}))]
    config: Option<DataSource>,
    /// A saved widget whose data source is queried.
    #[serde(alias = "widget_instance_id")]
    widget_id: Option<uuid::Uuid>,
    /// Runtime filters, ANDed onto the data source's own.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    filters: Vec<Filter>,
    /// Recompute instead of answering from the cache.
    #[serde(default)]
    force_refresh: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WidgetDataResponse<'a> {
    /// One object per row: groupBy columns by name, `bucket`, and each measure by name
    /// (`value` for the single-aggregation form).
    #[schema(value_type = Vec<Object>)]
    data: &'a RawValue,
    cached: bool,
    /// When the data was computed (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    cached_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    expires_at: DateTime<Utc>,
    /// True only when an expired entry is served because the database could not answer.
    stale: bool,
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl WidgetDataResponse<'_> {
    fn of(a: &Answer) -> WidgetDataResponse<'_> {
        WidgetDataResponse {
            data: a.data(),
            cached: a.cached(),
            cached_at: a.cached_at(),
            expires_at: a.expires_at(),
            stale: a.stale(),
        }
    }
}

/// Query a widget's data.
///
/// Compiles the data source into parameterised SQL and runs it as the caller's role.
#[utoipa::path(
    post,
    path = "/functions/v1/widget-data",
    tag = "widget-data",
    operation_id = "query_widget_data",
    request_body = WidgetDataRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The widget's rows", body = WidgetDataResponse,
            headers(
                ("x-cache" = String, description = "hit, miss, coalesced or stale"),
                ("cache-control" = String, description = "private, max-age=<seconds until expires_at>"),
            )),
        (status = 400, description = "The body or its data source is invalid; `details.field` names what", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token's role, or the role's privileges, forbid it", body = ErrorBody),
        (status = 404, description = "Widget not found or not visible", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 503, description = "Database unavailable and nothing cached", body = ErrorBody),
        (status = 504, description = "Query timed out", body = ErrorBody),
    )
)]
pub async fn query_widget_data(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: WidgetDataRequest = parse_body(&headers, body).await?;
    let source = match (request.config, request.widget_id) {
        (Some(source), None) => Source::Config(source),
        (None, Some(id)) => Source::Widget(id),
        _ => {
            return Err(ApiError::InvalidBody {
                message: "give exactly one of `config` or `widget_id`".into(),
            });
        }
    };
    let query = pipeline::Query {
        source,
        runtime_filters: request.filters,
        force_refresh: request.force_refresh,
    };
    let started = std::time::Instant::now();
    let answer = pipeline::run(&app, &principal, &query).await?;
    app.cache.stats.record(answer.cached(), started.elapsed());
    let max_age = (answer.expires_at() - Utc::now()).num_seconds().max(0);
    let headers = [
        (
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(answer.outcome.as_str()),
        ),
        (
            CACHE_CONTROL,
            HeaderValue::from_str(&format!("private, max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("private, no-cache")),
        ),
    ];
    Ok((headers, Json(WidgetDataResponse::of(&answer))).into_response())
}

/// Reads at most `BODY_LIMIT_BYTES` and parses them as JSON.
async fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let too_large = ApiError::PayloadTooLarge {
        limit_bytes: BODY_LIMIT_BYTES,
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT_BYTES) {
        return Err(too_large);
    }
    let bytes = axum::body::to_bytes(body, BODY_LIMIT_BYTES)
        .await
        .map_err(|_| too_large)?;
    if bytes.is_empty() {
        return Err(ApiError::InvalidBody {
            message: "the request body is empty; send a JSON object".into(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidBody {
        message: format!("invalid request body: {e}"),
    })
}

/// Cache statistics (service_role only).
#[utoipa::path(
    get,
    path = "/functions/v1/widget-data/stats",
    tag = "widget-data",
    operation_id = "get_widget_data_stats",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every cache figure", body = Snapshot),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not service_role", body = ErrorBody),
    )
)]
pub async fn get_widget_data_stats(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
) -> Result<Json<Snapshot>, ApiError> {
    if principal.role != Role::ServiceRole {
        return Err(ApiError::Forbidden {
            message: "cache statistics are for service_role only",
        });
    }
    Ok(Json(app.cache.snapshot()))
}

/// The cache's figures in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "get_metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
pub async fn get_metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.cache.snapshot().prometheus(),
    )
        .into_response()
}
