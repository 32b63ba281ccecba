//! The compiler against PostgreSQL: every aggregation, operator and column
//! type, each checked against the same query written by hand in SQL.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

const SAMPLES: &str = r#"
CREATE TABLE public.samples (
  id integer PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
  num numeric(12,3), txt text, vc varchar(20), flag boolean, uid uuid, ts timestamptz,
  tsn timestamp, d date, doc jsonb);
INSERT INTO public.samples
SELECT g, (g % 7)::smallint, g * 3, g::bigint * 100000000, ((g % 13) / 4.0)::real, g / 7.0,
       round(g * 1.125, 3), 'item-' || (g % 5), 'v' || (g % 3), g % 2 = 0, md5(g::text)::uuid,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '7 hours',
       timestamp '2026-01-01' + g * interval '5 hours', date '2026-01-01' + (g % 40),
       jsonb_build_object('g', g)
FROM generate_series(1, 200) g;
UPDATE public.samples SET f8 = NULL, txt = NULL WHERE id % 17 = 0;
GRANT SELECT ON public.samples TO anon, authenticated, service_role;
"#;

async fn samples_app() -> TestApp {
    let t = test_app().await;
    t.exec(SAMPLES).await;
    t
}

async fn check(t: &TestApp, cases: &[(Value, &str)]) {
    let token = user(DEMO_USER);
    for (config, sql) in cases {
        let got = t.data(&token, config.clone()).await;
        let want = t.sql_rows(sql).await;
        assert_eq!(got, want, "\nconfig: {config}\nsql:    {sql}");
    }
}

#[tokio::test]
async fn every_aggregation_matches_hand_written_sql() {
    let t = samples_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"table": "samples"}),
            "SELECT count(*) AS value FROM samples",
        ),
        (
            json!({"table": "public.samples", "aggregation": "count"}),
            "SELECT count(*) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "count", "column": "txt"}),
            "SELECT count(txt) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "count_distinct", "column": "txt"}),
            "SELECT count(DISTINCT txt) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "count_distinct", "column": "uid"}),
            "SELECT count(DISTINCT uid) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "sum", "column": "i2"}),
            "SELECT sum(i2) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "sum", "column": "i4"}),
            "SELECT sum(i4) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "sum", "column": "i8"}),
            "SELECT sum(i8) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "sum", "column": "f4"}),
            "SELECT sum(f4) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "sum", "column": "f8"}),
            "SELECT sum(f8) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "sum", "column": "num"}),
            "SELECT sum(num) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "avg", "column": "i4"}),
            "SELECT avg(i4) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "avg", "column": "f8"}),
            "SELECT avg(f8) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "avg", "column": "num"}),
            "SELECT avg(num) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "min", "column": "ts"}),
            "SELECT min(ts) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "max", "column": "tsn"}),
            "SELECT max(tsn) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "min", "column": "d"}),
            "SELECT min(d) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "max", "column": "txt"}),
            "SELECT max(txt) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "max", "column": "num"}),
            "SELECT max(num) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregation": "min", "column": "f4"}),
            "SELECT min(f4) AS value FROM samples",
        ),
        (
            json!({"table": "samples", "aggregations": [
                {"fn": "count", "as": "n"},
                {"fn": "sum", "column": "i4", "as": "total"},
                {"fn": "avg", "column": "num", "as": "mean"},
                {"fn": "max", "column": "ts", "as": "latest"}
            ]}),
            "SELECT count(*) AS n, sum(i4) AS total, avg(num) AS mean, max(ts) AS latest FROM samples",
        ),
    ];
    check(&t, &cases).await;
}

