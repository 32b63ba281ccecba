//! Table-driven tests of the planner. No database. (The SQL each plan
//! renders to is tested beside `sql`.)

use super::fixtures::*;
use super::*;
use serde_json::{Value as Json, json};

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
        assert_eq!(
            (err.code().as_str(), err.field()),
            (code, field),
            "{json}: {err}"
        );
        assert!(!err.reason().is_empty());
    }
    let err = try_plan(f(
        json!({"column": "hostname", "op": "like", "value": "web\\"}),
    ))
    .unwrap_err();
    assert_eq!(
        (err.code().as_str(), err.field()),
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
        (err.code().as_str(), err.field()),
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

#[test]
fn an_answer_with_one_measure_has_a_total_of_the_kind_its_grouping_allows() {
    let total = |source: Json| try_plan(source).unwrap().total();
    assert_eq!(
        total(json!({"table": "servers"})),
        Total::Value("value".into())
    );
    assert_eq!(
        total(json!({"table": "servers", "aggregation": "avg", "column": "cpu_pct"})),
        Total::Value("value".into())
    );
    assert_eq!(
        total(json!({"table": "servers", "groupBy": "status"})),
        Total::Sum("value".into())
    );
    assert_eq!(
        total(
            json!({"table": "servers", "aggregations": [{"fn": "sum", "column": "memory_mb", "as": "mem"}],
            "timeBucket": {"column": "created_at", "granularity": "day"}})
        ),
        Total::Sum("mem".into())
    );
    for function in ["avg", "min", "max", "count_distinct"] {
        assert_eq!(
            total(
                json!({"table": "servers", "aggregation": function, "column": "cpu_pct", "groupBy": "region"})
            ),
            Total::Null,
            "{function}"
        );
    }
    assert_eq!(
        total(
            json!({"table": "servers", "aggregations": [{"fn": "count"}, {"fn": "avg", "column": "cpu_pct"}]})
        ),
        Total::None
    );
}
