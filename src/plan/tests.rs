//! Table-driven tests of the planner and the SQL it leads to, plus a
//! property test over arbitrary data sources. No database.

use super::*;
use crate::schema::{Column, RelationKind, Table};
use crate::sql;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

fn col(name: &str, pg_type: &str) -> Column {
    Column {
        name: name.into(),
        pg_type: pg_type.into(),
        kind: ColumnKind::from_pg_type(pg_type),
        nullable: true,
    }
}

fn schema() -> SchemaCache {
    let servers = Table {
        schema: "public".into(),
        name: "servers".into(),
        kind: RelationKind::Table,
        rls_enabled: false,
        reads: vec![("public".into(), "servers".into())],
        change_tracked: true,
        grants: Default::default(),
        columns: vec![
            col("id", "int8"),
            col("hostname", "text"),
            col("status", "text"),
            col("region", "text"),
            col("cpu_pct", "float8"),
            col("memory_mb", "int4"),
            col("price", "numeric"),
            col("active", "bool"),
            col("owner", "uuid"),
            col("created_at", "timestamptz"),
            col("seen", "timestamp"),
            col("day", "date"),
            col("meta", "jsonb"),
            col("tags", "_text"),
            col("we\"ird", "text"),
        ],
    };
    let notes = Table {
        schema: "public".into(),
        name: "notes".into(),
        kind: RelationKind::Table,
        rls_enabled: true,
        reads: vec![("public".into(), "notes".into())],
        change_tracked: true,
        grants: Default::default(),
        columns: vec![col("id", "int4"), col("body", "text")],
    };
    SchemaCache::new(vec!["public".into()], [servers, notes])
}

fn source(json: Json) -> DataSource {
    serde_json::from_value(json).expect("a well-formed data source")
}

fn try_plan(json: Json) -> Result<QueryPlan, PlanError> {
    plan(&source(json), &[], &schema(), &Limits::default())
}

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
fn equivalent_spellings_give_equal_plans() {
    let pairs = [
        (
            json!({"table": "servers"}),
            json!({"table": "public.servers", "aggregation": "count"}),
        ),
        (
            json!({"table": "servers", "groupBy": "status"}),
            json!({"table": "servers", "group_by": ["status"]}),
        ),
        (
            json!({"table": "servers", "filters": {"status": "Active"}}),
            json!({"table": "servers", "filters": [{"column": "status", "op": "eq", "value": "Active"}]}),
        ),
        (
            json!({"table": "servers", "filters": {"status": ["a", "b"]}}),
            json!({"table": "servers", "filters": [{"column": "status", "op": "in", "value": ["a", "b"]}]}),
        ),
        (
            json!({"table": "servers", "groupBy": "status", "orderBy": [{"column": "status"}]}),
            json!({"table": "servers", "groupBy": "status", "orderBy": [{"column": "status", "direction": "asc"}]}),
        ),
        (
            json!({"table": "servers", "filters": [{"column": "created_at", "op": "gt", "value": "2026-01-01"}]}),
            json!({"table": "servers", "filters": [{"column": "created_at", "op": "gt", "value": "2026-01-01T00:00:00Z"}]}),
        ),
    ];
    for (a, b) in pairs {
        assert_eq!(
            try_plan(a.clone()).unwrap(),
            try_plan(b.clone()).unwrap(),
            "{a} vs {b}"
        );
    }
    assert_ne!(
        try_plan(json!({"table": "servers", "filters": {"status": "A"}})).unwrap(),
        try_plan(json!({"table": "servers", "filters": {"status": "B"}})).unwrap()
    );
}

