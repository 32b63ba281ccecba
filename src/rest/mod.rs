//! `/rest/v1/<table>`: the part of PostgREST's protocol supabase-js speaks,
//! for the dashboard tables of the `app` schema. Pure: a request's query
//! string and body in, a validated `Read`, `Insert`, `Update` or `Delete`
//! out. Filters go through the widget-data planner's filter machinery, so
//! columns come only from the schema cache and values are typed per column.
//!
//! Supported: `select=*|a,b`, `col=op.value` with `eq`, `neq`, `gt`, `gte`,
//! `lt`, `lte`, `like`, `ilike`, `like(any)`/`(all)` and `ilike(any)`/`(all)`
//! lists, `in.(a,"b,c")`, `is.null`, `cs`/`cd` on jsonb, `not.` before any
//! of them; `or=(…)` / `and=(…)` logic groups, nested (`[not.]or(…)`), with
//! double-quoted values; `order=a.asc,b.desc[.nullsfirst|.nullslast]`,
//! `limit`, `offset`, the `Range` header, `columns=` on inserts, and upserts
//! (`Prefer: resolution=merge-duplicates|ignore-duplicates` with
//! `on_conflict=`, which must name a primary key or unique constraint).
//! Embedded resources and other operators are refused with 400 naming the
//! parameter.

use crate::plan::{Cond, Direction, FilterPlanner, PlanError, PlanErrorKind, Test};
use crate::schema::{ColumnKind, Table};
use serde_json::{Map, Value};

/// The schema the tables live in; not exposed to widget queries.
pub const SCHEMA: &str = "app";

/// The tables served, by the name clients use.
pub const TABLES: &[&str] = &[
    "dashboards",
    "dashboard_widgets",
    "widget_data_sources",
    "user_filter_preferences",
    "global_filter_defaults",
];

/// Largest page a `/rest/v1` read returns, whatever `limit` says (not the
/// `MAX_ROWS` setting, which caps widget queries).
pub const MAX_PAGE_ROWS: u64 = 1000;

/// Query parameters that are not filters.
const RESERVED: &[&str] = &[
    "select",
    "order",
    "limit",
    "offset",
    "columns",
    "on_conflict",
];

pub struct Read {
    pub select: Vec<String>,
    pub filter: Option<Cond>,
    pub order: Vec<Order>,
    pub limit: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub column: String,
    pub direction: Direction,
    /// `Some(true)`: NULLS FIRST.
    pub nulls_first: Option<bool>,
}

/// Rows to insert: the columns named (in order) and, per row, each
/// column's value (`None`: the column's default).
pub struct Insert {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<Value>>>,
    pub select: Vec<String>,
    /// An upsert's `ON CONFLICT`; `None`: a plain insert.
    pub on_conflict: Option<OnConflict>,
}

/// What an upsert does with a row whose key is taken (`Prefer:
/// resolution=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `merge-duplicates`: update the existing row with the values sent.
    Merge,
    /// `ignore-duplicates`: keep the existing row, insert nothing.
    Ignore,
}

/// `ON CONFLICT (<key>) DO UPDATE SET <update> | DO NOTHING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnConflict {
    pub resolution: Resolution,
    /// The columns of a primary key or unique constraint of the table.
    pub key: Vec<String>,
    /// With `Merge`: the columns sent that are not in `key`, set from the
    /// row proposed (`EXCLUDED`).
    pub update: Vec<String>,
}

pub struct Update {
    pub set: Vec<(String, Value)>,
    pub filter: Cond,
    pub select: Vec<String>,
}

pub struct Delete {
    pub filter: Cond,
    pub select: Vec<String>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError::new(field, PlanErrorKind::InvalidValue(message.into()))
}

fn unknown_column(table: &Table, column: &str, field: String) -> PlanError {
    PlanError::new(
        field,
        PlanErrorKind::UnknownColumn {
            table: table.name.clone(),
            column: column.to_owned(),
        },
    )
}

/// `select`: every column, or the listed ones.
pub fn select(table: &Table, params: &[(String, String)]) -> Result<Vec<String>, PlanError> {
    let Some((_, list)) = params.iter().find(|(k, _)| k == "select") else {
        return Ok(all_columns(table));
    };
    if list.trim().is_empty() {
        return Err(invalid("query.select", "expected * or column names"));
    }
    let mut columns = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            columns.extend(all_columns(table));
        } else if item.contains('(') || item.contains(':') || item.contains("->") {
            return Err(invalid(
                "query.select",
                format!("{item:?}: only column names and * are supported"),
            ));
        } else if table.column(item).is_some() {
            columns.push(item.to_owned());
        } else {
            return Err(unknown_column(table, item, "query.select".into()));
        }
    }
    if columns.is_empty() {
        return Ok(all_columns(table));
    }
    columns.dedup();
    Ok(columns)
}

