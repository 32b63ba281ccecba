//! GRANTs and row-level security decide what a caller sees: the service
//! runs every query under the caller's role with their claims.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn two_users_of_an_rls_table_see_only_their_own_rows() {
    let t = test_app().await;
    t.exec(NOTES).await;
    let count = json!({"table": "notes"});
    assert_eq!(
        t.data(&user(DEMO_USER), count.clone()).await,
        json!([{"value": 3}])
    );
    assert_eq!(
        t.data(&user(OTHER_USER), count.clone()).await,
        json!([{"value": 7}])
    );
    // service_role bypasses RLS but still needs a GRANT.
    let reply = t.query(&service(), count.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    t.exec("GRANT SELECT ON public.notes TO service_role").await;
    assert_eq!(t.data(&service(), count).await, json!([{"value": 10}]));
}

#[tokio::test]
async fn a_role_without_a_grant_gets_403_with_its_own_code() {
    let t = test_app().await;
    t.exec(NOTES).await;
    let reply = t.query(&anon(), json!({"table": "notes"})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(reply.body["code"], "permission_denied");
    // The error shows no generated SQL.
    let shown = reply.body.to_string();
    assert!(
        !shown.contains("FROM") && !shown.contains("array_agg"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_notify_reloads_the_schema_cache() {
    let t = test_app().await;
    let listener = t.app.spawn_listener();
    // Before the table exists it is an unknown table.
    let reply = t
        .query(&user(DEMO_USER), json!({"table": "late_arrival"}))
        .await;
    assert_eq!(reply.body["code"], "unknown_table", "{}", reply.body);
    // Give the listener time to subscribe before the change is announced.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::raw_sql(
        "CREATE TABLE public.late_arrival (id int); GRANT SELECT ON public.late_arrival TO authenticated; \
         NOTIFY widget_data, 'reload schema';",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    let mut status = StatusCode::BAD_REQUEST;
    for _ in 0..50 {
        status = t
            .query(&user(DEMO_USER), json!({"table": "late_arrival"}))
            .await
            .status;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
    listener.abort();
}

#[tokio::test]
async fn the_internal_schema_is_not_exposed_to_widget_queries() {
    let t = test_app().await;
    for table in [
        "dashboard_widgets",
        "app.dashboard_widgets",
        "widget_data_cache",
        "_sqlx_migrations",
    ] {
        let reply = t.query(&service(), json!({"table": table})).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{table}: {}",
            reply.body
        );
        assert_eq!(reply.body["code"], "unknown_table", "{table}");
    }
}

#[tokio::test]
async fn a_query_over_the_timeout_is_a_504_that_leaks_nothing() {
    let t = test_app_with(&[("QUERY_TIMEOUT_MS", "200")]).await;
    t.exec(
        "CREATE VIEW public.slow AS SELECT 1 AS n FROM pg_sleep(2); \
         GRANT SELECT ON public.slow TO authenticated;",
    )
    .await;
    let started = std::time::Instant::now();
    let reply = t.query(&user(DEMO_USER), json!({"table": "slow"})).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert_eq!(reply.body["code"], "query_timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // The pooled connection is clean afterwards: the role did not stick.
    let reply = t.query(&anon(), json!({"table": "servers"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}
