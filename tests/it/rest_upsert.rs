//! Upserts through `/rest/v1`: `Prefer: resolution=merge-duplicates` or
//! `ignore-duplicates` with `on_conflict=`, as supabase-js `upsert` sends
//! them, checked row by row with hand-written SQL; row-level security and
//! quotas still decide.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

const MERGE: (&str, &str) = ("prefer", "resolution=merge-duplicates");
const IGNORE: (&str, &str) = ("prefer", "resolution=ignore-duplicates");
const REPRESENTATION: (&str, &str) = ("prefer", "return=representation");
const PREFERENCES: &str = "/rest/v1/user_filter_preferences";
const PREFERENCE_KEY: &str = "on_conflict=user_id,dashboard_id,filter_key";

async fn demo_dashboard(t: &TestApp) -> String {
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.dashboards WHERE owner_id = $1::uuid LIMIT 1")
            .bind(DEMO_USER)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    id.to_string()
}

/// Every preference row, as the superuser sees it, in a stable order.
async fn preferences(t: &TestApp) -> Value {
    t.sql_rows(
        "SELECT id::text, user_id::text, dashboard_id::text, filter_key, value \
         FROM app.user_filter_preferences ORDER BY user_id, filter_key",
    )
    .await
}

async fn upsert(
    t: &TestApp,
    token: &str,
    query: &str,
    body: Value,
    prefer: &[(&str, &str)],
) -> Reply {
    t.request_with(
        Method::POST,
        &format!("{PREFERENCES}?{query}"),
        Some(token),
        Some(body),
        prefer,
    )
    .await
}

#[tokio::test]
async fn a_preference_merged_twice_is_one_row_with_the_second_value() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let first = upsert(
        &t,
        &token,
        PREFERENCE_KEY,
        json!({"dashboard_id": board, "filter_key": "region", "value": "eu"}),
        &[MERGE, REPRESENTATION],
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let rows = preferences(&t).await;
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let id = rows[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(first.body[0]["id"], id.as_str());
    assert_eq!(first.body[0]["value"], "eu");

    let second = upsert(
        &t,
        &token,
        PREFERENCE_KEY,
        json!({"dashboard_id": board, "filter_key": "region", "value": "us"}),
        &[MERGE, REPRESENTATION],
    )
    .await;
    // PostgREST: nothing inserted, only merged, is a 200.
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body.as_array().unwrap().len(), 1, "{}", second.body);
    assert_eq!(second.body[0]["value"], "us");
    assert_eq!(second.body[0]["id"], id.as_str(), "the same row, updated");
    assert_eq!(
        preferences(&t).await,
        json!([{"id": id, "user_id": DEMO_USER, "dashboard_id": board,
                "filter_key": "region", "value": "us"}])
    );

    // Minimal (no representation): an empty 200 when only merged.
    let minimal = upsert(
        &t,
        &token,
        PREFERENCE_KEY,
        json!({"dashboard_id": board, "filter_key": "region", "value": "apac"}),
        &[MERGE],
    )
    .await;
    assert_eq!(minimal.status, StatusCode::OK, "{}", minimal.body);
    assert_eq!(minimal.body, json!([]));
    assert_eq!(preferences(&t).await[0]["value"], "apac");
}

