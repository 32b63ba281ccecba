//! The statements of `/rest/v1`: reads, inserts, updates and deletes on the
//! dashboard tables, each giving its rows as one JSON array.
//!
//! Identifiers come from the schema cache (through `rest`), values are bind
//! parameters cast to the column's type; filters are rendered by the same
//! code as widget queries' (`condition`).

use super::{TooManyParameters, checked, condition};
use crate::plan::Direction;
use crate::rest::{Delete, Insert, Read, Resolution, SCHEMA, Update};
use crate::schema::Table;
use sea_query::{
    Alias, Expr, Func, NullOrdering, OnConflict, Order, PostgresQueryBuilder, Query, SimpleExpr,
};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn table_ref(table: &Table) -> (Alias, Alias) {
    (Alias::new(SCHEMA), Alias::new(&table.name))
}

/// `rows` (a statement's text) as one json array of `select`'s columns.
fn as_json(rows_cte: &str, select: &[String]) -> String {
    let columns = select
        .iter()
        .map(|c| quoted(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH w AS ({rows_cte}) \
         SELECT coalesce(array_to_json(array_agg(r.*)), '[]'::json) FROM (SELECT {columns} FROM w) r"
    )
}

/// A JSON value as a bind parameter of the column's type: its text (JSON
/// text for json columns), cast by PostgreSQL, which names a bad value.
fn value(table: &Table, column: &str, v: &serde_json::Value) -> SimpleExpr {
    let pg_type = table.column(column).map_or("text", |c| c.pg_type.as_str());
    let text: Option<String> = match v {
        serde_json::Value::Null => None,
        v if pg_type == "json" || pg_type == "jsonb" => Some(v.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    };
    Func::cast_as(Expr::val(text), Alias::new(pg_type)).into()
}

/// The page's rows, as one JSON array.
pub fn read(table: &Table, r: &Read) -> (String, SqlxValues) {
    let (rows, values) = page(table, r).build_sqlx(PostgresQueryBuilder);
    (format!("SELECT {ROWS_AS_JSON} FROM ({rows}) r"), values)
}

/// `coalesce(array_to_json(array_agg(r.*)), '[]'::json)` over rows `r`.
const ROWS_AS_JSON: &str = "coalesce(array_to_json(array_agg(r.*)), '[]'::json)";

/// The page's rows and the number of rows the filters match in the whole
/// table (`Prefer: count=...`), in one statement so that both come from
/// the same snapshot under the same role and row policies:
/// `{"rows": [...], "total": n}`.
pub fn read_counted(table: &Table, r: &Read) -> (String, SqlxValues) {
    let mut rows = Query::select();
    rows.expr(Expr::cust(ROWS_AS_JSON))
        .from_subquery(page(table, r), Alias::new("r"));
    let mut total = Query::select();
    total.expr(Expr::cust("count(*)")).from(table_ref(table));
    if let Some(f) = &r.filter {
        total.cond_where(condition(f));
    }
    let mut q = Query::select();
    q.expr(Func::cust(Alias::new("json_build_object")).args([
        Expr::cust("'rows'"),
        SimpleExpr::SubQuery(None, Box::new(rows.into())),
        Expr::cust("'total'"),
        SimpleExpr::SubQuery(None, Box::new(total.into())),
    ]));
    q.build_sqlx(PostgresQueryBuilder)
}

/// The page a read asks for: `select`'s columns of the filtered rows, in
/// order, `limit` of them from `offset`.
fn page(table: &Table, r: &Read) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.from(table_ref(table));
    for c in &r.select {
        q.column(Alias::new(c));
    }
    if let Some(f) = &r.filter {
        q.cond_where(condition(f));
    }
    for o in &r.order {
        let order = match o.direction {
            Direction::Asc => Order::Asc,
            Direction::Desc => Order::Desc,
        };
        match o.nulls_first {
            Some(true) => q.order_by_with_nulls(Alias::new(&o.column), order, NullOrdering::First),
            Some(false) => q.order_by_with_nulls(Alias::new(&o.column), order, NullOrdering::Last),
            None => q.order_by(Alias::new(&o.column), order),
        };
    }
    q.limit(r.limit).offset(r.offset);
    q
}

pub fn insert(table: &Table, i: &Insert) -> Result<(String, SqlxValues), TooManyParameters> {
    let mut q = Query::insert();
    q.into_table(table_ref(table))
        .columns(i.columns.iter().map(Alias::new));
    for row in &i.rows {
        let exprs: Vec<SimpleExpr> = i
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| match v {
                Some(v) => value(table, c, v),
                None => Expr::cust("DEFAULT"),
            })
            .collect();
        q.values_panic(exprs);
    }
    let Some(upsert) = &i.on_conflict else {
        q.returning_all();
        let (sql, values) = q.build_sqlx(PostgresQueryBuilder);
        return checked(as_json(&sql, &i.select), values);
    };
    let mut on_conflict = OnConflict::columns(upsert.key.iter().map(Alias::new));
    match upsert.resolution {
        Resolution::Ignore => {
            on_conflict.do_nothing();
        }
        Resolution::Merge => {
            // Only the columns sent change; with none but the key's, the
            // key is set to itself so that the row is still returned (and
            // still passes the UPDATE policies).
            let update = if upsert.update.is_empty() {
                &upsert.key
            } else {
                &upsert.update
            };
            on_conflict.update_columns(update.iter().map(Alias::new));
            if table.column("updated_at").is_some() && !i.columns.iter().any(|c| c == "updated_at")
            {
                on_conflict.value(Alias::new("updated_at"), Expr::cust("now()"));
            }
        }
    }
    q.on_conflict(on_conflict);
    // `xmax` is 0 in a row version this statement inserted, and not in
    // one it updated: how PostgREST-style clients learn whether anything
    // was created (201) or only merged (200).
    q.returning(Query::returning().exprs([Expr::cust("*"), Expr::cust("xmax")]));
    let (sql, values) = q.build_sqlx(PostgresQueryBuilder);
    checked(upserted_json(&sql, &i.select), values)
}

