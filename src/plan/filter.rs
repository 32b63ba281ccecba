//! Plans filters: raw JSON filters (lists, the shorthand object, `or`/`and`
//! groups) in, a typed condition tree out, every column checked against the
//! table and every value typed against its column. Pure.

use super::error::{PlanError, PlanErrorKind};
use super::value::{Value, typed};
use crate::schema::{Column, ColumnKind, Table};
use serde::Serialize;
use serde_json::Value as Json;

/// Filter groups nest at most this deep.
pub const MAX_DEPTH: usize = 4;
/// Leaf filters in one query, all layers together.
pub const MAX_FILTERS: usize = 100;
/// Values in one `in` / `not_in` list.
pub const MAX_LIST: usize = 1000;
/// Values in one query, all filters together: PostgreSQL takes at most
/// 65,535 bind parameters in a statement.
pub const MAX_VALUES: usize = 10_000;

/// A condition on the rows of the plan's table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    /// An empty `in` (false) or `not_in` (true).
    Const(bool),
    Test {
        column: String,
        test: Test,
    },
    /// PostgREST's `not.` before an operator or a logic group (`/rest/v1`
    /// only: the widget grammar has no negation of its own).
    Not(Box<Cond>),
}

impl Cond {
    /// The same condition in a normal form: nested groups of one kind
    /// flattened, the members of a group and the values of a list sorted
    /// (by their serialisation) and deduplicated. Equal for any two
    /// spellings that differ only in such order.
    pub fn normalized(self) -> Cond {
        fn sort<T: Serialize>(items: Vec<T>) -> Vec<T> {
            let mut keyed: Vec<(String, T)> = items
                .into_iter()
                .map(|item| (serde_json::to_string(&item).unwrap_or_default(), item))
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            keyed.dedup_by(|a, b| a.0 == b.0);
            keyed.into_iter().map(|(_, item)| item).collect()
        }
        fn flatten(items: Vec<Cond>, all: bool) -> Vec<Cond> {
            items
                .into_iter()
                .map(Cond::normalized)
                .flat_map(|c| match c {
                    Cond::All(inner) if all => inner,
                    Cond::Any(inner) if !all => inner,
                    other => vec![other],
                })
                .collect()
        }
        let group = |mut items: Vec<Cond>, all: bool| match items.len() {
            1 => items.pop().unwrap_or(Cond::Const(all)),
            _ if all => Cond::All(items),
            _ => Cond::Any(items),
        };
        match self {
            Cond::Not(inner) => Cond::Not(Box::new(inner.normalized())),
            Cond::All(items) => group(sort(flatten(items, true)), true),
            Cond::Any(items) => group(sort(flatten(items, false)), false),
            Cond::Test {
                column,
                test: Test::In(values),
            } => Cond::Test {
                column,
                test: Test::In(sort(values)),
            },
            Cond::Test {
                column,
                test: Test::NotIn(values),
            } => Cond::Test {
                column,
                test: Test::NotIn(sort(values)),
            },
            other => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    Cmp(CmpOp, Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Like(String),
    ILike(String),
    Between(Value, Value),
    IsNull,
    NotNull,
    /// `jsonb @> value` (PostgREST's `cs`; `/rest/v1` only).
    Contains(Json),
    /// `jsonb <@ value` (PostgREST's `cd`; `/rest/v1` only).
    ContainedBy(Json),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Cmp(CmpOp),
    In,
    NotIn,
    Like,
    ILike,
    Between,
    IsNull,
    NotNull,
}

const OPS: &[(&str, Op)] = &[
    ("eq", Op::Cmp(CmpOp::Eq)),
    ("neq", Op::Cmp(CmpOp::Neq)),
    ("gt", Op::Cmp(CmpOp::Gt)),
    ("gte", Op::Cmp(CmpOp::Gte)),
    ("lt", Op::Cmp(CmpOp::Lt)),
    ("lte", Op::Cmp(CmpOp::Lte)),
    ("in", Op::In),
    ("not_in", Op::NotIn),
    ("like", Op::Like),
    ("ilike", Op::ILike),
    ("between", Op::Between),
    ("is_null", Op::IsNull),
    ("not_null", Op::NotNull),
];

impl Op {
    fn name(self) -> &'static str {
        OPS.iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(name, _)| name)
    }

    /// Whether PostgreSQL has this operator for the column's kind.
    fn applies_to(self, kind: ColumnKind) -> bool {
        use ColumnKind::*;
        match self {
            Op::IsNull | Op::NotNull => true,
            Op::Cmp(CmpOp::Eq | CmpOp::Neq) | Op::In | Op::NotIn => !matches!(kind, Json | Other),
            Op::Cmp(_) | Op::Between => kind.is_numeric() || kind.is_temporal() || kind == Text,
            Op::Like | Op::ILike => kind == Text,
        }
    }
}

/// Plans filters against one table, counting leaves across calls.
pub struct FilterPlanner<'a> {
    table: &'a Table,
    leaves: usize,
    values: usize,
}

