//! `POST /functions/v1/widget-data`: a widget's data source in, its rows out.

use super::Caller;
use crate::app::App;
use crate::auth::Role;
use crate::cache::{Outcome, Snapshot};
use crate::deadline::Deadline;
use crate::error::{ApiError, ErrorBody};
use crate::pipeline::{self, Answer, Source};
use crate::plan::{DataSource, Filter, Total};
use crate::widgets::BundleLink;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::sync::Arc;

/// Exactly one of `config` or `widget_id` (alias `widget_instance_id`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetDataRequest {
    /// An ad-hoc data source.
    config: Option<DataSource>,
    /// A saved widget whose data source is queried.
    #[serde(alias = "widget_instance_id")]
    widget_id: Option<uuid::Uuid>,
    /// Runtime filters: ANDed onto an ad-hoc data source's own; for a saved
    /// widget, merged over the dashboard's defaults and the user's
    /// preferences (a filter on a column replaces theirs).
    #[serde(default)]
    filters: Vec<Filter>,
    /// Recompute instead of answering from the cache.
    #[serde(default)]
    force_refresh: bool,
}

impl WidgetDataRequest {
    /// What the request asks the pipeline for; an ad-hoc source is planned
    /// here (and remembered by `body`).
    pub(super) fn into_query(
        self,
        app: &App,
        body: Bytes,
        principal: &crate::auth::Principal,
    ) -> Result<pipeline::Query, ApiError> {
        match (self.config, self.widget_id) {
            (Some(source), None) => {
                app.pipeline
                    .ad_hoc(body, &source, &self.filters, self.force_refresh, principal)
            }
            (None, Some(id)) => Ok(pipeline::Query {
                source: Source::Widget(id),
                runtime_filters: self.filters,
                force_refresh: self.force_refresh,
            }),
            _ => Err(ApiError::InvalidBody {
                message: "give exactly one of `config` or `widget_id`".into(),
            }),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WidgetDataResponse<'a> {
    /// One object per row: groupBy columns by name, `bucket`, and each measure by name
    /// (`value` for the single-aggregation form).
    #[schema(value_type = Vec<std::collections::HashMap<String, serde_json::Value>>)]
    data: &'a RawValue,
    cached: bool,
    /// When the data was computed (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    cached_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    expires_at: DateTime<Utc>,
    /// True only when an expired entry is served because the database could not answer.
    stale: bool,
    /// Present when the rows hold a single measure: the value itself for an
    /// ungrouped query; for a grouped count or sum, the sum over the groups
    /// returned; `null` for a grouped avg, min, max or count_distinct (the
    /// groups' values do not add up to the whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    total: Option<serde_json::Value>,
    /// A saved widget's bundle (its `config.bundle`), when the caller may
    /// load it: `<script src=url integrity=integrity crossorigin=anonymous>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    bundle: Option<&'a BundleLink>,
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
            // Made once per entry: a hit rendered afresh (a widget with a
            // bundle) does not parse its rows again.
            total: a
                .entry
                .total
                .get_or_init(|| total_of(&a.total, a.data()))
                .clone(),
            bundle: a.presentation.bundle.as_ref(),
        }
    }
}

