//! Shared test fixtures: one throwaway PostgreSQL cluster per test process
//! (the same embedded code `cargo run` uses), a fresh database per test
//! cloned from a migrated and seeded template, the app built on it, and
//! signed tokens.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use embedded_pg::EmbeddedPostgres;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;
use widget_data::app::App;
use widget_data::config::Config;
use widget_data::{auth, db};

pub const SECRET: &str = "test-secret-for-widget-data-0123456789";
pub const TEMPLATE: &str = "widget_data_template";
pub const DEMO_USER: &str = db::DEMO_USER_ID;
pub const OTHER_USER: &str = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";

struct Cluster {
    pg: EmbeddedPostgres,
    #[allow(dead_code)]
    dir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Starts the cluster on first use and prepares the template database.
/// Runs on its own thread and runtime: each test has a runtime of its own,
/// and the cluster must outlive all of them.
fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                remove_stale_clusters();
                let dir =
                    std::env::temp_dir().join(format!("widget-data-it-{}", std::process::id()));
                let pg = EmbeddedPostgres::start(&dir)
                    .await
                    .expect("start test cluster");
                let mut admin = PgConnection::connect(&pg.url("postgres"))
                    .await
                    .expect("connect");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {TEMPLATE}")))
                    .execute(&mut admin)
                    .await
                    .expect("create template");
                let pool = db::connect(&pg.url(TEMPLATE), 2)
                    .await
                    .expect("connect template");
                db::migrate(&pool).await.expect("migrate template");
                db::seed(&pool).await.expect("seed template");
                pool.close().await;
                Cluster { pg, dir }
            })
        })
        .join()
        .expect("cluster thread")
    })
}

/// Clusters of test processes that are gone (the watchdog stopped their
/// servers; only the directories are left).
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("widget-data-it-")
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn database_url(name: &str) -> String {
    cluster().pg.url(name)
}

/// A fresh database, a copy of the migrated and seeded template.
pub async fn fresh_db() -> (PgPool, String) {
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = PgConnection::connect(&database_url("postgres"))
        .await
        .expect("connect admin");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE {TEMPLATE}"
    )))
    .execute(&mut admin)
    .await
    .expect("create database");
    admin.close().await.ok();
    let url = database_url(&name);
    (db::connect(&url, 4).await.expect("connect test db"), url)
}

pub fn config(url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.into()),
        ("JWT_SECRET".into(), SECRET.into()),
        // Tests fire requests faster than any person; the rate limit has
        // tests of its own.
        ("RATE_LIMIT_PER_SEC".into(), "0".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_lookup(|name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("test config")
}

pub struct TestApp {
    pub app: Arc<App>,
    pub router: axum::Router,
    pub pool: PgPool,
}

pub async fn test_app() -> TestApp {
    test_app_with(&[]).await
}

pub async fn test_app_with(extra: &[(&str, &str)]) -> TestApp {
    let (pool, url) = fresh_db().await;
    let config = config(&url, extra);
    // The callers' pool of the size asked for, as `main` makes it (the
    // test's own pool above stays for the test's SQL).
    let callers = if extra.iter().any(|(k, _)| *k == "DB_POOL_SIZE") {
        db::connect(&url, config.db_pool_size)
            .await
            .expect("callers' pool")
    } else {
        pool.clone()
    };
    let app = App::new(config, callers).await.expect("app");
    TestApp {
        router: widget_data::http::router(Arc::clone(&app)),
        app,
        pool,
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn sign(claims: Value) -> String {
    auth::sign(SECRET, &claims).expect("sign")
}

pub fn anon() -> String {
    sign(json!({"role": "anon", "exp": now() + 600}))
}

pub fn user(sub: &str) -> String {
    sign(json!({"role": "authenticated", "aud": "authenticated", "sub": sub, "exp": now() + 600}))
}

pub fn service() -> String {
    sign(json!({"role": "service_role", "exp": now() + 600}))
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestApp {
    /// Starts the app's listener and waits until it hears changes, so that
    /// results may be cached.
    pub async fn listen(&self) {
        self.app.spawn_listener();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.app.cache.is_listening() {
            assert!(
                std::time::Instant::now() < deadline,
                "listener never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.request_with(method, path, token, body, &[]).await
    }

    /// `request` with extra headers (`Prefer`, `Range`, `Accept`, ...).
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = match body {
            Some(body) => req
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `POST /functions/v1/widget-data` with `{"config": config}`.
    pub async fn query(&self, token: &str, config: Value) -> Reply {
        self.request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(token),
            Some(json!({ "config": config })),
        )
        .await
    }

    /// Like `query`, but asserts a 200 and returns `data`.
    pub async fn data(&self, token: &str, config: Value) -> Value {
        let reply = self.query(token, config.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{config} -> {}", reply.body);
        reply.body["data"].clone()
    }

    /// Runs hand-written SQL as the superuser and returns its rows as the
    /// service would render them.
    pub async fn sql_rows(&self, select: &str) -> Value {
        let sql = format!("SELECT coalesce(json_agg(t), '[]'::json) FROM ({select}) t");
        let mut tx = self.pool.begin().await.expect("begin");
        sqlx::query("SET LOCAL TimeZone = 'UTC'")
            .execute(&mut *tx)
            .await
            .expect("tz");
        let rows: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await
            .expect("hand-written SQL");
        tx.commit().await.expect("commit");
        rows
    }

    /// Runs DDL/DML as the superuser, then reloads the schema cache.
    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .expect("setup SQL");
        self.app.reload_schema().await.expect("reload schema");
    }
}

/// Polls `check` every 10 ms until it holds; fails the test after 15 s.
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A table with row-level security: three notes of `DEMO_USER`, seven of
/// `OTHER_USER`, each readable by its owner alone.
pub const NOTES: &str = r#"
CREATE TABLE public.notes (id serial PRIMARY KEY, owner uuid NOT NULL, body text NOT NULL);
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON public.notes FOR SELECT TO authenticated USING (owner = auth.uid());
GRANT SELECT ON public.notes TO authenticated;
INSERT INTO public.notes (owner, body)
SELECT CASE WHEN g <= 3 THEN '5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d'::uuid
            ELSE '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a'::uuid END, 'note ' || g
FROM generate_series(1, 10) g;
"#;

/// Ends the listening session of every instance on `pool`'s database
/// that watches a table (the sessions holding a watch lock); says whether
/// there was one.
pub async fn terminate_watching_sessions(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_locks
         WHERE locktype = 'advisory' AND classid = 1464139778
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(pool)
    .await
    .expect("terminate the listening sessions")
}

/// Rows in a stable order (by the column `by`), to compare answers with
/// the truth.
pub fn sorted(rows: &Value, by: &str) -> Vec<Value> {
    let mut rows = rows.as_array().expect("rows").clone();
    rows.sort_by_key(|r| r[by].to_string());
    rows
}