#[tokio::test]
async fn ignore_duplicates_keeps_the_existing_row_and_returns_only_new_ones() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let seed = upsert(
        &t,
        &token,
        PREFERENCE_KEY,
        json!({"dashboard_id": board, "filter_key": "region", "value": "eu"}),
        &[MERGE],
    )
    .await;
    assert_eq!(seed.status, StatusCode::CREATED, "{}", seed.body);

    // An array, with the `columns=` supabase-js adds to bulk writes.
    let reply = upsert(
        &t,
        &token,
        &format!(r#"{PREFERENCE_KEY}&columns=%22dashboard_id%22,%22filter_key%22,%22value%22"#),
        json!([
            {"dashboard_id": board, "filter_key": "region", "value": "ignored"},
            {"dashboard_id": board, "filter_key": "status", "value": ["Online"]},
        ]),
        &[IGNORE, REPRESENTATION],
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let returned = reply.body.as_array().unwrap();
    assert_eq!(returned.len(), 1, "only the inserted row: {}", reply.body);
    assert_eq!(returned[0]["filter_key"], "status");
    assert_eq!(returned[0]["value"], json!(["Online"]));

    let rows = t
        .sql_rows("SELECT filter_key, value FROM app.user_filter_preferences ORDER BY filter_key")
        .await;
    assert_eq!(
        rows,
        json!([{"filter_key": "region", "value": "eu"},
               {"filter_key": "status", "value": ["Online"]}])
    );
}

#[tokio::test]
async fn an_array_merge_updates_the_existing_and_inserts_the_new() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    upsert(
        &t,
        &token,
        PREFERENCE_KEY,
        json!({"dashboard_id": board, "filter_key": "region", "value": "eu"}),
        &[MERGE],
    )
    .await;
    let reply = upsert(
        &t,
        &token,
        &format!(r#"{PREFERENCE_KEY}&columns=%22dashboard_id%22,%22filter_key%22,%22value%22&select=filter_key,value"#),
        json!([
            {"dashboard_id": board, "filter_key": "region", "value": "us"},
            {"dashboard_id": board, "filter_key": "range", "value": {"days": 7}},
        ]),
        &[MERGE, REPRESENTATION],
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        sorted(&reply.body, "filter_key"),
        vec![
            json!({"filter_key": "range", "value": {"days": 7}}),
            json!({"filter_key": "region", "value": "us"}),
        ],
        "the rows as written, with the columns selected"
    );
    assert_eq!(
        t.sql_rows(
            "SELECT user_id::text, filter_key, value FROM app.user_filter_preferences ORDER BY filter_key"
        )
        .await,
        json!([
            {"user_id": DEMO_USER, "filter_key": "range", "value": {"days": 7}},
            {"user_id": DEMO_USER, "filter_key": "region", "value": "us"},
        ])
    );
}

#[tokio::test]
async fn on_conflict_must_name_a_unique_constraint() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let body = json!({"dashboard_id": board, "filter_key": "region", "value": "eu"});
    for query in [
        "on_conflict=filter_key",
        "on_conflict=dashboard_id,filter_key",
        "on_conflict=nope",
    ] {
        let reply = upsert(&t, &token, query, body.clone(), &[MERGE]).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["details"]["field"], "query.on_conflict",
            "{query}: {}",
            reply.body
        );
        assert!(
            reply.body["message"]
                .as_str()
                .unwrap()
                .contains("on_conflict"),
            "{query}: {}",
            reply.body
        );
    }
    assert_eq!(preferences(&t).await, json!([]), "nothing was written");

    // The columns in another order name the same constraint; the primary
    // key is used when on_conflict is left out.
    let reordered = upsert(
        &t,
        &token,
        "on_conflict=filter_key,user_id,dashboard_id",
        body.clone(),
        &[MERGE, REPRESENTATION],
    )
    .await;
    assert_eq!(reordered.status, StatusCode::CREATED, "{}", reordered.body);
    let id = reordered.body[0]["id"].as_str().unwrap().to_owned();
    let by_pk = upsert(
        &t,
        &token,
        "",
        json!({"id": id, "dashboard_id": board, "filter_key": "region", "value": "by id"}),
        &[MERGE, REPRESENTATION],
    )
    .await;
    assert_eq!(by_pk.status, StatusCode::OK, "{}", by_pk.body);
    assert_eq!(
        t.sql_rows("SELECT id::text, value FROM app.user_filter_preferences")
            .await,
        json!([{"id": id, "value": "by id"}])
    );
}

#[tokio::test]
async fn a_global_default_for_every_dashboard_upserted_twice_stays_one_row() {
    let t = test_app().await;
    let token = service();
    for value in ["24h", "7d"] {
        let reply = t
            .request_with(
                Method::POST,
                "/rest/v1/global_filter_defaults?on_conflict=dashboard_id,filter_key",
                Some(&token),
                Some(json!({"dashboard_id": null, "filter_key": "time_range", "value": value})),
                &[MERGE, REPRESENTATION],
            )
            .await;
        assert!(reply.status.is_success(), "{value}: {}", reply.body);
        assert_eq!(reply.body[0]["value"], value);
    }
    assert_eq!(
        t.sql_rows(
            "SELECT dashboard_id, filter_key, value FROM app.global_filter_defaults \
             WHERE filter_key = 'time_range'"
        )
        .await,
        json!([{"dashboard_id": null, "filter_key": "time_range", "value": "7d"}])
    );
    // The constraint itself holds for hand-written SQL too.
    let duplicate = sqlx::query(
        "INSERT INTO app.global_filter_defaults (dashboard_id, filter_key, value) \
         VALUES (NULL, 'time_range', '\"1h\"')",
    )
    .execute(&t.pool)
    .await;
    assert!(duplicate.is_err(), "the NULL dashboard is one key");
}

