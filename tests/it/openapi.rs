//! The committed OpenAPI document is the one the code generates and serves.

use crate::harness::*;
use axum::http::{Method, StatusCode};

#[tokio::test]
async fn the_committed_document_matches_the_served_one() {
    let generated: serde_json::Value =
        serde_json::from_str(&widget_data::http::openapi().to_pretty_json().unwrap()).unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json"))
            .expect("openapi/openapi.json is JSON");
    assert!(
        generated == committed,
        "openapi/openapi.json is out of date: run `cargo run --bin openapi > openapi/openapi.json`"
    );
    let t = test_app().await;
    let served = t.request(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body, committed);
    assert_eq!(committed["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let docs = t.request(Method::GET, "/docs", None, None).await;
    assert_eq!(docs.status, StatusCode::OK);
    let page = docs.body.as_str().unwrap();
    // Self-contained: nothing is fetched from another host.
    assert!(
        page.contains("openapi.json") && !page.contains("http://") && !page.contains("https://")
    );
}
