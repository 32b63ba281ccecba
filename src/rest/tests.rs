//! The PostgREST subset, parsed without a database. (What it renders to is
//! tested beside `sql::rest`.)

use super::fixtures::*;
use super::*;

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
fn a_quoted_list_item_keeps_its_commas() {
    assert_eq!(split_list(r#"a,"b,c",d"#), ["a", "b,c", "d"]);
}

#[test]
fn an_upsert_key_must_be_a_unique_constraint_of_the_table() {
    let t = widgets();
    let body = serde_json::json!({"title": "a"});
    let no_constraint = upsert(&t, &params("on_conflict=title"), &body, Resolution::Merge)
        .err()
        .expect("title is not unique");
    assert_eq!(no_constraint.field(), "query.on_conflict");
    let unknown = upsert(&t, &params("on_conflict=nope"), &body, Resolution::Merge)
        .err()
        .expect("no such column");
    assert_eq!(unknown.field(), "query.on_conflict");
    let empty = upsert(&t, &params("on_conflict=id,"), &body, Resolution::Merge)
        .err()
        .expect("an empty name");
    assert_eq!(empty.field(), "query.on_conflict");

    let on_pk = upsert(&t, &params("on_conflict=id"), &body, Resolution::Merge).unwrap();
    let conflict = on_pk.on_conflict.expect("an upsert");
    assert_eq!(conflict.key, ["id"]);
    assert_eq!(conflict.update, ["title"]);
    let default = upsert(&t, &[], &body, Resolution::Ignore).unwrap();
    assert_eq!(
        default.on_conflict.expect("an upsert").key,
        ["id"],
        "the primary key by default"
    );
}

#[test]
fn a_column_named_twice_in_columns_is_inserted_once() {
    let t = widgets();
    let body = serde_json::json!([{"title": "a"}]);
    let i = insert(&t, &params(r#"columns="title",title"#), &body).unwrap();
    assert_eq!(i.columns, ["title"]);
}