#[test]
fn filters_in_another_order_have_one_canonical_form() {
    let pairs = [
        (
            json!({"table": "servers", "filters": [
                {"column": "status", "op": "eq", "value": "Active"},
                {"column": "cpu_pct", "op": "gt", "value": 50}]}),
            json!({"table": "servers", "filters": [
                {"column": "cpu_pct", "op": "gt", "value": 50},
                {"column": "status", "op": "eq", "value": "Active"}]}),
        ),
        (
            json!({"table": "servers", "filters": [{"and": [{"column": "status", "op": "eq", "value": "Active"}]}]}),
            json!({"table": "servers", "filters": {"status": "Active"}}),
        ),
        (
            json!({"table": "servers", "filters": {"status": ["Ready", "Active", "Ready"]}}),
            json!({"table": "servers", "filters": {"status": ["Active", "Ready"]}}),
        ),
        (
            json!({"table": "servers", "filters": [{"or": [
                {"column": "region", "op": "eq", "value": "eu"},
                {"and": [{"column": "cpu_pct", "op": "lt", "value": 1},
                         {"column": "memory_mb", "op": "not_in", "value": [3, 1, 2]}]}]}]}),
            json!({"table": "servers", "filters": [{"or": [
                {"and": [{"column": "memory_mb", "op": "not_in", "value": [1, 2, 3]},
                         {"column": "cpu_pct", "op": "lt", "value": 1}]},
                {"column": "region", "op": "eq", "value": "eu"}]}]}),
        ),
    ];
    for (a, b) in pairs {
        let (a_plan, b_plan) = (try_plan(a.clone()).unwrap(), try_plan(b.clone()).unwrap());
        assert_eq!(a_plan.canonical(), b_plan.canonical(), "{a} vs {b}");
    }
    // Order is normalised, meaning is not: an OR is not an AND.
    let and = try_plan(json!({"table": "servers", "filters": [
        {"column": "status", "op": "eq", "value": "A"}, {"column": "region", "op": "eq", "value": "b"}]}));
    let or = try_plan(json!({"table": "servers", "filters": [{"or": [
        {"column": "status", "op": "eq", "value": "A"}, {"column": "region", "op": "eq", "value": "b"}]}]}));
    assert_ne!(and.unwrap().canonical(), or.unwrap().canonical());
}

#[test]
fn a_value_of_the_wrong_shape_is_named_by_column_and_operator() {
    let err = try_plan(json!({"table": "servers", "filters": [
        {"column": "status", "op": "in", "value": "Active"}]}))
    .unwrap_err();
    assert_eq!(err.field(), "config.filters[0].value");
    assert_eq!(
        err.to_string(),
        "config.filters[0].value: column status: operator in takes a list of values, e.g. [\"a\", \"b\"]"
    );
    let err = try_plan(json!({"table": "servers", "filters": [
        {"column": "cpu_pct", "op": "between", "value": [1]}]}))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("column cpu_pct: operator between takes exactly [low, high]"),
        "{err}"
    );
}

#[test]
fn limits_default_and_are_capped() {
    let limits = Limits {
        default_limit: 7,
        max_rows: 50,
    };
    let p = |l: Json| {
        plan(
            &source(json!({"table": "servers", "limit": l})),
            &[],
            &schema(),
            &limits,
        )
    };
    assert_eq!(
        plan(
            &source(json!({"table": "servers"})),
            &[],
            &schema(),
            &limits
        )
        .unwrap()
        .limit(),
        7
    );
    assert_eq!(p(json!(20)).unwrap().limit(), 20);
    assert_eq!(p(json!(5000)).unwrap().limit(), 50);
    assert_eq!(p(json!(0)).unwrap_err().code(), "invalid_limit");
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
        (err.code(), err.field()),
        ("unknown_column", "filters[0].column")
    );
}

#[test]
fn the_rls_flag_follows_the_table() {
    assert!(
        !try_plan(json!({"table": "servers"}))
            .unwrap()
            .reads_rls_table()
    );
    assert!(
        try_plan(json!({"table": "notes"}))
            .unwrap()
            .reads_rls_table()
    );
    assert_eq!(
        try_plan(json!({"table": "notes"})).unwrap().tables(),
        [("public".to_owned(), "notes".to_owned())]
    );
}

