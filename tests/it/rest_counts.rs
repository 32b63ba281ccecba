//! `/rest/v1` counts (`Prefer: count=...`, `Content-Range`), `HEAD`, the
//! 416 past the end and the 406 of `.single()`, in PostgREST's shapes.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

const OBJECT: (&str, &str) = ("accept", "application/vnd.pgrst.object+json");
const EXACT: (&str, &str) = ("prefer", "count=exact");

/// Five dashboards of the demo user named `count-…` (three of them
/// described `odd`) and three of another user's, named alike.
async fn counted_rows(t: &TestApp) {
    t.exec(&format!(
        "INSERT INTO app.dashboards (owner_id, name, description)
         SELECT '{DEMO_USER}'::uuid, 'count-' || i, CASE WHEN i % 2 = 1 THEN 'odd' END
           FROM generate_series(1, 5) i;
         INSERT INTO app.dashboards (owner_id, name, description)
         SELECT '{OTHER_USER}'::uuid, 'count-theirs-' || i, 'odd' FROM generate_series(1, 3) i;"
    ))
    .await;
}

/// The rows a user owns that match `filter`, by hand, as the superuser.
async fn owned(t: &TestApp, owner: &str, filter: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM app.dashboards WHERE owner_id = $1::uuid AND {filter}"
    )))
    .bind(owner)
    .fetch_one(&t.pool)
    .await
    .unwrap()
}

async fn get(t: &TestApp, path: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
    t.request_with(Method::GET, path, Some(token), None, headers)
        .await
}

#[tokio::test]
async fn every_count_preference_gives_the_total_the_filters_match_for_the_caller_alone() {
    let t = test_app().await;
    counted_rows(&t).await;
    let demo = user(DEMO_USER);
    let all = owned(&t, DEMO_USER, "name LIKE 'count-%'").await;
    let odd = owned(&t, DEMO_USER, "name LIKE 'count-%' AND description = 'odd'").await;
    assert_eq!((all, odd), (5, 3), "the fixture");
    let everyone: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.dashboards WHERE name LIKE 'count-%'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(
        everyone, 8,
        "the other user's rows are there to be left out"
    );

    for count in ["exact", "planned", "estimated"] {
        let prefer = format!("count={count}");
        let headers = [("prefer", prefer.as_str())];
        let page = get(
            &t,
            "/rest/v1/dashboards?select=name&name=like.count-*&order=name&limit=2",
            &demo,
            &headers,
        )
        .await;
        // A page of fewer rows than the total is PostgREST's 206.
        assert_eq!(
            page.status,
            StatusCode::PARTIAL_CONTENT,
            "{count}: {}",
            page.body
        );
        assert_eq!(
            page.headers["content-range"],
            format!("0-1/{all}"),
            "{count}"
        );
        assert_eq!(page.body, json!([{"name": "count-1"}, {"name": "count-2"}]));

        let filtered = get(
            &t,
            "/rest/v1/dashboards?select=id&name=like.count-*&description=eq.odd&offset=1",
            &demo,
            &headers,
        )
        .await;
        assert_eq!(filtered.status, StatusCode::PARTIAL_CONTENT, "{count}");
        assert_eq!(
            filtered.headers["content-range"],
            format!("1-2/{odd}"),
            "{count}"
        );

        let whole = get(
            &t,
            "/rest/v1/dashboards?select=id&name=like.count-*",
            &demo,
            &headers,
        )
        .await;
        assert_eq!(
            whole.status,
            StatusCode::OK,
            "{count}: every row in one page"
        );
        assert_eq!(
            whole.headers["content-range"],
            format!("0-4/{all}"),
            "{count}"
        );

        let none = get(&t, "/rest/v1/dashboards?name=eq.nothing", &demo, &headers).await;
        assert_eq!(none.status, StatusCode::OK, "{count}");
        assert_eq!(none.headers["content-range"], "*/0", "{count}");
        assert_eq!(none.body, json!([]));
    }

    // The other user counts their own three, never the demo user's five.
    let theirs = get(
        &t,
        "/rest/v1/dashboards?select=id&name=like.count-*&limit=1",
        &user(OTHER_USER),
        &[EXACT],
    )
    .await;
    let other = owned(&t, OTHER_USER, "name LIKE 'count-%'").await;
    assert_eq!(theirs.headers["content-range"], format!("0-0/{other}"));
    assert_eq!(other, 3);

    // No count asked for: today's `/*`, and 200 for a partial page.
    let uncounted = get(
        &t,
        "/rest/v1/dashboards?select=id&name=like.count-*&limit=2",
        &demo,
        &[],
    )
    .await;
    assert_eq!(uncounted.status, StatusCode::OK);
    assert_eq!(uncounted.headers["content-range"], "0-1/*");
}