fn all_columns(table: &Table) -> Vec<String> {
    table.columns.iter().map(|c| c.name.clone()).collect()
}

/// Every `col=op.value` parameter, ANDed; `None` when there are none.
pub fn filter(table: &Table, params: &[(String, String)]) -> Result<Option<Cond>, PlanError> {
    Ok(filters(table, params)?.0)
}

/// The filters ANDed, and whether any of them can leave a row out: a
/// filter true of every row (`not.is.null` on a NOT NULL column, a like
/// pattern of only `*`) narrows nothing.
fn filters(table: &Table, params: &[(String, String)]) -> Result<(Option<Cond>, bool), PlanError> {
    let mut planner = FilterPlanner::new(table);
    let mut all = Vec::new();
    let mut narrows = false;
    for (key, raw) in params {
        if RESERVED.contains(&key.as_str()) {
            continue;
        }
        let field = format!("query.{key}");
        let (cond, narrowing) = match key.as_str() {
            "or" | "and" | "not.or" | "not.and" => {
                let negated = key.starts_with("not.");
                let any = key.ends_with("or");
                logic(table, &mut planner, any, negated, raw, &field, 1)?
            }
            _ => leaf(table, &mut planner, key, raw, &field, false)?,
        };
        narrows |= narrowing;
        all.push(cond);
    }
    let cond = match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Cond::All(all)),
    };
    Ok((cond, narrows))
}

/// Logic groups (`or=(…)`, `and=(…)`, `not.or(…)` inside) nest at most
/// this deep.
const MAX_LOGIC_DEPTH: usize = 8;

/// A logic group's `(item,item,…)`: items are `column.[not.]op.value` or
/// nested `[not.]or(…)` / `[not.]and(…)`. Any of them (`any`) or all must
/// hold; `negated` puts `NOT` before the group. Also whether it can leave
/// a row out: an `or` when each of its items can, an `and` when one can.
fn logic(
    table: &Table,
    planner: &mut FilterPlanner,
    any: bool,
    negated: bool,
    text: &str,
    field: &str,
    depth: usize,
) -> Result<(Cond, bool), PlanError> {
    if depth > MAX_LOGIC_DEPTH {
        return Err(invalid(
            field,
            format!("logic groups nest at most {MAX_LOGIC_DEPTH} deep"),
        ));
    }
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| {
            invalid(
                field,
                format!("{text:?}: expected a list in parentheses: (a.eq.1,b.gt.2)"),
            )
        })?;
    let items = split_top(inner)
        .ok_or_else(|| invalid(field, format!("{text:?}: unbalanced parentheses or quotes")))?;
    if items.iter().all(|i| i.is_empty()) {
        return Err(invalid(field, "an empty logic group"));
    }
    let mut conds = Vec::new();
    let mut narrowing = Vec::new();
    for item in items {
        // A nested group is `[not.]or(…)` / `[not.]and(…)`; a leaf negates
        // after its column: `column.not.op.value`.
        let (not, rest) = match item.strip_prefix("not.") {
            Some(rest) => (true, rest),
            None => (false, item.as_str()),
        };
        let nested = [("or(", true), ("and(", false)]
            .into_iter()
            .find_map(|(prefix, any)| {
                rest.starts_with(prefix)
                    .then(|| (any, &rest[prefix.len() - 1..]))
            });
        let (cond, narrows) = match nested {
            Some((any, group)) => logic(table, planner, any, not, group, field, depth + 1)?,
            None => {
                let (column, raw) = item.split_once('.').ok_or_else(|| {
                    invalid(
                        field,
                        format!("{item:?}: expected <column>.<operator>.<value>"),
                    )
                })?;
                leaf(table, planner, column, raw, field, true)?
            }
        };
        conds.push(cond);
        narrowing.push(narrows);
    }
    let narrows = if any {
        narrowing.iter().all(|n| *n)
    } else {
        narrowing.iter().any(|n| *n)
    };
    let group = if any {
        Cond::Any(conds)
    } else {
        Cond::All(conds)
    };
    Ok(match negated {
        true => (Cond::Not(Box::new(group)), true),
        false => (group, narrows),
    })
}

