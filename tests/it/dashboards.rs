//! `/rest/v1` for the dashboard tables, the action form, the filter layers
//! of saved widgets and the cache kept in step with them.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

/// A user who owns none of the seeded rows (not the harness's `OTHER_USER`).
const STRANGER: &str = "7a0c0c39-4d5e-4f60-8a71-b2c3d4e5f607";
const REPRESENTATION: (&str, &str) = ("prefer", "return=representation");

async fn demo_dashboard(t: &TestApp) -> String {
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.dashboards WHERE owner_id = $1::uuid LIMIT 1")
            .bind(DEMO_USER)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    id.to_string()
}

async fn count(t: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

async fn create_widget(t: &TestApp, token: &str, widget: Value) -> Reply {
    t.request_with(
        Method::POST,
        "/rest/v1/dashboard_widgets?select=*",
        Some(token),
        Some(json!([widget])),
        &[REPRESENTATION],
    )
    .await
}

#[tokio::test]
async fn a_user_creates_lists_updates_and_deletes_their_widgets() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let created = create_widget(
        &t,
        &token,
        json!({"dashboard_id": board, "title": "Offline", "widget_type": "metric",
               "data_source": {"table": "servers", "aggregation": "count",
                               "filters": [{"column": "status", "op": "eq", "value": "Offline"}]}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body[0]["owner_id"], DEMO_USER,
        "owner_id defaults to auth.uid()"
    );

    let listed = t
        .request_with(
            Method::GET,
            &format!("/rest/v1/dashboard_widgets?select=id,title&dashboard_id=eq.{board}&order=created_at.desc&limit=2"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body[0], json!({"id": id, "title": "Offline"}));
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    assert_eq!(listed.headers["content-range"], "0-1/*");

    // PATCH: minimal by default, the row when asked for.
    let path = format!("/rest/v1/dashboard_widgets?id=eq.{id}");
    let patched = t
        .request(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"title": "Down"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT, "{}", patched.body);
    let one = t
        .request_with(
            Method::GET,
            &path,
            Some(&token),
            None,
            &[("accept", "application/vnd.pgrst.object+json")],
        )
        .await;
    assert_eq!(one.body["title"], "Down", "{}", one.body);

    // Refused without a filter, whatever the body.
    let everything = t
        .request(
            Method::DELETE,
            "/rest/v1/dashboard_widgets",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(everything.status, StatusCode::BAD_REQUEST);
    let deleted = t
        .request_with(Method::DELETE, &path, Some(&token), None, &[REPRESENTATION])
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body[0]["id"], id.as_str());
    let gone = t.request(Method::GET, &path, Some(&token), None).await;
    assert_eq!(gone.body, json!([]));
}

#[tokio::test]
async fn users_see_and_change_only_their_own_rows() {
    let t = test_app().await;
    let board = demo_dashboard(&t).await;
    let other = user(STRANGER);
    let list = format!("/rest/v1/dashboard_widgets?dashboard_id=eq.{board}");
    assert_eq!(
        t.request(Method::GET, &list, Some(&user(DEMO_USER)), None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        t.request(Method::GET, &list, Some(&other), None).await.body,
        json!([])
    );
    assert_eq!(
        t.request(Method::GET, "/rest/v1/dashboards", Some(&other), None)
            .await
            .body,
        json!([])
    );
    // Changing them touches nothing.
    let patched = t
        .request_with(
            Method::PATCH,
            &list,
            Some(&other),
            Some(json!({"title": "mine"})),
            &[REPRESENTATION],
        )
        .await;
    assert_eq!((patched.status, patched.body), (StatusCode::OK, json!([])));
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM app.dashboard_widgets WHERE title = 'mine'"
        )
        .await,
        0
    );
    // Nor may a widget be put on someone else's dashboard.
    let planted = create_widget(
        &t,
        &other,
        json!({"dashboard_id": board, "widget_type": "metric", "data_source": {"table": "servers"}}),
    )
    .await;
    assert_eq!(planted.status, StatusCode::FORBIDDEN, "{}", planted.body);
    // anon sees nothing at all.
    let anon = t
        .request(Method::GET, "/rest/v1/dashboards", Some(&anon()), None)
        .await;
    assert_eq!(anon.status, StatusCode::FORBIDDEN);
    // Global defaults: read by every user, written by service_role only.
    let default = json!({"filter_key": "status", "value": "Active"});
    let by_user = t
        .request(
            Method::POST,
            "/rest/v1/global_filter_defaults",
            Some(&other),
            Some(default.clone()),
        )
        .await;
    assert_eq!(by_user.status, StatusCode::FORBIDDEN, "{}", by_user.body);
    let by_service = t
        .request(
            Method::POST,
            "/rest/v1/global_filter_defaults",
            Some(&service()),
            Some(default),
        )
        .await;
    assert_eq!(
        by_service.status,
        StatusCode::CREATED,
        "{}",
        by_service.body
    );
    let read = t
        .request(
            Method::GET,
            "/rest/v1/global_filter_defaults?select=filter_key,value",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(
        read.body,
        json!([{"filter_key": "status", "value": "Active"}])
    );
    // Unknown tables are not served.
    let unknown = t
        .request(
            Method::GET,
            "/rest/v1/widget_data_cache",
            Some(&service()),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_widget_that_would_not_compile_is_refused_and_nothing_is_saved() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let before = count(&t, "SELECT count(*) FROM app.dashboard_widgets").await;
    let cases = [
        (json!({"table": "nope"}), json!([]), "data_source.table"),
        (
            json!({"table": "servers", "column": "nope", "aggregation": "sum"}),
            json!([]),
            "data_source.column",
        ),
        (
            json!({"table": "servers"}),
            json!([{"column": "status", "op": "near", "value": 1}]),
            "filters[0].op",
        ),
        (
            json!({"table": "servers"}),
            json!([{"column": "cpu_pct", "op": "gt", "value": "high"}]),
            "filters[0].value",
        ),
    ];
    for (source, filters, field) in cases {
        let reply = create_widget(
            &t,
            &token,
            json!({"dashboard_id": board, "widget_type": "chart", "data_source": source, "filters": filters}),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{source} {filters}: {}",
            reply.body
        );
        assert_eq!(reply.body["details"]["field"], field, "{}", reply.body);
    }
    let none = create_widget(
        &t,
        &token,
        json!({"dashboard_id": board, "widget_type": "chart"}),
    )
    .await;
    assert_eq!(none.body["details"]["field"], "data_source");
    assert_eq!(
        count(&t, "SELECT count(*) FROM app.dashboard_widgets").await,
        before
    );

    // An update is checked the same way and leaves the row as it was.
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.dashboard_widgets WHERE title = 'Servers'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    let reply = t
        .request(
            Method::PATCH,
            &format!("/rest/v1/dashboard_widgets?id=eq.{id}"),
            Some(&token),
            Some(json!({"data_source": {"table": "servers", "groupBy": "nope"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["details"]["field"], "data_source.groupBy");
    let kept: Value =
        sqlx::query_scalar("SELECT data_source::json FROM app.dashboard_widgets WHERE id = $1")
            .bind(id)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(kept, json!({"table": "servers", "aggregation": "count"}));

    // A widget may name a saved data source instead, which is checked too.
    let bad_source = t
        .request(
            Method::POST,
            "/rest/v1/widget_data_sources",
            Some(&token),
            Some(json!({"name": "x", "data_source": {"table": "nope"}})),
        )
        .await;
    assert_eq!(bad_source.body["details"]["field"], "data_source.table");
    let source = t
        .request_with(
            Method::POST,
            "/rest/v1/widget_data_sources",
            Some(&token),
            Some(json!({"name": "by region", "data_source": {"table": "servers", "groupBy": "region"}})),
            &[REPRESENTATION],
        )
        .await;
    assert_eq!(source.status, StatusCode::CREATED, "{}", source.body);
    let named = create_widget(
        &t,
        &token,
        json!({"dashboard_id": board, "widget_type": "chart", "data_source_id": source.body[0]["id"]}),
    )
    .await;
    assert_eq!(named.status, StatusCode::CREATED, "{}", named.body);
    let data = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"widget_id": named.body[0]["id"]})),
        )
        .await;
    let want = t
        .sql_rows("SELECT region, count(*) AS value FROM servers GROUP BY region ORDER BY region")
        .await;
    assert_eq!(data.body["data"], want);
}

/// The count a saved `servers` count widget answers.
async fn widget_count(t: &TestApp, token: &str, id: &str, filters: Value) -> (i64, String) {
    let reply = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(token),
            Some(json!({"widget_id": id, "filters": filters})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (
        reply.body["data"][0]["value"].as_i64().unwrap(),
        reply.headers["x-cache"].to_str().unwrap().into(),
    )
}

#[tokio::test]
async fn dashboard_filters_merge_defaults_then_preferences_then_the_request() {
    let t = test_app().await;
    t.listen().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let created = create_widget(
        &t,
        &token,
        json!({"dashboard_id": board, "widget_type": "metric", "data_source": {"table": "servers", "aggregation": "count"},
               "filters": [{"column": "region", "op": "like", "value": "eu-%"}]}),
    )
    .await;
    let id = created.body[0]["id"].as_str().unwrap().to_owned();
    let by = |status: &str| {
        format!("SELECT count(*) FROM servers WHERE region LIKE 'eu-%' AND status IN ({status})")
    };
    let (all, _) = widget_count(&t, &token, &id, json!([])).await;
    assert_eq!(
        all,
        count(&t, "SELECT count(*) FROM servers WHERE region LIKE 'eu-%'").await
    );

    // A global default narrows it ...
    t.request(
        Method::POST,
        "/rest/v1/global_filter_defaults",
        Some(&service()),
        Some(json!({"filter_key": "status", "value": "Active"})),
    )
    .await;
    let (n, how) = widget_count(&t, &token, &id, json!([])).await;
    assert_eq!(
        (n, how.as_str()),
        (count(&t, &by("'Active'")).await, "miss")
    );
    // ... the user's preference on the same column replaces it ...
    let pref = t
        .request_with(
            Method::POST,
            "/rest/v1/user_filter_preferences",
            Some(&token),
            Some(json!({"dashboard_id": board, "filter_key": "status", "value": ["Ready", "Maintenance"]})),
            &[REPRESENTATION],
        )
        .await;
    assert_eq!(pref.status, StatusCode::CREATED, "{}", pref.body);
    let (n, how) = widget_count(&t, &token, &id, json!([])).await;
    assert_eq!(
        (n, how.as_str()),
        (count(&t, &by("'Ready', 'Maintenance'")).await, "miss")
    );
    // ... and the request's filter replaces both; the widget's own always holds.
    let offline = json!([{"column": "status", "op": "eq", "value": "Offline"}]);
    let (n, _) = widget_count(&t, &token, &id, offline.clone()).await;
    assert_eq!(n, count(&t, &by("'Offline'")).await);
    // Another user may not file preferences on our dashboard (it reads as
    // no dashboard at all) ...
    let theirs = t
        .request(
            Method::POST,
            "/rest/v1/user_filter_preferences",
            Some(&user(STRANGER)),
            Some(json!({"dashboard_id": board, "filter_key": "status", "value": "Offline"})),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN, "{}", theirs.body);
    // ... and one that exists anyway (written behind the service's back)
    // is not ours.
    sqlx::query(
        "INSERT INTO app.user_filter_preferences (user_id, dashboard_id, filter_key, value)
         VALUES ($1::uuid, $2::uuid, 'status', '\"Offline\"')",
    )
    .bind(STRANGER)
    .bind(board.as_str())
    .execute(&t.pool)
    .await
    .unwrap();
    let (n, _) = widget_count(&t, &token, &id, json!([])).await;
    assert_eq!(n, count(&t, &by("'Ready', 'Maintenance'")).await);
    // Changing the preference is a miss with the new answer.
    let pref_id = pref.body[0]["id"].as_str().unwrap();
    t.request(
        Method::PATCH,
        &format!("/rest/v1/user_filter_preferences?id=eq.{pref_id}"),
        Some(&token),
        Some(json!({"value": {"op": "neq", "value": "Active"}})),
    )
    .await;
    let (n, how) = widget_count(&t, &token, &id, json!([])).await;
    assert_eq!(
        (n, how.as_str()),
        (
            count(
                &t,
                "SELECT count(*) FROM servers WHERE region LIKE 'eu-%' AND status <> 'Active'"
            )
            .await,
            "miss"
        )
    );
}

#[tokio::test]
async fn widget_changes_keep_its_cache_in_step() {
    let t = test_app().await;
    t.listen().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let created = create_widget(
        &t,
        &token,
        json!({"dashboard_id": board, "widget_type": "metric", "data_source": {"table": "servers", "aggregation": "count"}}),
    )
    .await;
    let id = created.body[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/rest/v1/dashboard_widgets?id=eq.{id}");
    let ask = || widget_count(&t, &token, &id, json!([]));
    assert_eq!(ask().await.1, "miss");
    assert_eq!(ask().await.1, "hit");
    // A new refresh_interval: a new entry, with the new lifetime.
    t.request(
        Method::PATCH,
        &path,
        Some(&token),
        Some(json!({"refresh_interval": 30})),
    )
    .await;
    assert_eq!(ask().await.1, "miss");
    let reply = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"widget_id": id})),
        )
        .await;
    let lifetime = chrono::DateTime::parse_from_rfc3339(reply.body["expires_at"].as_str().unwrap())
        .unwrap()
        - chrono::DateTime::parse_from_rfc3339(reply.body["cached_at"].as_str().unwrap()).unwrap();
    assert_eq!(lifetime.num_seconds(), 30, "{}", reply.body);
    // New filters: a miss with the filtered answer.
    t.request(
        Method::PATCH,
        &path,
        Some(&token),
        Some(json!({"filters": [{"column": "status", "op": "eq", "value": "Ready"}]})),
    )
    .await;
    let (n, how) = ask().await;
    assert_eq!(
        (n, how.as_str()),
        (
            count(&t, "SELECT count(*) FROM servers WHERE status = 'Ready'").await,
            "miss"
        )
    );
    // A new data source.
    t.request(Method::PATCH, &path, Some(&token), Some(json!({"data_source": {"table": "servers", "aggregation": "count_distinct", "column": "region"}})))
        .await;
    let (n, how) = ask().await;
    assert_eq!(
        (n, how.as_str()),
        (
            count(
                &t,
                "SELECT count(DISTINCT region) FROM servers WHERE status = 'Ready'"
            )
            .await,
            "miss"
        )
    );
    // Deleting the widget deletes its entries.
    let widget: uuid::Uuid = id.parse().unwrap();
    let rows = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM app.widget_data_cache WHERE widget_instance_id = $1",
        )
        .bind(widget)
        .fetch_one(&t.pool)
        .await
        .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while rows().await == 0 {
        assert!(std::time::Instant::now() < deadline, "entries never stored");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    t.request(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(rows().await, 0);
    let gone = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"widget_id": id})),
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_action_form_creates_updates_and_deletes_with_the_same_rules() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let board = demo_dashboard(&t).await;
    let t = &t;
    let act = async |token: String, body: Value| {
        t.request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(body),
        )
        .await
    };
    let created = act(
        token.clone(),
        json!({"action": "create_widget", "widget": {"dashboard_id": board, "widget_type": "stat", "title": "t",
               "data_source": {"table": "servers", "aggregation": "max", "column": "memory_mb"}}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["data"]["id"].as_str().unwrap().to_owned();
    let updated = act(
        token.clone(),
        json!({"action": "update_widget", "widget": {"id": id, "title": "Biggest"}}),
    )
    .await;
    assert_eq!(updated.body["data"]["title"], "Biggest", "{}", updated.body);
    let invalid = act(
        token.clone(),
        json!({"action": "update_widget", "widget": {"id": id, "data_source": {"table": "nope"}}}),
    )
    .await;
    assert_eq!(
        (invalid.status, invalid.body["details"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("data_source.table"))
    );
    // Someone else's widget is not found, for updates and deletes alike.
    let theirs = act(
        user(STRANGER),
        json!({"action": "delete_widget", "widget": {"id": id}}),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let unknown = act(
        token.clone(),
        json!({"action": "rename_widget", "widget": {}}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let deleted = act(
        token.clone(),
        json!({"action": "delete_widget", "widget": {"id": id}}),
    )
    .await;
    assert_eq!(deleted.body["data"]["id"], id.as_str());
    assert_eq!(
        count(
            t,
            &format!("SELECT count(*) FROM app.dashboard_widgets WHERE id = '{id}'")
        )
        .await,
        0
    );
}
