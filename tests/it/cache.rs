//! The result cache on a real PostgreSQL: hits, change-driven misses, no
//! cross-user leaks, no lost invalidation, coalesced misses.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use widget_data::auth::Principal;
use widget_data::cache::{Entry, KeyState};
use widget_data::deadline::Deadline;

/// An app whose listener is running, so results may be cached.
async fn listening_app() -> TestApp {
    let t = test_app().await;
    t.listen().await;
    t
}

fn count_by_status() -> Value {
    json!({"table": "servers", "groupBy": "status"})
}

#[tokio::test]
async fn a_repeated_query_is_a_hit_with_the_same_timestamps() {
    let t = listening_app().await;
    let token = user(DEMO_USER);
    let first = t.query(&token, count_by_status()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["cached"], false);
    assert_eq!(first.headers["x-cache"], "miss");
    let second = t.query(&token, count_by_status()).await;
    assert_eq!(second.body["cached"], true);
    assert_eq!(second.headers["x-cache"], "hit");
    assert_eq!(second.body["data"], first.body["data"]);
    assert_eq!(second.body["cached_at"], first.body["cached_at"]);
    assert_eq!(second.body["expires_at"], first.body["expires_at"]);
    // Browsers keep the body but ask again each time (BROWSER_CACHE_SECS
    // opts into a lifetime): a write is never hidden by their copy.
    assert_eq!(second.headers["cache-control"], "private, no-cache");
    let lifetime =
        chrono::DateTime::parse_from_rfc3339(second.body["expires_at"].as_str().unwrap()).unwrap()
            - chrono::DateTime::parse_from_rfc3339(second.body["cached_at"].as_str().unwrap())
                .unwrap();
    assert_eq!(lifetime.num_seconds(), 300);
    // The same query spelled differently is the same entry.
    let respelled = t
        .query(
            &token,
            json!({"table": "public.servers", "aggregation": "count", "group_by": ["status"]}),
        )
        .await;
    assert_eq!(respelled.headers["x-cache"], "hit");
    // force_refresh recomputes and replaces.
    let forced = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"config": count_by_status(), "force_refresh": true})),
        )
        .await;
    assert_eq!(forced.body["cached"], false);
    assert_ne!(forced.body["cached_at"], first.body["cached_at"]);
    let after = t.query(&token, count_by_status()).await;
    assert_eq!(after.body["cached_at"], forced.body["cached_at"]);
}

