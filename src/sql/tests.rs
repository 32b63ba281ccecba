//! Table-driven tests of the SQL that plans render to, plus a property
//! test over arbitrary data sources. No database.

use crate::plan::fixtures::*;
use crate::plan::*;
use crate::schema::SchemaCache;
use crate::sql;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

fn sql_of(json: Json) -> String {
    sql::debug_sql(&try_plan(json.clone()).unwrap_or_else(|e| panic!("{json}: {e}")))
}

const WRAP_START: &str =
    r#"SELECT coalesce(array_to_json(array_agg(t.*)), '[]'::json) FROM (SELECT "#;

/// The inner select of the rendered SQL, for compact expectations.
fn inner(json: Json) -> String {
    let sql = sql_of(json);
    let rest = sql
        .strip_prefix(WRAP_START)
        .expect("wrapped in an array aggregate");
    rest.strip_suffix(r#") AS "t""#)
        .expect("aliased t")
        .to_owned()
}

#[test]
fn every_aggregation_renders_as_its_sql_function() {
    let cases = [
        (
            json!({"table": "servers"}),
            r#"COUNT(*) AS "value" FROM "public"."servers" LIMIT 1000"#,
        ),
        (
            json!({"table": "servers", "aggregation": "count", "column": "region"}),
            r#"COUNT("region") AS "value" FROM "public"."servers" LIMIT 1000"#,
        ),
        (
            json!({"table": "servers", "aggregation": "count_distinct", "column": "region"}),
            r#"COUNT(DISTINCT "region") AS "value" FROM "public"."servers" LIMIT 1000"#,
        ),
        (
            json!({"table": "servers", "aggregation": "sum", "column": "memory_mb"}),
            r#"SUM("memory_mb") AS "value" FROM "public"."servers" LIMIT 1000"#,
        ),
        (
            json!({"table": "servers", "aggregation": "avg", "column": "cpu_pct"}),
            r#"AVG("cpu_pct") AS "value" FROM "public"."servers" LIMIT 1000"#,
        ),
        (
            json!({"table": "servers", "aggregation": "min", "column": "created_at"}),
            r#"MIN("created_at") AS "value" FROM "public"."servers" LIMIT 1000"#,
        ),
        (
            json!({"table": "servers", "aggregation": "max", "column": "hostname"}),
            r#"MAX("hostname") AS "value" FROM "public"."servers" LIMIT 1000"#,
        ),
    ];
    for (json, want) in cases {
        assert_eq!(inner(json.clone()), want, "{json}");
    }
}

#[test]
fn grouping_bucketing_several_measures_and_ordering_render_as_expected() {
    assert_eq!(
        inner(json!({"table": "servers", "groupBy": "status"})),
        r#""status" AS "status", COUNT(*) AS "value" FROM "public"."servers" GROUP BY "status" ORDER BY "status" ASC LIMIT 1000"#
    );
    assert_eq!(
        inner(
            json!({"table": "servers", "aggregation": "avg", "column": "cpu_pct", "groupBy": "region"})
        ),
        r#""region" AS "region", AVG("cpu_pct") AS "value" FROM "public"."servers" GROUP BY "region" ORDER BY "region" ASC LIMIT 1000"#
    );
    assert_eq!(
        inner(
            json!({"table": "servers", "timeBucket": {"column": "created_at", "granularity": "day"}})
        ),
        r#"date_trunc('day', "created_at") AS "bucket", COUNT(*) AS "value" FROM "public"."servers" GROUP BY date_trunc('day', "created_at") ORDER BY date_trunc('day', "created_at") ASC LIMIT 1000"#
    );
    assert_eq!(
        inner(
            json!({"table": "servers", "groupBy": ["region", "status"], "aggregations": [
            {"fn": "count", "as": "n"}, {"fn": "max", "column": "cpu_pct"}
        ], "orderBy": [{"column": "n", "direction": "desc"}], "limit": 5})
        ),
        r#""region" AS "region", "status" AS "status", COUNT(*) AS "n", MAX("cpu_pct") AS "max_cpu_pct" FROM "public"."servers" GROUP BY "region", "status" ORDER BY "n" DESC LIMIT 5"#
    );
}

#[test]
fn every_operator_renders_with_its_value_bound_as_a_parameter() {
    let cases = [
        (
            json!({"column": "status", "op": "eq", "value": "Active"}),
            r#""status" = $1"#,
            1,
        ),
        (
            json!({"column": "status", "op": "neq", "value": "Active"}),
            r#""status" <> $1"#,
            1,
        ),
        (
            json!({"column": "cpu_pct", "op": "gt", "value": 50}),
            r#""cpu_pct" > $1"#,
            1,
        ),
        (
            json!({"column": "memory_mb", "op": "gte", "value": 4096}),
            r#""memory_mb" >= $1"#,
            1,
        ),
        (
            json!({"column": "created_at", "op": "lt", "value": "2026-01-01"}),
            r#""created_at" < $1"#,
            1,
        ),
        (
            json!({"column": "day", "op": "lte", "value": "2026-01-01"}),
            r#""day" <= $1"#,
            1,
        ),
        (
            json!({"column": "price", "op": "eq", "value": 10.125}),
            r#""price" = CAST($1 AS numeric)"#,
            1,
        ),
        (
            json!({"column": "status", "op": "in", "value": ["a", "b"]}),
            r#""status" IN ($1, $2)"#,
            2,
        ),
        (
            json!({"column": "status", "op": "not_in", "value": ["a"]}),
            r#""status" NOT IN ($1)"#,
            1,
        ),
        (
            json!({"column": "hostname", "op": "like", "value": "web%"}),
            r#""hostname" LIKE $1"#,
            1,
        ),
        (
            json!({"column": "hostname", "op": "ilike", "value": "WEB%"}),
            r#""hostname" ILIKE $1"#,
            1,
        ),
        (
            json!({"column": "memory_mb", "op": "between", "value": [1, 2]}),
            r#""memory_mb" BETWEEN $1 AND $2"#,
            2,
        ),
        (
            json!({"column": "cpu_pct", "op": "is_null"}),
            r#""cpu_pct" IS NULL"#,
            0,
        ),
        (
            json!({"column": "meta", "op": "not_null"}),
            r#""meta" IS NOT NULL"#,
            0,
        ),
        (
            json!({"column": "status", "op": "in", "value": []}),
            "FALSE",
            0,
        ),
        (
            json!({"column": "status", "op": "not_in", "value": []}),
            "TRUE",
            0,
        ),
    ];
    for (filter, want, n_values) in cases {
        let p = try_plan(json!({"table": "servers", "filters": [filter.clone()]})).unwrap();
        let (text, values) = sql::build(&p);
        assert!(
            text.contains(&format!("WHERE {want} LIMIT")),
            "{filter}: {text}"
        );
        // The filter's values, then the LIMIT.
        assert_eq!(values.0.0.len(), n_values + 1, "{filter}");
    }
}

#[test]
fn groups_nest_with_their_parentheses() {
    let p = try_plan(json!({"table": "servers", "filters": [
        {"column": "active", "op": "eq", "value": true},
        {"or": [
            {"and": [{"column": "cpu_pct", "op": "gt", "value": 1}, {"column": "cpu_pct", "op": "lt", "value": 2}]},
            {"column": "status", "op": "is_null"}
        ]}
    ]}))
    .unwrap();
    let (text, values) = sql::build(&p);
    assert!(
        text.contains(
            r#"WHERE "active" = $1 AND (("cpu_pct" > $2 AND "cpu_pct" < $3) OR "status" IS NULL)"#
        ),
        "{text}"
    );
    assert_eq!(values.0.0.len(), 3 + 1, "three values and the limit");
}

#[test]
fn identifiers_with_quotes_are_escaped() {
    let text = sql_of(json!({"table": "servers", "groupBy": "we\"ird"}));
    assert!(text.contains(r#""we""ird" AS "we""ird""#), "{text}");
}

#[test]
fn runtime_filters_are_anded_and_named_by_their_own_path() {
    let rt = [Filter(
        json!({"column": "region", "op": "eq", "value": "eu"}),
    )];
    let p = plan(
        &source(json!({"table": "servers", "filters": {"status": "A"}})),
        &rt,
        &schema(),
        &Limits::default(),
    )
    .unwrap();
    assert!(sql::debug_sql(&p).contains(r#"WHERE "status" = 'A' AND "region" = 'eu'"#));
    let bad = [Filter(json!({"column": "nope", "op": "eq", "value": 1}))];
    let err = plan(
        &source(json!({"table": "servers"})),
        &bad,
        &schema(),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        (err.code().as_str(), err.field()),
        ("unknown_column", "filters[0].column")
    );
}

// --- property: any data source is an error or safe SQL --------------------
//
// Mostly plausible input, so that many cases get through the planner and
// the SQL checks run; hostile names and values mixed in.

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("we\"ird".to_owned()),
        Just("x\"; DROP TABLE servers; --".to_owned()),
        Just("pg_sleep(10)".to_owned()),
        Just("bucket".to_owned()),
        Just("value".to_owned()),
        "[a-z_\"';() -]{0,12}",
    ]
}

fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["status", "region", "hostname", "cpu_pct", "memory_mb", "created_at", "day", "active", "price"])
            .prop_map(str::to_owned),
        1 => hostile(),
    ]
}

