//! `GET /openapi.json` (the document generated from the code) and `GET /docs`
//! (a readable reference page; self-contained, so it works offline).

use crate::app::App;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use std::sync::Arc;

const DOCS_PAGE: &str = include_str!("docs.html");

pub fn router(doc: Arc<utoipa::openapi::OpenApi>) -> Router<Arc<App>> {
    // Rendered once: the document does not change while the process runs.
    let json = doc.to_pretty_json().unwrap_or_else(|_| "{}".into());
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([(CONTENT_TYPE, "application/json")], json).into_response() }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
}
