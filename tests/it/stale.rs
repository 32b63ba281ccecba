//! Stale-if-error and the cache's statistics, on a cluster of the test's
//! own that it stops and starts again.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use embedded_pg::EmbeddedPostgres;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use widget_data::app::App;
use widget_data::db;

/// A migrated, seeded cluster of the test's own (so it may be stopped),
/// under a directory named `name`, and an app on it configured with `env`.
async fn own_cluster(
    name: &str,
    env: &[(&str, &str)],
) -> (std::path::PathBuf, EmbeddedPostgres, TestApp) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    let url = pg.url("postgres");
    let pool = db::connect(&url, 4).await.unwrap();
    db::migrate(&pool).await.unwrap();
    db::seed(&pool).await.unwrap();
    let app = App::new(config(&url, env), pool.clone()).await.unwrap();
    let t = TestApp {
        router: widget_data::http::router(Arc::clone(&app)),
        app,
        pool,
    };
    (dir, pg, t)
}

#[tokio::test]
async fn an_expired_entry_is_served_stale_while_the_database_is_down_and_fresh_after() {
    let (dir, pg, t) = own_cluster(
        "widget-data-stale",
        &[
            ("CACHE_DEFAULT_TTL_SECS", "1"),
            ("QUERY_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    t.listen().await;
    let token = anon();
    let by_status = json!({"table": "servers", "groupBy": "status"});
    let fresh = t.query(&token, by_status.clone()).await;
    assert_eq!(fresh.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await; // the entry expires

    pg.stop().await.unwrap();
    let stale = t.query(&token, by_status.clone()).await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.body);
    assert_eq!(stale.body["stale"], true);
    assert_eq!(stale.body["cached"], true);
    assert_eq!(stale.headers["x-cache"], "stale");
    assert_eq!(stale.body["data"], fresh.body["data"]);
    assert_eq!(stale.body["cached_at"], fresh.body["cached_at"]);
    // Nothing cached for this one: 503, with its own code and no internals.
    let none = t
        .query(&token, json!({"table": "servers", "groupBy": "region"}))
        .await;
    assert_eq!(
        none.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        none.body
    );
    assert_eq!(none.body["code"], "database_unavailable");

    // Back up: fresh answers again, without restarting the service.
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = t.query(&token, by_status.clone()).await;
        if reply.status == StatusCode::OK && reply.body["stale"] == false {
            assert_eq!(reply.body["data"], fresh.body["data"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never fresh again: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = t
        .request(
            Method::GET,
            "/functions/v1/widget-data/stats",
            Some(&service()),
            None,
        )
        .await;
    assert_eq!(stats.body["stale_serves"], 1, "{}", stats.body);
    t.pool.close().await;
    pg.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stats_count_hits_misses_and_changes_for_service_role_only() {
    let t = test_app().await;
    t.listen().await;
    let token = anon();
    for _ in 0..3 {
        t.query(&token, json!({"table": "servers"})).await;
    }
    sqlx::query("DELETE FROM servers WHERE id = 1")
        .execute(&t.pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = t
            .request(
                Method::GET,
                "/functions/v1/widget-data/stats",
                Some(&service()),
                None,
            )
            .await;
        assert_eq!(s.status, StatusCode::OK);
        if s.body["invalidations"] == 1 {
            assert_eq!(
                (s.body["hits"].clone(), s.body["misses"].clone()),
                (json!(2), json!(1)),
                "{}",
                s.body
            );
            assert!((s.body["hit_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
            assert_eq!(s.body["executions"], 1);
            assert_eq!(s.body["entries"], 1);
            assert!(s.body["bytes"].as_u64().unwrap() > 0);
            assert!(s.body["last_invalidation_at"].is_string(), "{}", s.body);
            assert_eq!(s.body["cached_latency"]["samples"], 2);
            assert_eq!(s.body["uncached_latency"]["samples"], 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delete was never heard: {}",
            s.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for token in [anon(), user(DEMO_USER)] {
        let s = t
            .request(
                Method::GET,
                "/functions/v1/widget-data/stats",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(
            (s.status, s.body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
    }
    // The same figures as the stats endpoint, to the same callers.
    for token in [None, Some(anon()), Some(user(DEMO_USER))] {
        let refused = t
            .request(Method::GET, "/metrics", token.as_deref(), None)
            .await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&refused.status),
            "{token:?}: {}",
            refused.status
        );
    }
    // On METRICS_ADDR's router: no token, as Prometheus scrapes.
    let open = tower::ServiceExt::oneshot(
        widget_data::http::metrics_router(Arc::clone(&t.app)),
        axum::http::Request::get("/metrics")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let metrics = t
        .request(Method::GET, "/metrics", Some(&service()), None)
        .await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().unwrap();
    for line in [
        "widget_data_cache_hits_total 2",
        "widget_data_cache_misses_total 1",
        "widget_data_cache_invalidations_total 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
}

#[tokio::test]
async fn a_saved_widget_is_served_from_the_cache_while_the_database_is_down() {
    let (dir, pg, t) = own_cluster("widget-data-stale-w", &[("QUERY_TIMEOUT_MS", "1000")]).await;
    t.listen().await;
    // A widget of the demo user's whose entry expires after a second.
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO app.dashboard_widgets (dashboard_id, owner_id, widget_type, data_source, refresh_interval)
         SELECT dashboard_id, owner_id, 'chart', '{\"table\": \"servers\", \"groupBy\": \"region\"}', 1
         FROM app.dashboard_widgets LIMIT 1 RETURNING id",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let token = user(DEMO_USER);
    let ask = || {
        t.request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"widget_id": id})),
        )
    };
    let fresh = ask().await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    pg.stop().await.unwrap();
    let stale = ask().await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.body);
    assert_eq!(stale.headers["x-cache"], "stale");
    assert_eq!(stale.body["data"], fresh.body["data"]);
    // Another user never loaded it: nothing to go on but a 503.
    let other = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&user("00000000-0000-4000-8000-000000000001")),
            Some(json!({"widget_id": id})),
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        other.body
    );
    let _ = std::fs::remove_dir_all(&dir);
}
