//! What keeps one caller from hurting the others: rate limits, a cap on
//! the queries one caller runs at once, bulk-insert and per-user quotas,
//! bind-parameter bounds, and numbers PostgreSQL cannot take.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_caller_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let t = test_app_with(&[("RATE_LIMIT_PER_SEC", "2"), ("RATE_LIMIT_BURST", "3")]).await;
    let demo = user(DEMO_USER);
    let path = "/rest/v1/dashboards";
    for _ in 0..3 {
        let r = t.request(Method::GET, path, Some(&demo), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let limited = t.request(Method::GET, path, Some(&demo), None).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert_eq!(limited.body["code"], "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry_after, 1,
        "2 per second: the next in half a second, rounded up"
    );
    // Another user, and a refreshed token of the same user, are told apart
    // by `sub`, not by the token's bytes.
    let other = t
        .request(Method::GET, path, Some(&user(OTHER_USER)), None)
        .await;
    assert_eq!(other.status, StatusCode::OK);
    let refreshed = sign(
        json!({"role": "authenticated", "aud": "authenticated", "sub": DEMO_USER,
        "exp": now() + 900}),
    );
    let again = t.request(Method::GET, path, Some(&refreshed), None).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    // The widget-data endpoint counts too.
    let query = t.query(&demo, json!({"table": "servers"})).await;
    assert_eq!(query.status, StatusCode::TOO_MANY_REQUESTS);
    // And the bucket refills.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = t.request(Method::GET, path, Some(&demo), None).await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.body);
}

/// One caller's slow queries hold at most `MAX_QUERIES_PER_CALLER`
/// connections; another caller's query is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_cannot_take_the_whole_pool() {
    let t = Arc::new(
        test_app_with(&[
            ("DB_POOL_SIZE", "2"),
            ("MAX_QUERIES_PER_CALLER", "1"),
            ("QUERY_TIMEOUT_MS", "1000"),
        ])
        .await,
    );
    t.exec(
        "CREATE TABLE public.locked (x integer); GRANT SELECT ON public.locked TO authenticated",
    )
    .await;
    // Every read of `locked` waits for this lock until it times out.
    let mut holder = t.pool.begin().await.unwrap(); // not a connection of the callers' pool
    sqlx::query("LOCK TABLE public.locked IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..3 {
        let t = Arc::clone(&t);
        slow.spawn(async move {
            // Distinct queries: identical ones would share one execution.
            let config = json!({"table": "locked", "filters": {"x": i}});
            t.query(&user(DEMO_USER), config).await
        });
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let other = t
        .query(&user(OTHER_USER), json!({"table": "servers"}))
        .await;
    let took = started.elapsed();
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    assert!(
        took < Duration::from_millis(700),
        "another caller waited {took:?} behind the first one's queries"
    );
    let mut codes = Vec::new();
    while let Some(reply) = slow.join_next().await {
        let reply = reply.unwrap();
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(reply.headers.contains_key("retry-after"));
            assert_eq!(reply.body["details"]["limit"], 1);
        }
        codes.push(reply.body["code"].as_str().unwrap_or_default().to_owned());
    }
    codes.sort();
    // One ran into the lock until QUERY_TIMEOUT_MS; the next had its slot
    // with half its budget left and timed out too; the third never got a
    // slot in time.
    assert_eq!(
        codes,
        ["query_timeout", "query_timeout", "too_many_queries"]
    );
    holder.rollback().await.unwrap();
}

fn dashboards(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"name": format!("bulk {i}")}))
            .collect(),
    )
}