#[tokio::test]
async fn head_answers_the_headers_and_the_count_without_a_body() {
    let t = test_app().await;
    counted_rows(&t).await;
    let head = t
        .request_with(
            Method::HEAD,
            "/rest/v1/dashboards?select=*&name=like.count-*",
            Some(&user(DEMO_USER)),
            None,
            &[EXACT],
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["content-range"], "0-4/5");
    assert_eq!(head.body, Value::Null, "no body");

    let paged = t
        .request_with(
            Method::HEAD,
            "/rest/v1/dashboards?select=*&name=like.count-*&limit=1",
            Some(&user(DEMO_USER)),
            None,
            &[("prefer", "count=planned")],
        )
        .await;
    assert_eq!(paged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(paged.headers["content-range"], "0-0/5");
    assert_eq!(paged.body, Value::Null);
}

#[tokio::test]
async fn an_offset_past_the_counted_rows_is_postgrests_416_with_the_total() {
    let t = test_app().await;
    counted_rows(&t).await;
    let demo = user(DEMO_USER);
    let past = get(
        &t,
        "/rest/v1/dashboards?name=like.count-*&offset=6",
        &demo,
        &[EXACT],
    )
    .await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.headers["content-range"], "*/5");
    assert_eq!(
        past.body,
        json!({
            "code": "PGRST103",
            "message": "Requested range not satisfiable",
            "details": "An offset of 6 was requested, but there are only 5 rows.",
            "hint": null,
        })
    );

    // The same through the Range header.
    let ranged = get(
        &t,
        "/rest/v1/dashboards?name=like.count-*",
        &demo,
        &[EXACT, ("range", "10-19")],
    )
    .await;
    assert_eq!(ranged.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(ranged.headers["content-range"], "*/5");
    assert_eq!(ranged.body["code"], "PGRST103");

    // Right at the end is not past it (PostgREST: an empty 206).
    let end = get(
        &t,
        "/rest/v1/dashboards?name=like.count-*&offset=5",
        &demo,
        &[EXACT],
    )
    .await;
    assert_eq!(end.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(end.headers["content-range"], "*/5");
    assert_eq!(end.body, json!([]));

    // Without a count nothing is known of the end: an empty page, as today.
    let uncounted = get(
        &t,
        "/rest/v1/dashboards?name=like.count-*&offset=6",
        &demo,
        &[],
    )
    .await;
    assert_eq!(uncounted.status, StatusCode::OK);
    assert_eq!(uncounted.headers["content-range"], "*/*");
    assert_eq!(uncounted.body, json!([]));
}

#[tokio::test]
async fn an_object_asked_for_from_zero_or_two_rows_is_postgrests_406_pgrst116() {
    let t = test_app().await;
    counted_rows(&t).await;
    let demo = user(DEMO_USER);
    for (filter, rows) in [("name=eq.nothing", 0), ("name=in.(count-1,count-2)", 2)] {
        let r = get(
            &t,
            &format!("/rest/v1/dashboards?{filter}"),
            &demo,
            &[OBJECT],
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{filter}");
        assert_eq!(
            r.body,
            json!({
                "code": "PGRST116",
                "message": "Cannot coerce the result to a single JSON object",
                "details": format!("The result contains {rows} rows"),
                "hint": null,
            }),
            "{filter}"
        );
    }
    // Another user's row is no row at all.
    let theirs = get(
        &t,
        "/rest/v1/dashboards?name=eq.count-theirs-1",
        &demo,
        &[OBJECT],
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(theirs.body["details"], "The result contains 0 rows");

    let one = get(
        &t,
        "/rest/v1/dashboards?select=name&name=eq.count-1",
        &demo,
        &[OBJECT],
    )
    .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body, json!({"name": "count-1"}));
}

#[tokio::test]
async fn a_browser_script_may_read_content_range() {
    let t = test_app().await;
    let demo = user(DEMO_USER);
    for path in [
        "/rest/v1/dashboards?select=id",
        "/rest/v1/dashboards?select=id&offset=1000",
    ] {
        let r = get(
            &t,
            path,
            &demo,
            &[EXACT, ("origin", "https://dash.example")],
        )
        .await;
        let exposed = r.headers["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            exposed.split(',').any(|h| h.trim() == "content-range"),
            "{path}: {exposed}"
        );
        assert!(r.headers.contains_key("content-range"), "{path}");
    }
}
