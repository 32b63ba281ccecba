//! No cached answer outlives the permissions it was computed under:
//! GRANT, REVOKE, policies, RLS switches and role memberships all make
//! older entries unreachable.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Runs `sql` as the superuser without reloading the schema by hand: the
/// event trigger must announce it.
async fn ddl(t: &TestApp, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&t.pool)
        .await
        .expect("DDL");
}

/// Asks until `done` holds for the reply, or fails after 5 s.
async fn until_reply(
    t: &TestApp,
    token: &str,
    config: &Value,
    done: impl Fn(&Reply) -> bool,
) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = t.query(token, config.clone()).await;
        if done(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "never: {} {}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_revoke_makes_the_cached_answer_a_403() {
    let t = test_app().await;
    t.listen().await;
    let config = json!({"table": "servers", "groupBy": "status"});
    assert_eq!(
        t.query(&anon(), config.clone()).await.headers["x-cache"],
        "miss"
    );
    assert_eq!(
        t.query(&anon(), config.clone()).await.headers["x-cache"],
        "hit"
    );
    ddl(&t, "REVOKE SELECT ON public.servers FROM anon").await;
    let refused = until_reply(&t, &anon(), &config, |r| r.status != StatusCode::OK).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["code"], "permission_denied");
    // Granted again: answered, and computed anew.
    ddl(&t, "GRANT SELECT ON public.servers TO anon").await;
    let back = until_reply(&t, &anon(), &config, |r| r.status == StatusCode::OK).await;
    assert_eq!(back.headers["x-cache"], "miss");
}

#[tokio::test]
async fn a_dropped_policy_changes_what_the_next_answer_holds() {
    let t = test_app().await;
    t.exec(
        "CREATE TABLE public.notes (owner uuid, shared boolean NOT NULL DEFAULT false);
         ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
         CREATE POLICY own ON public.notes FOR SELECT TO authenticated USING (owner = auth.uid());
         CREATE POLICY shared ON public.notes FOR SELECT TO authenticated USING (shared);
         GRANT SELECT ON public.notes TO authenticated;",
    )
    .await;
    sqlx::query(
        "INSERT INTO public.notes (owner, shared) VALUES ($1::uuid, false), ($2::uuid, true), ($2::uuid, true)",
    )
    .bind(DEMO_USER)
    .bind(OTHER_USER)
    .execute(&t.pool)
    .await
    .unwrap();
    t.listen().await;
    let config = json!({"table": "notes"});
    let token = user(DEMO_USER);
    let before = t.query(&token, config.clone()).await;
    assert_eq!(before.body["data"], json!([{"value": 3}]));
    assert_eq!(
        t.query(&token, config.clone()).await.headers["x-cache"],
        "hit"
    );
    ddl(&t, "DROP POLICY shared ON public.notes").await;
    let after = until_reply(&t, &token, &config, |r| r.headers["x-cache"] != "hit").await;
    assert_eq!(
        after.body["data"],
        json!([{"value": 1}]),
        "only the user's own row"
    );
    // Switching RLS off is a permission change too.
    ddl(&t, "ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY").await;
    let open = until_reply(&t, &token, &config, |r| {
        r.body["data"] == json!([{"value": 3}])
    })
    .await;
    assert_eq!(open.headers["x-cache"], "miss");
}

/// Role memberships fire no event trigger: the documented reload after
/// changing them makes older entries unreachable.
#[tokio::test]
async fn a_reload_after_a_membership_change_is_a_miss() {
    let t = test_app().await;
    t.listen().await;
    let config = json!({"table": "servers"});
    t.query(&anon(), config.clone()).await;
    assert_eq!(
        t.query(&anon(), config.clone()).await.headers["x-cache"],
        "hit"
    );
    let role = format!("wd_member_{}", std::process::id());
    ddl(
        &t,
        &format!("CREATE ROLE {role} NOLOGIN; GRANT {role} TO anon"),
    )
    .await;
    ddl(&t, "NOTIFY widget_data, 'reload schema'").await;
    let after = until_reply(&t, &anon(), &config, |r| r.headers["x-cache"] != "hit").await;
    assert_eq!(after.headers["x-cache"], "miss");
    ddl(&t, &format!("REVOKE {role} FROM anon; DROP ROLE {role}")).await;
}

#[tokio::test]
async fn a_role_without_access_learns_nothing_of_a_tables_columns() {
    let t = test_app().await;
    use axum::http::Method;
    // /rest/v1: anon has no grant on the dashboard tables.
    for path in [
        "/rest/v1/dashboards?select=no_such_column",
        "/rest/v1/dashboards?no_such_column=eq.1",
        "/rest/v1/dashboards?select=name",
    ] {
        let r = t.request(Method::GET, path, Some(&anon()), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
        assert_eq!(r.body["code"], "permission_denied");
    }
    let r = t
        .request(
            Method::POST,
            "/rest/v1/global_filter_defaults",
            Some(&user(DEMO_USER)),
            Some(json!({"no_such_column": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // Widget queries: a table the role may not read.
    t.exec(
        "CREATE TABLE public.secrets (code text); GRANT SELECT ON public.secrets TO service_role",
    )
    .await;
    for config in [
        json!({"table": "secrets", "groupBy": "no_such_column"}),
        json!({"table": "secrets", "groupBy": "code"}),
    ] {
        let r = t.query(&anon(), config.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{config}: {}", r.body);
        assert_eq!(r.body["code"], "permission_denied");
    }
    // A role that may read it still gets the planner's help.
    let r = t
        .query(
            &service(),
            json!({"table": "secrets", "groupBy": "no_such_column"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "unknown_column");
}

#[tokio::test]
async fn another_users_dashboard_reads_exactly_like_one_that_does_not_exist() {
    let t = test_app().await;
    use axum::http::Method;
    let theirs: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.dashboards WHERE owner_id = $1::uuid")
            .bind(DEMO_USER)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    let source: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO app.widget_data_sources (owner_id, name, data_source)
         VALUES ($1::uuid, 'theirs', '{\"table\": \"servers\"}') RETURNING id",
    )
    .bind(DEMO_USER)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let token = user(OTHER_USER);
    let mine = t
        .request(
            Method::POST,
            "/rest/v1/dashboards",
            Some(&token),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED);
    let mine: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app.dashboards WHERE owner_id = $1::uuid")
            .bind(OTHER_USER)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    let nobodys = uuid::Uuid::new_v4();
    let answers = |path: &'static str, body: fn(uuid::Uuid, uuid::Uuid) -> Value| {
        let t = &t;
        let token = token.clone();
        async move {
            let mut replies = Vec::new();
            for id in [theirs_or(path, theirs, source), nobodys] {
                let r = t
                    .request(Method::POST, path, Some(&token), Some(body(id, mine)))
                    .await;
                replies.push((r.status, r.body));
            }
            replies
        }
    };
    fn theirs_or(path: &str, dashboard: uuid::Uuid, source: uuid::Uuid) -> uuid::Uuid {
        if path.contains("preferences") {
            dashboard
        } else {
            source
        }
    }
    for replies in [
        answers(
            "/rest/v1/user_filter_preferences",
            |id, _| json!({"dashboard_id": id, "filter_key": "status", "value": "Active"}),
        )
        .await,
        answers(
            "/rest/v1/dashboard_widgets",
            |id, mine| json!({"dashboard_id": mine, "widget_type": "metric", "data_source_id": id}),
        )
        .await,
    ] {
        assert_ne!(replies[0].0, StatusCode::CREATED, "{:?}", replies[0]);
        assert_eq!(
            replies[0], replies[1],
            "another user's row and no row read alike"
        );
    }
}