#[tokio::test]
async fn grouping_and_time_buckets_match_hand_written_sql() {
    let t = samples_app().await;
    let mut cases: Vec<(Value, String)> = vec![
        (
            json!({"table": "samples", "groupBy": "txt"}),
            "SELECT txt, count(*) AS value FROM samples GROUP BY txt ORDER BY txt".into(),
        ),
        (
            json!({"table": "samples", "groupBy": ["flag", "vc"], "aggregation": "sum", "column": "i4"}),
            "SELECT flag, vc, sum(i4) AS value FROM samples GROUP BY flag, vc ORDER BY flag, vc"
                .into(),
        ),
        (
            json!({"table": "samples", "groupBy": "i2", "aggregation": "sum", "column": "i4", "orderBy": [{"column": "value", "direction": "desc"}], "limit": 3}),
            "SELECT i2, sum(i4) AS value FROM samples GROUP BY i2 ORDER BY value DESC LIMIT 3"
                .into(),
        ),
        (
            json!({"table": "samples", "groupBy": "vc", "orderBy": [{"column": "vc", "direction": "desc"}]}),
            "SELECT vc, count(*) AS value FROM samples GROUP BY vc ORDER BY vc DESC".into(),
        ),
    ];
    // Every groupable column type renders as PostgreSQL renders it.
    for column in [
        "i2", "i4", "i8", "f4", "f8", "num", "txt", "vc", "flag", "uid", "ts", "tsn", "d",
    ] {
        cases.push((
            json!({"table": "samples", "groupBy": column, "limit": 7}),
            format!("SELECT {column}, count(*) AS value FROM samples GROUP BY {column} ORDER BY {column} LIMIT 7"),
        ));
    }
    for granularity in ["minute", "hour", "day", "week", "month", "quarter", "year"] {
        for column in ["ts", "tsn", "d"] {
            cases.push((
                json!({"table": "samples", "timeBucket": {"column": column, "granularity": granularity}}),
                format!("SELECT date_trunc('{granularity}', {column}) AS bucket, count(*) AS value FROM samples GROUP BY 1 ORDER BY 1"),
            ));
        }
    }
    cases.push((
        json!({"table": "samples", "timeBucket": {"column": "ts", "granularity": "week"}, "groupBy": "flag", "aggregation": "avg", "column": "f8"}),
        "SELECT date_trunc('week', ts) AS bucket, flag, avg(f8) AS value FROM samples GROUP BY 1, 2 ORDER BY 1, 2".into(),
    ));
    let cases: Vec<(Value, &str)> = cases.iter().map(|(c, s)| (c.clone(), s.as_str())).collect();
    check(&t, &cases).await;
}

