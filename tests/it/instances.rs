//! Two service instances on one database share entries through the cache
//! table, and each hears the other's writes; widget entries follow their
//! widget; expired rows are purged.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use widget_data::app::App;

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn rows_for(t: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_instances_share_entries_and_hear_each_others_writes() {
    let a = test_app().await;
    let url = a.app.config.database_url.clone().unwrap();
    let pool_b = widget_data::db::connect(&url, 4).await.unwrap();
    let app_b = App::new(config(&url, &[]), pool_b.clone()).await.unwrap();
    let b = TestApp {
        router: widget_data::http::router(Arc::clone(&app_b)),
        app: app_b,
        pool: pool_b,
    };
    a.listen().await;
    b.listen().await;
    let token = anon();
    let query = json!({"table": "servers", "groupBy": "region"});

    // Each instance's listening session has a base of its own, so the two
    // share entries for a table once both have heard a write to it (the
    // first query makes A watch servers, so the write is announced).
    a.query(&token, query.clone()).await;
    until("A's first entry is in the table", || async {
        rows_for(&a, "SELECT count(*) FROM app.widget_data_cache").await == 1
    })
    .await;
    sqlx::query("UPDATE servers SET cpu_pct = cpu_pct WHERE id = 1")
        .execute(&a.pool)
        .await
        .unwrap();
    for t in [&a, &b] {
        until("both heard the write", || async {
            t.app
                .cache
                .stats
                .invalidations
                .load(std::sync::atomic::Ordering::Acquire)
                == 1
        })
        .await;
    }

    let first = a.query(&token, query.clone()).await;
    assert_eq!(first.headers["x-cache"], "miss");
    until("A's entry is in the table", || async {
        rows_for(&a, "SELECT count(*) FROM app.widget_data_cache").await == 2
    })
    .await;
    let from_b = b.query(&token, query.clone()).await;
    assert_eq!(from_b.headers["x-cache"], "hit", "{}", from_b.body);
    assert_eq!(from_b.body["cached_at"], first.body["cached_at"]);
    assert_eq!(
        b.app
            .cache
            .stats
            .executions
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // A recomputes: B drops its memory copy and serves A's new entry.
    let forced = a
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"config": query, "force_refresh": true})),
        )
        .await;
    let new_at = forced.body["cached_at"].clone();
    assert_ne!(new_at, first.body["cached_at"]);
    until("B serves A's recomputed entry", || async {
        b.query(&token, query.clone()).await.body["cached_at"] == new_at
    })
    .await;

    // A write through either is heard by both.
    sqlx::query("DELETE FROM servers WHERE region = 'eu-west-1'")
        .execute(&a.pool)
        .await
        .unwrap();
    for t in [&a, &b] {
        until("the delete is seen", || async {
            let reply = t.query(&token, query.clone()).await;
            reply.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["region"] != "eu-west-1")
        })
        .await;
    }
}

#[tokio::test]
async fn a_widgets_entries_go_with_it_and_a_changed_widget_is_a_miss() {
    let t = test_app().await;
    t.listen().await;
    let token = user(DEMO_USER);
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.dashboard_widgets WHERE widget_type = 'metric'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    let ask = || {
        t.request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"widget_id": id})),
        )
    };
    assert_eq!(ask().await.headers["x-cache"], "miss");
    assert_eq!(ask().await.headers["x-cache"], "hit");
    let for_widget =
        format!("SELECT count(*) FROM app.widget_data_cache WHERE widget_instance_id = '{id}'");
    until("the widget's entry is stored", || async {
        rows_for(&t, &for_widget).await == 1
    })
    .await;

    // Its configuration changes: the next answer is computed anew.
    sqlx::query("UPDATE app.dashboard_widgets SET data_source = '{\"table\": \"servers\", \"filters\": {\"status\": \"Offline\"}}' WHERE id = $1")
        .bind(id)
        .execute(&t.pool)
        .await
        .unwrap();
    let changed = ask().await;
    assert_eq!(changed.headers["x-cache"], "miss");
    assert_eq!(
        changed.body["data"],
        t.sql_rows("SELECT count(*) AS value FROM servers WHERE status = 'Offline'")
            .await
    );

    // Deleting the widget deletes its entries.
    until("both entries are stored", || async {
        rows_for(&t, &for_widget).await == 2
    })
    .await;
    sqlx::query("DELETE FROM app.dashboard_widgets WHERE id = $1")
        .bind(id)
        .execute(&t.pool)
        .await
        .unwrap();
    assert_eq!(rows_for(&t, &for_widget).await, 0);
    assert_eq!(ask().await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_rows_are_purged() {
    let t = test_app().await;
    sqlx::raw_sql(
        "INSERT INTO app.widget_data_cache (cache_key, data, cached_at, expires_at) VALUES
           ('old', '[]', now() - interval '2 hours', now() - interval '1 hour'),
           ('new', '[]', now(), now() + interval '1 hour')",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    assert_eq!(widget_data::cache::purge(&t.pool).await.unwrap(), 1);
    let left: Vec<Value> =
        sqlx::query_scalar("SELECT to_json(cache_key) FROM app.widget_data_cache")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    assert_eq!(left, vec![json!("new")]);
}
