//! The wire form of a data source: untrusted JSON, as a frontend sends it
//! or as a saved widget stores it. Only shapes are checked here; names and
//! values are checked against the schema by the planner.
//!
//! Filters stay raw JSON on the wire so the planner can name the exact path
//! of whatever is wrong in them (`config.filters[1].or[0].op`).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// `table` or `schema.table`.
    pub table: String,
    pub aggregation: Option<AggFn>,
    pub column: Option<String>,
    pub aggregations: Option<Vec<MeasureSpec>>,
    #[serde(rename = "groupBy", alias = "group_by")]
    pub group_by: Option<OneOrMany>,
    #[serde(rename = "timeBucket", alias = "time_bucket")]
    pub time_bucket: Option<TimeBucketSpec>,
    pub filters: Option<Filters>,
    #[serde(rename = "orderBy", alias = "order_by")]
    pub order_by: Option<Vec<OrderSpec>>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    #[serde(rename = "fn")]
    pub function: AggFn,
    pub column: Option<String>,
    #[serde(rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeBucketSpec {
    pub column: String,
    pub granularity: Granularity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    pub column: String,
    pub direction: Option<Direction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

/// A list of filters, or the shorthand object `{ "status": "Active" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Filters {
    List(Vec<Filter>),
    Shorthand(serde_json::Map<String, serde_json::Value>),
}

/// One filter, `{ "column", "op", "value" }` or an `or`/`and` group, kept
/// as raw JSON until the planner reads it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct Filter(pub serde_json::Value);
