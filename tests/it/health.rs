//! Health, readiness, unknown routes and browser preflights.

use crate::harness::*;
use axum::http::{Method, StatusCode};

#[tokio::test]
async fn ready_reports_the_database_and_health_only_the_process() {
    let t = test_app().await;
    assert_eq!(
        t.request(Method::GET, "/ready", None, None).await.status,
        StatusCode::OK
    );
    t.pool.close().await;
    let ready = t.request(Method::GET, "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["code"], "not_ready");
    assert_eq!(
        t.request(Method::GET, "/health", None, None).await.status,
        StatusCode::OK
    );
    // With the database gone, a query is a 503 that names no internals.
    let reply = t
        .query(&anon(), serde_json::json!({"table": "servers"}))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["code"], "database_unavailable");
    assert!(!reply.body.to_string().contains("closed"), "{}", reply.body);
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let t = test_app().await;
    let reply = t
        .request(Method::GET, "/functions/v1/nope", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body["code"], "no_route");
}

#[tokio::test]
async fn a_browser_preflight_is_answered() {
    use tower::ServiceExt;
    let t = test_app().await;
    let req = axum::http::Request::builder()
        .method(Method::OPTIONS)
        .uri("/functions/v1/widget-data")
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,apikey,content-type,x-client-info",
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = t.router.clone().oneshot(req).await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
}

#[tokio::test]
async fn every_answer_allows_any_origin_and_exposes_the_cache_headers() {
    let t = test_app().await;
    let reply = t.request(Method::GET, "/health", None, None).await;
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
    let exposed = reply.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("x-cache"),
        "{exposed}"
    );
}