/// The answer's `total`, made from its rows as `kind` says.
fn total_of(kind: &Total, data: &RawValue) -> Option<serde_json::Value> {
    use serde_json::{Map, Number, Value};
    let rows = || serde_json::from_str::<Vec<Map<String, Value>>>(data.get()).unwrap_or_default();
    match kind {
        Total::None => None,
        Total::Null => Some(Value::Null),
        Total::Value(name) => Some(
            rows()
                .first()
                .and_then(|row| row.get(name))
                .cloned()
                .unwrap_or(Value::Null),
        ),
        Total::Sum(name) => {
            let (mut whole, mut float, mut exact) = (0i64, 0f64, true);
            for value in rows().iter().filter_map(|row| row.get(name)) {
                match value {
                    Value::Null => {}
                    Value::Number(n) => {
                        float += n.as_f64().unwrap_or(0.0);
                        match n.as_i64().and_then(|n| whole.checked_add(n)) {
                            Some(sum) if exact => whole = sum,
                            _ => exact = false,
                        }
                    }
                    _ => return Some(Value::Null),
                }
            }
            Some(match exact {
                true => Value::Number(whole.into()),
                false => Number::from_f64(float).map_or(Value::Null, Value::Number),
            })
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
    request_body = WidgetDataBody,
    params(("If-None-Match" = Option<String>, Header, description = "The `ETag` of the answer the client holds")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The widget's rows (or, for update_widget and delete_widget, the widget)", body = WidgetDataOk,
            headers(
                ("x-cache" = String, description = "hit, miss, coalesced or stale"),
                ("cache-control" = String, description = "`private, no-cache` (revalidate with `If-None-Match`), or `private, max-age=<n>` when a browser lifetime was opted into (`BROWSER_CACHE_SECS`, or a widget's `config.browser_cache_ttl`)"),
                ("etag" = String, description = "Names this answer; send it back in `If-None-Match`"),
            )),
        (status = 304, description = "`If-None-Match` names the current answer: keep yours (no body)",
            headers(
                ("etag" = String, description = "The answer's tag"),
                ("x-cache" = String, description = "hit, miss, coalesced or stale"),
            )),
        (status = 201, description = "create_widget: the widget created", body = WidgetActionResponse),
        (status = 400, description = "The body or its data source is invalid; `details.field` names what", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token's role, or the role's privileges, forbid it", body = ErrorBody),
        (status = 404, description = "Widget not found or not visible", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`Content-Type`)", body = ErrorBody),
        (status = 429, description = "Over the caller's rate limit (`rate_limited`) or its concurrent queries (`too_many_queries`); see `Retry-After`", body = ErrorBody),
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
    let started = std::time::Instant::now();
    let bytes = super::body::read(&headers, body, super::body::WIDGET_DATA_LIMIT_BYTES).await?;
    let deadline = Deadline::for_request(app.config.query_timeout);
    // A body seen before skips parsing and planning.
    let query = match app.pipeline.remembered(&bytes) {
        Some(query) => query,
        None => {
            let request: serde_json::Value = super::body::parse(&bytes)?;
            if request.get("action").is_some() {
                return Box::pin(action(&app, &principal, request, deadline)).await;
            }
            let request: WidgetDataRequest =
                serde_json::from_value(request).map_err(|e| ApiError::InvalidBody {
                    message: format!("invalid request body: {e}"),
                })?;
            request.into_query(&app, bytes, &principal)?
        }
    };
    let answer = app.pipeline.run(&principal, &query, deadline).await?;
    app.cache.stats.record(answer.cached(), started.elapsed());
    let mut seconds = itoa_buffer();
    let browser_secs = answer
        .presentation
        .browser_ttl_secs
        .unwrap_or(app.config.browser_cache_secs);
    let cache_control = browser_cache_control(&mut seconds, &answer, browser_secs);
    let etag = etag(&answer);
    let revalidated = super::etag::if_none_match(&headers, etag.as_bytes());
    let headers = [
        (
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(answer.outcome.as_str()),
        ),
        (
            CACHE_CONTROL,
            HeaderValue::from_str(cache_control)
                .unwrap_or(HeaderValue::from_static("private, no-cache")),
        ),
        (ETAG, etag),
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
    ];
    // The browser holds this very answer: tell it so, without the body.
    if revalidated {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    // Every hit on an entry has the same body, unless a widget adds its
    // bundle to it: render it once.
    let body = if answer.outcome == Outcome::Hit && answer.presentation.bundle.is_none() {
        answer
            .entry
            .hit_body
            .get_or_init(|| render(&WidgetDataResponse::of(&answer)))
            .clone()
    } else {
        render(&WidgetDataResponse::of(&answer))
    };
    Ok((headers, body).into_response())
}

fn render(response: &WidgetDataResponse<'_>) -> Bytes {
    serde_json::to_vec(response).unwrap_or_default().into()
}

fn itoa_buffer() -> [u8; 48] {
    [0; 48]
}

/// `private, no-cache` (browsers keep the body but ask each time, so a
/// write is never hidden by their copy), unless a browser lifetime was
/// opted into: then `private, max-age=<n>`, never past the entry's own
/// expiry. Written into `buf`, without allocating.
fn browser_cache_control<'b>(buf: &'b mut [u8; 48], answer: &Answer, browser_secs: u64) -> &'b str {
    use std::io::Write;
    const REVALIDATE: &str = "private, no-cache";
    if browser_secs == 0 || answer.stale() {
        return REVALIDATE;
    }
    let left = (answer.expires_at() - Utc::now()).num_seconds().max(0) as u64;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "private, max-age={}", browser_secs.min(left));
    let len = cursor.position() as usize;
    std::str::from_utf8(&buf[..len]).unwrap_or(REVALIDATE)
}

/// The answer's `ETag`: the entry's, or a variant of it when the body
/// differs from the entry's own: a stale serve (`"stale": true`) or a
/// widget's bundle link (two widgets may share an entry, and a widget may
/// move to another bundle version while its data stays the same).
fn etag(answer: &Answer) -> HeaderValue {
    let tag = &answer.entry.etag;
    let bundle = answer.presentation.bundle.as_ref();
    let value = if answer.stale() || bundle.is_some() {
        let mut tagged = tag[..tag.len() - 1].to_vec();
        if let Some(link) = bundle {
            use sha2::Digest;
            let digest = sha2::Sha256::new()
                .chain_update(link.url.as_bytes())
                .chain_update(b"\0")
                .chain_update(link.integrity.as_bytes())
                .finalize();
            tagged.extend_from_slice(b"-b");
            for byte in &digest[..8] {
                tagged.extend_from_slice(format!("{byte:02x}").as_bytes());
            }
        }
        if answer.stale() {
            tagged.extend_from_slice(b"-stale");
        }
        tagged.push(b'"');
        Bytes::from(tagged)
    } else {
        tag.clone()
    };
    HeaderValue::from_maybe_shared(value).unwrap_or(HeaderValue::from_static("W/\"\""))
}

/// The body of `POST /functions/v1/widget-data`: a query, or an action.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum WidgetDataBody {
    Query(Box<WidgetDataRequest>),
    Action(WidgetAction),
}

