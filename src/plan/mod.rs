//! Pure: an untrusted `DataSource` and the schema cache in, a `QueryPlan`
//! (or a `PlanError` naming the field at fault) out.
//!
//! No I/O, no SQL, no HTTP. Every identifier in a plan was found in the
//! schema cache; every value is typed against its column. Two spellings of
//! one query give equal plans, so a plan's serialization is the query's
//! canonical form.

mod error;
mod filter;
mod source;
mod value;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

pub use error::{PlanError, PlanErrorKind};
pub use filter::{CmpOp, Cond, FilterPlanner, Test};
pub use source::{AggFn, DataSource, Direction, Filter, Filters, Granularity, MeasureSpec};
pub use value::Value;

use crate::schema::{ColumnKind, SchemaCache, Table};
use error::SOURCE_ROOT;
use serde::Serialize;
use std::collections::HashSet;

/// At most this many measures in one query.
pub const MAX_MEASURES: usize = 20;
/// The output name of a time bucket.
pub const BUCKET: &str = "bucket";
/// The output name of the single-aggregation form's measure.
pub const VALUE: &str = "value";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rows returned when the data source gives no `limit`.
    pub default_limit: u32,
    /// The largest `limit`; larger ones are capped to it.
    pub max_rows: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_limit: 1000,
            max_rows: 10_000,
        }
    }
}

/// A validated query. Made only by [`plan`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryPlan {
    schema: String,
    table: String,
    /// The answer may differ between users of one role.
    #[serde(skip)]
    rls: bool,
    /// The tables whose writes can change the answer (a view's base tables).
    #[serde(skip)]
    reads: Vec<(String, String)>,
    /// `reads` as `schema.table`, the names change notifications use.
    #[serde(skip)]
    reads_qualified: Vec<String>,
    /// Every table in `reads` announces its writes.
    #[serde(skip)]
    tracked: bool,
    /// This plan serialised: its canonical form, for cache keys.
    #[serde(skip)]
    canonical: std::sync::Arc<[u8]>,
    bucket: Option<Bucket>,
    group_by: Vec<String>,
    measures: Vec<Measure>,
    filter: Option<Cond>,
    order_by: Vec<Order>,
    limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub column: String,
    pub granularity: Granularity,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measure {
    pub function: AggFn,
    /// `None`: `count(*)`.
    pub column: Option<String>,
    /// The output name.
    pub name: String,
}

/// What a result is ordered by.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKey {
    Column(String),
    Bucket,
    /// A measure, by output name.
    Measure(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    pub key: OrderKey,
    pub direction: Direction,
}

/// How an answer's `total` is made from its rows (seed 004 renders
/// `data.total`). Only an answer whose rows hold a single measure has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Total {
    /// Several measures: no `total`.
    None,
    /// Ungrouped: the one row's value of this measure.
    Value(String),
    /// A grouped count or sum: the sum of this measure over the rows.
    Sum(String),
    /// A grouped average, minimum, maximum or distinct count: the groups'
    /// values do not add up to the whole, so `null`.
    Null,
}

impl QueryPlan {
    /// How this plan's answer carries a `total`.
    pub fn total(&self) -> Total {
        let [measure] = self.measures.as_slice() else {
            return Total::None;
        };
        let grouped = self.bucket.is_some() || !self.group_by.is_empty();
        match (grouped, measure.function) {
            (false, _) => Total::Value(measure.name.clone()),
            (true, AggFn::Count | AggFn::Sum) => Total::Sum(measure.name.clone()),
            (true, _) => Total::Null,
        }
    }

    /// `(schema, table)`
    pub fn table(&self) -> (&str, &str) {
        (&self.schema, &self.table)
    }
    pub fn bucket(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }
    pub fn group_by(&self) -> &[String] {
        &self.group_by
    }
    pub fn measures(&self) -> &[Measure] {
        &self.measures
    }
    pub fn filter(&self) -> Option<&Cond> {
        self.filter.as_ref()
    }
    pub fn order_by(&self) -> &[Order] {
        &self.order_by
    }
    pub fn limit(&self) -> u32 {
        self.limit
    }
    /// Every table the query reads, as `(schema, name)`.
    pub fn tables(&self) -> &[(String, String)] {
        &self.reads
    }
    /// The same, as `schema.table`.
    pub fn tables_qualified(&self) -> &[String] {
        &self.reads_qualified
    }
    /// The canonical form: the same question written two ways gives the
    /// same bytes.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }
    /// Whether a table read has row-level security enabled.
    pub fn reads_rls_table(&self) -> bool {
        self.rls
    }
    /// Whether every write to what the query reads is announced, so its
    /// result may be cached.
    pub fn change_tracked(&self) -> bool {
        self.tracked
    }
}

