//! The edge: routing, authentication, body parsing, error rendering and the
//! OpenAPI document. No SQL here; handlers hand typed requests to
//! [`crate::pipeline`].

pub mod assets;
mod body;
mod bundles;
mod caller;
mod cors;
mod docs;
mod etag;
mod explore;
mod health;
mod panics;
mod rest;
pub mod rest_doc;
pub mod serve;
pub mod site;
mod unread_body;
mod widget_data;

pub use caller::Caller;
pub use panics::install_panic_hook;

use crate::app::App;
use crate::config::AccessLog;
use crate::error::ApiError;
use axum::Router;
use axum::http::{HeaderName, Request};
use std::sync::Arc;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnRequest, OnResponse, TraceLayer};
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
        .routes(routes!(explore::get_widget_data_schema))
        .routes(routes!(explore::get_widget_data_sql))
        .routes(routes!(widget_data::get_metrics))
        .routes(routes!(site::get_dev_tokens))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(
            bundles::register_widget_bundle,
            bundles::list_widget_bundles
        ))
        .routes(routes!(bundles::review_widget_bundle))
        .split_for_parts();
    // `/rest/v1` is routed generically (below); its description is per
    // table. The pinned bundles' paths hold a `v` before the version
    // inside one segment, which the router cannot express: routed below.
    let doc = doc
        .merge_from(rest_doc::RestDoc::openapi())
        .merge_from(BundleFiles::openapi());
    (api, doc)
}

#[derive(OpenApi)]
#[openapi(paths(bundles::get_widget_bundle, bundles::get_newest_widget_bundle))]
struct BundleFiles;

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
    let access_log = AccessLine(app.config.access_log);
    let (api, doc) = api_router();
    let doc = Arc::new(doc);
    api.route(
        "/rest/v1/{table}",
        axum::routing::get(rest::read)
            .post(rest::write)
            .patch(rest::write)
            .delete(rest::write),
    )
    .route(
        "/widgets/{bundle_id}/{version}/bundle.js",
        axum::routing::get(bundles::get_widget_bundle),
    )
    .route(
        "/widgets/{bundle_id}/bundle.js",
        axum::routing::get(bundles::get_newest_widget_bundle),
    )
    .merge(docs::router(doc))
    .merge(site::router(&app.config))
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
                    .on_response(access_log),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(cors::layer()),
        )
}

/// The access log's line for an answer, as `ACCESS_LOG` chooses. The
/// request's span (its id, method and path) is in the line; the status and
/// the latency (in µs, so a hit does not read "0 ms") are plain integers.
#[derive(Clone, Copy)]
struct AccessLine(AccessLog);

impl<B> OnResponse<B> for AccessLine {
    fn on_response(
        self,
        response: &axum::http::Response<B>,
        latency: Duration,
        span: &tracing::Span,
    ) {
        let status = response.status();
        let logged = match self.0 {
            AccessLog::All => true,
            AccessLog::Errors => status.as_u16() >= 400,
            AccessLog::Off => false,
        };
        if logged {
            tracing::info!(
                target: "widget_data::access",
                parent: span,
                status = status.as_u16(),
                latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
                "finished processing request"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What is logged (as text, without colour) while `f` runs.
    fn logged(f: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let out = Arc::clone(&out);
            move || Capture(Arc::clone(&out))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_access_log_has_a_line_for_the_answers_access_log_names() {
        use AccessLog::{All, Errors, Off};
        for (mode, status, line) in [
            (All, 200, true),
            (All, 304, true),
            (All, 500, true),
            (Errors, 200, false),
            (Errors, 404, true),
            (Errors, 503, true),
            (Off, 200, false),
            (Off, 500, false),
        ] {
            let text = logged(|| {
                let span = tracing::info_span!("request", request_id = %"r-1");
                let answer = axum::http::Response::builder()
                    .status(status)
                    .body(())
                    .unwrap();
                AccessLine(mode).on_response(&answer, Duration::from_micros(42), &span);
            });
            assert_eq!(
                text.lines().count(),
                usize::from(line),
                "{mode:?} {status}: {text}"
            );
            if line {
                for part in [
                    "request{request_id=r-1}",
                    &format!("status={status}"),
                    "latency_us=42",
                ] {
                    assert!(text.contains(part), "{part} missing from {text}");
                }
            }
        }
    }
}