impl<'a> FilterPlanner<'a> {
    pub fn new(table: &'a Table) -> Self {
        Self {
            table,
            leaves: 0,
            values: 0,
        }
    }

    /// One filter: `{column, op, value}` or `{"or": [..]}` / `{"and": [..]}`.
    pub fn filter(&mut self, json: &Json, field: &str) -> Result<Cond, PlanError> {
        self.filter_at(json, field, 0)
    }

    /// The shorthand object: equality per key, `in` for a list.
    pub fn shorthand(&mut self, key: &str, value: &Json, field: &str) -> Result<Cond, PlanError> {
        let column = self.column(key, field)?;
        let field = format!("{field}.{key}");
        match value {
            Json::Array(items) => {
                self.leaf(column, Op::In, Some(&Json::Array(items.clone())), &field)
            }
            Json::Null => self.leaf(column, Op::IsNull, None, &field),
            _ => self.leaf(column, Op::Cmp(CmpOp::Eq), Some(value), &field),
        }
    }

    fn filter_at(&mut self, json: &Json, field: &str, depth: usize) -> Result<Cond, PlanError> {
        let invalid = |msg: String| PlanError::new(field, PlanErrorKind::InvalidFilter(msg));
        let Json::Object(obj) = json else {
            return Err(invalid(format!(
                "a filter is an object {{\"column\", \"op\", \"value\"}} or {{\"or\": [...]}} / {{\"and\": [...]}}, got {json}"
            )));
        };
        for group in ["or", "and"] {
            let Some(members) = obj.get(group) else {
                continue;
            };
            if obj.len() != 1 {
                return Err(invalid(format!("a {group:?} group has no other keys")));
            }
            if depth >= MAX_DEPTH {
                return Err(PlanError::new(
                    field,
                    PlanErrorKind::TooDeep { max: MAX_DEPTH },
                ));
            }
            let Json::Array(members) = members else {
                return Err(invalid(format!("{group:?} takes a list of filters")));
            };
            if members.is_empty() {
                return Err(invalid(format!("{group:?} needs at least one filter")));
            }
            let conds = members
                .iter()
                .enumerate()
                .map(|(i, m)| self.filter_at(m, &format!("{field}.{group}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if group == "or" {
                Cond::Any(conds)
            } else {
                Cond::All(conds)
            });
        }
        if let Some(key) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "column" | "op" | "value"))
        {
            return Err(invalid(format!(
                "unknown key {key:?} in a filter: use column, op and value"
            )));
        }
        let name = match obj.get("column") {
            Some(Json::String(name)) => name,
            _ => {
                return Err(PlanError::new(
                    format!("{field}.column"),
                    PlanErrorKind::InvalidFilter("a filter needs a `column` name".into()),
                ));
            }
        };
        let column = self.column(name, &format!("{field}.column"))?;
        let op = match obj.get("op") {
            None => Op::Cmp(CmpOp::Eq),
            Some(Json::String(op)) => OPS
                .iter()
                .find(|(n, _)| n == op)
                .map(|(_, o)| *o)
                .ok_or_else(|| {
                    PlanError::new(
                        format!("{field}.op"),
                        PlanErrorKind::InvalidFilter(format!(
                            "unknown op {op:?}: expected one of {}",
                            OPS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        )),
                    )
                })?,
            Some(other) => {
                return Err(PlanError::new(
                    format!("{field}.op"),
                    PlanErrorKind::InvalidFilter(format!("op must be a string, got {other}")),
                ));
            }
        };
        self.leaf(column, op, obj.get("value"), field)
    }

    fn column(&self, name: &str, field: &str) -> Result<&'a Column, PlanError> {
        self.table.column(name).ok_or_else(|| {
            PlanError::new(
                field,
                PlanErrorKind::UnknownColumn {
                    table: format!("{}.{}", self.table.schema, self.table.name),
                    column: name.to_owned(),
                },
            )
        })
    }

    fn leaf(
        &mut self,
        column: &Column,
        op: Op,
        value: Option<&Json>,
        field: &str,
    ) -> Result<Cond, PlanError> {
        self.leaves += 1;
        if self.leaves > MAX_FILTERS {
            return Err(PlanError::new(
                field,
                PlanErrorKind::TooManyFilters { max: MAX_FILTERS },
            ));
        }
        if !op.applies_to(column.kind) {
            return Err(PlanError::new(
                format!("{field}.op"),
                PlanErrorKind::OperatorNotAllowed {
                    op: op.name(),
                    column: column.name.clone(),
                    pg_type: column.pg_type.clone(),
                },
            ));
        }
        let vfield = format!("{field}.value");
        // The path names where in the request; the message names the
        // column and the operator, which a person reads first.
        let value_error = |msg: String| {
            PlanError::new(
                &vfield,
                PlanErrorKind::InvalidValue(format!("column {}: {msg}", column.name)),
            )
        };
        let need =
            || value.ok_or_else(|| value_error(format!("operator {} needs a `value`", op.name())));
        let list = |v: &Json| -> Result<Vec<Value>, PlanError> {
            let Json::Array(items) = v else {
                return Err(value_error(format!(
                    "operator {} takes a list of values, e.g. [\"a\", \"b\"]",
                    op.name()
                )));
            };
            if items.len() > MAX_LIST {
                return Err(PlanError::new(
                    &vfield,
                    PlanErrorKind::TooManyValues { max: MAX_LIST },
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| typed(column, item, &format!("{vfield}[{i}]")))
                .collect()
        };
        let test = match op {
            Op::Cmp(cmp) => Test::Cmp(cmp, typed(column, need()?, &vfield)?),
            Op::In => match list(need()?)? {
                values if values.is_empty() => return Ok(Cond::Const(false)),
                values => Test::In(values),
            },
            Op::NotIn => match list(need()?)? {
                values if values.is_empty() => return Ok(Cond::Const(true)),
                values => Test::NotIn(values),
            },
            Op::Like | Op::ILike => {
                let Value::Text(pattern) = typed(column, need()?, &vfield)? else {
                    return Err(value_error(format!(
                        "operator {} takes a string pattern",
                        op.name()
                    )));
                };
                // PostgreSQL refuses a pattern ending in its escape character.
                let trailing = pattern.chars().rev().take_while(|c| *c == '\\').count();
                if trailing % 2 == 1 {
                    return Err(value_error(format!(
                        "operator {}: a pattern cannot end with a single backslash (write \\\\ for a literal one)",
                        op.name()
                    )));
                }
                if op == Op::Like {
                    Test::Like(pattern)
                } else {
                    Test::ILike(pattern)
                }
            }
            Op::Between => {
                let bounds = list(need()?)?;
                let [low, high]: [Value; 2] = bounds.try_into().map_err(|_| {
                    value_error("operator between takes exactly [low, high]".into())
                })?;
                Test::Between(low, high)
            }
            Op::IsNull | Op::NotNull => {
                if value.is_some_and(|v| !v.is_null()) {
                    return Err(value_error(format!(
                        "operator {} takes no value",
                        op.name()
                    )));
                }
                if op == Op::IsNull {
                    Test::IsNull
                } else {
                    Test::NotNull
                }
            }
        };
        self.values += match &test {
            Test::Cmp(..)
            | Test::Like(_)
            | Test::ILike(_)
            | Test::Contains(_)
            | Test::ContainedBy(_) => 1,
            Test::Between(..) => 2,
            Test::In(v) | Test::NotIn(v) => v.len(),
            Test::IsNull | Test::NotNull => 0,
        };
        if self.values > MAX_VALUES {
            return Err(PlanError::new(
                vfield,
                PlanErrorKind::TooManyValues { max: MAX_VALUES },
            ));
        }
        Ok(Cond::Test {
            column: column.name.clone(),
            test,
        })
    }
}
