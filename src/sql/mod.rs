//! Pure: a `QueryPlan` in, SQL text and its bind values out. The only
//! module that writes SQL with sea-query.
//!
//! Identifiers come only from the plan (which took them from the schema
//! cache) and are always quoted; values are always bind parameters. The one
//! literal written into the text is a time bucket's granularity, taken from
//! a closed enum: `GROUP BY` must repeat the exact select expression, which
//! two separate parameters would not be.

use crate::plan::{AggFn, CmpOp, Cond, Direction, Measure, OrderKey, QueryPlan, Test, Value};
use sea_query::extension::postgres::{PgBinOper, PgExpr};
use sea_query::{
    Alias, Cond as SqCond, Condition, Expr, ExprTrait, Func, Order, PostgresQueryBuilder, Query,
    SelectStatement,
};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

pub mod bundles;
pub mod rest;
pub mod widgets;

#[cfg(test)]
mod tests;

/// The most bind parameters one statement may carry: PostgreSQL's wire
/// protocol counts them in 16 bits.
pub const MAX_PARAMETERS: usize = 65_535;

/// A statement whose values PostgreSQL would refuse to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{parameters} values; one statement takes at most {MAX_PARAMETERS}")]
pub struct TooManyParameters {
    pub parameters: usize,
}

fn checked(sql: String, values: SqlxValues) -> Result<(String, SqlxValues), TooManyParameters> {
    let parameters = values.0.0.len();
    if parameters > MAX_PARAMETERS {
        return Err(TooManyParameters { parameters });
    }
    Ok((sql, values))
}

/// The statement for `plan`: one row, one `json` column holding the array
/// of result rows (PostgreSQL renders numbers and timestamps itself, the
/// way PostgREST has it do).
pub fn build(plan: &QueryPlan) -> (String, SqlxValues) {
    wrapped(plan).build_sqlx(PostgresQueryBuilder)
}

/// The statement as it is sent, `$n` placeholders and all, with each
/// parameter as JSON: for showing what a query runs, never to run.
pub fn statement(plan: &QueryPlan) -> (String, Vec<serde_json::Value>) {
    let (sql, values) = wrapped(plan).build(PostgresQueryBuilder);
    let params = values
        .into_iter()
        .map(|value| match value {
            // Bytes need not be UTF-8 (sea-query's conversion assumes so).
            sea_query::Value::Bytes(Some(bytes)) => {
                serde_json::Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
            }
            value => sea_query::value::sea_value_to_json_value(&value),
        })
        .collect();
    (sql, params)
}

/// The statement with values inlined: for tests and logs only, never to run.
pub fn debug_sql(plan: &QueryPlan) -> String {
    wrapped(plan).to_string(PostgresQueryBuilder)
}

fn wrapped(plan: &QueryPlan) -> SelectStatement {
    Query::select()
        // array_to_json(array_agg(..)) is json_agg without the line breaks;
        // `t.*` is the row even when a result column is itself named `t`.
        .expr(Expr::cust(
            "coalesce(array_to_json(array_agg(t.*)), '[]'::json)",
        ))
        .from_subquery(rows(plan), Alias::new("t"))
        .to_owned()
}

