//! The wire form of a data source: untrusted JSON, as a frontend sends it
//! or as a saved widget stores it. Only shapes are checked here; names and
//! values are checked against the schema by the planner.
//!
//! Filters stay raw JSON on the wire so the planner can name the exact path
//! of whatever is wrong in them (`config.filters[1].or[0].op`).

use serde::Deserialize;

/// What a widget shows: one table or view of the exposed schemas, one or
/// more measures, optionally grouped by columns and/or a time bucket,
/// filtered, ordered and limited.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "table": "servers",
    "aggregations": [{"fn": "count", "as": "n"}, {"fn": "avg", "column": "cpu_pct", "as": "cpu"}],
    "groupBy": ["region"],
    "timeBucket": {"column": "created_at", "granularity": "day"},
    "filters": [
        {"column": "status", "op": "in", "value": ["Active", "Ready"]},
        {"or": [{"column": "cpu_pct", "op": "gt", "value": 80}, {"column": "memory_mb", "op": "lt", "value": 4096}]}
    ],
    "orderBy": [{"column": "bucket", "direction": "desc"}],
    "limit": 100
}))]
pub struct DataSource {
    /// `table` or `schema.table`.
    pub table: String,
    /// The single measure, named `value` (default `count`); `column` is
    /// required for every function but `count`.
    pub aggregation: Option<AggFn>,
    /// The column `aggregation` applies to.
    pub column: Option<String>,
    /// Several named measures instead of `aggregation`.
    pub aggregations: Option<Vec<MeasureSpec>>,
    /// Columns to group by (alias `group_by`).
    #[serde(rename = "groupBy", alias = "group_by")]
    pub group_by: Option<OneOrMany>,
    /// A time column truncated to a granularity, returned as `bucket`
    /// (alias `time_bucket`).
    #[serde(rename = "timeBucket", alias = "time_bucket")]
    pub time_bucket: Option<TimeBucketSpec>,
    pub filters: Option<Filters>,
    /// Alias `order_by`; a column, `bucket` or a measure's name.
    #[serde(rename = "orderBy", alias = "order_by")]
    pub order_by: Option<Vec<OrderSpec>>,
    /// At least 1; capped at `MAX_ROWS`.
    #[schema(minimum = 1)]
    pub limit: Option<i64>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AggFn {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFn {
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::CountDistinct => "count_distinct",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
        }
    }
}

/// One named measure.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    #[serde(rename = "fn")]
    pub function: AggFn,
    pub column: Option<String>,
    #[serde(rename = "as")]
    pub name: Option<String>,
}

/// One column name or a list of them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The names with their request paths (`groupBy` or `groupBy[i]`).
    pub fn items(&self, field: &str) -> Vec<(String, String)> {
        match self {
            OneOrMany::One(name) => vec![(field.to_owned(), name.clone())],
            OneOrMany::Many(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{field}[{i}]"), n.clone()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeBucketSpec {
    pub column: String,
    pub granularity: Granularity,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Granularity {
    /// The `date_trunc` field name: a constant, safe to write into SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Quarter => "quarter",
            Granularity::Year => "year",
        }
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    pub column: String,
    pub direction: Option<Direction>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Deserialize,
    serde::Serialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

/// A list of filters, or the shorthand object `{ "status": "Active" }`
/// (equality per key, `in` for a list, `is_null` for null).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Filters {
    List(Vec<Filter>),
    #[schema(value_type = Object)]
    Shorthand(serde_json::Map<String, serde_json::Value>),
}

/// One filter, `{ "column", "op", "value" }` or an `or`/`and` group, kept
/// as raw JSON until the planner reads it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct Filter(pub serde_json::Value);

/// A filter: a test on one column, or an `or`/`and` group of filters,
/// nested at most 4 deep. (The documented shape of [`Filter`].)
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FilterSchema {
    Test(FilterTest),
    Or(FilterOr),
    And(FilterAnd),
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"column": "status", "op": "in", "value": ["Active", "Ready"]}))]
#[allow(dead_code)]
pub struct FilterTest {
    column: String,
    op: FilterOp,
    /// A value of the column's type; a list for `in`/`not_in`, `[low,
    /// high]` for `between`, absent for `is_null`/`not_null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<serde_json::Value>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FilterOr {
    #[schema(no_recursion)]
    or: Vec<Filter>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FilterAnd {
    #[schema(no_recursion)]
    and: Vec<Filter>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum FilterOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
    Like,
    Ilike,
    Between,
    IsNull,
    NotNull,
}

impl utoipa::PartialSchema for Filter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::Ref::from_schema_name("Filter").into()
    }
}

impl utoipa::ToSchema for Filter {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "Filter".into(),
            <FilterSchema as utoipa::PartialSchema>::schema(),
        ));
        <FilterSchema as utoipa::ToSchema>::schemas(schemas);
    }
}
