//! The ceiling for cache hits: a bare axum handler that checks the same JWT
//! and returns the same bytes as a widget-data cache hit, with nothing in
//! between. `bench/run.sh` measures both under the same load.
//!
//! `cargo run --release --example bare_handler -- <listen addr> <body file>`

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::IntoResponse;
use axum::routing::post;
use std::sync::Arc;
use widget_data::auth::JwtVerifier;
use widget_data::config::DEV_JWT_SECRET;

struct Bare {
    jwt: JwtVerifier,
    body: String,
}

async fn answer(
    State(s): State<Arc<Bare>>,
    headers: HeaderMap,
    _body: String,
) -> impl IntoResponse {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    match s.jwt.verify_header(header) {
        Ok(_) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            s.body.clone(),
        ),
        Err(_) => (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            String::new(),
        ),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let body = std::fs::read_to_string(args.next().expect("a file with the response body"))
        .expect("body file");
    let state = Arc::new(Bare {
        jwt: JwtVerifier::new(DEV_JWT_SECRET, "authenticated", "role"),
        body,
    });
    let app = Router::new()
        .route("/functions/v1/widget-data", post(answer))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
