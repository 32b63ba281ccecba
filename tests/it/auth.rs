//! Every rejection of SPEC section 2, over HTTP.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::json;

const COUNT: &str = r#"{"table": "servers"}"#;

async fn post_with_header(t: &TestApp, header: Option<&str>) -> Reply {
    use axum::body::Body;
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/functions/v1/widget-data")
        .header("content-type", "application/json");
    if let Some(h) = header {
        req = req.header("authorization", h);
    }
    let body = format!(r#"{{"config": {COUNT}}}"#);
    let resp = t
        .router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_own_code() {
    let t = test_app().await;
    let wrong_secret = widget_data::auth::sign(
        "a-completely-different-secret-0123456789",
        &json!({"role": "service_role", "exp": now() + 600}),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(format!(r#"{{"role":"service_role","exp":{}}}"#, now() + 600).as_bytes())
    );
    let cases: Vec<(&str, Option<String>, StatusCode, &str)> = vec![
        ("missing", None, StatusCode::UNAUTHORIZED, "missing_token"),
        (
            "not bearer",
            Some(format!("Basic {}", anon())),
            StatusCode::UNAUTHORIZED,
            "malformed_authorization",
        ),
        (
            "malformed",
            Some("Bearer abc.def".into()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "wrong secret",
            Some(format!("Bearer {wrong_secret}")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "alg none",
            Some(format!("Bearer {alg_none}")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                sign(json!({"role": "anon", "exp": now() - 3600}))
            )),
            StatusCode::UNAUTHORIZED,
            "token_expired",
        ),
        (
            "no exp",
            Some(format!("Bearer {}", sign(json!({"role": "anon"})))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                sign(json!({"role": "anon", "exp": now() + 7200, "nbf": now() + 3600}))
            )),
            StatusCode::UNAUTHORIZED,
            "token_not_yet_valid",
        ),
        (
            "wrong aud",
            Some(format!(
                "Bearer {}",
                sign(json!({"role": "anon", "exp": now() + 600, "aud": "elsewhere"}))
            )),
            StatusCode::UNAUTHORIZED,
            "invalid_audience",
        ),
        (
            "unknown role",
            Some(format!(
                "Bearer {}",
                sign(json!({"role": "postgres", "exp": now() + 600}))
            )),
            StatusCode::FORBIDDEN,
            "unknown_role",
        ),
    ];
    for (name, header, status, code) in cases {
        let reply = post_with_header(&t, header.as_deref()).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(reply.body["code"], code, "{name}: {}", reply.body);
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn each_of_the_three_roles_is_accepted_and_the_apikey_header_is_ignored() {
    let t = test_app().await;
    for token in [anon(), user(DEMO_USER), service()] {
        let reply = t.query(&token, json!({"table": "servers"})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let expected = t.sql_rows("SELECT count(*) AS value FROM servers").await;
        assert_eq!(reply.body["data"], expected);
        // Every response carries a request id for the logs.
        assert!(reply.headers.contains_key("x-request-id"));
    }
    // supabase-js sends its anon key as `apikey`; it grants nothing.
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/functions/v1/widget-data")
        .header("apikey", service())
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"config":{"table":"servers"}}"#))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(t.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