#[tokio::test]
async fn another_users_upsert_onto_the_demo_users_preference_changes_nothing() {
    let t = test_app().await;
    let board = demo_dashboard(&t).await;
    let created = upsert(
        &t,
        &user(DEMO_USER),
        PREFERENCE_KEY,
        json!({"dashboard_id": board, "filter_key": "region", "value": "eu"}),
        &[MERGE, REPRESENTATION],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body[0]["id"].as_str().unwrap().to_owned();
    let before = preferences(&t).await;
    let other = user(OTHER_USER);
    // The other user's own dashboard (preferences must sit on one's own).
    let own_board: String = sqlx::query_scalar(
        "INSERT INTO app.dashboards (owner_id, name) VALUES ($1::uuid, 'Mine') RETURNING id::text",
    )
    .bind(OTHER_USER)
    .fetch_one(&t.pool)
    .await
    .unwrap();

    // The demo user's key, named as theirs: the INSERT policy refuses the row.
    let onto_key = upsert(
        &t,
        &other,
        PREFERENCE_KEY,
        json!({"user_id": DEMO_USER, "dashboard_id": board, "filter_key": "region", "value": "hacked"}),
        &[MERGE, REPRESENTATION],
    )
    .await;
    // Their row by its id, sent as a row the other user may insert: the
    // row it would update is hidden from them by the UPDATE policy.
    let onto_id = upsert(
        &t,
        &other,
        "on_conflict=id",
        json!({"id": id, "user_id": OTHER_USER, "dashboard_id": own_board, "filter_key": "region", "value": "hacked"}),
        &[MERGE, REPRESENTATION],
    )
    .await;
    for (what, reply) in [("onto the key", &onto_key), ("onto the id", &onto_id)] {
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            reply.body
        );
        assert_eq!(reply.body["code"], "permission_denied", "{what}");
        assert!(
            reply.body["message"]
                .as_str()
                .unwrap()
                .contains("row-level security"),
            "{what}: {}",
            reply.body
        );
    }
    assert_eq!(preferences(&t).await, before, "nothing changed");

    // Ignoring duplicates onto their id inserts nothing and changes nothing.
    let ignored = upsert(
        &t,
        &other,
        "on_conflict=id",
        json!({"id": id, "user_id": OTHER_USER, "dashboard_id": own_board, "filter_key": "region", "value": "hacked"}),
        &[IGNORE, REPRESENTATION],
    )
    .await;
    assert_eq!(ignored.status, StatusCode::CREATED, "{}", ignored.body);
    assert_eq!(ignored.body, json!([]));
    assert_eq!(preferences(&t).await, before, "nothing changed");
}

#[tokio::test]
async fn an_upsert_counts_against_the_quota_only_for_the_rows_it_inserts() {
    let t = test_app_with(&[("QUOTA_FILTER_PREFERENCES", "2")]).await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let both = upsert(
        &t,
        &token,
        PREFERENCE_KEY,
        json!([{"dashboard_id": board, "filter_key": "a", "value": 1},
               {"dashboard_id": board, "filter_key": "b", "value": 2}]),
        &[MERGE],
    )
    .await;
    assert_eq!(both.status, StatusCode::CREATED, "{}", both.body);
    // At the quota, merging into an existing row still works...
    let merged = upsert(
        &t,
        &token,
        PREFERENCE_KEY,
        json!({"dashboard_id": board, "filter_key": "a", "value": 10}),
        &[MERGE],
    )
    .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    // ...and a new row, with a merge beside it, is refused whole.
    let over = upsert(
        &t,
        &token,
        PREFERENCE_KEY,
        json!([{"dashboard_id": board, "filter_key": "b", "value": 20},
               {"dashboard_id": board, "filter_key": "c", "value": 3}]),
        &[MERGE],
    )
    .await;
    assert_eq!(over.status, StatusCode::FORBIDDEN, "{}", over.body);
    assert_eq!(over.body["code"], "quota_exceeded");
    assert_eq!(
        t.sql_rows("SELECT filter_key, value FROM app.user_filter_preferences ORDER BY filter_key")
            .await,
        json!([{"filter_key": "a", "value": 10}, {"filter_key": "b", "value": 2}])
    );
}

