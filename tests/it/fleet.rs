//! Several instances on real servers started on loopback by the tests: a
//! Redis level shared by all, a streaming replica for reads, and the
//! exactness the cache keeps through both (issue 13).

use crate::harness::*;
use crate::redis_server::RedisServer;
use crate::replica;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use widget_data::app::App;

/// An instance of the service on `url`, listening.
async fn instance(url: &str, extra: &[(&str, &str)]) -> TestApp {
    let pool = widget_data::db::connect(url, 4).await.unwrap();
    let app = App::new(config(url, extra), pool.clone()).await.unwrap();
    let t = TestApp {
        router: widget_data::http::router(Arc::clone(&app)),
        app,
        pool,
    };
    t.listen().await;
    t
}

async fn entries_in_redis(redis: &RedisServer) -> usize {
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("widget-data:e:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.len()
}

#[tokio::test]
async fn an_instance_started_later_hits_from_redis_with_an_empty_memory() {
    let redis = RedisServer::start().await;
    let (_, url) = fresh_db().await;
    let shared = [("REDIS_URL", redis.url())];
    let shared: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = instance(&url, &shared).await;
    let token = user(DEMO_USER);
    let query = json!({"table": "servers", "groupBy": "region"});
    let first = a.query(&token, query.clone()).await;
    assert_eq!(first.headers["x-cache"], "miss", "{}", first.body);
    until("the entry is in Redis", || async {
        entries_in_redis(&redis).await == 1
    })
    .await;
    // Its lifetime in Redis is the entry's own (300 s by default).
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("widget-data:e:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((290..=300).contains(&ttl), "{ttl}");

    let b = instance(&url, &shared).await;
    let from_b = b.query(&token, query.clone()).await;
    assert_eq!(from_b.headers["x-cache"], "hit", "{}", from_b.body);
    assert_eq!(from_b.body["cached_at"], first.body["cached_at"]);
    assert_eq!(from_b.body["data"], first.body["data"]);
    let stats = b.app.snapshot();
    assert_eq!(
        (stats.levels.redis, stats.levels.table, stats.executions),
        (1, 0, 0)
    );
    assert_eq!(stats.redis.unwrap().breaker, "closed");

    // A recomputes: B drops its memory copy and reads the new one from
    // Redis, where it was stored before B was told.
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
    let again = b.query(&token, query.clone()).await;
    assert_eq!(again.body["cached_at"], new_at, "and keeps serving it");
}

#[tokio::test]
async fn a_write_gives_fresh_answers_on_all_three_instances() {
    let redis = RedisServer::start().await;
    let (_, url) = fresh_db().await;
    let shared = [("REDIS_URL", redis.url())];
    let shared: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(instance(&url, &shared).await);
    }
    let token = anon();
    let query = json!({"table": "servers", "groupBy": "status"});
    for t in &fleet {
        let reply = t.query(&token, query.clone()).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let executions: u64 = fleet.iter().map(|t| t.app.snapshot().executions).sum();
    assert_eq!(executions, 1, "the first computed it, the others shared it");

    sqlx::query("UPDATE servers SET status = 'Offline' WHERE id IN (1, 2, 3)")
        .execute(&fleet[0].pool)
        .await
        .unwrap();
    let truth = fleet[0]
        .sql_rows("SELECT status, count(*) AS value FROM servers GROUP BY status")
        .await;
    for t in &fleet {
        until("the instance answers with the write", || async {
            sorted(&t.query(&token, query.clone()).await.body["data"], "status")
                == sorted(&truth, "status")
        })
        .await;
        // And keeps doing so.
        let again = t.query(&token, query.clone()).await;
        assert_eq!(
            sorted(&again.body["data"], "status"),
            sorted(&truth, "status")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_costs_no_errors_and_the_breaker_closes_after_a_restart() {
    let mut redis = RedisServer::start().await;
    let (_, url) = fresh_db().await;
    let t = Arc::new(instance(&url, &[("REDIS_URL", &redis.url())]).await);
    let token = anon();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Distinct queries (a new limit each time): every one goes through
    // Redis, then the table, then the query.
    let load = {
        let (t, running, token) = (Arc::clone(&t), Arc::clone(&running), token.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            let mut failures = Vec::new();
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let query = json!({"table": "servers", "groupBy": "region", "limit": 1 + n % 50});
                let reply = t.query(&token, query).await;
                if reply.status != StatusCode::OK {
                    failures.push(reply.body);
                }
            }
            (n, failures)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    until("the breaker opens", || async {
        t.app.snapshot().redis.unwrap().breaker == "open"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart().await;
    until("the breaker closes", || async {
        t.app.snapshot().redis.unwrap().breaker == "closed"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let (requests, failures) = load.await.unwrap();
    assert!(requests > 20, "only {requests} requests");
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..1]
    );
    let figures = t.app.snapshot().redis.unwrap();
    assert!(
        figures.breaker_opened >= 1 && figures.errors >= 1,
        "{figures:?}"
    );
    // Used again: a new entry reaches the restarted server.
    let reply = t
        .query(&token, json!({"table": "servers", "groupBy": "status"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    until("entries reach Redis again", || async {
        entries_in_redis(&redis).await >= 1
    })
    .await;
}

/// The service on the replication fixture's primary, reading from its
/// standby.
async fn on_the_fixture(rep: &replica::Exclusive) -> TestApp {
    let t = instance(
        &rep.primary_url(),
        &[("DATABASE_READ_URLS", &rep.replica_url())],
    )
    .await;
    t.app.spawn_replica_probes();
    t
}

async fn servers_by_region(t: &TestApp) -> Vec<Value> {
    sorted(
        &t.sql_rows("SELECT region, count(*) AS value FROM servers GROUP BY region")
            .await,
        "region",
    )
}

#[tokio::test]
async fn a_lagging_replica_never_puts_an_old_answer_under_a_new_key() {
    let rep = replica::exclusive().await;
    let t = on_the_fixture(&rep).await;
    let token = service();
    let query = json!({"table": "servers", "groupBy": "region"});
    let first = t.query(&token, query.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        sorted(&first.body["data"], "region"),
        servers_by_region(&t).await
    );
    let before = t.app.snapshot();

    rep.pause_replay().await;
    let heard = before.invalidations;
    sqlx::query("UPDATE servers SET region = 'ap-south-1' WHERE id IN (SELECT id FROM servers ORDER BY id LIMIT 2)")
        .execute(&t.pool)
        .await
        .unwrap();
    until("the write is heard", || async {
        t.app.snapshot().invalidations > heard
    })
    .await;
    let truth = servers_by_region(&t).await;
    let after = t.query(&token, query.clone()).await;
    assert_eq!(after.headers["x-cache"], "miss", "{}", after.body);
    assert_eq!(
        sorted(&after.body["data"], "region"),
        truth,
        "not the replica's old rows"
    );
    let stats = t.app.snapshot();
    assert!(
        stats.queries.refused_for_lag > before.queries.refused_for_lag,
        "{:?}",
        stats.queries
    );
    assert_eq!(
        stats.queries.primary,
        before.queries.primary + 1,
        "{:?}",
        stats.queries
    );
    // What was stored under the new key is the new answer.
    let cached = t.query(&token, query.clone()).await;
    assert_eq!(cached.headers["x-cache"], "hit");
    assert_eq!(sorted(&cached.body["data"], "region"), truth);
    rep.resume_replay().await;

    // Caught up, the replica answers again.
    let replica_before = t.app.snapshot().queries.replica;
    rep.wait_for_replay(rep.primary_lsn().await).await;
    let other = t
        .query(&token, json!({"table": "servers", "groupBy": "status"}))
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(t.app.snapshot().queries.replica, replica_before + 1);
}

#[tokio::test]
async fn with_the_replica_down_reads_go_to_the_primary() {
    let rep = replica::exclusive().await;
    let t = on_the_fixture(&rep).await;
    let token = service();
    let first = t
        .query(&token, json!({"table": "servers", "aggregation": "count"}))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    rep.stop_replica().await;
    // Distinct queries, so each is computed.
    for limit in 1..=5 {
        let reply = t
            .request(
                Method::POST,
                "/functions/v1/widget-data",
                Some(&token),
                Some(json!({"config": {"table": "servers", "groupBy": "region", "limit": limit}})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(
            reply.body["data"].as_array().unwrap().len().min(limit),
            reply.body["data"].as_array().unwrap().len()
        );
    }
    let stats = t.app.snapshot();
    assert_eq!(stats.queries.healthy_replicas, 0, "{:?}", stats.queries);
    assert!(stats.queries.primary >= 5, "{:?}", stats.queries);
    rep.start_replica().await;
    until("the replica is used again", || async {
        t.app.snapshot().queries.healthy_replicas == 1
    })
    .await;
}
