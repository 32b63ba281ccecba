//! `/rest/v1` logic filters as postgrest-js sends them: `or=(…)`,
//! `and=(…)`, nested groups, `not.` before any operator or group, quoted
//! values with commas and parentheses, `cs`/`cd` on jsonb, and
//! `like`/`ilike` `(any)`/`(all)`; each against hand-written SQL, under
//! row-level security.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

/// The demo user's dashboards with awkward names, and another user's
/// with the same names.
async fn fixture(t: &TestApp) {
    t.exec(&format!(
        r#"INSERT INTO app.dashboards (owner_id, name, description)
           SELECT owner, name, 'logic' FROM
             (VALUES ('{DEMO_USER}'::uuid), ('{OTHER_USER}'::uuid)) o(owner),
             (VALUES ('a,b'), ('c(d)'), ('say "hi"'), ('plain')) n(name);"#
    ))
    .await;
}

/// Ids the caller gets for `query` on `table`, sorted.
async fn ids(t: &TestApp, token: &str, table: &str, query: &str) -> Vec<String> {
    let reply = t
        .request(
            Method::GET,
            &format!("/rest/v1/{table}?select=id&{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    let mut ids: Vec<String> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Ids of `owner`'s rows of `app.table` where `condition` holds, sorted.
async fn sql_ids(t: &TestApp, table: &str, owner: &str, condition: &str) -> Vec<String> {
    let rows = t
        .sql_rows(&format!(
            "SELECT id::text FROM app.{table} WHERE owner_id = '{owner}' AND ({condition}) ORDER BY id::text"
        ))
        .await;
    let mut ids: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn logic_groups_negation_and_quoted_values_match_hand_written_sql() {
    let t = test_app().await;
    fixture(&t).await;
    let token = user(DEMO_USER);
    let widgets = [
        (
            "or=(widget_type.eq.metric,widget_type.eq.trend)",
            "widget_type IN ('metric', 'trend')",
        ),
        (
            "and=(widget_type.eq.chart,title.not.like.*CPU*)",
            "widget_type = 'chart' AND NOT title LIKE '%CPU%'",
        ),
        (
            "or=(widget_type.eq.metric,and(widget_type.eq.chart,title.ilike.*status*))",
            "widget_type = 'metric' OR (widget_type = 'chart' AND title ILIKE '%status%')",
        ),
        (
            "not.or=(widget_type.eq.metric,widget_type.eq.chart)",
            "NOT (widget_type = 'metric' OR widget_type = 'chart')",
        ),
        (
            "or=(not.and(widget_type.eq.chart,title.like.Servers*),refresh_interval.is.null)",
            "NOT (widget_type = 'chart' AND title LIKE 'Servers%') OR refresh_interval IS NULL",
        ),
        ("title=not.eq.Servers", "NOT title = 'Servers'"),
        (
            "widget_type=not.in.(chart,trend)",
            "widget_type NOT IN ('chart', 'trend')",
        ),
        (
            "title=like(any).{Servers*,*CPU*}",
            "title LIKE ANY (ARRAY['Servers%', '%CPU%'])",
        ),
        (
            "title=ilike(all).{*s*,*e*}",
            "title ILIKE ALL (ARRAY['%s%', '%e%'])",
        ),
        (
            r#"data_source=cs.{"groupBy":"status"}"#,
            r#"data_source @> '{"groupBy":"status"}'"#,
        ),
        (
            r#"position=cd.{"x":0,"y":0,"w":3,"h":2,"z":9}"#,
            r#"position <@ '{"x":0,"y":0,"w":3,"h":2,"z":9}'"#,
        ),
        (
            r#"or=(data_source.cs.{"aggregation":"avg"},widget_type.eq.trend)"#,
            r#"data_source @> '{"aggregation":"avg"}' OR widget_type = 'trend'"#,
        ),
    ];
    for (query, condition) in widgets {
        let want = sql_ids(&t, "dashboard_widgets", DEMO_USER, condition).await;
        assert!(
            !want.is_empty() || query.contains("cd."),
            "{query} selects something"
        );
        let query = query
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22");
        assert_eq!(
            ids(&t, &token, "dashboard_widgets", &query).await,
            want,
            "{query}"
        );
    }
    let dashboards = [
        (r#"name=in.("a,b","c(d)")"#, "name IN ('a,b', 'c(d)')"),
        (
            r#"or=(name.eq."a,b",name.in.("c(d)",plain))"#,
            "name IN ('a,b', 'c(d)', 'plain')",
        ),
        (
            r#"or=(name.eq."say \"hi\"",name.eq."c(d)")"#,
            r#"name IN ('say "hi"', 'c(d)')"#,
        ),
        (
            r#"and=(description.eq.logic,name.not.in.("a,b",plain))"#,
            "description = 'logic' AND name NOT IN ('a,b', 'plain')",
        ),
    ];
    for (query, condition) in dashboards {
        let want = sql_ids(&t, "dashboards", DEMO_USER, condition).await;
        assert!(!want.is_empty(), "{query} selects something");
        let query = query
            .replace('"', "%22")
            .replace(' ', "%20")
            .replace('\\', "%5C");
        assert_eq!(ids(&t, &token, "dashboards", &query).await, want, "{query}");
        // The other user's rows of the same names never appear.
        let theirs = ids(&t, &user(OTHER_USER), "dashboards", &query).await;
        assert_eq!(
            theirs,
            sql_ids(&t, "dashboards", OTHER_USER, condition).await
        );
        assert!(theirs.iter().all(|id| !want.contains(id)));
    }
}

#[tokio::test]
async fn malformed_logic_is_a_400_naming_the_parameter() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let deep = format!(
        "or=({}widget_type.eq.metric{})",
        "or(".repeat(9),
        ")".repeat(9)
    );
    for (query, field) in [
        ("or=(widget_type.eq.metric", "query.or"),
        ("or=widget_type.eq.metric", "query.or"),
        ("and=(widget_type.eq.metric,nope.eq.1)", "query.and"),
        ("or=(not.widget_type.eq.metric,title.eq.x)", "query.or"),
        (r#"or=(name.eq."open)"#, "query.or"),
        ("title=cs.%7B%7D", "query.title"),
        ("data_source=cs.not-json", "query.data_source"),
        ("title=like(any).Servers", "query.title"),
        (deep.as_str(), "query.or"),
    ] {
        let reply = t
            .request(
                Method::GET,
                &format!("/rest/v1/dashboard_widgets?{}", query.replace('"', "%22")),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["details"]["field"],
            json!(field),
            "{query}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn a_logic_filter_narrows_a_patch_and_rls_still_decides() {
    let t = test_app().await;
    fixture(&t).await;
    let reply = t
        .request(
            Method::PATCH,
            "/rest/v1/dashboards?or=(name.eq.plain,name.eq.%22a,b%22)",
            Some(&user(OTHER_USER)),
            Some(json!({"description": "changed"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let changed: Value = t
        .sql_rows("SELECT owner_id::text AS owner, name FROM app.dashboards WHERE description = 'changed' ORDER BY name")
        .await;
    assert_eq!(
        changed,
        json!([{"owner": OTHER_USER, "name": "a,b"}, {"owner": OTHER_USER, "name": "plain"}]),
        "only the caller's rows changed"
    );
}