#[tokio::test]
async fn migration_0014_keeps_the_newest_of_duplicate_global_defaults() {
    let (pool, _) = fresh_db().await;
    // A database from before 0014: no constraint, duplicates of a key for
    // a dashboard and for no dashboard.
    sqlx::raw_sql(
        "ALTER TABLE app.global_filter_defaults DROP CONSTRAINT global_filter_defaults_one_per_key;
         DELETE FROM app.global_filter_defaults;
         INSERT INTO app.global_filter_defaults (id, dashboard_id, filter_key, value, created_at) VALUES
           ('00000000-0000-4000-8000-000000000001', NULL, 'region', '\"old\"', '2024-01-01'),
           ('00000000-0000-4000-8000-000000000002', NULL, 'region', '\"new\"', '2024-02-01'),
           ('00000000-0000-4000-8000-000000000003', NULL, 'region', '\"older\"', '2023-01-01'),
           ('00000000-0000-4000-8000-000000000004', NULL, 'status', '\"tie-a\"', '2024-01-01'),
           ('00000000-0000-4000-8000-000000000005', NULL, 'status', '\"tie-b\"', '2024-01-01'),
           ('00000000-0000-4000-8000-000000000006',
            (SELECT id FROM app.dashboards LIMIT 1), 'region', '\"board\"', '2020-01-01');",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(include_str!("../../migrations/0014_upsert_keys.sql"))
        .execute(&pool)
        .await
        .expect("0014 applies over duplicates");
    let kept: Vec<(String, String)> =
        sqlx::query_as("SELECT id::text, value::text FROM app.global_filter_defaults ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        kept,
        [
            (
                "00000000-0000-4000-8000-000000000002".into(),
                "\"new\"".into()
            ),
            // Equal created_at: the greatest id.
            (
                "00000000-0000-4000-8000-000000000005".into(),
                "\"tie-b\"".into()
            ),
            // Another dashboard's key is another key.
            (
                "00000000-0000-4000-8000-000000000006".into(),
                "\"board\"".into()
            ),
        ]
    );
    pool.close().await;
}

#[tokio::test]
async fn a_unique_index_made_later_is_a_key_and_a_deferrable_constraint_is_not() {
    let t = test_app().await;
    t.exec(
        "CREATE UNIQUE INDEX data_sources_one_name ON app.widget_data_sources (owner_id, name);
         ALTER TABLE app.dashboards ADD CONSTRAINT dashboards_one_name
           UNIQUE (owner_id, name) DEFERRABLE INITIALLY DEFERRED;",
    )
    .await;
    let token = user(DEMO_USER);
    let source =
        json!({"name": "Offline", "data_source": {"table": "servers", "aggregation": "count"}});
    for _ in 0..2 {
        let reply = t
            .request_with(
                Method::POST,
                "/rest/v1/widget_data_sources?on_conflict=owner_id,name",
                Some(&token),
                Some(source.clone()),
                &[MERGE],
            )
            .await;
        assert!(reply.status.is_success(), "{}", reply.body);
    }
    assert_eq!(
        t.sql_rows("SELECT name FROM app.widget_data_sources WHERE name = 'Offline'")
            .await,
        json!([{"name": "Offline"}])
    );

    // PostgreSQL takes no deferrable constraint as an arbiter: a 400, not
    // a 500 from the database.
    let deferred = t
        .request_with(
            Method::POST,
            "/rest/v1/dashboards?on_conflict=owner_id,name",
            Some(&token),
            Some(json!({"name": "Ops"})),
            &[MERGE],
        )
        .await;
    assert_eq!(
        deferred.status,
        StatusCode::BAD_REQUEST,
        "{}",
        deferred.body
    );
    assert_eq!(deferred.body["details"]["field"], "query.on_conflict");
}
