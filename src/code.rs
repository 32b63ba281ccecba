//! `ErrorCode`: every condition the service answers an error for, with its
//! stable wire name. Each stage's error says which one it is (`fn code`);
//! `error::ApiError` picks the HTTP status. One list, so the compiler keeps
//! the code, the answers and the OpenAPI enum in step.

use serde::Serialize;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Every error `code` the service answers with, for the OpenAPI document
        /// (a test checks it against the code).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $name)] #[schema(rename = $name)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the documented order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire name: snake_case, or PostgREST's own where
            /// supabase-js branches on it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }
        }
    };
}

error_codes! {
    AggregationNotAllowed = "aggregation_not_allowed",
    BodyTimeout = "body_timeout",
    BundleBadContentType = "bundle_bad_content_type",
    BundleFetchFailed = "bundle_fetch_failed",
    BundleForbiddenAddress = "bundle_forbidden_address",
    BundleTooLarge = "bundle_too_large",
    ColumnNotAllowed = "column_not_allowed",
    Conflict = "conflict",
    ConflictingFields = "conflicting_fields",
    DatabaseUnavailable = "database_unavailable",
    DuplicateName = "duplicate_name",
    FiltersTooDeep = "filters_too_deep",
    Forbidden = "forbidden",
    InternalError = "internal_error",
    InvalidAudience = "invalid_audience",
    InvalidBody = "invalid_body",
    InvalidFilter = "invalid_filter",
    InvalidLimit = "invalid_limit",
    InvalidName = "invalid_name",
    InvalidOrderBy = "invalid_order_by",
    InvalidSavedWidget = "invalid_saved_widget",
    InvalidToken = "invalid_token",
    InvalidValue = "invalid_value",
    MalformedAuthorization = "malformed_authorization",
    MissingColumn = "missing_column",
    MissingRoleClaim = "missing_role_claim",
    MissingToken = "missing_token",
    NoRoute = "no_route",
    NotFound = "not_found",
    NotReady = "not_ready",
    /// PostgREST's own code for "one row was asked for": supabase-js users
    /// branch on it.
    NotSingle = "PGRST116",
    /// PostgREST's own code for an offset past the rows counted
    /// (`Prefer: count=...`), answered with `Content-Range: */<total>`.
    OffsetPastEnd = "PGRST103",
    OperatorNotAllowed = "operator_not_allowed",
    PayloadTooLarge = "payload_too_large",
    PermissionDenied = "permission_denied",
    QueryTimeout = "query_timeout",
    QuotaExceeded = "quota_exceeded",
    RangeNotSatisfiable = "range_not_satisfiable",
    RateLimited = "rate_limited",
    RejectedByDatabase = "rejected_by_database",
    TokenExpired = "token_expired",
    TokenNotYetValid = "token_not_yet_valid",
    TooManyFilters = "too_many_filters",
    TooManyMeasures = "too_many_measures",
    TooManyParameters = "too_many_parameters",
    TooManyQueries = "too_many_queries",
    TooManyRows = "too_many_rows",
    TooManyValues = "too_many_values",
    TypeMismatch = "type_mismatch",
    UnknownColumn = "unknown_column",
    UnknownRole = "unknown_role",
    UnknownTable = "unknown_table",
    UnsupportedMediaType = "unsupported_media_type",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and logs compare codes with their wire names.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// The document's enum, serde's names and `as_str` agree, and every
    /// name is distinct.
    #[test]
    fn wire_names_agree_everywhere() {
        let schema = serde_json::to_value(<ErrorCode as utoipa::PartialSchema>::schema()).unwrap();
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(documented, names);
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        assert_eq!(ErrorCode::NotSingle, "PGRST116");
        assert_eq!(ErrorCode::OffsetPastEnd, "PGRST103");
    }
}
