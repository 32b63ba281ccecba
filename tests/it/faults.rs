//! The service through database faults, on a PostgreSQL server of the
//! test's own over TCP (`external`): a fast stop, an immediate stop, a
//! SIGKILLed postmaster, and a server frozen for longer than the query
//! timeout. In each, every request answers within its budget
//! (`QUERY_TIMEOUT_MS` + the 1 s grace, plus slack for a loaded test
//! machine): a fresh entry as a plain hit, an expired one stale, anything
//! else a 503 with its own code; no write is lost or duplicated; and when
//! the database is back, answers are fresh again with no restart.

use crate::external::TcpCluster;
use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use widget_data::app::App;
use widget_data::db;

const QUERY_TIMEOUT_MS: &str = "1000";
/// QUERY_TIMEOUT_MS + the documented grace (1 s) + slack for a test
/// machine running other tests at the same time.
const BOUND: Duration = Duration::from_millis(1000 + 1000 + 1500);

/// The service, in process, on `cluster`, with its listener and probe.
async fn service(cluster: &TcpCluster) -> Arc<TestApp> {
    let url = cluster.url("postgres");
    let pool = db::connect(&url, 8).await.expect("connect");
    db::migrate(&pool).await.expect("migrate");
    db::seed(&pool).await.expect("seed");
    let app = App::new(
        config(&url, &[("QUERY_TIMEOUT_MS", QUERY_TIMEOUT_MS)]),
        pool.clone(),
    )
    .await
    .expect("app");
    app.spawn_probe();
    let t = TestApp {
        router: widget_data::http::router(Arc::clone(&app)),
        app,
        pool,
    };
    t.listen().await;
    Arc::new(t)
}

/// What the service answered before the fault.
struct Warm {
    /// An ad-hoc query with a 300 s lifetime: fresh throughout.
    fresh: Value,
    fresh_data: Value,
    /// A saved widget with a 1 s lifetime: expired during the fault.
    widget: uuid::Uuid,
    widget_data: Value,
}

const FRESH: fn() -> Value = || json!({"table": "servers", "groupBy": "status"});
const UNCACHED: fn() -> Value = || json!({"table": "servers", "groupBy": "region"});

