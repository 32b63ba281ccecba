//! The PostgREST subset's SQL, rendered without a database.

use crate::rest::fixtures::*;
use crate::rest::*;
use crate::sql;

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

#[test]
fn a_counted_read_counts_the_filtered_rows_beside_the_page_in_one_statement() {
    let t = widgets();
    let r = read(
        &t,
        &params("select=id&refresh_interval=gte.60&order=title&limit=2&offset=4"),
        None,
    )
    .unwrap();
    let (sql, values) = sql::rest::read_counted(&t, &r);
    assert_eq!(
        sql,
        r#"SELECT json_build_object('rows', (SELECT coalesce(array_to_json(array_agg(r.*)), '[]'::json) FROM (SELECT "id" FROM "app"."dashboard_widgets" WHERE "refresh_interval" >= $1 ORDER BY "title" ASC LIMIT $2 OFFSET $3) AS "r"), 'total', (SELECT count(*) FROM "app"."dashboard_widgets" WHERE "refresh_interval" >= $4))"#
    );
    // Every value is a parameter: the filter's twice, the page's bounds once.
    assert_eq!(values.0.0.len(), 4);
}

#[test]
fn a_merge_upsert_updates_only_the_columns_sent_outside_the_key() {
    let mut t = widgets();
    t.unique_keys.push(crate::schema::UniqueKey {
        columns: vec!["dashboard_id".into(), "title".into()],
        primary: false,
    });
    let body = serde_json::json!([
        {"dashboard_id": "5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d", "title": "a", "refresh_interval": 60}
    ]);
    let i = upsert(
        &t,
        &params(
            r#"on_conflict=title,dashboard_id&columns="dashboard_id","title","refresh_interval""#,
        ),
        &body,
        Resolution::Merge,
    )
    .unwrap();
    let (sql, values) = sql::rest::insert(&t, &i).unwrap();
    assert!(
        sql.contains(r#"VALUES (CAST($1 AS uuid), CAST($2 AS text), CAST($3 AS int4)) ON CONFLICT ("dashboard_id", "title") DO UPDATE SET "refresh_interval" = "excluded"."refresh_interval", "updated_at" = now() RETURNING *, xmax)"#),
        "{sql}"
    );
    assert_eq!(values.0.0.len(), 3, "every value is a parameter");
}

#[test]
fn an_ignore_upsert_on_the_primary_key_does_nothing_on_conflict() {
    let t = widgets();
    let body = serde_json::json!({"id": "5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d", "title": "a"});
    let i = upsert(&t, &[], &body, Resolution::Ignore).unwrap();
    let (sql, _) = sql::rest::insert(&t, &i).unwrap();
    assert!(
        sql.contains(r#"ON CONFLICT ("id") DO NOTHING RETURNING *, xmax)"#),
        "{sql}"
    );
}
