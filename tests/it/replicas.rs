//! Reads on a streaming replica (`Database::query_json_read`), on the
//! fixture of `replica`: a replica serves only what it has replayed, and a
//! lagging or failing one costs the caller nothing but the primary's time.
//!
//! Every read here says where it ran by itself: `pg_is_in_recovery()` is
//! true on the standby only.

use crate::harness::{config, service};
use crate::replica::{self, Exclusive};
use sea_query_sqlx::SqlxValues;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};
use widget_data::app::App;
use widget_data::auth::Principal;
use widget_data::db;
use widget_data::deadline::Deadline;
use widget_data::exec::{ExecError, Lsn, Served};

/// The read: where it ran, and the marks of one test (from the table
/// [`mark`] writes to), as one JSON value, as generated SQL gives one.
const READ: &str = "SELECT json_build_object(
        'in_recovery', pg_is_in_recovery(),
        'marks', (SELECT coalesce(json_agg(n ORDER BY n), '[]') FROM public.replica_marks WHERE test = $1))";

/// How long a poll for a state the system reaches by itself may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// The service's components on the fixture's primary, reading from
/// `read_urls`; `replica_marks` exists on both servers.
async fn app(rep: &Exclusive, read_urls: &str) -> Arc<App> {
    let url = rep.primary_url();
    let pool = db::connect(&url, 4).await.expect("connect");
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS public.replica_marks (test text NOT NULL, n int NOT NULL);
         GRANT SELECT ON public.replica_marks TO service_role",
    )
    .execute(&pool)
    .await
    .expect("marks table");
    let app = App::new(config(&url, &[("DATABASE_READ_URLS", read_urls)]), pool)
        .await
        .expect("app");
    rep.wait_for_replay(rep.primary_lsn().await).await;
    app
}

fn principal(app: &App) -> Principal {
    app.jwt.verify(&service()).expect("service token")
}

/// Writes mark `n` of `test` on the primary; gives the primary's LSN
/// after it.
async fn mark(rep: &Exclusive, test: &str, n: i32) -> Lsn {
    let mut conn = PgConnection::connect(&rep.primary_url()).await.unwrap();
    sqlx::query("INSERT INTO public.replica_marks VALUES ($1, $2)")
        .bind(test)
        .bind(n)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rep.primary_lsn().await
}

/// The marks of `test` as the server at `url` has them.
async fn marks_at(url: &str, test: &str) -> Vec<i32> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let marks = sqlx::query_scalar(
        "SELECT coalesce(array_agg(n ORDER BY n), '{}') FROM public.replica_marks WHERE test = $1",
    )
    .bind(test)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    marks
}

/// What a read answered: where it says it ran, and the marks it saw.
#[derive(Debug, PartialEq)]
struct Read {
    served: Served,
    in_recovery: bool,
    marks: Vec<i64>,
}

async fn read(app: &App, test: &str, caught_up_to: Option<Lsn>) -> Result<Read, ExecError> {
    let arguments = SqlxValues(sea_query::Values(vec![test.into()]));
    let deadline = Deadline::after(Duration::from_secs(10));
    let (rows, served) = app
        .db
        .query_json_read(&principal(app), deadline, READ, arguments, caught_up_to)
        .await?;
    let answer: Value = serde_json::from_str(rows.get()).expect("JSON");
    Ok(Read {
        served,
        in_recovery: answer["in_recovery"].as_bool().expect("in_recovery"),
        marks: answer["marks"]
            .as_array()
            .expect("marks")
            .iter()
            .map(|n| n.as_i64().expect("a number"))
            .collect(),
    })
}

#[tokio::test]
async fn a_replica_that_has_the_write_answers_and_the_primary_runs_none_of_it() {
    let rep = replica::exclusive().await;
    let app = app(&rep, &rep.replica_url()).await;
    let lsn = mark(&rep, "caught-up", 1).await;
    rep.wait_for_replay(lsn).await;
    let before = app.db.replicas().figures();

    let answer = read(&app, "caught-up", Some(lsn)).await.unwrap();
    assert_eq!(
        answer,
        Read {
            served: Served::Replica(0),
            in_recovery: true,
            marks: vec![1],
        }
    );
    let after = app.db.replicas().figures();
    assert_eq!(after.on_replicas, before.on_replicas + 1);
    assert_eq!(after.on_primary, before.on_primary, "{after:?}");

    // Without an LSN to be sure of, the primary answers.
    let answer = read(&app, "caught-up", None).await.unwrap();
    assert_eq!(
        (answer.served, answer.in_recovery),
        (Served::Primary, false)
    );
    assert_eq!(
        app.db.replicas().figures().on_primary,
        before.on_primary + 1
    );
}