async fn warm(t: &TestApp) -> Warm {
    let token = user(DEMO_USER);
    let widget: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO app.dashboard_widgets (dashboard_id, owner_id, widget_type, data_source, refresh_interval)
         SELECT dashboard_id, owner_id, 'chart', '{\"table\": \"servers\", \"groupBy\": \"region\", \"filters\": {\"status\": \"Active\"}}', 1
         FROM app.dashboard_widgets LIMIT 1 RETURNING id",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let first = t.query(&token, FRESH()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = t.query(&token, FRESH()).await;
    assert_eq!(again.headers["x-cache"], "hit");
    let w = ask_widget(t, widget).await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.body);
    assert_eq!(
        t.request(Method::GET, "/rest/v1/dashboards", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // the widget's entry expires
    Warm {
        fresh: FRESH(),
        fresh_data: first.body["data"].clone(),
        widget,
        widget_data: w.body["data"].clone(),
    }
}

async fn ask_widget(t: &TestApp, id: uuid::Uuid) -> Reply {
    t.request(
        Method::POST,
        "/functions/v1/widget-data",
        Some(&user(DEMO_USER)),
        Some(json!({ "widget_id": id })),
    )
    .await
}

/// Runs `request`, asserting it answered within [`BOUND`].
async fn timed<F: std::future::Future<Output = Reply>>(what: &str, request: F) -> Reply {
    let started = Instant::now();
    let reply = request.await;
    let took = started.elapsed();
    assert!(took <= BOUND, "{what} took {took:?}: {}", reply.body);
    reply
}

fn new_dashboard(id: uuid::Uuid) -> Value {
    json!({"id": id, "name": format!("fault {id}")})
}

async fn write_dashboard(t: &TestApp, id: uuid::Uuid) -> Reply {
    t.request(
        Method::POST,
        "/rest/v1/dashboards",
        Some(&user(DEMO_USER)),
        Some(new_dashboard(id)),
    )
    .await
}

/// Every request while the database is out, each within its budget.
/// Returns the ids of the dashboards whose inserts were refused.
async fn while_down(t: &TestApp, warm: &Warm) -> Vec<uuid::Uuid> {
    let token = user(DEMO_USER);
    let hit = timed("a fresh entry", t.query(&token, warm.fresh.clone())).await;
    assert_eq!(hit.status, StatusCode::OK, "{}", hit.body);
    assert_eq!(hit.headers["x-cache"], "hit", "{}", hit.body);
    assert_eq!(hit.body["stale"], false);
    assert_eq!(hit.body["data"], warm.fresh_data);

    let stale = timed("an expired entry", ask_widget(t, warm.widget)).await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.body);
    assert_eq!(stale.headers["x-cache"], "stale");
    assert_eq!(stale.body["stale"], true);
    assert_eq!(stale.body["data"], warm.widget_data);

    let none = timed("no entry", t.query(&token, UNCACHED())).await;
    assert_eq!(
        none.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        none.body
    );
    assert_eq!(none.body["code"], "database_unavailable");
    assert!(none.headers.contains_key("retry-after"));
    assert_eq!(
        none.body["message"],
        "the database is unavailable; try again shortly"
    );

    let read = timed(
        "a /rest/v1 read",
        t.request(Method::GET, "/rest/v1/dashboards", Some(&token), None),
    )
    .await;
    assert_eq!(
        read.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        read.body
    );
    assert_eq!(read.body["code"], "database_unavailable");

    let mut refused = Vec::new();
    for _ in 0..3 {
        let id = uuid::Uuid::new_v4();
        let write = timed("a /rest/v1 write", write_dashboard(t, id)).await;
        assert_eq!(
            write.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            write.body
        );
        refused.push(id);
    }
    refused
}

