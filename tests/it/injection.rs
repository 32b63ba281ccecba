//! Hostile input in every identifier and value position is refused or
//! compared as a plain value; nothing runs, nothing changes, nothing sleeps.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PAYLOADS: &[&str] = &[
    "status'; DROP TABLE servers; --",
    "status\"; DROP TABLE servers; --",
    "status) OR 1=1 --",
    "status /* comment */",
    "pg_sleep(3)",
    "(SELECT pg_sleep(3))",
    "1; SELECT pg_sleep(3)",
    "servers; DELETE FROM servers",
    "status\u{0000}",
    "' OR '1'='1",
];

async fn server_count(t: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM servers")
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn hostile_identifiers_are_400s_and_hostile_values_are_plain_values() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let before = server_count(&t).await;
    let started = Instant::now();
    for p in PAYLOADS {
        let identifier_positions: Vec<Value> = vec![
            json!({"table": p}),
            json!({"table": format!("public.{p}")}),
            json!({"table": "servers", "aggregation": "count_distinct", "column": p}),
            json!({"table": "servers", "groupBy": p}),
            json!({"table": "servers", "groupBy": ["status", p]}),
            json!({"table": "servers", "timeBucket": {"column": p, "granularity": "day"}}),
            json!({"table": "servers", "timeBucket": {"column": "created_at", "granularity": p}}),
            json!({"table": "servers", "filters": [{"column": p, "op": "eq", "value": "x"}]}),
            json!({"table": "servers", "filters": {*p: "x"}}),
            json!({"table": "servers", "filters": [{"column": "status", "op": p, "value": "x"}]}),
            json!({"table": "servers", "groupBy": "status", "orderBy": [{"column": p}]}),
            json!({"table": "servers", "groupBy": "status", "orderBy": [{"column": "status", "direction": p}]}),
            json!({"table": "servers", "aggregations": [{"fn": "count", "as": p}]}),
            json!({"table": "servers", "aggregations": [{"fn": p, "column": "cpu_pct"}]}),
            json!({"table": "servers", "aggregation": "sum", "column": p}),
        ];
        for config in identifier_positions {
            let reply = t.query(&token, config.clone()).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{config}: {}",
                reply.body
            );
        }
        let value_positions: Vec<Value> = vec![
            json!({"table": "servers", "filters": [{"column": "hostname", "op": "eq", "value": p}]}),
            json!({"table": "servers", "filters": [{"column": "status", "op": "in", "value": [p, "x"]}]}),
            json!({"table": "servers", "filters": [{"column": "hostname", "op": "like", "value": p}]}),
            json!({"table": "servers", "filters": [{"column": "region", "op": "ilike", "value": p}]}),
            json!({"table": "servers", "filters": {"hostname": p}}),
            json!({"table": "servers", "filters": [{"or": [{"column": "hostname", "op": "eq", "value": p}]}]}),
        ];
        for config in value_positions {
            let reply = t.query(&token, config.clone()).await;
            if p.contains('\u{0000}') {
                // PostgreSQL text cannot hold NUL: refused up front, not a 500.
                assert_eq!(
                    reply.status,
                    StatusCode::BAD_REQUEST,
                    "{config}: {}",
                    reply.body
                );
            } else {
                assert_eq!(reply.status, StatusCode::OK, "{config}: {}", reply.body);
                assert_eq!(reply.body["data"], json!([{"value": 0}]), "{config}");
            }
        }
        // Values in typed positions are type errors, never SQL.
        for config in [
            json!({"table": "servers", "filters": [{"column": "memory_mb", "op": "eq", "value": p}]}),
            json!({"table": "servers", "filters": [{"column": "created_at", "op": "gt", "value": p}]}),
            json!({"table": "servers", "filters": [{"column": "cpu_pct", "op": "between", "value": [p, 3]}]}),
        ] {
            let reply = t.query(&token, config.clone()).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{config}: {}",
                reply.body
            );
        }
    }
    assert_eq!(server_count(&t).await, before, "servers changed");
    // 10 payloads x dozens of requests: a single pg_sleep(3) would blow this.
    assert!(
        started.elapsed() < Duration::from_secs(3 * 3),
        "something slept: {:?}",
        started.elapsed()
    );
    // The server is still healthy and answers normally.
    let rows = t.data(&token, json!({"table": "servers"})).await;
    assert_eq!(rows, json!([{"value": before}]));
}

#[tokio::test]
async fn bodies_that_are_not_json_or_too_large_are_refused_cleanly() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let reply = t
        .request(
            axum::http::Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!("just a string")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["code"], "invalid_body");
    let big = "x".repeat(70 * 1024);
    let reply = t
        .request(
            axum::http::Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"config": {"table": "servers", "filters": {"hostname": big}}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body["code"], "payload_too_large");
    let reply = t
        .request(
            axum::http::Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"config": {"table": "servers"}, "widget_id": "5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d"})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "both config and widget_id"
    );
}