/// `text` split at the commas outside parentheses and double quotes;
/// `None` when they do not balance.
fn split_top(text: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    let mut current = String::new();
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.checked_sub(1)?,
            ',' if !quoted && depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    (depth == 0 && !quoted).then(|| {
        items.push(current);
        items
    })
}

/// A value written in double quotes inside a logic group, unquoted (a
/// backslash escapes the next character).
fn unquoted(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    c => out.push(c),
                }
            }
            out
        }
        None => text.to_owned(),
    }
}

/// One filter on `key`: `[not.]op.value`. Also whether it can leave a row
/// out (a filter true of every row, `not.is.null` on a NOT NULL column or
/// a like pattern of only `*`, narrows nothing). `in_group`: written
/// inside a logic group, where a value may be double-quoted.
fn leaf(
    table: &Table,
    planner: &mut FilterPlanner,
    key: &str,
    raw: &str,
    field: &str,
    in_group: bool,
) -> Result<(Cond, bool), PlanError> {
    let column = table
        .column(key)
        .ok_or_else(|| unknown_column(table, key, field.to_owned()))?;
    let (negated, rest) = match raw.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (op, value) = rest
        .split_once('.')
        .ok_or_else(|| invalid(field, format!("{raw:?}: expected <operator>.<value>")))?;
    let scalar = |v: &str| if in_group { unquoted(v) } else { v.to_owned() };
    // `not.is.null` is `not_null`; any other negation is NOT before the test.
    if (negated, op, value) == (true, "is", "null") {
        let cond = planner.filter(&serde_json::json!({"column": key, "op": "not_null"}), field)?;
        return Ok((cond, column.nullable));
    }
    let (cond, narrows) = match (op, value) {
        ("is", "null") => (
            planner.filter(&serde_json::json!({"column": key, "op": "is_null"}), field)?,
            true,
        ),
        ("in", list) => {
            let inner = list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(|| invalid(field, "in takes a list: in.(a,b)"))?;
            let items: Vec<Value> = split_list(inner)
                .into_iter()
                .map(|v| typed_text(column.kind, &v))
                .collect();
            let json = serde_json::json!({"column": key, "op": "in", "value": items});
            (planner.filter(&json, field)?, true)
        }
        ("eq" | "neq" | "gt" | "gte" | "lt" | "lte", v) => {
            let json = serde_json::json!({"column": key, "op": op, "value": typed_text(column.kind, &scalar(v))});
            (planner.filter(&json, field)?, true)
        }
        ("like" | "ilike", pattern) => {
            // PostgREST writes LIKE's `%` as `*` in URLs.
            let pattern = scalar(pattern);
            let narrows = column.nullable || pattern.chars().any(|c| c != '*' && c != '%');
            let json =
                serde_json::json!({"column": key, "op": op, "value": pattern.replace('*', "%")});
            (planner.filter(&json, field)?, narrows)
        }
        ("like(any)" | "like(all)" | "ilike(any)" | "ilike(all)", list) => {
            let inner = list
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .ok_or_else(|| {
                    invalid(
                        field,
                        format!("{op} takes a list in braces: {op}.{{a*,b*}}"),
                    )
                })?;
            let (like, any) = op
                .split_once('(')
                .map_or(("like", true), |(l, q)| (l, q == "any)"));
            let mut conds = Vec::new();
            for pattern in split_list(inner) {
                let json = serde_json::json!({"column": key, "op": like, "value": pattern.replace('*', "%")});
                conds.push(planner.filter(&json, field)?);
            }
            if conds.is_empty() {
                return Err(invalid(field, format!("{op} takes at least one pattern")));
            }
            (
                if any {
                    Cond::Any(conds)
                } else {
                    Cond::All(conds)
                },
                true,
            )
        }
        ("cs" | "cd", v) => {
            if column.pg_type != "jsonb" {
                return Err(invalid(
                    field,
                    format!("{op} applies to jsonb columns; {key} is {}", column.pg_type),
                ));
            }
            let json: Value = serde_json::from_str(&scalar(v)).map_err(|e| {
                invalid(field, format!("{op} takes JSON ({op}.{{\"key\":1}}): {e}"))
            })?;
            let test = if op == "cs" {
                Test::Contains(json)
            } else {
                Test::ContainedBy(json)
            };
            (
                Cond::Test {
                    column: column.name.clone(),
                    test,
                },
                true,
            )
        }
        (op, _) => return Err(invalid(field, format!("unsupported operator {op:?}"))),
    };
    Ok(match negated {
        true => (Cond::Not(Box::new(cond)), true),
        false => (cond, narrows),
    })
}