/// Plans `source` with `runtime_filters` ANDed onto its own filters.
pub fn plan(
    source: &DataSource,
    runtime_filters: &[Filter],
    schema: &SchemaCache,
    limits: &Limits,
) -> Result<QueryPlan, PlanError> {
    let root = SOURCE_ROOT;
    let table = schema.resolve(&source.table).ok_or_else(|| {
        PlanError::new(
            format!("{root}.table"),
            PlanErrorKind::UnknownTable {
                table: source.table.clone(),
                schemas: schema.schemas().join(", "),
            },
        )
    })?;
    let column = |name: &str, field: &str| {
        table.column(name).ok_or_else(|| {
            PlanError::new(
                field,
                PlanErrorKind::UnknownColumn {
                    table: qualified(table),
                    column: name.to_owned(),
                },
            )
        })
    };

    let measures = measures(source, &column)?;

    let mut group_by = Vec::new();
    if let Some(spec) = &source.group_by {
        for (field, name) in spec.items(&format!("{root}.groupBy")) {
            let col = column(&name, &field)?;
            if matches!(col.kind, ColumnKind::Json | ColumnKind::Other) {
                return Err(not_allowed(&field, col, "grouped by"));
            }
            if group_by.contains(&col.name) {
                return Err(PlanError::new(field, PlanErrorKind::DuplicateName(name)));
            }
            group_by.push(col.name.clone());
        }
    }

    let bucket = match &source.time_bucket {
        None => None,
        Some(spec) => {
            let field = format!("{root}.timeBucket.column");
            let col = column(&spec.column, &field)?;
            if !col.kind.is_temporal() {
                return Err(not_allowed(
                    &field,
                    col,
                    "bucketed by time (it is not a date or timestamp)",
                ));
            }
            Some(Bucket {
                column: col.name.clone(),
                granularity: spec.granularity,
            })
        }
    };

    // Output names are the keys of each row object: they must not collide.
    let mut names = HashSet::new();
    let outputs = bucket
        .iter()
        .map(|_| (format!("{root}.timeBucket"), BUCKET.to_owned()))
        .chain(
            group_by
                .iter()
                .map(|g| (format!("{root}.groupBy"), g.clone())),
        )
        .chain(
            measures
                .iter()
                .map(|m| (format!("{root}.aggregations"), m.name.clone())),
        );
    for (field, name) in outputs {
        if !names.insert(name.clone()) {
            return Err(PlanError::new(field, PlanErrorKind::DuplicateName(name)));
        }
    }

    let filter = filters(source, runtime_filters, table)?;
    let order_by = order_by(source, &bucket, &group_by, &measures)?;
    let limit = match source.limit {
        None => limits.default_limit,
        Some(n) if n < 1 => {
            return Err(PlanError::new(
                format!("{root}.limit"),
                PlanErrorKind::InvalidLimit(n),
            ));
        }
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(limits.max_rows),
    };

    let mut plan = QueryPlan {
        schema: table.schema.clone(),
        table: table.name.clone(),
        rls: table.rls_enabled,
        reads: table.reads.clone(),
        reads_qualified: table
            .reads
            .iter()
            .map(|(s, t)| format!("{s}.{t}"))
            .collect(),
        tracked: table.change_tracked && !table.reads.is_empty(),
        canonical: std::sync::Arc::from([]),
        bucket,
        group_by,
        measures,
        filter,
        order_by,
        limit,
    };
    plan.canonical = canonical(&plan);
    Ok(plan)
}

/// The plan serialised with its filters in a normal form: ANDed and ORed
/// conditions flattened and sorted, `in` lists sorted without repeats.
/// Two spellings of one question are one cache entry; the SQL keeps the
/// order it was given.
fn canonical(plan: &QueryPlan) -> std::sync::Arc<[u8]> {
    let normal = QueryPlan {
        filter: plan.filter.clone().map(Cond::normalized),
        ..plan.clone()
    };
    serde_json::to_vec(&normal).unwrap_or_default().into()
}

fn qualified(table: &Table) -> String {
    format!("{}.{}", table.schema, table.name)
}

fn not_allowed(field: &str, col: &crate::schema::Column, usage: &'static str) -> PlanError {
    PlanError::new(
        field,
        PlanErrorKind::ColumnNotAllowed {
            column: col.name.clone(),
            pg_type: col.pg_type.clone(),
            usage,
        },
    )
}

