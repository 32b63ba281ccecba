//! Where the service and what clients expect of it must agree exactly:
//! PostgREST's `.single()` semantics and error codes, and the cache's
//! canonical keys.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::json;

const SINGLE: (&str, &str) = ("accept", "application/vnd.pgrst.object+json");

#[tokio::test]
async fn a_single_write_that_matches_other_than_one_row_changes_nothing() {
    let t = test_app().await;
    let token = user(OTHER_USER);
    let created = t
        .request_with(
            Method::POST,
            "/rest/v1/dashboards",
            Some(&token),
            Some(json!([{"name": "triple"}, {"name": "triple"}, {"name": "triple"}, {"name": "alone"}])),
            &[("prefer", "return=representation")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let descriptions = || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT description FROM app.dashboards WHERE owner_id = $1::uuid ORDER BY name",
        )
        .bind(OTHER_USER)
        .fetch_all(&t.pool)
        .await
        .unwrap()
    };
    let patch = t
        .request_with(
            Method::PATCH,
            "/rest/v1/dashboards?name=eq.triple",
            Some(&token),
            Some(json!({"description": "changed"})),
            &[SINGLE, ("prefer", "return=representation")],
        )
        .await;
    assert_eq!(patch.status, StatusCode::NOT_ACCEPTABLE, "{}", patch.body);
    assert_eq!(patch.body["code"], "PGRST116");
    assert_eq!(descriptions().await, vec![None; 4], "nothing changed");

    let delete = t
        .request_with(
            Method::DELETE,
            "/rest/v1/dashboards?name=eq.triple",
            Some(&token),
            None,
            &[SINGLE],
        )
        .await;
    assert_eq!(delete.status, StatusCode::NOT_ACCEPTABLE, "{}", delete.body);
    assert_eq!(delete.body["code"], "PGRST116");
    assert_eq!(descriptions().await.len(), 4, "nothing deleted");

    // No row at all is not one row either.
    let none = t
        .request_with(
            Method::PATCH,
            "/rest/v1/dashboards?name=eq.nobody",
            Some(&token),
            Some(json!({"description": "changed"})),
            &[SINGLE],
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_ACCEPTABLE, "{}", none.body);

    // Exactly one: written, and answered as an object.
    let one = t
        .request_with(
            Method::PATCH,
            "/rest/v1/dashboards?name=eq.alone",
            Some(&token),
            Some(json!({"description": "changed"})),
            &[SINGLE, ("prefer", "return=representation")],
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["description"], "changed");
    assert_eq!(
        one.headers["content-type"],
        "application/vnd.pgrst.object+json"
    );
    assert_eq!(
        descriptions().await,
        vec![Some("changed".to_owned()), None, None, None]
    );
}