fn filters() -> impl Strategy<Value = Json> {
    let plausible = prop_oneof![
        Just(json!({"column": "status", "op": "eq", "value": "Active"})),
        Just(
            json!({"column": "status", "op": "in", "value": ["Active", "'; SELECT pg_sleep(10); --"]})
        ),
        Just(json!({"column": "hostname", "op": "ilike", "value": "web%"})),
        Just(json!({"column": "cpu_pct", "op": "between", "value": [10, 90.5]})),
        Just(json!({"column": "price", "op": "gte", "value": 10.125})),
        Just(json!({"column": "created_at", "op": "lt", "value": "2026-01-02T03:04:05Z"})),
        Just(json!({"column": "day", "op": "not_null"})),
        Just(json!({"column": "active", "op": "eq", "value": true})),
        any::<i64>().prop_map(|n| json!({"column": "memory_mb", "op": "neq", "value": n})),
        "[a-zA-Z0-9%_'\";-]{0,10}"
            .prop_map(|s| json!({"column": "region", "op": "eq", "value": s})),
    ];
    let hostile_leaf = (
        names(),
        prop::sample::select(vec!["eq", "gt", "like", "in", "is_null", "nope"]),
        any::<i64>(),
    )
        .prop_map(|(c, op, v)| json!({"column": c, "op": op, "value": v}));
    let leaf = prop_oneof![5 => plausible, 1 => hostile_leaf];
    leaf.prop_recursive(4, 16, 3, |inner| {
        (prop::bool::ANY, prop::collection::vec(inner, 1..3)).prop_map(|(or, items)| {
            if or {
                json!({ "or": items })
            } else {
                json!({ "and": items })
            }
        })
    })
}

