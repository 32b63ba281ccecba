//! Two service instances on one database share entries through the cache
//! table, and each hears the other's writes; widget entries follow their
//! widget; expired rows are purged.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use widget_data::app::App;

async fn rows_for(t: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

/// A second instance of the service on `a`'s database, not yet listening.
async fn another_instance(a: &TestApp) -> TestApp {
    let url = a.app.config.database_url.clone().unwrap();
    let pool = widget_data::db::connect(&url, 4).await.unwrap();
    let app = App::new(config(&url, &[]), pool.clone()).await.unwrap();
    TestApp {
        router: widget_data::http::router(Arc::clone(&app)),
        app,
        pool,
    }
}

#[tokio::test]
async fn two_instances_share_entries_and_hear_each_others_writes() {
    let a = test_app().await;
    a.listen().await;
    let token = anon();
    let query = json!({"table": "servers", "groupBy": "region"});

    // Versions are read from the database, the same for every instance:
    // one started after A stored its entry reaches it at once.
    let first = a.query(&token, query.clone()).await;
    assert_eq!(first.headers["x-cache"], "miss");
    until("A's entry is in the table", || async {
        rows_for(&a, "SELECT count(*) FROM app.widget_data_cache").await == 1
    })
    .await;
    let b = another_instance(&a).await;
    b.listen().await;
    let from_b = b.query(&token, query.clone()).await;
    assert_eq!(from_b.headers["x-cache"], "hit", "{}", from_b.body);
    assert_eq!(from_b.body["cached_at"], first.body["cached_at"]);
    assert_eq!(from_b.body["data"], first.body["data"]);
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

/// The listening session is lost and a new one begins. Nothing was
/// written meanwhile, so every entry is still exact and still served; a
/// write made while nobody watched gives a new version all the same.
#[tokio::test]
async fn a_reconnect_keeps_entries_of_unchanged_data_and_sees_unannounced_writes() {
    let t = test_app().await;
    t.listen().await;
    let token = anon();
    let query = json!({"table": "servers", "groupBy": "status"});
    let first = t.query(&token, query.clone()).await;
    assert_eq!(first.headers["x-cache"], "miss");
    assert!(
        terminate_watching_sessions(&t.pool).await,
        "the listener held a watch"
    );
    until("the listener noticed", || async {
        !t.app.cache.is_listening()
    })
    .await;
    until("the listener came back", || async {
        t.app.cache.is_listening()
    })
    .await;
    let again = t.query(&token, query.clone()).await;
    assert_eq!(again.headers["x-cache"], "hit", "{}", again.body);
    assert_eq!(again.body["cached_at"], first.body["cached_at"]);

    // The watch taken again by that request ends with the next session;
    // a write while nobody watches is not announced, but is seen.
    terminate_watching_sessions(&t.pool).await;
    until("the listener noticed", || async {
        !t.app.cache.is_listening()
    })
    .await;
    sqlx::query("UPDATE servers SET status = 'Offline' WHERE id = 1")
        .execute(&t.pool)
        .await
        .unwrap();
    until("the listener came back", || async {
        t.app.cache.is_listening()
    })
    .await;
    let after = t.query(&token, query.clone()).await;
    assert_eq!(after.headers["x-cache"], "miss", "{}", after.body);
    let expected = t
        .sql_rows("SELECT status, count(*) AS value FROM servers GROUP BY status")
        .await;
    assert_eq!(
        sorted(&after.body["data"], "status"),
        sorted(&expected, "status")
    );
}