#[test]
fn each_mistake_is_refused_with_its_code_and_field() {
    let f = |filter: Json| json!({"table": "servers", "filters": [filter]});
    let deep = json!({"or": [{"or": [{"or": [{"or": [{"or": [{"column": "id", "op": "eq", "value": 1}]}]}]}]}]});
    let many: Vec<Json> = (0..101)
        .map(|i| json!({"column": "id", "op": "eq", "value": i}))
        .collect();
    let cases: Vec<(Json, &str, &str)> = vec![
        (json!({"table": "nope"}), "unknown_table", "config.table"),
        (
            json!({"table": "other.servers"}),
            "unknown_table",
            "config.table",
        ),
        (
            json!({"table": "servers", "aggregation": "sum"}),
            "missing_column",
            "config.column",
        ),
        (
            json!({"table": "servers", "aggregation": "sum", "column": "nope"}),
            "unknown_column",
            "config.column",
        ),
        (
            json!({"table": "servers", "aggregation": "sum", "column": "hostname"}),
            "aggregation_not_allowed",
            "config.column",
        ),
        (
            json!({"table": "servers", "aggregation": "avg", "column": "created_at"}),
            "aggregation_not_allowed",
            "config.column",
        ),
        (
            json!({"table": "servers", "aggregation": "min", "column": "owner"}),
            "aggregation_not_allowed",
            "config.column",
        ),
        (
            json!({"table": "servers", "aggregation": "max", "column": "active"}),
            "aggregation_not_allowed",
            "config.column",
        ),
        (
            json!({"table": "servers", "aggregation": "count_distinct", "column": "meta"}),
            "aggregation_not_allowed",
            "config.column",
        ),
        (
            json!({"table": "servers", "aggregation": "count", "aggregations": [{"fn": "count"}]}),
            "conflicting_fields",
            "config.aggregations",
        ),
        (
            json!({"table": "servers", "aggregations": []}),
            "conflicting_fields",
            "config.aggregations",
        ),
        (
            json!({"table": "servers", "aggregations": [{"fn": "count", "as": "bad name"}]}),
            "invalid_name",
            "config.aggregations[0].as",
        ),
        (
            json!({"table": "servers", "aggregations": [{"fn": "sum", "column": "x"}]}),
            "unknown_column",
            "config.aggregations[0].column",
        ),
        (
            json!({"table": "servers", "aggregations": [{"fn": "count"}, {"fn": "count"}]}),
            "duplicate_name",
            "config.aggregations",
        ),
        (
            json!({"table": "servers", "groupBy": "value"}),
            "unknown_column",
            "config.groupBy",
        ),
        (
            json!({"table": "servers", "groupBy": ["status", "nope"]}),
            "unknown_column",
            "config.groupBy[1]",
        ),
        (
            json!({"table": "servers", "groupBy": ["status", "status"]}),
            "duplicate_name",
            "config.groupBy[1]",
        ),
        (
            json!({"table": "servers", "groupBy": "meta"}),
            "column_not_allowed",
            "config.groupBy",
        ),
        (
            json!({"table": "servers", "groupBy": "tags"}),
            "column_not_allowed",
            "config.groupBy",
        ),
        (
            json!({"table": "servers", "aggregations": [{"fn": "count", "as": "status"}], "groupBy": "status"}),
            "duplicate_name",
            "config.aggregations",
        ),
        (
            json!({"table": "servers", "timeBucket": {"column": "status", "granularity": "day"}}),
            "column_not_allowed",
            "config.timeBucket.column",
        ),
        (
            json!({"table": "servers", "timeBucket": {"column": "nope", "granularity": "day"}}),
            "unknown_column",
            "config.timeBucket.column",
        ),
        (
            json!({"table": "servers", "groupBy": "status", "orderBy": [{"column": "region"}]}),
            "invalid_order_by",
            "config.orderBy[0].column",
        ),
        (
            json!({"table": "servers", "orderBy": [{"column": "bucket"}]}),
            "invalid_order_by",
            "config.orderBy[0].column",
        ),
        (
            f(json!({"column": "nope", "op": "eq", "value": 1})),
            "unknown_column",
            "config.filters[0].column",
        ),
        (
            f(json!({"column": "memory_mb", "op": "eq", "value": "1"})),
            "type_mismatch",
            "config.filters[0].value",
        ),
        (
            f(json!({"column": "memory_mb", "op": "eq", "value": 1.5})),
            "type_mismatch",
            "config.filters[0].value",
        ),
        (
            f(json!({"column": "status", "op": "eq", "value": null})),
            "invalid_value",
            "config.filters[0].value",
        ),
        (
            f(json!({"column": "status", "op": "eq"})),
            "invalid_value",
            "config.filters[0].value",
        ),
        (
            f(json!({"column": "status", "op": "bogus", "value": 1})),
            "invalid_filter",
            "config.filters[0].op",
        ),
        (
            f(json!({"column": "status", "op": "eq", "value": "a", "extra": 1})),
            "invalid_filter",
            "config.filters[0]",
        ),
        (
            f(json!({"op": "eq", "value": "a"})),
            "invalid_filter",
            "config.filters[0].column",
        ),
        (
            f(json!("status = 1")),
            "invalid_filter",
            "config.filters[0]",
        ),
        (
            f(json!({"column": "active", "op": "gt", "value": true})),
            "operator_not_allowed",
            "config.filters[0].op",
        ),
        (
            f(json!({"column": "memory_mb", "op": "like", "value": "1%"})),
            "operator_not_allowed",
            "config.filters[0].op",
        ),
        (
            f(json!({"column": "meta", "op": "eq", "value": {}})),
            "operator_not_allowed",
            "config.filters[0].op",
        ),
        (
            f(json!({"column": "status", "op": "in", "value": "a"})),
            "invalid_value",
            "config.filters[0].value",
        ),
        (
            f(json!({"column": "memory_mb", "op": "in", "value": [1, "2"]})),
            "type_mismatch",
            "config.filters[0].value[1]",
        ),
        (
            f(json!({"column": "memory_mb", "op": "between", "value": [1]})),
            "invalid_value",
            "config.filters[0].value",
        ),
        (
            f(json!({"column": "status", "op": "is_null", "value": "x"})),
            "invalid_value",
            "config.filters[0].value",
        ),
        (f(json!({"or": []})), "invalid_filter", "config.filters[0]"),
        (
            f(json!({"or": [{"column": "x", "op": "eq", "value": 1}]})),
            "unknown_column",
            "config.filters[0].or[0].column",
        ),
        (
            f(deep),
            "filters_too_deep",
            "config.filters[0].or[0].or[0].or[0].or[0]",
        ),
        (
            json!({"table": "servers", "filters": many}),
            "too_many_filters",
            "config.filters[100]",
        ),
        (
            json!({"table": "servers", "filters": {"nope": 1}}),
            "unknown_column",
            "config.filters",
        ),
        (
            json!({"table": "servers", "filters": {"status": 1}}),
            "type_mismatch",
            "config.filters.status.value",
        ),
    ];
    for (json, code, field) in cases {
        let err = try_plan(json.clone()).expect_err(&json.to_string());
        assert_eq!((err.code(), err.field()), (code, field), "{json}: {err}");
        assert!(!err.reason().is_empty());
    }
    let err = try_plan(f(
        json!({"column": "hostname", "op": "like", "value": "web\\"}),
    ))
    .unwrap_err();
    assert_eq!(
        (err.code(), err.field()),
        ("invalid_value", "config.filters[0].value")
    );
    assert!(
        try_plan(f(
            json!({"column": "hostname", "op": "like", "value": "web\\\\"})
        ))
        .is_ok()
    );
    // PostgreSQL takes at most 65,535 parameters: 11 lists of 1000 is refused.
    let lists: Vec<Json> = (0..11)
        .map(|_| json!({"column": "id", "op": "in", "value": (0..1000).collect::<Vec<i64>>()}))
        .collect();
    let err = try_plan(json!({"table": "servers", "filters": lists})).unwrap_err();
    assert_eq!(
        (err.code(), err.field()),
        ("too_many_values", "config.filters[10].value")
    );
    let long: Vec<i64> = (0..1001).collect();
    let err = try_plan(f(json!({"column": "id", "op": "in", "value": long}))).unwrap_err();
    assert_eq!(err.code(), "too_many_values");
}

#[test]
fn malformed_shapes_are_refused_by_the_wire_types_with_the_bad_name() {
    let cases = [
        (json!({"table": "servers", "colour": "red"}), "colour"),
        (
            json!({"table": "servers", "aggregation": "median"}),
            "median",
        ),
        (
            json!({"table": "servers", "timeBucket": {"column": "created_at", "granularity": "fortnight"}}),
            "fortnight",
        ),
        (
            json!({"table": "servers", "groupBy": "status", "orderBy": [{"column": "status", "direction": "up"}]}),
            "up",
        ),
        (
            json!({"table": "servers", "aggregations": [{"fn": "count", "label": "x"}]}),
            "label",
        ),
    ];
    for (json, name) in cases {
        let err = serde_json::from_value::<DataSource>(json.clone()).unwrap_err();
        assert!(err.to_string().contains(name), "{json}: {err}");
    }
}

#[test]
fn a_saved_widgets_errors_can_be_reported_under_its_own_root() {
    let err = try_plan(json!({"table": "nope"}))
        .unwrap_err()
        .with_source_root("data_source");
    assert_eq!(err.field(), "data_source.table");
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
