//! Cache warming (seed 001): after a write, the entries read lately are
//! computed again in the background, under their own caller, so the next
//! read is a hit; one instance warms a given entry; entries nobody read
//! lately are left alone.

use crate::harness::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use widget_data::app::App;

fn warmed(t: &TestApp) -> u64 {
    t.app.cache.stats.warmed.load(Relaxed)
}

fn executions(t: &TestApp) -> u64 {
    t.app.cache.stats.executions.load(Relaxed)
}

async fn warming_app(extra: &[(&str, &str)]) -> TestApp {
    let t = test_app_with(extra).await;
    t.exec(NOTES).await;
    t.app.reload_schema().await.unwrap();
    t.listen().await;
    t.app.spawn_warming().expect("warming is on by default");
    t
}

#[tokio::test]
async fn after_a_write_each_users_entry_is_warmed_under_their_own_rows() {
    let t = warming_app(&[]).await;
    let count = json!({"table": "notes"});
    let (one, two) = (user(DEMO_USER), user(OTHER_USER));
    for (token, rows) in [(&one, 3), (&two, 7)] {
        let first = t.query(token, count.clone()).await;
        assert_eq!(first.headers["x-cache"], "miss", "{}", first.body);
        assert_eq!(first.body["data"], json!([{"value": rows}]));
        assert_eq!(
            t.query(token, count.clone()).await.headers["x-cache"],
            "hit"
        );
    }
    t.exec("INSERT INTO public.notes (owner, body) VALUES ('5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d', 'new')")
        .await;
    until("both entries are warmed", || async { warmed(&t) == 2 }).await;
    let before = executions(&t);
    for (token, rows) in [(&one, 4), (&two, 7)] {
        let next = t.query(token, count.clone()).await;
        assert_eq!(next.headers["x-cache"], "hit", "{}", next.body);
        assert_eq!(
            next.body["data"],
            json!([{"value": rows}]),
            "their own rows"
        );
    }
    assert_eq!(executions(&t), before, "no query ran for the reads");
    let stats = t.app.cache.snapshot();
    assert_eq!(stats.warming.warmed, 2);
    assert_eq!(stats.warming.failures, 0);
}

#[tokio::test]
async fn only_one_of_two_instances_warms_an_entry_both_read() {
    let a = warming_app(&[]).await;
    let url = a.app.config.database_url.clone().unwrap();
    let pool = widget_data::db::connect(&url, 4).await.unwrap();
    let app = App::new(config(&url, &[]), pool.clone()).await.unwrap();
    let b = TestApp {
        router: widget_data::http::router(Arc::clone(&app)),
        app,
        pool,
    };
    b.listen().await;
    b.app.spawn_warming().unwrap();
    let token = anon();
    let query = json!({"table": "servers", "groupBy": "status"});
    for t in [&a, &b] {
        t.query(&token, query.clone()).await;
        assert_eq!(
            t.query(&token, query.clone()).await.headers["x-cache"],
            "hit"
        );
    }
    let before = executions(&a) + executions(&b);
    sqlx::query("UPDATE servers SET status = 'Offline' WHERE id = 1")
        .execute(&a.pool)
        .await
        .unwrap();
    until("one instance warmed it", || async {
        warmed(&a) + warmed(&b) == 1
    })
    .await;
    // The other found it claimed, or already there: it runs no query.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(warmed(&a) + warmed(&b), 1);
    assert_eq!(
        executions(&a) + executions(&b),
        before + 1,
        "one query in all"
    );
    let truth = a
        .sql_rows("SELECT status, count(*) AS value FROM servers GROUP BY status")
        .await;
    for t in [&a, &b] {
        let next = t.query(&token, query.clone()).await;
        assert_eq!(next.headers["x-cache"], "hit", "{}", next.body);
        assert_eq!(
            sorted(&next.body["data"], "status"),
            sorted(&truth, "status")
        );
    }
    assert_eq!(executions(&a) + executions(&b), before + 1);
}

#[tokio::test]
async fn entries_not_read_within_the_window_are_not_warmed() {
    let t = warming_app(&[("CACHE_WARM_WINDOW_SECS", "1")]).await;
    let token = anon();
    let query = json!({"table": "servers", "groupBy": "region"});
    assert_eq!(
        t.query(&token, query.clone()).await.headers["x-cache"],
        "miss"
    );
    assert_eq!(t.app.cache.snapshot().warming.tracked, 1);
    // Read more than a window ago.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = executions(&t);
    sqlx::query("UPDATE servers SET status = 'Offline' WHERE id = 1")
        .execute(&t.pool)
        .await
        .unwrap();
    until("the change is handed to warming", || async {
        t.app.cache.snapshot().warming.tracked == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((warmed(&t), executions(&t)), (0, before));
    assert_eq!(t.query(&token, query).await.headers["x-cache"], "miss");
}
