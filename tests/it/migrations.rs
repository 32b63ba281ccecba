//! `migrations/` and `seed/` on a cluster of the test's own: several
//! databases migrate, the seed loads once, and the grants and row-level
//! security are as the service uses them.

use embedded_pg::EmbeddedPostgres;
use sqlx::{Connection, PgConnection};
use widget_data::db::{DEMO_USER_ID, connect, is_ready, migrate, seed};

#[tokio::test]
async fn migrations_apply_to_several_databases_of_one_cluster_and_seed_once() {
    let dir = std::env::temp_dir().join(format!("widget-data-db-{}", std::process::id()));
    // Also proves the URL form: sqlx connects over the unix socket.
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    let mut admin = PgConnection::connect(&pg.url("postgres")).await.unwrap();
    for db in ["one", "two"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let pool = connect(&pg.url(db), 2).await.unwrap();
        assert!(!is_ready(&pool).await.unwrap(), "not migrated yet");
        migrate(&pool).await.unwrap();
        migrate(&pool).await.unwrap();
        assert!(is_ready(&pool).await.unwrap());
        pool.close().await;
    }
    let pool = connect(&pg.url("one"), 2).await.unwrap();
    assert!(seed(&pool).await.unwrap());
    assert!(!seed(&pool).await.unwrap(), "a second seed does nothing");
    let servers: i64 = sqlx::query_scalar("SELECT count(*) FROM servers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(servers, 5000);
    let statuses: i64 = sqlx::query_scalar("SELECT count(DISTINCT status) FROM servers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(statuses, 4);
    let widgets: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.dashboard_widgets WHERE owner_id = $1::uuid")
            .bind(DEMO_USER_ID)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(widgets, 4);

    let mut tx = pool.begin().await.unwrap();
    let (_, uid): (String, Option<String>) =
        sqlx::query_as("SELECT set_config('request.jwt.claims', $1, true), auth.uid()::text")
            .bind(format!(r#"{{"sub":"{DEMO_USER_ID}"}}"#))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(uid.as_deref(), Some(DEMO_USER_ID));
    let (_, uid): (String, Option<String>) =
        sqlx::query_as("SELECT set_config('request.jwt.claims', '{\"sub\":\"not-a-uuid\"}', true), auth.uid()::text")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(uid, None);
    for claims in ["", "{}", r#"{"sub":null}"#, r#"{"role":"anon"}"#] {
        let uid: Option<String> = sqlx::query_scalar(
            "SELECT auth.uid()::text FROM (SELECT set_config('request.jwt.claims', $1, true)) s",
        )
        .bind(claims)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(uid, None, "claims {claims:?}");
    }
    tx.rollback().await.unwrap();
    // Never set in this session at all.
    let uid: Option<String> = sqlx::query_scalar("SELECT auth.uid()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(uid, None);

    // Grants and row-level security, as the service uses them.
    let other = r#"{"sub":"9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a","role":"authenticated"}"#;
    let demo = format!(r#"{{"sub":"{DEMO_USER_ID}","role":"authenticated"}}"#);
    let count = |role: &'static str, claims: String, table: &'static str| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
                .execute(&mut *tx)
                .await?;
            sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
                .bind(claims)
                .execute(&mut *tx)
                .await?;
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&mut *tx)
                    .await?;
            tx.rollback().await?;
            Ok::<i64, sqlx::Error>(n)
        }
    };
    assert_eq!(
        count("authenticated", demo.clone(), "app.dashboard_widgets")
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        count("authenticated", other.into(), "app.dashboard_widgets")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        count("authenticated", demo.clone(), "app.dashboards")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        count("service_role", "{}".into(), "app.dashboards")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        count("anon", "{}".into(), "public.servers").await.unwrap(),
        5000
    );
    assert!(
        count("anon", "{}".into(), "app.dashboards").await.is_err(),
        "anon: no grant"
    );
    assert!(
        count("authenticated", demo, "app.widget_data_cache")
            .await
            .is_err(),
        "the cache is the service's own"
    );
    pool.close().await;
    admin.close().await.unwrap();
    pg.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