/// An upsert's rows (`select`'s columns) and how many were inserted, as
/// `{"rows": [...], "inserted": n}`.
fn upserted_json(rows_cte: &str, select: &[String]) -> String {
    let columns = select
        .iter()
        .map(|c| format!("w.{}", quoted(c)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH w AS ({rows_cte}) \
         SELECT json_build_object(\
           'rows', coalesce((SELECT array_to_json(array_agg(r.*)) FROM (SELECT {columns} FROM w) r), '[]'::json), \
           'inserted', (SELECT count(*) FROM w WHERE w.xmax::text = '0'))"
    )
}

pub fn update(table: &Table, u: &Update) -> Result<(String, SqlxValues), TooManyParameters> {
    let mut q = Query::update();
    q.table(table_ref(table));
    let mut set: Vec<(Alias, SimpleExpr)> = u
        .set
        .iter()
        .map(|(c, v)| (Alias::new(c), value(table, c, v)))
        .collect();
    if table.column("updated_at").is_some() && !u.set.iter().any(|(c, _)| c == "updated_at") {
        set.push((Alias::new("updated_at"), Expr::cust("now()")));
    }
    q.values(set)
        .cond_where(condition(&u.filter))
        .returning_all();
    let (sql, values) = q.build_sqlx(PostgresQueryBuilder);
    checked(as_json(&sql, &u.select), values)
}

pub fn delete(table: &Table, d: &Delete) -> Result<(String, SqlxValues), TooManyParameters> {
    let mut q = Query::delete();
    q.from_table(table_ref(table))
        .cond_where(condition(&d.filter))
        .returning_all();
    let (sql, values) = q.build_sqlx(PostgresQueryBuilder);
    checked(as_json(&sql, &d.select), values)
}

/// Advisory lock class of per-user quota checks (beside the cache's
/// writer and watcher classes, `cache::watch`).
const QUOTA_LOCK: i32 = 1_464_139_779;

/// Serialises the caller's inserts into `table` until the transaction
/// ends, so that two concurrent inserts cannot both see room for one more
/// row. Keyed by table and `auth.uid()`; other users never wait.
pub fn lock_own_rows(table: &Table) -> (String, SqlxValues) {
    let key = format!("{SCHEMA}.{}:", table.name);
    let sql = format!(
        "SELECT count(*) FROM (SELECT pg_advisory_xact_lock({QUOTA_LOCK}, \
         hashtext($1 || coalesce(auth.uid()::text, '')))) l"
    );
    (sql, SqlxValues(sea_query::Values(vec![key.into()])))
}

/// How many rows of `table` the caller sees: under the ownership
/// policies, the rows they own.
pub fn count_own_rows(table: &Table) -> String {
    format!(
        "SELECT count(*) FROM {}.{}",
        quoted(SCHEMA),
        quoted(&table.name)
    )
}

#[cfg(test)]
mod tests;
