//! Seed 004's snippets as written: a widget saved with `type` (the column
//! is `widget_type`), and `data.total` read from an answer.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

async fn dashboard(t: &TestApp) -> String {
    t.sql_rows("SELECT id::text FROM app.dashboards")
        .await
        .as_array()
        .unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn widget_type(t: &TestApp, id: &str) -> Value {
    t.sql_rows(&format!(
        "SELECT widget_type FROM app.dashboard_widgets WHERE id = '{id}'"
    ))
    .await[0]["widget_type"]
        .clone()
}

#[tokio::test]
async fn type_saves_widget_type_through_rest_and_the_action_form() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let board = dashboard(&t).await;
    let source = json!({"table": "servers", "aggregation": "count", "groupBy": "status"});
    // The seed's insert, as supabase-js sends it (`columns=` names the keys).
    let saved = t
        .request_with(
            Method::POST,
            "/rest/v1/dashboard_widgets?columns=%22dashboard_id%22,%22type%22,%22data_source%22",
            Some(&token),
            Some(json!([{"dashboard_id": board, "type": "metric", "data_source": source}])),
            &[("prefer", "return=representation")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.body);
    let id = saved.body[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(saved.body[0]["widget_type"], "metric");
    assert!(
        saved.body[0].get("type").is_none(),
        "reads give widget_type only"
    );
    assert_eq!(widget_type(&t, &id).await, "metric");

    let patched = t
        .request(
            Method::PATCH,
            &format!("/rest/v1/dashboard_widgets?id=eq.{id}"),
            Some(&token),
            Some(json!({"type": "chart"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT, "{}", patched.body);
    assert_eq!(widget_type(&t, &id).await, "chart");

    let both = t
        .request(
            Method::POST,
            "/rest/v1/dashboard_widgets",
            Some(&token),
            Some(json!({"dashboard_id": board, "type": "chart", "widget_type": "metric", "data_source": source})),
        )
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    assert_eq!(both.body["details"]["field"], "type");

    let action = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"action": "create_widget",
                "widget": {"dashboard_id": board, "type": "trend", "data_source": source}})),
        )
        .await;
    assert_eq!(action.status, StatusCode::CREATED, "{}", action.body);
    let created = action.body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(widget_type(&t, &created).await, "trend");
    let updated = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&token),
            Some(json!({"action": "update_widget", "widget": {"id": created, "type": "table"}})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(widget_type(&t, &created).await, "table");
}

#[tokio::test]
async fn an_answer_with_one_measure_carries_its_total() {
    let t = test_app().await;
    let token = anon();
    let scalar = |sql: &'static str| {
        let t = &t;
        async move { t.sql_rows(sql).await[0]["v"].clone() }
    };
    let count = scalar("SELECT count(*) AS v FROM servers").await;

    // Ungrouped: the value itself.
    let reply = t
        .query(&token, json!({"table": "servers", "aggregation": "count"}))
        .await;
    assert_eq!(reply.body["total"], count);
    assert_eq!(
        reply.body["data"],
        json!([{"value": count}]),
        "data stays as it is"
    );
    let avg = t
        .query(
            &token,
            json!({"table": "servers", "aggregation": "avg", "column": "cpu_pct"}),
        )
        .await;
    assert_eq!(avg.body["total"], avg.body["data"][0]["value"]);

    // A grouped count: the sum over the groups; a hit says the same.
    for _ in 0..2 {
        let grouped = t
            .query(&token, json!({"table": "servers", "groupBy": "status"}))
            .await;
        assert_eq!(grouped.body["total"], count, "{}", grouped.body);
    }
    // A grouped sum of floats.
    let sum = t
        .query(
            &token,
            json!({"table": "servers", "aggregation": "sum", "column": "cpu_pct", "groupBy": "region"}),
        )
        .await;
    let want = scalar("SELECT sum(cpu_pct) AS v FROM servers").await;
    assert!(
        (sum.body["total"].as_f64().unwrap() - want.as_f64().unwrap()).abs() < 1e-6,
        "{} vs {want}",
        sum.body["total"]
    );
    // Grouped avg, min, max, count_distinct: null.
    for function in ["avg", "min", "max", "count_distinct"] {
        let reply = t
            .query(
                &token,
                json!({"table": "servers", "aggregation": function, "column": "cpu_pct", "groupBy": "status"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body.get("total"), Some(&Value::Null), "{function}");
    }
    // Two measures: no total.
    let two = t
        .query(
            &token,
            json!({"table": "servers", "aggregations": [{"fn": "count"}, {"fn": "avg", "column": "cpu_pct"}]}),
        )
        .await;
    assert!(two.body.get("total").is_none(), "{}", two.body);
}