#[tokio::test]
async fn every_filter_operator_matches_hand_written_sql() {
    let t = samples_app().await;
    let uid1: Value = t.sql_rows("SELECT md5('1')::uuid AS u").await[0]["u"].clone();
    let uid2: Value = t.sql_rows("SELECT md5('2')::uuid AS u").await[0]["u"].clone();
    let count = |filters: Value| json!({"table": "samples", "filters": filters});
    let cases: Vec<(Value, String)> = vec![
        (
            count(json!([{"column": "i4", "op": "eq", "value": 30}])),
            "i4 = 30".into(),
        ),
        (
            count(json!([{"column": "i2", "op": "neq", "value": 3}])),
            "i2 <> 3".into(),
        ),
        (
            count(json!([{"column": "i8", "op": "gt", "value": 10000000000i64}])),
            "i8 > 10000000000".into(),
        ),
        (
            count(json!([{"column": "f8", "op": "gte", "value": 12.5}])),
            "f8 >= 12.5".into(),
        ),
        (
            count(json!([{"column": "f4", "op": "lt", "value": 1.25}])),
            "f4 < 1.25".into(),
        ),
        (
            count(json!([{"column": "num", "op": "lte", "value": 10.125}])),
            "num <= 10.125".into(),
        ),
        (
            count(json!([{"column": "txt", "op": "eq", "value": "item-3"}])),
            "txt = 'item-3'".into(),
        ),
        (
            count(json!([{"column": "vc", "op": "neq", "value": "v1"}])),
            "vc <> 'v1'".into(),
        ),
        (
            count(json!([{"column": "flag", "op": "eq", "value": true}])),
            "flag".into(),
        ),
        (
            count(json!([{"column": "uid", "op": "eq", "value": uid1}])),
            "uid = md5('1')::uuid".into(),
        ),
        (
            count(json!([{"column": "uid", "op": "in", "value": [uid1, uid2]}])),
            "uid IN (md5('1')::uuid, md5('2')::uuid)".into(),
        ),
        (
            count(json!([{"column": "ts", "op": "lt", "value": "2026-01-10T00:00:00Z"}])),
            "ts < '2026-01-10T00:00:00Z'".into(),
        ),
        (
            count(json!([{"column": "ts", "op": "gte", "value": "2026-01-20"}])),
            "ts >= '2026-01-20T00:00:00Z'".into(),
        ),
        (
            count(json!([{"column": "ts", "op": "gt", "value": "2026-01-03T05:00:00+02:00"}])),
            "ts > '2026-01-03T03:00:00Z'".into(),
        ),
        (
            count(
                json!([{"column": "tsn", "op": "between", "value": ["2026-01-02T00:00:00", "2026-01-05T12:00:00"]}]),
            ),
            "tsn BETWEEN '2026-01-02 00:00:00' AND '2026-01-05 12:00:00'".into(),
        ),
        (
            count(json!([{"column": "d", "op": "lte", "value": "2026-01-20"}])),
            "d <= '2026-01-20'".into(),
        ),
        (
            count(json!([{"column": "d", "op": "eq", "value": "2026-01-07"}])),
            "d = '2026-01-07'".into(),
        ),
        (
            count(json!([{"column": "i2", "op": "in", "value": [1, 2, 5]}])),
            "i2 IN (1, 2, 5)".into(),
        ),
        (
            count(json!([{"column": "vc", "op": "not_in", "value": ["v0", "v2"]}])),
            "vc NOT IN ('v0', 'v2')".into(),
        ),
        (
            count(json!([{"column": "txt", "op": "not_in", "value": ["item-0"]}])),
            "txt NOT IN ('item-0')".into(),
        ),
        (
            count(json!([{"column": "txt", "op": "like", "value": "item-1%"}])),
            "txt LIKE 'item-1%'".into(),
        ),
        (
            count(json!([{"column": "txt", "op": "ilike", "value": "ITEM-2%"}])),
            "txt ILIKE 'ITEM-2%'".into(),
        ),
        (
            count(
                json!([{"column": "i8", "op": "between", "value": [2000000000i64, 9000000000i64]}]),
            ),
            "i8 BETWEEN 2000000000 AND 9000000000".into(),
        ),
        (
            count(json!([{"column": "num", "op": "between", "value": [10.125, 50]}])),
            "num BETWEEN 10.125 AND 50".into(),
        ),
        (
            count(json!([{"column": "f8", "op": "is_null"}])),
            "f8 IS NULL".into(),
        ),
        (
            count(json!([{"column": "txt", "op": "not_null"}])),
            "txt IS NOT NULL".into(),
        ),
        (
            count(json!([{"column": "doc", "op": "not_null"}])),
            "doc IS NOT NULL".into(),
        ),
        (
            count(json!([{"column": "i2", "op": "in", "value": []}])),
            "false".into(),
        ),
        (
            count(json!([{"column": "i2", "op": "not_in", "value": []}])),
            "true".into(),
        ),
        (
            count(
                json!([{"or": [{"column": "i2", "op": "eq", "value": 1}, {"column": "vc", "op": "eq", "value": "v2"}]}]),
            ),
            "i2 = 1 OR vc = 'v2'".into(),
        ),
        (
            count(json!([
                {"column": "flag", "op": "eq", "value": false},
                {"or": [
                    {"and": [{"column": "i4", "op": "gt", "value": 100}, {"column": "i4", "op": "lt", "value": 300}]},
                    {"or": [{"column": "txt", "op": "is_null"}, {"column": "d", "op": "eq", "value": "2026-01-02"}]}
                ]}
            ])),
            "NOT flag AND ((i4 > 100 AND i4 < 300) OR (txt IS NULL OR d = '2026-01-02'))".into(),
        ),
        (count(json!({"vc": "v2"})), "vc = 'v2'".into()),
        (
            count(json!({"vc": ["v0", "v2"], "flag": true})),
            "vc IN ('v0', 'v2') AND flag".into(),
        ),
    ];
    let cases: Vec<(Value, String)> = cases
        .into_iter()
        .map(|(c, w)| {
            (
                c,
                format!("SELECT count(*) AS value FROM samples WHERE {w}"),
            )
        })
        .collect();
    let cases: Vec<(Value, &str)> = cases.iter().map(|(c, s)| (c.clone(), s.as_str())).collect();
    check(&t, &cases).await;
    // A filter that matches nothing is a real zero, not an error.
    let zero = t
        .data(
            &user(DEMO_USER),
            count(json!([{"column": "i4", "op": "eq", "value": -1}])),
        )
        .await;
    assert_eq!(zero, json!([{"value": 0}]));
}