#[tokio::test]
async fn a_committed_insert_makes_the_next_request_a_miss_with_the_new_count() {
    let t = listening_app().await;
    let token = anon();
    let before = t.query(&token, json!({"table": "servers"})).await;
    assert_eq!(
        t.query(&token, json!({"table": "servers"})).await.body["cached"],
        true
    );
    let n = before.body["data"][0]["value"].as_i64().unwrap();
    sqlx::query(
        "INSERT INTO servers (hostname, status, region) VALUES ('new-1', 'Ready', 'eu-west-1')",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    // The change is announced at commit; no TTL (300 s) is waited for.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = t.query(&token, json!({"table": "servers"})).await;
        if reply.body["data"][0]["value"] == n + 1 {
            assert_eq!(reply.body["cached"], false);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still the old count: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // TRUNCATE is a change too.
    sqlx::query("TRUNCATE servers")
        .execute(&t.pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.query(&token, json!({"table": "servers"})).await.body["data"][0]["value"] != 0 {
        assert!(Instant::now() < deadline, "truncate not seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn two_users_of_an_rls_table_never_see_each_others_cached_rows() {
    let t = listening_app().await;
    t.exec(
        "CREATE TABLE public.notes (id serial PRIMARY KEY, owner uuid NOT NULL, body text NOT NULL);
         ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
         CREATE POLICY own ON public.notes FOR SELECT TO authenticated USING (owner = auth.uid());
         GRANT SELECT ON public.notes TO authenticated;
         INSERT INTO public.notes (owner, body)
         SELECT CASE WHEN g <= 2 THEN '5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d'::uuid
                     ELSE '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a'::uuid END, 'n' FROM generate_series(1, 9) g;",
    )
    .await;
    let notes = json!({"table": "notes"});
    for (who, want) in [(DEMO_USER, 2), (OTHER_USER, 7)] {
        let first = t.query(&user(who), notes.clone()).await;
        assert_eq!(first.body["data"], json!([{"value": want}]), "{who}");
        let second = t.query(&user(who), notes.clone()).await;
        assert_eq!(second.body["data"], json!([{"value": want}]), "{who}");
        assert_eq!(
            second.body["cached"], true,
            "each user's second request is a hit on their own entry"
        );
    }
    // A refreshed token of the same user shares the entry; another user never does.
    let refreshed = sign(
        json!({"role": "authenticated", "aud": "authenticated", "sub": DEMO_USER, "exp": now() + 900, "iat": now()}),
    );
    let reply = t.query(&refreshed, notes.clone()).await;
    assert_eq!(
        (reply.body["cached"].clone(), reply.body["data"].clone()),
        (json!(true), json!([{"value": 2}]))
    );
}

#[tokio::test]
async fn a_write_during_a_slow_fill_never_leaves_the_old_result_current() {
    let t = listening_app().await;
    let token = anon();
    let principal: Principal = t.app.jwt.verify(&token).unwrap();
    let source: widget_data::plan::DataSource =
        serde_json::from_value(json!({"table": "servers"})).unwrap();
    let plan = widget_data::plan::plan(&source, &[], &t.app.schema(), &t.app.limits).unwrap();
    assert!(
        t.app
            .cache
            .settle(&plan, Deadline::after(Duration::from_secs(10)))
            .await
    );
    let KeyState::Ready(key) = t.app.cache.key(&plan, 300, &principal) else {
        panic!("the versions were just read");
    };
    let pool = t.pool.clone();
    let app = Arc::clone(&t.app);
    let filled_under = key.clone();
    // The fill reads the count, then a write commits while it is still in
    // flight, and only then does it store what it read.
    let (entry, _) = t
        .app
        .cache
        .fill(&key, None, None, false, Deadline::after(Duration::from_secs(10)), || async move {
            let old: i64 = sqlx::query_scalar("SELECT count(*) FROM servers").fetch_one(&pool).await.unwrap();
            sqlx::query("INSERT INTO servers (hostname, status, region) VALUES ('late', 'Ready', 'eu-west-1')")
                .execute(&pool)
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(app.cache.key(&plan, 300, &principal), KeyState::Ready(k) if k == filled_under) {
                assert!(Instant::now() < deadline, "the write was never announced");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let data = serde_json::value::to_raw_value(&json!([{"value": old}])).unwrap();
            let now = chrono::Utc::now();
            Ok::<_, ()>(Entry::new(data, now, now + chrono::Duration::seconds(300)))
        })
        .await
        .unwrap();
    let old = serde_json::from_str::<Value>(entry.data.get()).unwrap()[0]["value"]
        .as_i64()
        .unwrap();
    let reply = t.query(&token, json!({"table": "servers"})).await;
    assert_eq!(
        reply.body["cached"], false,
        "the stale fill must not answer"
    );
    assert_eq!(reply.body["data"][0]["value"], old + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_identical_cold_requests_run_the_query_once() {
    let t = listening_app().await;
    let token = user(DEMO_USER);
    let executions = || t.app.cache.stats.executions.load(Relaxed);
    let before = executions();
    let config =
        json!({"table": "servers", "aggregation": "avg", "column": "cpu_pct", "groupBy": "region"});
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let router = t.router.clone();
        let token = token.clone();
        let config = config.clone();
        tasks.spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/functions/v1/widget-data")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::from(
                    json!({ "config": config }).to_string(),
                ))
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()["data"].clone()
        });
    }
    let answers: Vec<Value> = tasks.join_all().await;
    assert_eq!(answers.len(), 200);
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every request got the same data"
    );
    assert_eq!(
        executions() - before,
        1,
        "one database execution for 200 identical requests"
    );
    let want = t
        .sql_rows(
            "SELECT region, avg(cpu_pct) AS value FROM servers GROUP BY region ORDER BY region",
        )
        .await;
    assert_eq!(answers[0], want);
}

#[tokio::test]
async fn a_view_is_cached_and_its_base_tables_writes_make_it_fresh() {
    let t = listening_app().await;
    // A view over a view over servers: the base table is found through both.
    t.exec(
        "CREATE VIEW public.active AS SELECT * FROM servers WHERE status = 'Active';
         CREATE VIEW public.active_eu AS SELECT * FROM public.active WHERE region LIKE 'eu-%';
         GRANT SELECT ON public.active, public.active_eu TO anon;",
    )
    .await;
    let first = t.query(&anon(), json!({"table": "active_eu"})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let n = first.body["data"][0]["value"].as_i64().unwrap();
    let again = t.query(&anon(), json!({"table": "active_eu"})).await;
    assert_eq!(again.headers["x-cache"], "hit");
    t.exec("INSERT INTO servers (hostname, status, region) VALUES ('v', 'Active', 'eu-west-1')")
        .await;
    eventually("the base table's write seen through the view", async || {
        t.query(&anon(), json!({"table": "active_eu"})).await.body["data"][0]["value"] == n + 1
    })
    .await;
}

#[tokio::test]
async fn a_materialized_view_is_never_cached() {
    let t = listening_app().await;
    // REFRESH fires no trigger, so nothing would announce its changes.
    t.exec("CREATE MATERIALIZED VIEW public.snap AS SELECT * FROM servers; GRANT SELECT ON public.snap TO anon;")
        .await;
    t.query(&anon(), json!({"table": "snap"})).await;
    let again = t.query(&anon(), json!({"table": "snap"})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["cached"], false);
}

#[tokio::test]
async fn a_table_created_while_running_is_tracked_and_cached() {
    let t = listening_app().await;
    // No NOTIFY by hand: the event trigger asks for the reload itself.
    sqlx::raw_sql(
        "CREATE TABLE public.late (id int); INSERT INTO public.late VALUES (1), (2); GRANT SELECT ON public.late TO anon;",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = t.query(&anon(), json!({"table": "late"})).await;
        if reply.body["cached"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "never cached: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And its writes are heard.
    sqlx::query("INSERT INTO public.late VALUES (3)")
        .execute(&t.pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.query(&anon(), json!({"table": "late"})).await.body["data"] != json!([{"value": 3}]) {
        assert!(Instant::now() < deadline, "the insert was not heard");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `done` holds, for at most five seconds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn writes_are_announced_only_while_a_cached_result_depends_on_them() {
    let t = listening_app().await;
    let token = anon();
    let insert =
        "INSERT INTO servers (hostname, status, region) VALUES ('w', 'Ready', 'eu-west-1')";
    let invalidations = || t.app.cache.stats.invalidations.load(Relaxed);
    // Nothing cached yet: nobody watches servers, so a write says nothing.
    t.exec(insert).await;
    let start = invalidations();
    t.query(&token, json!({"table": "servers"})).await; // cached: now watched
    assert_eq!(t.app.cache.watched(), 1);
    t.exec(insert).await;
    eventually("the first write heard", async || {
        invalidations() == start + 1
    })
    .await;
    // Hearing it ended the watch: the next writes are silent ...
    eventually("the watch ended", async || t.app.cache.watched() == 0).await;
    t.exec(insert).await;
    t.exec(insert).await;
    // ... and the next fill sees them anyway, then watches again.
    let reply = t.query(&token, json!({"table": "servers"})).await;
    assert_eq!(reply.body["cached"], false);
    let count = reply.body["data"][0]["value"].as_i64().unwrap();
    assert_eq!(
        t.query(&token, json!({"table": "servers"})).await.body["cached"],
        true
    );
    t.exec(insert).await;
    // Notifications arrive in commit order, so had the two silent writes
    // been announced they would have been counted by now.
    eventually("the last write heard", async || invalidations() > start + 1).await;
    assert_eq!(
        invalidations(),
        start + 2,
        "only watched writes are announced"
    );
    let reply = t.query(&token, json!({"table": "servers"})).await;
    assert_eq!(reply.body["data"][0]["value"], count + 1);
}

#[tokio::test]
async fn a_write_in_flight_when_watching_starts_is_never_missed() {
    let t = listening_app().await;
    let token = anon();
    let count = async || {
        let reply = t.query(&token, json!({"table": "servers"})).await;
        (
            reply.body["data"][0]["value"].as_i64().unwrap(),
            reply.headers["x-cache"].clone(),
        )
    };
    // A writer whose statement ran while nobody watched (so it will not
    // announce itself) and that commits only after a fill read the table.
    let mut writer = t.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO servers (hostname, status, region) VALUES ('slow', 'Ready', 'eu-west-1')",
    )
    .execute(&mut *writer)
    .await
    .unwrap();
    let (before, how) = count().await;
    assert_eq!(how, "miss");
    // The fill could not wait the writer out, so it stored nothing.
    let (again, how) = count().await;
    assert_eq!((again, how.to_str().unwrap()), (before, "miss"));
    writer.commit().await.unwrap();
    let (after, _) = count().await;
    assert_eq!(after, before + 1, "the committed write is seen");
    let (cached, how) = count().await;
    assert_eq!((cached, how.to_str().unwrap()), (before + 1, "hit"));
}

/// The listener's session ends (here: terminated) and a new one begins.
/// Its entries were made under watches that ended with it, and a write
/// while nobody watched was not announced: none of them may be served.
#[tokio::test]
async fn entries_of_a_lost_listening_session_are_never_served_again() {
    let t = listening_app().await;
    let token = user(DEMO_USER);
    let first = t.query(&token, count_by_status()).await;
    assert_eq!(first.headers["x-cache"], "miss");
    assert_eq!(
        t.query(&token, count_by_status()).await.headers["x-cache"],
        "hit"
    );
    // The session holding the watch lock on servers is the listener's.
    assert!(
        terminate_watching_sessions(&t.pool).await,
        "the listener held a watch"
    );
    // Deaf for a second, then listening on a new session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.app.cache.is_listening() {
        assert!(Instant::now() < deadline, "the listener never noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while !t.app.cache.is_listening() {
        assert!(Instant::now() < deadline, "the listener never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        t.app.cache.watched(),
        0,
        "the watches ended with the session"
    );
    // Nobody watches servers now: this write is not announced.
    sqlx::query("UPDATE servers SET status = 'Offline' WHERE status = 'Active'")
        .execute(&t.pool)
        .await
        .unwrap();
    let after = t.query(&token, count_by_status()).await;
    assert_eq!(after.headers["x-cache"], "miss", "{}", after.body);
    let expected = t
        .sql_rows("SELECT status, count(*) AS value FROM servers GROUP BY status ORDER BY status")
        .await;
    let mut got = after.body["data"].as_array().unwrap().clone();
    got.sort_by_key(|r| r["status"].as_str().unwrap().to_owned());
    assert_eq!(Value::Array(got), expected);
}

async fn cache_rows(t: &TestApp) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM app.widget_data_cache")
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

async fn until_stored(t: &TestApp, rows: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache_rows(t).await.0 < rows {
        assert!(Instant::now() < deadline, "entries never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_purge_keeps_the_table_within_its_bound_least_recently_used_first() {
    let t = listening_app().await;
    let token = anon();
    // 40 distinct answers of about 60 KB each.
    let wide = |n: i64| json!({"table": "servers", "groupBy": ["hostname"], "filters": [{"column": "id", "op": "gt", "value": n}], "limit": 2000});
    for n in 0..40 {
        assert_eq!(t.query(&token, wide(n)).await.status, StatusCode::OK);
    }
    until_stored(&t, 40).await;
    let (_, bytes) = cache_rows(&t).await;
    assert!(bytes > 2_000_000, "{bytes}");
    // The first one is used again (from the table, as another instance
    // would), so it is the most recently used.
    sqlx::query("UPDATE app.widget_data_cache SET last_used_at = now() - interval '1 hour'")
        .execute(&t.pool)
        .await
        .unwrap();
    let (first_key,): (String,) =
        sqlx::query_as("SELECT cache_key FROM app.widget_data_cache ORDER BY cached_at LIMIT 1")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    sqlx::query("UPDATE app.widget_data_cache SET last_used_at = now() WHERE cache_key = $1")
        .bind(&first_key)
        .execute(&t.pool)
        .await
        .unwrap();
    let max_bytes = 1 << 20;
    let purged = t.app.cache.purge(max_bytes).await.unwrap();
    assert!(purged > 0);
    let (rows, bytes) = cache_rows(&t).await;
    assert!(bytes <= max_bytes, "{bytes} > {max_bytes}");
    assert!(rows > 0, "the bound keeps what fits");
    let kept: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM app.widget_data_cache WHERE cache_key = $1)",
    )
    .bind(&first_key)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(kept, "the most recently used row stays");
}

#[tokio::test]
async fn rows_a_change_made_unreachable_are_purged_before_they_expire() {
    let t = listening_app().await;
    let token = anon();
    let reply = t.query(&token, count_by_status()).await;
    assert_eq!(reply.headers["x-cache"], "miss");
    t.query(&token, json!({"table": "servers", "groupBy": "region"}))
        .await;
    until_stored(&t, 2).await;
    let invalidations = || {
        t.app
            .cache
            .stats
            .invalidations
            .load(std::sync::atomic::Ordering::Acquire)
    };
    let before = invalidations();
    sqlx::query("UPDATE servers SET status = 'Ready' WHERE id = 1")
        .execute(&t.pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while invalidations() == before {
        assert!(Instant::now() < deadline, "the write was never heard");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(t.app.cache.purge(i64::MAX).await.unwrap(), 2);
    assert_eq!(cache_rows(&t).await.0, 0);
    // A row of the current versions stays.
    t.query(&token, count_by_status()).await;
    until_stored(&t, 1).await;
    assert_eq!(t.app.cache.purge(i64::MAX).await.unwrap(), 0);
    assert_eq!(cache_rows(&t).await.0, 1);
}

#[tokio::test]
async fn no_lifetime_passes_cache_max_ttl_secs() {
    let t = test_app_with(&[("CACHE_MAX_TTL_SECS", "3600")]).await;
    t.listen().await;
    let token = user(DEMO_USER);
    let dashboard: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.dashboards WHERE owner_id = $1::uuid")
            .bind(DEMO_USER)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    // Refused on save, naming the field and the limit.
    let saved = t
        .request(
            Method::POST,
            "/rest/v1/dashboard_widgets",
            Some(&token),
            Some(json!({"dashboard_id": dashboard, "widget_type": "metric",
                "data_source": {"table": "servers"}, "refresh_interval": 2147483647})),
        )
        .await;
    assert_eq!(saved.status, StatusCode::BAD_REQUEST, "{}", saved.body);
    assert_eq!(saved.body["details"]["field"], "refresh_interval");
    assert!(saved.body["message"].as_str().unwrap().contains("3600"));
    // One saved before the limit (or behind the service's back) is capped.
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO app.dashboard_widgets (dashboard_id, owner_id, widget_type, data_source, refresh_interval)
         VALUES ($1, $2::uuid, 'metric', '{\"table\": \"servers\"}', 2147483647) RETURNING id",
    )
    .bind(dashboard)
    .bind(DEMO_USER)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let reply = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({ "widget_id": id })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let lifetime = chrono::DateTime::parse_from_rfc3339(reply.body["expires_at"].as_str().unwrap())
        .unwrap()
        - chrono::DateTime::parse_from_rfc3339(reply.body["cached_at"].as_str().unwrap()).unwrap();
    assert_eq!(lifetime.num_seconds(), 3600);
}

/// `CACHE_MEMORY_MB` bounds everything an entry holds: its rows and the
/// hit body rendered from them, counted from the moment it is stored.
#[tokio::test]
async fn the_memory_level_counts_the_rows_and_the_hit_body() {
    let t = listening_app().await;
    let token = anon();
    let config = json!({"table": "servers", "groupBy": ["hostname"], "limit": 5000});
    let miss = t.query(&token, config.clone()).await;
    assert_eq!(miss.headers["x-cache"], "miss");
    let counted_at_store = t.app.cache.snapshot().bytes;
    let hit = t.query(&token, config).await;
    assert_eq!(hit.headers["x-cache"], "hit");
    let rows = hit.body["data"].to_string().len();
    let hit_body = hit.body.to_string().len();
    assert!(rows > 100_000, "{rows}");
    let counted = t.app.cache.snapshot().bytes;
    assert_eq!(counted, counted_at_store, "nothing grows behind the count");
    assert!(
        counted >= rows + hit_body,
        "counted {counted} < rows {rows} + hit body {hit_body}"
    );
}

/// A replica is sent only flushed WAL. The position stored with freshly
/// read versions must be flushed by the time they are used, or replicas
/// are refused for lag until the WAL writer gets round to it (up to
/// `wal_writer_delay`, 200 ms by default).
#[tokio::test]
async fn the_wal_position_kept_with_the_versions_is_flushed_when_they_are_read() {
    let t = listening_app().await;
    let source: widget_data::plan::DataSource =
        serde_json::from_value(json!({"table": "servers"})).unwrap();
    let plan = widget_data::plan::plan(&source, &[], &t.app.schema(), &t.app.limits).unwrap();
    for round in 0..5 {
        // A write whose commit does not wait for its WAL to be flushed.
        let mut tx = t.pool.begin().await.unwrap();
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO servers (hostname, status, region) VALUES ('async', 'Ready', 'eu-west-1')",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        until("the write is heard", || async {
            !matches!(
                t.app.cache.key(&plan, 300, &anon_principal(&t)),
                KeyState::Ready(_)
            )
        })
        .await;
        assert!(
            t.app
                .cache
                .settle(&plan, Deadline::after(Duration::from_secs(10)))
                .await
        );
        let lsn = u64::from(
            t.app
                .cache
                .replayed_by(&plan)
                .expect("versions were just read"),
        );
        let (flushed, at): (bool, String) = sqlx::query_as(
            "SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn, pg_current_wal_flush_lsn()::text",
        )
        .bind(format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF))
        .fetch_one(&t.pool)
        .await
        .unwrap();
        assert!(
            flushed,
            "round {round}: the versions' position {:X}/{:X} is past the flushed WAL ({at})",
            lsn >> 32,
            lsn & 0xFFFF_FFFF
        );
    }
}

fn anon_principal(t: &TestApp) -> Principal {
    t.app.jwt.verify(&anon()).unwrap()
}