async fn count_dashboards(t: &TestApp, owner: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM app.dashboards WHERE owner_id = $1::uuid")
        .bind(owner)
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bulk_insert_over_the_row_cap_is_413_and_saves_nothing() {
    let t = test_app_with(&[("REST_MAX_BULK_ROWS", "5")]).await;
    let token = user(OTHER_USER);
    let r = t
        .request(
            Method::POST,
            "/rest/v1/dashboards",
            Some(&token),
            Some(dashboards(6)),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.body["code"], "too_many_rows");
    assert_eq!(r.body["details"]["limit"], 5);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("at most 5 rows")
    );
    assert_eq!(count_dashboards(&t, OTHER_USER).await, 0);
    let ok = t
        .request(
            Method::POST,
            "/rest/v1/dashboards",
            Some(&token),
            Some(dashboards(5)),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(count_dashboards(&t, OTHER_USER).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_their_quota_gets_403_even_with_concurrent_inserts() {
    let t = Arc::new(test_app_with(&[("QUOTA_DASHBOARDS", "3"), ("QUOTA_WIDGETS", "4")]).await);
    let token = user(OTHER_USER);
    let two = t
        .request(
            Method::POST,
            "/rest/v1/dashboards",
            Some(&token),
            Some(dashboards(2)),
        )
        .await;
    assert_eq!(two.status, StatusCode::CREATED, "{}", two.body);
    // One left: an array of two is refused whole.
    let over = t
        .request(
            Method::POST,
            "/rest/v1/dashboards",
            Some(&token),
            Some(dashboards(2)),
        )
        .await;
    assert_eq!(over.status, StatusCode::FORBIDDEN, "{}", over.body);
    assert_eq!(over.body["code"], "quota_exceeded");
    assert_eq!(over.body["details"]["limit"], 3);
    assert_eq!(count_dashboards(&t, OTHER_USER).await, 2);
    // Eight at once race for the last one: exactly one wins.
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let t = Arc::clone(&t);
        let token = token.clone();
        racers.spawn(async move {
            t.request(
                Method::POST,
                "/rest/v1/dashboards",
                Some(&token),
                Some(dashboards(1)),
            )
            .await
            .status
        });
    }
    let mut created = 0;
    while let Some(status) = racers.join_next().await {
        match status.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(count_dashboards(&t, OTHER_USER).await, 3);
    // The quota is the user's own: the demo user (one dashboard) still has
    // room, and service_role has no quota.
    let demo = t
        .request(
            Method::POST,
            "/rest/v1/dashboards",
            Some(&user(DEMO_USER)),
            Some(dashboards(1)),
        )
        .await;
    assert_eq!(demo.status, StatusCode::CREATED, "{}", demo.body);
    let admin = t
        .request(
            Method::POST,
            "/rest/v1/dashboards",
            Some(&service()),
            Some(json!([{"name": "a", "owner_id": OTHER_USER}, {"name": "b", "owner_id": OTHER_USER}])),
        )
        .await;
    assert_eq!(admin.status, StatusCode::CREATED, "{}", admin.body);
    // Widgets have a quota of their own, the action form included.
    let dashboard = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM app.dashboards WHERE owner_id = $1::uuid LIMIT 1",
    )
    .bind(OTHER_USER)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let widget = |n: usize| {
        Value::Array(
            (0..n)
                .map(|_| {
                    json!({"dashboard_id": dashboard, "widget_type": "metric",
                    "data_source": {"table": "servers"}})
                })
                .collect(),
        )
    };
    let four = t
        .request(
            Method::POST,
            "/rest/v1/dashboard_widgets",
            Some(&token),
            Some(widget(4)),
        )
        .await;
    assert_eq!(four.status, StatusCode::CREATED, "{}", four.body);
    let fifth = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"action": "create_widget", "widget": widget(1)[0]})),
        )
        .await;
    assert_eq!(fifth.status, StatusCode::FORBIDDEN, "{}", fifth.body);
    assert_eq!(fifth.body["code"], "quota_exceeded");
}

#[tokio::test]
async fn an_insert_with_more_values_than_postgresql_binds_is_413_naming_the_limit() {
    let t = test_app_with(&[("REST_MAX_BULK_ROWS", "20000")]).await;
    // 4 values × 16,384 rows = 65,536 values, each one its columns takes,
    // in a body under 1 MiB.
    let row = r#"{"position":0,"config":0,"filters":0,"data_source":0}"#;
    let body = format!("[{}]", vec![row; 16_384].join(","));
    assert!(body.len() < 1 << 20);
    let r = t
        .request(
            Method::POST,
            "/rest/v1/dashboard_widgets",
            Some(&service()),
            Some(serde_json::from_str(&body).unwrap()),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.body["code"], "too_many_parameters");
    assert_eq!(r.body["details"]["limit"], 65_535);
    assert!(
        r.body["message"].as_str().unwrap().contains("65535"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn numbers_postgresql_cannot_take_are_refused_not_panics() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    for path in [
        "/rest/v1/dashboards?offset=9223372036854775808",
        "/rest/v1/dashboards?limit=9223372036854775808",
        "/rest/v1/dashboards?offset=18446744073709551616",
    ] {
        let r = t.request(Method::GET, path, Some(&token), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert!(
            r.body["details"]["field"]
                .as_str()
                .unwrap()
                .starts_with("query."),
            "{}",
            r.body
        );
    }
    for range in [
        "9223372036854775808-",
        "0-9223372036854775808",
        "0-18446744073709551615",
    ] {
        let r = t
            .request_with(
                Method::GET,
                "/rest/v1/dashboards",
                Some(&token),
                None,
                &[("range", range)],
            )
            .await;
        // Rows PostgreSQL could never give: 416, as PostgREST answers.
        assert_eq!(
            r.status,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{range}: {}",
            r.body
        );
        assert_eq!(r.body["code"], "range_not_satisfiable");
    }
    // The largest bigint is fine: an empty page, not an error.
    let r = t
        .request(
            Method::GET,
            "/rest/v1/dashboards?offset=9223372036854775807",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!([]));
}