fn data_sources() -> impl Strategy<Value = (Json, Vec<Json>)> {
    let aggs = prop_oneof![
        4 => Just(("count", None)),
        2 => Just(("avg", Some("cpu_pct".to_owned()))),
        1 => Just(("max", Some("created_at".to_owned()))),
        1 => Just(("count_distinct", Some("region".to_owned()))),
        1 => (prop::sample::select(vec!["sum", "min", "count"]), names()).prop_map(|(f, c)| (f, Some(c))),
    ];
    (
        prop_oneof![6 => Just("servers".to_owned()), 2 => Just("public.servers".to_owned()), 1 => Just("notes".to_owned()), 1 => hostile()],
        aggs,
        prop::collection::vec(names(), 0..3),
        prop::option::weighted(0.3, prop_oneof![3 => Just("created_at".to_owned()), 1 => names()]),
        prop::collection::vec(filters(), 0..3),
        prop::collection::vec(filters(), 0..2),
        prop::option::weighted(0.3, (prop_oneof![Just("value".to_owned()), Just("bucket".to_owned()), names()], prop::bool::ANY)),
        proptest::option::of(-5i64..20_000),
    )
        .prop_map(|(table, (f, c), group, bucket, filters, runtime, order, limit)| {
            let mut ds = json!({"table": table, "aggregation": f, "groupBy": group, "filters": filters});
            if let Some(c) = c {
                ds["column"] = json!(c);
            }
            if let Some(b) = bucket {
                ds["timeBucket"] = json!({"column": b, "granularity": "week"});
            }
            if let Some((c, desc)) = order {
                ds["orderBy"] = json!([{"column": c, "direction": if desc { "desc" } else { "asc" }}]);
            }
            if let Some(l) = limit {
                ds["limit"] = json!(l);
            }
            (ds, runtime)
        })
}

