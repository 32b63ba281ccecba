//! The pages the binary serves (issue 14): documents under a strict
//! Content-Security-Policy, assets under content-hashed names with
//! immutable caching, the dev tokens of embedded mode, and the endpoints
//! the pages ask: the queryable schema, the generated SQL, the stats'
//! history and tables.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use widget_data::app::App;

const JS: &str = "text/javascript; charset=utf-8";

/// Every `/assets/...` reference in `html`.
fn asset_refs(html: &str) -> Vec<String> {
    html.match_indices("/assets/")
        .map(|(at, _)| {
            let rest = &html[at..];
            let end = rest.find(['"', '\'', ')']).unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn each_page_is_served_under_a_strict_policy_with_its_assets_hashed_and_immutable() {
    let t = test_app().await;
    for path in ["/", "/playground", "/admin"] {
        let page = t.request(Method::GET, path, None, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(page.headers["cache-control"], "no-cache", "{path}");
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        let html = page.body.as_str().expect("an HTML page").to_owned();
        let refs = asset_refs(&html);
        assert!(!refs.is_empty(), "{path} loads no assets");
        for asset in refs {
            // `name-<12 hex>.ext`: the content's hash is in the name.
            let file = asset.trim_start_matches("/assets/");
            let (stem, _) = file.rsplit_once('.').unwrap();
            let hash = stem.rsplit_once('-').map(|(_, h)| h).unwrap_or("");
            assert!(
                hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "{asset}"
            );
            let got = t
                .request_with(
                    Method::GET,
                    &asset,
                    None,
                    None,
                    &[("accept-encoding", "gzip")],
                )
                .await;
            assert_eq!(got.status, StatusCode::OK, "{asset}");
            assert_eq!(
                got.headers["cache-control"],
                "public, max-age=31536000, immutable"
            );
            assert_eq!(got.headers["content-encoding"], "gzip");
            assert_eq!(got.headers["x-content-type-options"], "nosniff");
            let etag = got.headers["etag"].to_str().unwrap().to_owned();
            let again = t
                .request_with(Method::GET, &asset, None, None, &[("if-none-match", &etag)])
                .await;
            assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{asset}");
        }
        // Nothing inline that the policy would block.
        let lower = html.to_ascii_lowercase();
        assert!(
            !lower.contains(" style=") && !lower.contains("<style"),
            "{path}"
        );
        for (at, _) in lower.match_indices("<script") {
            let tag = &lower[at..at + lower[at..].find('>').unwrap()];
            assert!(tag.contains(" src="), "{path}: inline script {tag}");
        }
        assert!(
            !lower.split(['<', ' ', '\n']).any(|w| w.starts_with("on")
                && w.contains("=\"")
                && w[2..w.find('=').unwrap()]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase())),
            "{path} has an inline event handler"
        );
    }
    let missing = t
        .request(Method::GET, "/assets/nothing-000000000000.js", None, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["code"], "not_found");
}

#[tokio::test]
async fn the_pages_javascript_stays_under_150_kb_gzipped() {
    let site = widget_data::http::site::load(&test_app().await.app.config).unwrap();
    let (raw, gzipped) = site.total(JS);
    assert!(raw > 0, "the pages have JavaScript");
    assert!(gzipped <= 150 * 1024, "{gzipped} bytes gzipped ({raw} raw)");
}

/// An app configured as embedded mode is (no `DATABASE_URL`, the dev
/// secret), on the test's database.
async fn embedded_app() -> (Arc<App>, axum::Router) {
    let (pool, _) = fresh_db().await;
    let config = widget_data::config::Config::from_lookup(|name| match name {
        "RATE_LIMIT_PER_SEC" => Some("0".into()),
        _ => None,
    })
    .unwrap();
    assert!(config.database_url.is_none() && config.jwt_secret_is_dev);
    let app = App::new(config, pool).await.unwrap();
    let router = widget_data::http::router(Arc::clone(&app));
    (app, router)
}

#[tokio::test]
async fn dev_tokens_are_offered_in_embedded_mode_only() {
    let t = test_app().await;
    let none = t.request(Method::GET, "/dev/tokens", None, None).await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(
        none.body,
        json!({"tokens": []}),
        "not embedded: none offered"
    );

    let (app, router) = embedded_app().await;
    let embedded = TestApp {
        app: Arc::clone(&app),
        router,
        pool: t.pool.clone(),
    };
    let offered = embedded
        .request(Method::GET, "/dev/tokens", None, None)
        .await;
    assert_eq!(offered.status, StatusCode::OK);
    assert_eq!(offered.headers["cache-control"], "no-store");
    let tokens = offered.body["tokens"].as_array().unwrap();
    let names: Vec<&str> = tokens.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["anon", "demo user", "service_role"]);
    for token in tokens {
        let principal = app.jwt.verify(token["token"].as_str().unwrap()).unwrap();
        assert_eq!(principal.role.as_str(), token["role"].as_str().unwrap());
    }
    let demo = app
        .jwt
        .verify(tokens[1]["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(demo.sub.as_deref(), Some(DEMO_USER));
}

#[tokio::test]
async fn the_schema_lists_what_the_callers_role_may_read() {
    let t = test_app().await;
    t.exec(
        "CREATE TABLE public.secrets (id int, note text);
         GRANT SELECT ON public.secrets TO service_role;
         NOTIFY widget_data, 'reload schema';",
    )
    .await;
    until("the schema is reloaded", || async {
        t.app.schema().resolve("secrets").is_some()
    })
    .await;
    let names = |body: &Value| -> Vec<String> {
        body["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{}.{}",
                    t["schema"].as_str().unwrap(),
                    t["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let anon_view = t
        .request(
            Method::GET,
            "/functions/v1/widget-data/schema",
            Some(&anon()),
            None,
        )
        .await;
    assert_eq!(anon_view.status, StatusCode::OK);
    assert!(names(&anon_view.body).contains(&"public.servers".to_owned()));
    assert!(!names(&anon_view.body).contains(&"public.secrets".to_owned()));
    let servers = anon_view.body["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "servers")
        .unwrap();
    let cpu = servers["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cpu_pct")
        .unwrap();
    assert_eq!(cpu["kind"], "float");
    assert_eq!(cpu["type"], "float8");
    assert_eq!(servers["kind"], "table");

    let service_view = t
        .request(
            Method::GET,
            "/functions/v1/widget-data/schema",
            Some(&service()),
            None,
        )
        .await;
    assert!(names(&service_view.body).contains(&"public.secrets".to_owned()));
    let unauthenticated = t
        .request(Method::GET, "/functions/v1/widget-data/schema", None, None)
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_generated_sql_is_shown_to_service_role_with_its_parameters() {
    let t = test_app().await;
    let body = json!({"config": {"table": "servers", "groupBy": "status",
        "filters": [{"column": "region", "op": "eq", "value": "eu-west-1"}]}});
    let shown = t
        .request(
            Method::POST,
            "/functions/v1/widget-data/sql",
            Some(&service()),
            Some(body.clone()),
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let sql = shown.body["sql"].as_str().unwrap();
    assert!(sql.contains("\"servers\"") && sql.contains("$1"), "{sql}");
    assert!(!sql.contains("eu-west-1"), "values are parameters: {sql}");
    assert_eq!(shown.body["params"], json!(["eu-west-1", 1000]));

    // The statement shown is the statement run: the same rows.
    let rows = t
        .sql_rows("SELECT status, count(*) AS value FROM servers WHERE region = 'eu-west-1' GROUP BY status")
        .await;
    let data = t.data(&service(), body["config"].clone()).await;
    assert_eq!(sorted(&data, "status"), sorted(&rows, "status"));

    let refused = t
        .request(
            Method::POST,
            "/functions/v1/widget-data/sql",
            Some(&anon()),
            Some(body),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let bad = t
        .request(
            Method::POST,
            "/functions/v1/widget-data/sql",
            Some(&service()),
            Some(json!({"config": {"table": "servers", "groupBy": "nope"}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["details"]["field"], "config.groupBy");
}

#[tokio::test]
async fn stats_show_the_tables_versions_active_widgets_and_a_history() {
    let t = test_app().await;
    t.listen().await;
    let stats = &t.app.cache.stats;
    stats.history.sample(chrono::Utc::now(), stats.totals());
    let widget: String =
        sqlx::query_scalar("SELECT id::text FROM app.dashboard_widgets WHERE title = 'Servers'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    let token = user(DEMO_USER);
    for _ in 0..3 {
        let reply = t
            .request(
                Method::POST,
                "/functions/v1/widget-data",
                Some(&token),
                Some(json!({"widget_id": widget})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    until("the entry is in the table", || async {
        t.app.active_widgets().await == Some(1)
    })
    .await;
    stats.history.sample(chrono::Utc::now(), stats.totals());
    let got = t
        .request(
            Method::GET,
            "/functions/v1/widget-data/stats",
            Some(&service()),
            None,
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["active_widgets"], 1);
    let last = got.body["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["requests"].clone(), last["hits"].clone()),
        (json!(3), json!(2))
    );
    assert!((last["hit_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!(last["cached_ms"].as_f64().is_some() && last["uncached_ms"].as_f64().is_some());
    let servers = got.body["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == "public.servers")
        .cloned()
        .expect("servers is among the tables");
    assert_eq!(servers["watched"], true);
    assert!(
        servers["version"].as_str().unwrap().contains('.'),
        "{servers}"
    );
}
