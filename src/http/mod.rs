//! The edge: routing, authentication, body parsing, error rendering and the
//! OpenAPI document. No SQL here; handlers hand typed requests to
//! [`crate::pipeline`].

mod body;
mod caller;
mod cors;
mod docs;
mod health;
mod panics;
mod rest;
mod rest_doc;
pub mod serve;
mod unread_body;
mod widget_data;

pub use caller::Caller;
pub use panics::install_panic_hook;

use crate::app::App;
use crate::error::ApiError;
use axum::Router;
use axum::http::{HeaderName, Request};
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "widget-data",
        description = "Answers dashboard widgets' data requests from PostgreSQL: a widget's \
            data source (table, aggregation, groupBy, filters) is compiled into parameterised \
            SQL and run under the caller's Postgres role, so GRANTs and row-level security apply."
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An HS256 JWT whose role claim is anon, authenticated or service_role",
                    ))
                    .build(),
            ),
        );
    }
}

fn api_router() -> (Router<Arc<App>>, utoipa::openapi::OpenApi) {
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(widget_data::query_widget_data))
        .routes(routes!(widget_data::get_widget_data_stats))
        .routes(routes!(widget_data::get_metrics))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .split_for_parts();
    // `/rest/v1` is routed generically (below); its description is per table.
    (api, doc.merge_from(rest_doc::RestDoc::openapi()))
}

/// The OpenAPI document, generated from the code.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().1
}

/// `GET /metrics` alone, without a token: for `METRICS_ADDR`, a listener
/// only the operator's network reaches.
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(widget_data::get_metrics_unauthenticated),
        )
        .with_state(app)
}

/// The whole HTTP surface, with request ids and tracing.
pub fn router(app: Arc<App>) -> Router {
    let (api, doc) = api_router();
    let doc = Arc::new(doc);
    api.route(
        "/rest/v1/{table}",
        axum::routing::get(rest::read)
            .post(rest::write)
            .patch(rest::write)
            .delete(rest::write),
    )
    .merge(docs::router(doc))
        .fallback(|req: Request<axum::body::Body>| async move {
            ApiError::NoRoute {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
            }
        })
        .with_state(app)
        // Innermost (the layers added after it wrap it), so a panic's 500
        // still gets its request id, CORS headers and trace line.
        .layer(panics::layer())
        .layer(
            tower::ServiceBuilder::new()
                // A client's own x-request-id is kept; else a random v4.
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                        let id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                    })
                    .on_request(DefaultOnRequest::new().level(tracing::Level::DEBUG))
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(cors::layer()),
        )
}