/// A 200 answer: rows for a query, the widget for `update_widget` and
/// `delete_widget`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum WidgetDataOk<'a> {
    Rows(WidgetDataResponse<'a>),
    Action(WidgetActionResponse),
}

/// What an action answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WidgetActionResponse {
    /// The widget row created, updated or deleted.
    #[schema(value_type = super::rest_doc::DashboardWidget)]
    data: serde_json::Value,
}

/// Seed 004's action form: `{"action": "create_widget" | "update_widget" |
/// "delete_widget", "widget": {...}}`, the same as the `/rest/v1`
/// operations on `dashboard_widgets` (validation and ownership included).
/// Answers `{"data": <the widget row>}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetAction {
    /// `create_widget`, `update_widget` or `delete_widget`.
    action: String,
    /// The widget's columns; `id` names the widget to update or delete.
    #[schema(value_type = Object)]
    widget: serde_json::Value,
}

async fn action(
    app: &App,
    principal: &crate::auth::Principal,
    request: serde_json::Value,
    deadline: Deadline,
) -> Result<Response, ApiError> {
    let request: WidgetAction =
        serde_json::from_value(request).map_err(|e| ApiError::InvalidBody {
            message: format!("invalid action: {e}"),
        })?;
    let mut widget = request.widget;
    let mut id = || {
        widget
            .as_object_mut()
            .and_then(|w| w.remove("id"))
            .and_then(|id| id.as_str().map(str::to_owned))
            .ok_or_else(|| ApiError::InvalidBody {
                message: format!("{}: widget.id is required", request.action),
            })
    };
    let dashboards = &app.dashboards;
    let (row, status) = match request.action.as_str() {
        "create_widget" => (
            dashboards
                .create_widget(principal, &widget, deadline)
                .await?,
            StatusCode::CREATED,
        ),
        "update_widget" => {
            let id = id()?;
            let row = dashboards
                .update_widget(principal, &id, &widget, deadline)
                .await?;
            (row, StatusCode::OK)
        }
        "delete_widget" => {
            let id = id()?;
            (
                dashboards.delete_widget(principal, &id, deadline).await?,
                StatusCode::OK,
            )
        }
        other => {
            return Err(ApiError::InvalidBody {
                message: format!(
                    "unknown action {other:?}: use create_widget, update_widget or delete_widget"
                ),
            });
        }
    };
    let row = row.ok_or(ApiError::NotFound { what: "widget" })?;
    Ok((status, Json(WidgetActionResponse { data: row })).into_response())
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
        (status = 429, description = "Over the caller's rate limit; see `Retry-After`", body = ErrorBody),
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
    let mut snapshot = app.snapshot();
    snapshot.active_widgets = app.active_widgets().await;
    Ok(Json(snapshot))
}

/// The cache's figures in the Prometheus text format (service_role only;
/// served without a token on `METRICS_ADDR`, when set).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "get_metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not service_role", body = ErrorBody),
        (status = 429, description = "Over the caller's rate limit; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn get_metrics(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    // The figures tell when writes happen and how much is asked: the
    // operator's, like the stats endpoint's.
    if principal.role != Role::ServiceRole {
        return Err(ApiError::Forbidden {
            message: "metrics are for service_role only (or serve them on METRICS_ADDR)",
        });
    }
    Ok(metrics(&app))
}

/// `/metrics` for the separate `METRICS_ADDR` listener, which only the
/// operator's network should reach: no token, as Prometheus expects.
pub async fn get_metrics_unauthenticated(State(app): State<Arc<App>>) -> Response {
    metrics(&app)
}

fn metrics(app: &App) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.cache.stats.prometheus(&app.snapshot()),
    )
        .into_response()
}