#[tokio::test]
async fn a_replica_that_has_not_replayed_the_write_never_answers_for_it() {
    let rep = replica::exclusive().await;
    let app = app(&rep, &rep.replica_url()).await;
    let first = mark(&rep, "lag", 1).await;
    rep.wait_for_replay(first).await;
    rep.pause_replay().await;
    let second = mark(&rep, "lag", 2).await;
    assert_eq!(
        marks_at(&rep.replica_url(), "lag").await,
        [1],
        "the standby lags behind the write"
    );
    let before = app.db.replicas().figures();

    let started = Instant::now();
    let answer = read(&app, "lag", Some(second)).await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        answer,
        Read {
            served: Served::Primary,
            in_recovery: false,
            marks: vec![1, 2],
        }
    );
    // The lag is waited out briefly, not until the 10 s deadline.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let after = app.db.replicas().figures();
    assert_eq!(after.refused_for_lag, before.refused_for_lag + 1);
    assert_eq!(after.on_primary, before.on_primary + 1);
    assert_eq!(after.healthy, 1, "lagging is not failing");

    // What the replica has replayed it still serves.
    let answer = read(&app, "lag", Some(first)).await.unwrap();
    assert_eq!((answer.served, answer.marks), (Served::Replica(0), vec![1]));

    rep.resume_replay().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = read(&app, "lag", Some(second)).await.unwrap();
        assert_eq!(answer.marks, [1, 2], "{answer:?}");
        if answer.served == Served::Replica(0) {
            assert!(answer.in_recovery);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never answered again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stopped_replica_is_skipped_until_its_probe_sees_it_back() {
    let rep = replica::exclusive().await;
    let app = app(&rep, &rep.replica_url()).await;
    let lsn = mark(&rep, "stopped", 1).await;
    rep.wait_for_replay(lsn).await;
    // A pooled connection to the replica, which the stop will break.
    let answer = read(&app, "stopped", Some(lsn)).await.unwrap();
    assert_eq!(answer.served, Served::Replica(0));

    rep.stop_replica().await;
    let before = app.db.replicas().figures();
    let answer = read(&app, "stopped", Some(lsn)).await.unwrap();
    assert_eq!(
        answer,
        Read {
            served: Served::Primary,
            in_recovery: false,
            marks: vec![1],
        }
    );
    let figures = app.db.replicas().figures();
    assert_eq!(figures.failures, before.failures + 1);
    assert_eq!(figures.healthy, 0, "marked down at once");
    // Known to be down: not tried again while it stays so.
    for _ in 0..3 {
        let answer = read(&app, "stopped", Some(lsn)).await.unwrap();
        assert_eq!(answer.served, Served::Primary);
    }
    assert_eq!(app.db.replicas().figures().failures, before.failures + 1);

    // Only now: a probe looking first would have spared the read above
    // its failure. Down, the replica is probed every half second.
    let probes = app.spawn_replica_probes();
    rep.start_replica().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = read(&app, "stopped", Some(lsn)).await.unwrap();
        assert_eq!(answer.marks, [1]);
        if answer.served == Served::Replica(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica was never used again: {:?}",
            app.db.replicas().figures()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.db.replicas().figures().healthy, 1);
    for probe in probes {
        probe.abort();
    }
}

#[tokio::test]
async fn two_replicas_take_turns() {
    let rep = replica::exclusive().await;
    // The same standby twice: two pools, two breakers, two places.
    let urls = format!("{},{}", rep.replica_url(), rep.replica_url());
    let app = app(&rep, &urls).await;
    let lsn = mark(&rep, "turns", 1).await;
    rep.wait_for_replay(lsn).await;
    let mut served = Vec::new();
    for _ in 0..4 {
        served.push(read(&app, "turns", Some(lsn)).await.unwrap().served);
    }
    assert_eq!(
        served,
        [
            Served::Replica(0),
            Served::Replica(1),
            Served::Replica(0),
            Served::Replica(1)
        ]
    );
    // One known to be down is left out of the turns.
    app.db.replicas().get(0).unwrap().failed();
    for _ in 0..2 {
        let answer = read(&app, "turns", Some(lsn)).await.unwrap();
        assert_eq!(answer.served, Served::Replica(1));
    }
}

#[tokio::test]
async fn a_callers_own_error_on_a_replica_is_returned_and_not_retried() {
    let rep = replica::exclusive().await;
    let app = app(&rep, &rep.replica_url()).await;
    let lsn = rep.primary_lsn().await;
    let before = app.db.replicas().figures();
    // anon has no GRANT on the marks table.
    let anon = app.jwt.verify(&crate::harness::anon()).unwrap();
    let arguments = SqlxValues(sea_query::Values(vec!["anon".into()]));
    let outcome = app
        .db
        .query_json_read(
            &anon,
            Deadline::after(Duration::from_secs(10)),
            READ,
            arguments,
            Some(lsn),
        )
        .await;
    assert!(
        matches!(outcome, Err(ExecError::PermissionDenied { .. })),
        "{outcome:?}"
    );
    let after = app.db.replicas().figures();
    assert_eq!(after.on_primary, before.on_primary, "not retried");
    assert_eq!(after.failures, before.failures, "not the replica's fault");
    assert_eq!(after.healthy, 1);
}
