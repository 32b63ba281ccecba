//! Widget bundles over HTTP: registration, listing and review at
//! `/functions/v1/widget-bundles`, and the pinned copies at
//! `/widgets/{bundle_id}/v{version}/bundle.js` (see [`crate::bundles`]).

use super::Caller;
use crate::app::App;
use crate::bundles::store::{Encoding, choose_encoding};
use crate::bundles::{BundleStatus, BundleVersion, Registration, Review, served_path};
use crate::deadline::Deadline;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{
    ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_ORIGIN, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_TYPE, ETAG, LOCATION, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// Pinned copies never change: a year, immutable.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Unapproved versions reach their owner and service_role only: never a
/// shared cache.
const PRIVATE: &str = "private, no-store";

/// Register a widget bundle version.
///
/// Fetches the bundle from `url`, pins it by SHA-256, stores it, analyses
/// it and records the version (owned by the caller). Answers the version
/// with its served `url` and `integrity`.
#[utoipa::path(
    post,
    path = "/functions/v1/widget-bundles",
    tag = "widget-bundles",
    operation_id = "register_widget_bundle",
    request_body = Registration,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The version, pinned", body = BundleVersion),
        (status = 400, description = "The body is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a signed-in developer, or the bundle id is another developer's", body = ErrorBody),
        (status = 409, description = "The version exists already", body = ErrorBody),
        (status = 413, description = "Body larger than 16 KiB", body = ErrorBody),
        (status = 422, description = "The bundle could not be pinned: `bundle_too_large`, `bundle_fetch_failed`, `bundle_forbidden_address` or `bundle_bad_content_type`; nothing was stored", body = ErrorBody),
        (status = 429, description = "Over the caller's rate limit; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn register_widget_bundle(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = super::body::read(&headers, body, super::body::BUNDLE_REQUEST_LIMIT_BYTES).await?;
    let registration: Registration = super::body::parse(&bytes)?;
    let deadline = Deadline::for_request(app.config.query_timeout);
    let version = app
        .bundles
        .register(&principal, registration, deadline)
        .await?;
    Ok((StatusCode::CREATED, Json(version)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only versions of this status.
    status: Option<BundleStatus>,
}

/// List widget bundle versions.
///
/// The caller's own versions, newest first per bundle; service_role sees
/// every version (the review queue: `?status=pending`).
#[utoipa::path(
    get,
    path = "/functions/v1/widget-bundles",
    tag = "widget-bundles",
    operation_id = "list_widget_bundles",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The versions", body = Vec<BundleVersion>),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "anon may not list bundles", body = ErrorBody),
        (status = 429, description = "Over the caller's rate limit; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_widget_bundles(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<BundleVersion>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::InvalidBody {
        message: format!("invalid query string: {}", e.body_text()),
    })?;
    let deadline = Deadline::for_request(app.config.query_timeout);
    Ok(Json(
        app.bundles
            .list(&principal, params.status, deadline)
            .await?,
    ))
}

/// Review a widget bundle version (service_role).
///
/// Approves, rejects or quarantines a version. Every instance stops serving
/// a copy whose status left `approved` at once.
#[utoipa::path(
    patch,
    path = "/functions/v1/widget-bundles/{bundle_id}/{version}",
    tag = "widget-bundles",
    operation_id = "review_widget_bundle",
    params(
        ("bundle_id" = String, Path, description = "The bundle"),
        ("version" = String, Path, description = "Its version"),
    ),
    request_body = Review,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The version as reviewed", body = BundleVersion),
        (status = 400, description = "The body is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not service_role", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 429, description = "Over the caller's rate limit; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn review_widget_bundle(
    State(app): State<Arc<App>>,
    Caller(principal): Caller,
    Path((bundle_id, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BundleVersion>, ApiError> {
    let bytes = super::body::read(&headers, body, super::body::BUNDLE_REQUEST_LIMIT_BYTES).await?;
    let review: Review = super::body::parse(&bytes)?;
    let deadline = Deadline::for_request(app.config.query_timeout);
    Ok(Json(
        app.bundles
            .review(&principal, &bundle_id, &version, review, deadline)
            .await?,
    ))
}

/// A pinned widget bundle.
///
/// Only this service's pinned copy, never the origin. Approved versions
/// are public and immutable; others answer 404 to everyone but their owner
/// and service_role. No token is needed (browsers load it with a
/// `<script src integrity crossorigin=anonymous>`).
#[utoipa::path(
    get,
    path = "/widgets/{bundle_id}/v{version}/bundle.js",
    tag = "widget-bundles",
    operation_id = "get_widget_bundle",
    params(
        ("bundle_id" = String, Path, description = "The bundle"),
        ("version" = String, Path, description = "Its version"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` held"),
        ("Accept-Encoding" = Option<String>, Header, description = "`br` and `gzip` variants are served when accepted"),
    ),
    responses(
        (status = 200, description = "The pinned bytes", body = String, content_type = "text/javascript",
            headers(
                ("cache-control" = String, description = "`public, max-age=31536000, immutable` (approved), or `private, no-store`"),
                ("etag" = String, description = "The SHA-256 of the pinned bytes, quoted"),
                ("x-content-type-options" = String, description = "`nosniff`"),
                ("access-control-allow-origin" = String, description = "`*`: Subresource Integrity needs CORS"),
            )),
        (status = 304, description = "`If-None-Match` names these bytes"),
        (status = 401, description = "An invalid token was sent", body = ErrorBody),
        (status = 404, description = "No such version, or not visible to the caller", body = ErrorBody),
        (status = 503, description = "Database unavailable and the copy is not in memory", body = ErrorBody),
    )
)]
pub async fn get_widget_bundle(
    State(app): State<Arc<App>>,
    Path((bundle_id, version)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let Some(version) = version.strip_prefix('v') else {
        return Err(ApiError::NotFound {
            what: "bundle version",
        });
    };
    // Approved copies in memory are public: no token, no database.
    let pinned = match app.bundles.pinned.get(&bundle_id, version) {
        Some(pinned) => pinned,
        None => {
            let principal = caller_or_anon(&app, parts.clone()).await?;
            let deadline = Deadline::for_request(app.config.query_timeout);
            app.bundles
                .pinned(&principal, &bundle_id, version, deadline)
                .await?
        }
    };
    let cache_control = if pinned.approved { IMMUTABLE } else { PRIVATE };
    let etag = HeaderValue::from_str(&pinned.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (CACHE_CONTROL, HeaderValue::from_static(cache_control)),
        (ETAG, etag),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        (VARY, HeaderValue::from_static("Accept-Encoding")),
    ];
    let headers = &parts.headers;
    if super::etag::if_none_match(headers, pinned.etag.as_bytes()) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let accepted = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    let (body, encoding) = pinned.body(choose_encoding(accepted));
    let content_type = if pinned.css {
        "text/css; charset=utf-8"
    } else {
        "text/javascript; charset=utf-8"
    };
    let mut response = (
        common,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    let coding = match encoding {
        Encoding::Brotli => Some("br"),
        Encoding::Gzip => Some("gzip"),
        Encoding::Identity => None,
    };
    if let Some(coding) = coding {
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    Ok(response)
}

/// The newest approved version of a widget bundle.
///
/// Redirects to its pinned copy, as unpkg does; the redirect itself may be
/// kept for five minutes.
#[utoipa::path(
    get,
    path = "/widgets/{bundle_id}/bundle.js",
    tag = "widget-bundles",
    operation_id = "get_newest_widget_bundle",
    params(("bundle_id" = String, Path, description = "The bundle")),
    responses(
        (status = 302, description = "To `/widgets/{bundle_id}/v{version}/bundle.js`",
            headers(
                ("location" = String, description = "The newest approved version's URL"),
                ("cache-control" = String, description = "`public, max-age=300`"),
            )),
        (status = 401, description = "An invalid token was sent", body = ErrorBody),
        (status = 404, description = "No approved version", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_newest_widget_bundle(
    State(app): State<Arc<App>>,
    Path(bundle_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let principal = caller_or_anon(&app, parts).await?;
    let deadline = Deadline::for_request(app.config.query_timeout);
    let version = app.bundles.newest(&principal, &bundle_id, deadline).await?;
    let location = HeaderValue::from_str(&served_path(&bundle_id, &version))
        .map_err(|_| ApiError::NotFound { what: "bundle" })?;
    Ok((
        StatusCode::FOUND,
        [
            (LOCATION, location),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
            (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ],
    )
        .into_response())
}

/// The token's principal (within its rate limit), or anon without one.
async fn caller_or_anon(
    app: &Arc<App>,
    mut parts: Parts,
) -> Result<crate::auth::Principal, ApiError> {
    use axum::extract::FromRequestParts;
    if !parts.headers.contains_key(AUTHORIZATION) {
        return Ok(crate::bundles::pinned::anonymous());
    }
    let Caller(principal) = Caller::from_request_parts(&mut parts, app).await?;
    Ok(principal)
}
