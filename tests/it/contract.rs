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

#[tokio::test]
async fn browsers_revalidate_by_default_and_a_304_answers_the_same_entry() {
    let t = test_app().await;
    t.listen().await;
    let token = user(DEMO_USER);
    let config = json!({"table": "servers", "groupBy": "status"});
    let first = t.query(&token, config.clone()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["cache-control"], "private, no-cache");
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let ask = |tag: String| {
        let t = &t;
        let token = token.clone();
        let config = config.clone();
        async move {
            t.request_with(
                Method::POST,
                "/functions/v1/widget-data",
                Some(&token),
                Some(json!({ "config": config })),
                &[("if-none-match", &tag)],
            )
            .await
        }
    };
    let not_modified = ask(etag.clone()).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.body, serde_json::Value::Null, "no body");
    assert_eq!(not_modified.headers["etag"], etag.as_str());
    assert_eq!(not_modified.headers["x-cache"], "hit");
    // A list of tags, one of them ours, and the strong form of ours.
    assert_eq!(
        ask(format!("\"x\", {etag}")).await.status,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(
        ask(etag.trim_start_matches("W/").to_owned()).await.status,
        StatusCode::NOT_MODIFIED
    );
    // A write makes a new answer, which the old tag does not name.
    sqlx::query("UPDATE servers SET status = 'Ready' WHERE id = 1")
        .execute(&t.pool)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let fresh = ask(etag.clone()).await;
        if fresh.status == StatusCode::OK {
            assert_ne!(fresh.headers["etag"], etag.as_str());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write was never heard"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_browser_lifetime_is_opt_in_and_never_outlasts_the_entry() {
    let t = test_app_with(&[("BROWSER_CACHE_SECS", "60")]).await;
    t.listen().await;
    let reply = t.query(&user(DEMO_USER), json!({"table": "servers"})).await;
    assert_eq!(reply.headers["cache-control"], "private, max-age=60");
    // A widget's own `config.browser_cache_ttl` wins, within its lifetime.
    let widget: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO app.dashboard_widgets (dashboard_id, owner_id, widget_type, data_source, config, refresh_interval)
         SELECT dashboard_id, owner_id, 'chart', '{\"table\": \"servers\"}', '{\"browser_cache_ttl\": 600}', 120
         FROM app.dashboard_widgets LIMIT 1 RETURNING id",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let reply = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&user(DEMO_USER)),
            Some(json!({ "widget_id": widget })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let cache_control = reply.headers["cache-control"].to_str().unwrap();
    let max_age: u64 = cache_control
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((119..=120).contains(&max_age), "{cache_control}");
}

/// Sends `body` as it is, with the given content type.
async fn raw(t: &TestApp, path: &str, content_type: &str, body: &str) -> Reply {
    use tower::ServiceExt;
    let req = axum::http::Request::post(path)
        .header("authorization", format!("Bearer {}", user(DEMO_USER)))
        .header("content-type", content_type)
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    let resp = t.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

#[tokio::test]
async fn bodies_must_be_json_and_name_each_key_once() {
    let t = test_app().await;
    let query = r#"{"config": {"table": "servers"}}"#;
    for path in ["/functions/v1/widget-data", "/rest/v1/dashboards"] {
        let form = raw(&t, path, "application/x-www-form-urlencoded", query).await;
        assert_eq!(
            form.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{path}: {}",
            form.body
        );
        assert_eq!(form.body["code"], "unsupported_media_type");
    }
    assert_eq!(
        raw(
            &t,
            "/functions/v1/widget-data",
            "application/json; charset=utf-8",
            query
        )
        .await
        .status,
        StatusCode::OK
    );
    // A key named twice is refused, not read as its last value.
    let twice = raw(
        &t,
        "/functions/v1/widget-data",
        "application/json",
        r#"{"config": {"table": "servers", "table": "servers"}}"#,
    )
    .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST, "{}", twice.body);
    assert_eq!(twice.body["code"], "invalid_body");
    assert!(
        twice.body["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key \"table\"")
    );
    let rest = raw(
        &t,
        "/rest/v1/dashboards",
        "application/json",
        r#"{"name": "mine", "name": "yours"}"#,
    )
    .await;
    assert_eq!(rest.status, StatusCode::BAD_REQUEST, "{}", rest.body);
    assert!(
        rest.body["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key \"name\"")
    );
}

#[tokio::test]
async fn a_change_needs_a_filter_that_can_leave_rows_out() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    for path in [
        "/rest/v1/dashboards?id=not.is.null",
        "/rest/v1/dashboards?name=like.*",
        "/rest/v1/dashboards?name=like.**&id=not.is.null",
    ] {
        let r = t.request(Method::DELETE, path, Some(&token), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(r.body["details"]["field"], "query");
    }
    let dashboards: i64 = sqlx::query_scalar("SELECT count(*) FROM app.dashboards")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(dashboards, 1, "nothing deleted");
    // `description` may be null, so not.is.null does leave rows out.
    let r = t
        .request(
            Method::DELETE,
            "/rest/v1/dashboards?description=not.is.null&name=eq.none",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
}

#[tokio::test]
async fn a_write_body_is_checked_against_the_columns_before_the_database() {
    let t = test_app().await;
    let token = service();
    // No row matches, yet a value the column could never take is a 400.
    for (body, field) in [
        (json!({"name": {}}), "body.name"),
        (json!({"name": null}), "body.name"),
        (json!({"owner_id": "not-a-uuid"}), "body.owner_id"),
    ] {
        let r = t
            .request(
                Method::PATCH,
                "/rest/v1/dashboards?name=eq.nothing-matches",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.body["code"], "type_mismatch");
        assert_eq!(r.body["details"]["field"], field);
    }
    let r = t
        .request(
            Method::POST,
            "/rest/v1/dashboard_widgets",
            Some(&token),
            Some(json!([{"refresh_interval": "soon"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["details"]["field"], "body[0].refresh_interval");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("refresh_interval is int4")
    );
    // Values of the right type still pass (and JSON columns take anything).
    let ok = t
        .request(
            Method::PATCH,
            "/rest/v1/dashboards?name=eq.nothing-matches",
            Some(&token),
            Some(json!({"name": "x", "description": null})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.body);
}

#[tokio::test]
async fn a_data_source_in_a_write_is_checked_even_when_no_row_matches() {
    let t = test_app().await;
    for (path, body, field) in [
        (
            "/rest/v1/widget_data_sources?id=eq.00000000-0000-4000-8000-000000000000",
            json!({"data_source": {"table": "servers", "surprise": 42}}),
            "data_source",
        ),
        (
            "/rest/v1/dashboard_widgets?id=eq.00000000-0000-4000-8000-000000000000",
            json!({"data_source": {"table": "servers", "groupBy": -6.5}}),
            "data_source",
        ),
        (
            "/rest/v1/dashboard_widgets?id=eq.00000000-0000-4000-8000-000000000000",
            json!({"filters": [{"column": "status", "op": "nope"}], "data_source": {"table": "servers"}}),
            "filters[0].op",
        ),
        (
            "/rest/v1/dashboard_widgets?id=eq.00000000-0000-4000-8000-000000000000",
            json!({"filters": {"not": "a list"}}),
            "filters",
        ),
    ] {
        let r = t
            .request(Method::PATCH, path, Some(&service()), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.body["details"]["field"], field, "{body}: {}", r.body);
    }
}

#[tokio::test]
async fn an_empty_select_or_order_is_a_400_and_a_malformed_range_is_ignored() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    for (path, field) in [
        ("/rest/v1/dashboards?select=", "query.select"),
        ("/rest/v1/dashboards?order=", "query.order"),
    ] {
        let r = t.request(Method::GET, path, Some(&token), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(r.body["details"]["field"], field);
    }
    // A bad parameter is a 400 whatever the Range says.
    let r = t
        .request_with(
            Method::GET,
            "/rest/v1/dashboards?select=",
            Some(&token),
            None,
            &[("range", "9-0")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Not a row range at all: ignored, the whole page comes back.
    let r = t
        .request_with(
            Method::GET,
            "/rest/v1/dashboards",
            Some(&token),
            None,
            &[("range", "bytes=0-0")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}