/// A value from a URL, as the JSON the planner types per column.
fn typed_text(kind: ColumnKind, text: &str) -> Value {
    let number = || serde_json::from_str::<serde_json::Number>(text).ok();
    match kind {
        ColumnKind::Integer | ColumnKind::Float | ColumnKind::Numeric => {
            number().map_or_else(|| Value::String(text.to_owned()), Value::Number)
        }
        ColumnKind::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        _ => Value::String(text.to_owned()),
    }
}

/// `a,"b,c",d` -> `a`, `b,c`, `d`.
fn split_list(inner: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => current.extend(chars.next()),
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !inner.is_empty() {
        items.push(current);
    }
    items
}

/// The largest offset or row number PostgreSQL takes (a bigint).
const MAX_COUNT: u64 = i64::MAX as u64;

/// A count from a URL or header: a whole number PostgreSQL can take.
fn count(text: &str, field: &str) -> Result<u64, PlanError> {
    let n: u64 = text
        .parse()
        .map_err(|_| invalid(field, format!("{text:?} is not a whole number")))?;
    if n > MAX_COUNT {
        return Err(invalid(field, format!("{text} is larger than {MAX_COUNT}")));
    }
    Ok(n)
}

fn number_param(params: &[(String, String)], name: &str) -> Result<Option<u64>, PlanError> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| count(v, &format!("query.{name}")))
        .transpose()
}

/// The rows a `Range: <from>-<to>` header asks for (`to` may be left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub limit: Option<u64>,
}

/// Parses a `Range` header. One not of the `<from>-<to>` form is ignored,
/// as HTTP lets a server do (`None`); one of that form that no rows could
/// satisfy is an error saying why.
pub fn range(header: &str) -> Result<Option<Range>, String> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let Some((from, to)) = header.trim().split_once('-') else {
        return Ok(None);
    };
    if !digits(from) || !(to.is_empty() || digits(to)) {
        return Ok(None);
    }
    let bound = |text: &str| {
        text.parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_COUNT)
            .ok_or_else(|| format!("{header:?}: bounds are whole numbers up to {MAX_COUNT}"))
    };
    let offset = bound(from)?;
    let limit = match to {
        "" => None,
        to => {
            let to = bound(to)?;
            if to < offset {
                return Err(format!("{header:?}: the range ends before it starts"));
            }
            Some(to - offset + 1)
        }
    };
    Ok(Some(Range { offset, limit }))
}

/// A read: `select`, filters, `order`, `limit`/`offset` or `Range`.
pub fn read(
    table: &Table,
    params: &[(String, String)],
    range: Option<Range>,
) -> Result<Read, PlanError> {
    let mut order = Vec::new();
    if let Some((_, list)) = params.iter().find(|(k, _)| k == "order") {
        if list.trim().is_empty() {
            return Err(invalid(
                "query.order",
                "expected <column>[.asc|.desc][.nullsfirst|.nullslast], comma-separated",
            ));
        }
        for item in list.split(',').filter(|s| !s.is_empty()) {
            let mut parts = item.split('.');
            let column = parts.next().unwrap_or_default();
            if table.column(column).is_none() {
                return Err(unknown_column(table, column, "query.order".into()));
            }
            let mut o = Order {
                column: column.to_owned(),
                direction: Direction::Asc,
                nulls_first: None,
            };
            for modifier in parts {
                match modifier {
                    "asc" => o.direction = Direction::Asc,
                    "desc" => o.direction = Direction::Desc,
                    "nullsfirst" => o.nulls_first = Some(true),
                    "nullslast" => o.nulls_first = Some(false),
                    m => {
                        return Err(invalid("query.order", format!("unknown modifier {m:?}")));
                    }
                }
            }
            order.push(o);
        }
    }
    // `Range: 0-9` is rows 0 to 9; the parameters win over it.
    let (mut offset, mut limit) = range.map_or((0, None), |r| (r.offset, r.limit));
    if let Some(n) = number_param(params, "offset")? {
        offset = n;
    }
    if let Some(n) = number_param(params, "limit")? {
        limit = Some(n);
    }
    Ok(Read {
        select: select(table, params)?,
        filter: filter(table, params)?,
        order,
        limit: limit.unwrap_or(MAX_PAGE_ROWS).min(MAX_PAGE_ROWS),
        offset,
    })
}