fn measures<'t>(
    source: &DataSource,
    column: &impl Fn(&str, &str) -> Result<&'t crate::schema::Column, PlanError>,
) -> Result<Vec<Measure>, PlanError> {
    let root = SOURCE_ROOT;
    let measure = |function: AggFn, col: Option<&str>, name: String, field: &str| {
        let col = match col {
            None if function == AggFn::Count => {
                return Ok(Measure {
                    function,
                    column: None,
                    name,
                });
            }
            None => {
                return Err(PlanError::new(
                    field,
                    PlanErrorKind::MissingColumn {
                        function: function.name(),
                    },
                ));
            }
            Some(c) => column(c, field)?,
        };
        use ColumnKind::*;
        let allowed = match function {
            AggFn::Count => true,
            AggFn::CountDistinct => !matches!(col.kind, Json | Other),
            AggFn::Sum | AggFn::Avg => col.kind.is_numeric(),
            AggFn::Min | AggFn::Max => {
                col.kind.is_numeric() || col.kind.is_temporal() || col.kind == Text
            }
        };
        if !allowed {
            return Err(PlanError::new(
                field,
                PlanErrorKind::AggregationNotAllowed {
                    function: function.name(),
                    column: col.name.clone(),
                    pg_type: col.pg_type.clone(),
                },
            ));
        }
        Ok(Measure {
            function,
            column: Some(col.name.clone()),
            name,
        })
    };
    match &source.aggregations {
        Some(_) if source.aggregation.is_some() || source.column.is_some() => Err(PlanError::new(
            format!("{root}.aggregations"),
            PlanErrorKind::Conflict(
                "give either `aggregation`/`column` or `aggregations`, not both".into(),
            ),
        )),
        Some(specs) if specs.is_empty() => Err(PlanError::new(
            format!("{root}.aggregations"),
            PlanErrorKind::Conflict("`aggregations` needs at least one measure".into()),
        )),
        Some(specs) if specs.len() > MAX_MEASURES => Err(PlanError::new(
            format!("{root}.aggregations"),
            PlanErrorKind::TooManyMeasures { max: MAX_MEASURES },
        )),
        Some(specs) => specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let field = format!("{root}.aggregations[{i}]");
                let name = match &spec.name {
                    Some(name) if valid_alias(name) => name.clone(),
                    Some(name) => {
                        return Err(PlanError::new(
                            format!("{field}.as"),
                            PlanErrorKind::BadAlias(name.clone()),
                        ));
                    }
                    None => match &spec.column {
                        None => spec.function.name().to_owned(),
                        Some(c) => format!("{}_{c}", spec.function.name()),
                    },
                };
                measure(
                    spec.function,
                    spec.column.as_deref(),
                    name,
                    &format!("{field}.column"),
                )
            })
            .collect(),
        None => Ok(vec![measure(
            source.aggregation.unwrap_or(AggFn::Count),
            source.column.as_deref(),
            VALUE.to_owned(),
            &format!("{root}.column"),
        )?]),
    }
}

/// A measure's output name: a plain SQL identifier, so it is safe to use as
/// an alias even though it comes from the request.
fn valid_alias(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn filters(
    source: &DataSource,
    runtime: &[Filter],
    table: &Table,
) -> Result<Option<Cond>, PlanError> {
    let root = SOURCE_ROOT;
    let mut planner = filter::FilterPlanner::new(table);
    let mut conds = Vec::new();
    match &source.filters {
        None => {}
        Some(Filters::List(list)) => {
            for (i, f) in list.iter().enumerate() {
                conds.push(planner.filter(&f.0, &format!("{root}.filters[{i}]"))?);
            }
        }
        Some(Filters::Shorthand(map)) => {
            for (key, value) in map {
                conds.push(planner.shorthand(key, value, &format!("{root}.filters"))?);
            }
        }
    }
    for (i, f) in runtime.iter().enumerate() {
        conds.push(planner.filter(&f.0, &format!("filters[{i}]"))?);
    }
    Ok((!conds.is_empty()).then_some(Cond::All(conds)))
}

fn order_by(
    source: &DataSource,
    bucket: &Option<Bucket>,
    group_by: &[String],
    measures: &[Measure],
) -> Result<Vec<Order>, PlanError> {
    let Some(specs) = &source.order_by else {
        // Deterministic by default: time first, then the groups.
        let keys = bucket
            .iter()
            .map(|_| OrderKey::Bucket)
            .chain(group_by.iter().map(|g| OrderKey::Column(g.clone())));
        return Ok(keys
            .map(|key| Order {
                key,
                direction: Direction::Asc,
            })
            .collect());
    };
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let name = spec.column.as_str();
            let key = if bucket.is_some() && name == BUCKET {
                OrderKey::Bucket
            } else if group_by.iter().any(|g| g == name) {
                OrderKey::Column(name.to_owned())
            } else if measures.iter().any(|m| m.name == name) {
                OrderKey::Measure(name.to_owned())
            } else {
                let mut choices: Vec<&str> = bucket.iter().map(|_| BUCKET).collect();
                choices.extend(group_by.iter().map(String::as_str));
                choices.extend(measures.iter().map(|m| m.name.as_str()));
                return Err(PlanError::new(
                    format!("{SOURCE_ROOT}.orderBy[{i}].column"),
                    PlanErrorKind::BadOrderBy(format!(
                        "cannot order by {name:?}: order by one of {}",
                        choices.join(", ")
                    )),
                ));
            };
            Ok(Order {
                key,
                direction: spec.direction.unwrap_or_default(),
            })
        })
        .collect()
}
