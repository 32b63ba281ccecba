//! The PostgREST subset, parsed and rendered without a database.

use super::*;
use crate::schema::{Column, RelationKind};
use crate::sql;

fn widgets() -> Table {
    let col = |name: &str, pg_type: &str| Column {
        name: name.into(),
        pg_type: pg_type.into(),
        kind: ColumnKind::from_pg_type(pg_type),
        nullable: !matches!(name, "id" | "dashboard_id" | "title"),
    };
    Table {
        schema: "app".into(),
        name: "dashboard_widgets".into(),
        kind: RelationKind::Table,
        rls_enabled: true,
        reads: vec![],
        change_tracked: false,
        grants: Default::default(),
        columns: vec![
            col("id", "uuid"),
            col("dashboard_id", "uuid"),
            col("title", "text"),
            col("data_source", "jsonb"),
            col("refresh_interval", "int4"),
            col("updated_at", "timestamptz"),
        ],
    }
}

fn params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn a_supabase_js_select_becomes_one_filtered_ordered_page() {
    let t = widgets();
    let r = read(
        &t,
        &params("select=id,title&dashboard_id=eq.5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d&refresh_interval=gte.60&order=title.desc.nullslast&limit=5&offset=10"),
        None,
    )
    .unwrap();
    assert_eq!(r.select, ["id", "title"]);
    assert_eq!((r.limit, r.offset), (5, 10));
    let (sql, _) = sql::rest::read(&t, &r);
    assert_eq!(
        sql,
        r#"SELECT coalesce(array_to_json(array_agg(r.*)), '[]'::json) FROM (SELECT "id", "title" FROM "app"."dashboard_widgets" WHERE "dashboard_id" = $1 AND "refresh_interval" >= $2 ORDER BY "title" DESC NULLS LAST LIMIT $3 OFFSET $4) r"#
    );
}

#[test]
fn in_lists_is_null_and_range_headers() {
    let t = widgets();
    let r = read(
        &t,
        &params(r#"title=in.(a,"b,c")&refresh_interval=is.null"#),
        range("0-9").unwrap(),
    )
    .unwrap();
    assert_eq!((r.limit, r.offset), (10, 0));
    assert_eq!(
        range("5-").unwrap(),
        Some(Range {
            offset: 5,
            limit: None
        })
    );
    for unsatisfiable in ["9-0", "0-18446744073709551615", "9223372036854775808-"] {
        assert!(range(unsatisfiable).is_err(), "{unsatisfiable}");
    }
    // Not a range of rows at all: ignored, as HTTP allows.
    for ignored in ["", "x-1", "bytes=0-9", "-5", "1"] {
        assert_eq!(range(ignored), Ok(None), "{ignored}");
    }
    let (sql, _) = sql::rest::read(&t, &r);
    assert!(
        sql.contains(r#"WHERE "title" IN ($1, $2) AND "refresh_interval" IS NULL"#),
        "{sql}"
    );
    assert_eq!(split_list(r#"a,"b,c",d"#), ["a", "b,c", "d"]);
}

#[test]
fn bad_requests_name_what_is_wrong() {
    let t = widgets();
    let field = |q: &str| read(&t, &params(q), None).err().unwrap().field().to_owned();
    assert_eq!(field("nope=eq.1"), "query.nope");
    assert_eq!(field("select=id,nope"), "query.select");
    assert_eq!(field("title=between.1"), "query.title");
    assert_eq!(
        field("refresh_interval=eq.soon"),
        "query.refresh_interval.value"
    );
    assert_eq!(field("order=title.sideways"), "query.order");
    assert_eq!(field("limit=-1"), "query.limit");
    assert_eq!(field("select=*,dashboards(*)"), "query.select");
    // JSON columns cannot be compared.
    assert!(field("data_source=eq.x").starts_with("query.data_source"));
}

#[test]
fn writes_need_a_filter_and_known_columns() {
    let t = widgets();
    let body = serde_json::json!({"title": "x"});
    assert_eq!(update(&t, &[], &body).err().unwrap().field(), "query");
    assert_eq!(delete(&t, &[]).err().unwrap().field(), "query");
    let bad = serde_json::json!([{"title": "x"}, {"nope": 1}]);
    assert_eq!(insert(&t, &[], &bad).err().unwrap().field(), "body[1].nope");
}

#[test]
fn an_array_insert_fills_missing_keys_with_defaults() {
    let t = widgets();
    let body =
        serde_json::json!([{"title": "a", "data_source": {"table": "servers"}}, {"title": "b"}]);
    let i = insert(&t, &[], &body).unwrap();
    // In key order, as the body's objects have them.
    assert_eq!(i.columns, ["data_source", "title"]);
    let (sql, _) = sql::rest::insert(&t, &i).unwrap();
    assert!(
        sql.starts_with(r#"WITH w AS (INSERT INTO "app"."dashboard_widgets" ("data_source", "title") VALUES (CAST($1 AS jsonb), CAST($2 AS text)), (DEFAULT, CAST($3 AS text)) RETURNING *)"#),
        "{sql}"
    );
}

#[test]
fn an_update_stamps_updated_at() {
    let t = widgets();
    let u = update(
        &t,
        &params("id=eq.5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d"),
        &serde_json::json!({"title": "y"}),
    )
    .unwrap();
    let (sql, _) = sql::rest::update(&t, &u).unwrap();
    assert!(
        sql.contains(r#"SET "title" = CAST($1 AS text), "updated_at" = now() WHERE "id" = $2"#),
        "{sql}"
    );
}

#[test]
fn every_comparison_operator_renders_its_sql_operator() {
    let t = widgets();
    for (op, sql_op) in [
        ("eq", "="),
        ("neq", "<>"),
        ("gt", ">"),
        ("gte", ">="),
        ("lt", "<"),
        ("lte", "<="),
    ] {
        let r = read(&t, &params(&format!("refresh_interval={op}.60")), None).unwrap();
        let (sql, _) = sql::rest::read(&t, &r);
        assert!(
            sql.contains(&format!(r#"WHERE "refresh_interval" {sql_op} $1"#)),
            "{op}: {sql}"
        );
    }
    let r = read(
        &t,
        &params("refresh_interval=not.is.null&title=ilike.*board*"),
        None,
    )
    .unwrap();
    let (sql, values) = sql::rest::read(&t, &r);
    assert!(
        sql.contains(r#""refresh_interval" IS NOT NULL AND ("title" ILIKE $1)"#),
        "{sql}"
    );
    assert!(format!("{values:?}").contains("%board%"), "{values:?}");
}
