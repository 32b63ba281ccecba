//! Saved widgets queried by id: their data source, their own filters, and
//! visibility decided by row-level security.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

async fn demo_widgets(t: &TestApp) -> Vec<(String, String, Value)> {
    let rows: Vec<(uuid::Uuid, String, Value)> = sqlx::query_as(
        "SELECT id, widget_type, data_source FROM app.dashboard_widgets ORDER BY created_at, title",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, ty, ds)| (id.to_string(), ty, ds))
        .collect()
}

async fn by_id(t: &TestApp, token: &str, body: Value) -> Reply {
    t.request(
        Method::POST,
        "/functions/v1/widget-data",
        Some(token),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_saved_widget_answers_like_its_data_source() {
    let t = test_app().await;
    let widgets = demo_widgets(&t).await;
    assert_eq!(widgets.len(), 4, "the seed has four demo widgets");
    let token = user(DEMO_USER);
    for (id, widget_type, source) in widgets {
        let reply = by_id(&t, &token, json!({ "widget_id": id })).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{widget_type}: {}",
            reply.body
        );
        let direct = t.data(&token, source.clone()).await;
        assert_eq!(reply.body["data"], direct, "{widget_type} {source}");
        // The alias of seed 004's frontend works too.
        let alias = by_id(&t, &token, json!({ "widget_instance_id": id })).await;
        assert_eq!(alias.body["data"], direct);
        // Lifetime by widget type when refresh_interval is null.
        let at = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(reply.body[k].as_str().unwrap()).unwrap()
        };
        let ttl = (at("expires_at") - at("cached_at")).num_seconds();
        let want = match widget_type.as_str() {
            "metric" => 300,
            "trend" => 6 * 3600,
            "summary" => 3600,
            _ => 300,
        };
        assert_eq!(ttl, want, "{widget_type}");
    }
}

#[tokio::test]
async fn a_widgets_own_filters_and_refresh_interval_apply() {
    let t = test_app().await;
    let (id, _, _) = demo_widgets(&t)
        .await
        .into_iter()
        .find(|(_, ty, _)| ty == "metric")
        .unwrap();
    t.exec(&format!(
        "UPDATE app.dashboard_widgets SET filters = '[{{\"column\":\"status\",\"op\":\"eq\",\"value\":\"Offline\"}}]', \
         refresh_interval = 42 WHERE id = '{id}'"
    ))
    .await;
    let reply = by_id(&t, &user(DEMO_USER), json!({ "widget_id": id, "filters": [{"column": "region", "op": "eq", "value": "eu-west-1"}] })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let want = t
        .sql_rows("SELECT count(*) AS value FROM servers WHERE status = 'Offline' AND region = 'eu-west-1'")
        .await;
    assert_eq!(reply.body["data"], want);
    let at =
        |k: &str| chrono::DateTime::parse_from_rfc3339(reply.body[k].as_str().unwrap()).unwrap();
    assert_eq!((at("expires_at") - at("cached_at")).num_seconds(), 42);
}

#[tokio::test]
async fn another_users_widget_is_404_like_a_missing_one() {
    let t = test_app().await;
    let (id, _, _) = demo_widgets(&t).await.remove(0);
    for token in [user(OTHER_USER), anon()] {
        let reply = by_id(&t, &token, json!({ "widget_id": id })).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        assert_eq!(reply.body["code"], "not_found");
    }
    let missing = by_id(
        &t,
        &user(DEMO_USER),
        json!({ "widget_id": uuid::Uuid::new_v4() }),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let neither = by_id(&t, &user(DEMO_USER), json!({ "filters": [] })).await;
    assert_eq!(neither.status, StatusCode::BAD_REQUEST);
}