/// Once the database is back: fresh answers with no restart, every write
/// the service acknowledged kept, every refused one retried, each exactly
/// once.
async fn after_recovery(
    t: &TestApp,
    warm: &Warm,
    acknowledged: &[uuid::Uuid],
    refused: &[uuid::Uuid],
) {
    let token = user(DEMO_USER);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = t.query(&token, UNCACHED()).await;
        if reply.status == StatusCode::OK {
            let expected = t
                .sql_rows(
                    "SELECT region, count(*) AS value FROM servers GROUP BY region ORDER BY region",
                )
                .await;
            let mut got = reply.body["data"].as_array().unwrap().clone();
            got.sort_by_key(|r| r["region"].as_str().unwrap().to_owned());
            assert_eq!(Value::Array(got), expected);
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert!(
            Instant::now() < deadline,
            "never answered again: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let widget = ask_widget(t, warm.widget).await;
    assert_eq!(widget.status, StatusCode::OK, "{}", widget.body);
    assert_eq!(widget.body["stale"], false);

    // Writes: a retry of a refused insert either makes it (201) or finds
    // it made (409: its commit landed though the answer was lost).
    for id in refused {
        let retry = write_dashboard(t, *id).await;
        assert!(
            retry.status == StatusCode::CREATED || retry.status == StatusCode::CONFLICT,
            "retrying {id}: {} {}",
            retry.status,
            retry.body
        );
    }
    let all: Vec<uuid::Uuid> = acknowledged.iter().chain(refused).copied().collect();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM app.dashboards WHERE id = ANY($1)")
        .bind(&all)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(found, all.len() as i64, "every write is there exactly once");

    // Fresh again: a write after recovery is seen by the next answers.
    sqlx::query("UPDATE servers SET status = 'Offline' WHERE id IN (SELECT id FROM servers WHERE status = 'Active' LIMIT 7)")
        .execute(&t.pool)
        .await
        .unwrap();
    let expected = t
        .sql_rows("SELECT status, count(*) AS value FROM servers GROUP BY status ORDER BY status")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = t.query(&token, warm.fresh.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let mut got = reply.body["data"].as_array().unwrap().clone();
        got.sort_by_key(|r| r["status"].as_str().unwrap().to_owned());
        if Value::Array(got) == expected {
            assert_eq!(reply.body["stale"], false);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the write after recovery was never seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inserts acknowledged before the fault: they must survive it.
async fn acknowledged_writes(t: &TestApp) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = uuid::Uuid::new_v4();
        let reply = write_dashboard(t, id).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_stop() {
    let cluster = TcpCluster::create("fault-fast");
    let t = service(&cluster).await;
    let warm = warm(&t).await;
    let acknowledged = acknowledged_writes(&t).await;
    cluster.stop("fast");
    let refused = while_down(&t, &warm).await;
    cluster.start();
    after_recovery(&t, &warm, &acknowledged, &refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_stop() {
    let cluster = TcpCluster::create("fault-immediate");
    let t = service(&cluster).await;
    let warm = warm(&t).await;
    let acknowledged = acknowledged_writes(&t).await;
    cluster.stop("immediate");
    let refused = while_down(&t, &warm).await;
    cluster.start();
    after_recovery(&t, &warm, &acknowledged, &refused).await;
}

/// SIGKILL of the postmaster in the middle of a burst of uncached queries
/// and inserts: every one of them answers within its budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postmaster_during_a_burst() {
    let cluster = TcpCluster::create("fault-kill");
    let t = service(&cluster).await;
    let warm = warm(&t).await;
    let mut acknowledged = acknowledged_writes(&t).await;
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..40 {
        let t = Arc::clone(&t);
        burst.spawn(async move {
            let config = json!({"table": "servers", "filters": [{"column": "memory_mb", "op": "gt", "value": i}]});
            let started = Instant::now();
            let reply = t.query(&anon(), config).await;
            (None, reply, started.elapsed())
        });
    }
    for _ in 0..20 {
        let t = Arc::clone(&t);
        burst.spawn(async move {
            let id = uuid::Uuid::new_v4();
            let started = Instant::now();
            let reply = write_dashboard(&t, id).await;
            (Some(id), reply, started.elapsed())
        });
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let pid = cluster.postmaster_pid();
    cluster.signal("KILL");
    let mut refused = Vec::new();
    while let Some(done) = burst.join_next().await {
        let (id, reply, took) = done.unwrap();
        assert!(
            took <= BOUND,
            "a request of the burst took {took:?}: {}",
            reply.body
        );
        // 429: one caller sent more at once than MAX_QUERIES_PER_CALLER
        // runs, and its turn did not come before the deadline.
        match (id, reply.status) {
            (
                None,
                StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS,
            ) => {}
            (Some(id), StatusCode::CREATED) => acknowledged.push(id),
            (Some(id), StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) => {
                refused.push(id)
            }
            (_, status) => panic!("unexpected {status}: {}", reply.body),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.postmaster_alive(pid) {
        assert!(Instant::now() < deadline, "the postmaster survived SIGKILL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused.extend(while_down(&t, &warm).await);
    cluster.start();
    after_recovery(&t, &warm, &acknowledged, &refused).await;
}

/// Every process of the server frozen for longer than the query timeout,
/// then thawed: nothing waits for the whole freeze.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server() {
    let cluster = TcpCluster::create("fault-frozen");
    let t = service(&cluster).await;
    let warm = warm(&t).await;
    let acknowledged = acknowledged_writes(&t).await;
    cluster.freeze();
    let refused = while_down(&t, &warm).await;
    // Frozen for at least twice the query timeout in all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.thaw();
    after_recovery(&t, &warm, &acknowledged, &refused).await;
}