#[tokio::test]
async fn runtime_filters_are_anded_onto_the_data_sources_own() {
    let t = samples_app().await;
    let reply = t
        .request(
            axum::http::Method::POST,
            "/functions/v1/widget-data",
            Some(&user(DEMO_USER)),
            Some(json!({
                "config": {"table": "samples", "groupBy": "vc", "filters": [{"column": "flag", "op": "eq", "value": true}]},
                "filters": [{"column": "i2", "op": "in", "value": [0, 1, 2]}]
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let want = t
        .sql_rows("SELECT vc, count(*) AS value FROM samples WHERE flag AND i2 IN (0, 1, 2) GROUP BY vc ORDER BY vc")
        .await;
    assert_eq!(reply.body["data"], want);
}

#[tokio::test]
async fn results_have_json_types_a_frontend_can_use() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let rows = t
        .data(&token, json!({"table": "servers", "aggregations": [
            {"fn": "count", "as": "n"}, {"fn": "avg", "column": "cpu_pct", "as": "cpu"},
            {"fn": "sum", "column": "memory_mb", "as": "mem"}, {"fn": "max", "column": "created_at", "as": "newest"}
        ]}))
        .await;
    let row = &rows[0];
    assert!(row["n"].is_i64(), "{row}");
    assert!(row["mem"].is_i64(), "{row}");
    assert!(row["cpu"].is_f64(), "{row}");
    let newest = row["newest"].as_str().expect("timestamps are strings");
    assert!(
        chrono::DateTime::parse_from_rfc3339(newest).is_ok(),
        "{newest}"
    );

    let reply = t.query(&token, json!({"table": "servers"})).await;
    let body = &reply.body;
    assert_eq!(body["cached"], false);
    assert_eq!(body["stale"], false);
    let cached_at =
        chrono::DateTime::parse_from_rfc3339(body["cached_at"].as_str().unwrap()).unwrap();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires_at - cached_at).num_seconds(), 300);
}

#[tokio::test]
async fn bad_data_sources_are_400s_that_name_the_field() {
    let t = test_app().await;
    let token = user(DEMO_USER);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"table": "nope"}), "config.table"),
        (
            json!({"table": "servers", "groupBy": "nope"}),
            "config.groupBy",
        ),
        (
            json!({"table": "servers", "aggregation": "sum", "column": "hostname"}),
            "config.column",
        ),
        (
            json!({"table": "servers", "filters": [{"column": "memory_mb", "op": "eq", "value": "lots"}]}),
            "config.filters[0].value",
        ),
        (
            json!({"table": "servers", "filters": [{"column": "status", "op": "gt", "value": 1}]}),
            "config.filters[0].value",
        ),
    ];
    for (config, field) in cases {
        let reply = t.query(&token, config.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{config}: {}",
            reply.body
        );
        let got = reply.body["details"]["field"].as_str().unwrap_or_default();
        assert!(
            got.starts_with(field),
            "{config}: field {got:?}, wanted {field:?}"
        );
    }
    // The column is named in the message of a type error.
    let reply = t
        .query(&token, json!({"table": "servers", "filters": [{"column": "memory_mb", "op": "eq", "value": "lots"}]}))
        .await;
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("memory_mb"),
        "{}",
        reply.body
    );
    // Unknown operators and fields are refused by name.
    let reply = t
        .query(&token, json!({"table": "servers", "filters": [{"column": "status", "op": "bogus", "value": 1}]}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["message"].as_str().unwrap().contains("bogus"),
        "{}",
        reply.body
    );
    let reply = t
        .query(&token, json!({"table": "servers", "colour": "red"}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["message"].as_str().unwrap().contains("colour"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_limit_above_max_rows_is_capped() {
    let t = test_app_with(&[("MAX_ROWS", "3")]).await;
    let rows = t
        .data(
            &anon(),
            json!({"table": "servers", "groupBy": "hostname", "limit": 50}),
        )
        .await;
    assert_eq!(rows.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_column_named_like_the_row_alias_still_gives_row_objects() {
    let t = test_app().await;
    t.exec(
        "CREATE TABLE public.tee (t text, n int); INSERT INTO public.tee VALUES ('a', 1), ('b', 2), ('b', 3);
         GRANT SELECT ON public.tee TO anon;",
    )
    .await;
    let rows = t
        .data(&anon(), json!({"table": "tee", "groupBy": "t", "aggregations": [{"fn": "sum", "column": "n", "as": "t2"}]}))
        .await;
    assert_eq!(rows, json!([{"t": "a", "t2": 1}, {"t": "b", "t2": 5}]));
    // Escaped wildcards reach PostgreSQL's LIKE intact.
    let rows = t
        .data(
            &anon(),
            json!({"table": "tee", "filters": [{"column": "t", "op": "like", "value": "\\%%"}]}),
        )
        .await;
    assert_eq!(rows, json!([{"value": 0}]));
}