/// A column a body may set: any of the table's (RLS and GRANTs decide the rest).
fn settable<'a>(table: &Table, key: &'a str, field: String) -> Result<&'a str, PlanError> {
    if table.column(key).is_none() {
        return Err(unknown_column(table, key, field));
    }
    Ok(key)
}

/// A body's value for `column`, checked against its type and nullability
/// before anything reaches the database (even a write that would match
/// no row must not take a value the table never would).
fn check_value(table: &Table, column: &str, value: &Value, field: &str) -> Result<(), PlanError> {
    let Some(col) = table.column(column) else {
        return Err(unknown_column(table, column, field.to_owned()));
    };
    let mismatch = |expected: &str| {
        Err(PlanError::new(
            field,
            PlanErrorKind::TypeMismatch(format!(
                "column {column} is {}: expected {expected}, got {value}",
                col.pg_type
            )),
        ))
    };
    let numeric = |text: &str| text.trim().parse::<f64>().is_ok_and(f64::is_finite);
    match (col.kind, value) {
        (_, Value::Null) if col.nullable => Ok(()),
        (_, Value::Null) => mismatch("a value (it may not be null)"),
        (ColumnKind::Json, _) => Ok(()),
        (ColumnKind::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        (ColumnKind::Integer, Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(()),
        (ColumnKind::Integer, _) => mismatch("an integer"),
        (ColumnKind::Float | ColumnKind::Numeric, Value::Number(_)) => Ok(()),
        (ColumnKind::Float | ColumnKind::Numeric, Value::String(s)) if numeric(s) => Ok(()),
        (ColumnKind::Float | ColumnKind::Numeric, _) => mismatch("a number"),
        (ColumnKind::Boolean, Value::Bool(_)) => Ok(()),
        (ColumnKind::Boolean, _) => mismatch("true or false"),
        (ColumnKind::Uuid, Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => Ok(()),
        (ColumnKind::Uuid, _) => mismatch("a uuid string"),
        // Text, timestamps and dates: a string (PostgreSQL checks a
        // timestamp's format and says which value is wrong).
        (_, Value::String(_)) => Ok(()),
        _ => mismatch("a string"),
    }
}

/// An insert: one object or an array of them; `columns` (supabase-js sends
/// it for arrays) limits which keys are used.
pub fn insert(
    table: &Table,
    params: &[(String, String)],
    body: &Value,
) -> Result<Insert, PlanError> {
    let objects: Vec<&Map<String, Value>> = match body {
        Value::Object(o) => vec![o],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_object()
                    .ok_or_else(|| invalid(format!("body[{i}]"), "expected an object"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid("body", "expected an object or an array of objects")),
    };
    if objects.is_empty() {
        return Err(invalid("body", "nothing to insert"));
    }
    let mut columns: Vec<String> = Vec::new();
    if let Some((_, list)) = params.iter().find(|(k, _)| k == "columns") {
        for name in list.split(',') {
            let name = name.trim().trim_matches('"');
            settable(table, name, "query.columns".into())?;
            // A column named twice would be a PostgreSQL error (42701).
            if !columns.iter().any(|c| c == name) {
                columns.push(name.to_owned());
            }
        }
    } else {
        for (i, o) in objects.iter().enumerate() {
            for key in o.keys() {
                settable(table, key, format!("body[{i}].{key}"))?;
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
    }
    if columns.is_empty() {
        return Err(invalid("body", "no columns to insert"));
    }
    for (i, o) in objects.iter().enumerate() {
        for column in &columns {
            if let Some(value) = o.get(column) {
                check_value(table, column, value, &format!("body[{i}].{column}"))?;
            }
        }
    }
    let rows = objects
        .iter()
        .map(|o| columns.iter().map(|c| o.get(c).cloned()).collect())
        .collect();
    Ok(Insert {
        columns,
        rows,
        select: select(table, params)?,
        on_conflict: None,
    })
}

/// An upsert: an insert whose rows, when their key is taken, update the
/// existing row (`Merge`) or are left out (`Ignore`). The key is
/// `on_conflict=a,b` or, as PostgREST, the primary key; it must be the
/// columns of a primary key or unique constraint (PostgreSQL would refuse
/// any other with 42P10, PostgREST passes that on as a 400).
pub fn upsert(
    table: &Table,
    params: &[(String, String)],
    body: &Value,
    resolution: Resolution,
) -> Result<Insert, PlanError> {
    let mut insert = insert(table, params, body)?;
    let field = "query.on_conflict";
    let key = match params.iter().find(|(k, _)| k == "on_conflict") {
        Some((_, list)) => {
            let mut key: Vec<String> = Vec::new();
            for name in list.split(',').map(|n| n.trim().trim_matches('"')) {
                if name.is_empty() {
                    return Err(invalid(field, "expected column names, comma-separated"));
                }
                if table.column(name).is_none() {
                    return Err(unknown_column(table, name, field.into()));
                }
                if !key.iter().any(|k| k == name) {
                    key.push(name.to_owned());
                }
            }
            let unique = table.unique_key(&key).ok_or_else(|| {
                invalid(
                    field,
                    format!(
                        "there is no unique or exclusion constraint on ({}) of {}; \
                         name the columns of the primary key or of a unique constraint",
                        key.join(", "),
                        table.name
                    ),
                )
            })?;
            // The index's own order, from the schema cache.
            unique.columns.clone()
        }
        None => match table.primary_key() {
            Some(pk) => pk.to_vec(),
            // PostgREST: no primary key and no on_conflict, a plain insert.
            None => return Ok(insert),
        },
    };
    let update = insert
        .columns
        .iter()
        .filter(|c| !key.contains(c))
        .cloned()
        .collect();
    insert.on_conflict = Some(OnConflict {
        resolution,
        key,
        update,
    });
    Ok(insert)
}

/// An update: a body object and at least one filter.
pub fn update(
    table: &Table,
    params: &[(String, String)],
    body: &Value,
) -> Result<Update, PlanError> {
    Ok(Update {
        set: set(table, body)?,
        filter: required_filter(table, params)?,
        select: select(table, params)?,
    })
}

/// The columns an update's body sets, checked.
fn set(table: &Table, body: &Value) -> Result<Vec<(String, Value)>, PlanError> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid("body", "expected an object of the columns to change"))?;
    let mut set = Vec::new();
    for (key, value) in object {
        settable(table, key, format!("body.{key}"))?;
        check_value(table, key, value, &format!("body.{key}"))?;
        set.push((key.clone(), value.clone()));
    }
    if set.is_empty() {
        return Err(invalid("body", "nothing to change"));
    }
    Ok(set)
}

/// An update of the row whose `id` is `id` (the action form's), giving
/// back every column.
pub fn update_by_id(table: &Table, id: &str, body: &Value) -> Result<Update, PlanError> {
    Ok(Update {
        set: set(table, body)?,
        filter: id_filter(table, id)?,
        select: all_columns(table),
    })
}

/// A delete of the row whose `id` is `id`, giving back every column.
pub fn delete_by_id(table: &Table, id: &str) -> Result<Delete, PlanError> {
    Ok(Delete {
        filter: id_filter(table, id)?,
        select: all_columns(table),
    })
}

/// `id = <id>`, typed as the column is (a malformed id is named as
/// `widget.id`).
fn id_filter(table: &Table, id: &str) -> Result<Cond, PlanError> {
    let field = "widget.id";
    let column = table
        .column("id")
        .ok_or_else(|| unknown_column(table, "id", field.to_owned()))?;
    let json =
        serde_json::json!({"column": "id", "op": "eq", "value": typed_text(column.kind, id)});
    FilterPlanner::new(table).filter(&json, field)
}

pub fn delete(table: &Table, params: &[(String, String)]) -> Result<Delete, PlanError> {
    Ok(Delete {
        filter: required_filter(table, params)?,
        select: select(table, params)?,
    })
}

/// PATCH and DELETE without a filter would touch every row the caller may
/// see: refused, as PostgREST can be configured to, and so are filters
/// that leave no row out (`?id=not.is.null`).
fn required_filter(table: &Table, params: &[(String, String)]) -> Result<Cond, PlanError> {
    match filters(table, params)? {
        (Some(cond), true) => Ok(cond),
        _ => Err(invalid(
            "query",
            "a filter that selects rows is required (e.g. ?id=eq.<id>); refusing to change every row",
        )),
    }
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

pub mod alias;
