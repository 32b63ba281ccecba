//! `PlanError`: why a data source cannot become a query, and which field of
//! the request is to blame. Pure data.

use crate::code::ErrorCode;

/// A refused data source: what is wrong (`kind`) and where (`field`, the
/// path into the request: `config.table`, `config.filters[2].value`,
/// `filters[0].op` for a runtime filter).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {kind}")]
pub struct PlanError {
    field: String,
    kind: PlanErrorKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanErrorKind {
    #[error("table {table:?} does not exist in the exposed schemas ({schemas})")]
    UnknownTable { table: String, schemas: String },
    #[error("column {column:?} does not exist on table {table}")]
    UnknownColumn { table: String, column: String },
    #[error("{0}")]
    TypeMismatch(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("operator {op} cannot be used on column {column:?} of type {pg_type}")]
    OperatorNotAllowed {
        op: &'static str,
        column: String,
        pg_type: String,
    },
    #[error("{function} cannot be used on column {column:?} of type {pg_type}")]
    AggregationNotAllowed {
        function: &'static str,
        column: String,
        pg_type: String,
    },
    #[error("column {column:?} of type {pg_type} cannot be {usage}")]
    ColumnNotAllowed {
        column: String,
        pg_type: String,
        usage: &'static str,
    },
    #[error("{function} needs a `column`")]
    MissingColumn { function: &'static str },
    #[error("{0}")]
    InvalidFilter(String),
    #[error("filter groups nest at most {max} deep")]
    TooDeep { max: usize },
    #[error("at most {max} filters in all")]
    TooManyFilters { max: usize },
    #[error("at most {max} values in a list")]
    TooManyValues { max: usize },
    #[error("at most {max} measures")]
    TooManyMeasures { max: usize },
    #[error("the output name {0:?} is used twice")]
    DuplicateName(String),
    #[error("name {0:?} must be a letter or _ followed by up to 62 letters, digits or _")]
    BadAlias(String),
    #[error("{0}")]
    BadOrderBy(String),
    #[error("limit must be at least 1 (got {0})")]
    InvalidLimit(i64),
    #[error("{0}")]
    Conflict(String),
}

impl PlanError {
    pub(crate) fn new(field: impl Into<String>, kind: PlanErrorKind) -> Self {
        Self {
            field: field.into(),
            kind,
        }
    }

    pub fn kind(&self) -> &PlanErrorKind {
        &self.kind
    }

    /// The path of the offending part of the request.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The message without the field path.
    pub fn reason(&self) -> String {
        self.kind.to_string()
    }

    /// Stable, snake_case: one per condition.
    pub fn code(&self) -> ErrorCode {
        use PlanErrorKind::*;
        match self.kind {
            UnknownTable { .. } => ErrorCode::UnknownTable,
            UnknownColumn { .. } => ErrorCode::UnknownColumn,
            TypeMismatch(_) => ErrorCode::TypeMismatch,
            InvalidValue(_) => ErrorCode::InvalidValue,
            OperatorNotAllowed { .. } => ErrorCode::OperatorNotAllowed,
            AggregationNotAllowed { .. } => ErrorCode::AggregationNotAllowed,
            ColumnNotAllowed { .. } => ErrorCode::ColumnNotAllowed,
            MissingColumn { .. } => ErrorCode::MissingColumn,
            InvalidFilter(_) => ErrorCode::InvalidFilter,
            TooDeep { .. } => ErrorCode::FiltersTooDeep,
            TooManyFilters { .. } => ErrorCode::TooManyFilters,
            TooManyValues { .. } => ErrorCode::TooManyValues,
            TooManyMeasures { .. } => ErrorCode::TooManyMeasures,
            DuplicateName(_) => ErrorCode::DuplicateName,
            BadAlias(_) => ErrorCode::InvalidName,
            BadOrderBy(_) => ErrorCode::InvalidOrderBy,
            InvalidLimit(_) => ErrorCode::InvalidLimit,
            Conflict(_) => ErrorCode::ConflictingFields,
        }
    }

    /// The same error at another field.
    pub fn with_field(mut self, field: String) -> Self {
        self.field = field;
        self
    }

    /// Reports a source error under another root: a saved widget's errors
    /// read `data_source.filters[0]` rather than `config.filters[0]`.
    pub fn with_source_root(mut self, root: &str) -> Self {
        if let Some(rest) = self.field.strip_prefix(SOURCE_ROOT) {
            self.field = format!("{root}{rest}");
        }
        self
    }
}

/// The root of paths into the data source itself.
pub(crate) const SOURCE_ROOT: &str = "config";