/// The double-quoted identifiers of a SQL text, unescaped.
fn quoted_identifiers(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => in_string = !in_string,
            '"' if !in_string => {
                let mut ident = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            ident.push('"');
                        }
                        Some('"') | None => break,
                        Some(ch) => ident.push(ch),
                    }
                }
                out.push(ident);
            }
            _ => {}
        }
    }
    out
}

/// Checks one generated data source; `Ok(true)` when it became SQL.
fn check(ds: &Json, runtime: &[Json], schema: &SchemaCache) -> Result<bool, TestCaseError> {
    let Ok(source) = serde_json::from_value::<DataSource>(ds.clone()) else {
        return Ok(false);
    };
    let runtime: Vec<Filter> = runtime.iter().cloned().map(Filter).collect();
    let Ok(p) = plan(&source, &runtime, schema, &Limits::default()) else {
        return Ok(false);
    };
    let (text, values) = sql::build(&p);
    let table = schema.resolve(&source.table).unwrap();
    let mut allowed: Vec<String> = vec![
        table.schema.clone(),
        table.name.clone(),
        "t".into(),
        BUCKET.into(),
    ];
    allowed.extend(table.columns.iter().map(|c| c.name.clone()));
    allowed.extend(p.measures().iter().map(|m| m.name.clone()));
    for ident in quoted_identifiers(&text) {
        prop_assert!(
            allowed.contains(&ident),
            "identifier {ident:?} not from the schema in {text}"
        );
    }
    // No value ever reaches the text: only placeholders, one per value,
    // and the only string literals are our own constants.
    let n = values.0.0.len();
    let placeholders = (1..=n).filter(|i| text.contains(&format!("${i}"))).count();
    prop_assert_eq!(placeholders, n, "{}", text);
    let next = format!("${}", n + 1);
    prop_assert!(!text.contains(&next), "{}", text);
    let literals: Vec<&str> = text.split('\'').skip(1).step_by(2).collect();
    for lit in literals {
        prop_assert!(
            [
                "[]", "minute", "hour", "day", "week", "month", "quarter", "year"
            ]
            .contains(&lit),
            "string literal {lit:?} in {text}"
        );
    }
    Ok(true)
}

#[test]
fn any_data_source_is_an_error_or_sql_with_known_identifiers_and_bound_values() {
    let schema = schema();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let planned = std::cell::Cell::new(0);
    runner
        .run(&data_sources(), |(ds, runtime)| {
            if check(&ds, &runtime, &schema)? {
                planned.set(planned.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // A property that holds because nothing got through would prove nothing.
    assert!(
        planned.get() >= 64,
        "only {} of 256 became SQL",
        planned.get()
    );
}