/// The query for the rows themselves.
pub fn rows(plan: &QueryPlan) -> SelectStatement {
    let (schema, table) = plan.table();
    let mut q = Query::select();
    q.from((Alias::new(schema), Alias::new(table)));
    let bucket = plan.bucket().map(|b| {
        Expr::cust_with_exprs(
            format!("date_trunc('{}', $1)", b.granularity.as_str()),
            [col(&b.column)],
        )
    });
    if let Some(bucket) = &bucket {
        q.expr_as(bucket.clone(), Alias::new(crate::plan::BUCKET));
        q.add_group_by([bucket.clone()]);
    }
    for g in plan.group_by() {
        q.expr_as(col(g), Alias::new(g));
        q.add_group_by([col(g)]);
    }
    for m in plan.measures() {
        q.expr_as(measure(m), Alias::new(&m.name));
    }
    if let Some(filter) = plan.filter() {
        q.cond_where(condition(filter));
    }
    for o in plan.order_by() {
        let order = match o.direction {
            Direction::Asc => Order::Asc,
            Direction::Desc => Order::Desc,
        };
        let expr = match &o.key {
            // The planner orders by the bucket only when there is one.
            OrderKey::Bucket => match &bucket {
                Some(b) => b.clone(),
                None => continue,
            },
            OrderKey::Column(c) => col(c),
            OrderKey::Measure(name) => Expr::col(Alias::new(name)),
        };
        q.order_by_expr(expr, order);
    }
    q.limit(u64::from(plan.limit()));
    q.to_owned()
}

fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

fn measure(m: &Measure) -> Expr {
    let arg = || col(m.column.as_deref().unwrap_or_default());
    match (m.function, &m.column) {
        (AggFn::Count, None) => Func::count(Expr::cust("*")).into(),
        (AggFn::Count, Some(_)) => Func::count(arg()).into(),
        (AggFn::CountDistinct, _) => Func::count_distinct(arg()).into(),
        (AggFn::Sum, _) => Func::sum(arg()).into(),
        (AggFn::Avg, _) => Func::avg(arg()).into(),
        (AggFn::Min, _) => Func::min(arg()).into(),
        (AggFn::Max, _) => Func::max(arg()).into(),
    }
}

fn value(v: &Value) -> Expr {
    match v {
        Value::Integer(i) => Expr::val(*i),
        Value::Float(f) => Expr::val(*f),
        // Bound as text so no precision is lost on the way.
        Value::Numeric(n) => Func::cast_as(Expr::val(n.clone()), Alias::new("numeric")).into(),
        Value::Text(s) => Expr::val(s.clone()),
        Value::Boolean(b) => Expr::val(*b),
        Value::Uuid(u) => Expr::val(*u),
        Value::Timestamptz(t) => Expr::val(*t),
        Value::Timestamp(t) => Expr::val(*t),
        Value::Date(d) => Expr::val(*d),
    }
}

pub(crate) fn condition(c: &Cond) -> Condition {
    match c {
        Cond::All(items) => items
            .iter()
            .fold(SqCond::all(), |acc, i| acc.add(condition(i))),
        Cond::Any(items) => items
            .iter()
            .fold(SqCond::any(), |acc, i| acc.add(condition(i))),
        Cond::Const(b) => SqCond::all().add(Expr::cust(if *b { "TRUE" } else { "FALSE" })),
        Cond::Test { column, test } => SqCond::all().add(predicate(col(column), test)),
        Cond::Not(inner) => SqCond::all().add(condition(inner)).not(),
    }
}

fn predicate(c: Expr, test: &Test) -> Expr {
    match test {
        Test::Cmp(op, v) => {
            let v = value(v);
            match op {
                CmpOp::Eq => c.eq(v),
                CmpOp::Neq => c.ne(v),
                CmpOp::Gt => c.gt(v),
                CmpOp::Gte => c.gte(v),
                CmpOp::Lt => c.lt(v),
                CmpOp::Lte => c.lte(v),
            }
        }
        Test::In(vs) => c.is_in(vs.iter().map(value)),
        Test::NotIn(vs) => c.is_not_in(vs.iter().map(value)),
        Test::Like(p) => c.like(p.as_str()),
        Test::ILike(p) => c.ilike(p.as_str()),
        Test::Between(lo, hi) => c.between(value(lo), value(hi)),
        Test::IsNull => c.is_null(),
        Test::NotNull => c.is_not_null(),
        Test::Contains(json) => c.binary(PgBinOper::Contains, Expr::val(json.clone())),
        Test::ContainedBy(json) => c.binary(PgBinOper::Contained, Expr::val(json.clone())),
    }
}
