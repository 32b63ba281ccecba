//! The OpenAPI description of `/rest/v1/<table>`: one set of operations per
//! dashboard table, with its row and write shapes. The handlers themselves
//! are generic over the table (`rest.rs`); these functions only carry the
//! documentation and are never routed.
#![allow(dead_code)]

use crate::error::ErrorBody;
use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

/// The page a read returns.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Rows to return; larger values are clamped to 1000.
    #[param(maximum = 9223372036854775807_u64)]
    limit: Option<u64>,
    /// Rows to skip.
    #[param(maximum = 9223372036854775807_u64)]
    offset: Option<u64>,
}

/// Parameters of writes: the columns of the representation returned.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// `*` or a comma-separated column list of the returned rows.
    select: Option<String>,
}

/// The `<op>.<value>` forms a filter on a column of each type accepts:
/// `eq`/`neq` (and `gt`.. for ordered types), `in.(a,b)`, `is.null`,
/// `not.is.null`, and `like`/`ilike` (`*` for `%`) on text.
fn filter_pattern(kind: &str) -> &'static str {
    match kind {
        "uuid" => {
            "^((eq|neq)\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|in\\.\\(([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(,[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})*\\)|(not\\.)?is\\.null)$"
        }
        "text" => {
            "^((eq|neq|gt|gte|lt|lte)\\.[A-Za-z0-9 _-]*|in\\.\\(([A-Za-z0-9 _-]*)(,[A-Za-z0-9 _-]*)*\\)|(not\\.)?is\\.null|i?like\\.[A-Za-z0-9 _*-]*)$"
        }
        "int" => {
            "^((eq|neq|gt|gte|lt|lte)\\.-?[0-9]{1,9}|in\\.\\((-?[0-9]{1,9})(,-?[0-9]{1,9})*\\)|(not\\.)?is\\.null)$"
        }
        _ => {
            "^((eq|neq|gt|gte|lt|lte)\\.20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z|in\\.\\((20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z)(,20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z)*\\)|(not\\.)?is\\.null)$"
        }
    }
}

macro_rules! filters {
    ($name:ident, $sort:ident { $($column:ident: $kind:ident),* $(,)? }) => {
        /// `select`, and filters on the table's columns:
        /// `<column>=<op>.<value>`.
        pub struct $name;

        impl IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                let columns = [$(stringify!($column)),*];
                let mut params = vec![select_param(&columns)];
                params.extend([$(filter_param(stringify!($column), stringify!($kind))),*]);
                params
            }
        }

        /// `order` on the table's columns.
        pub struct $sort;

        impl IntoParams for $sort {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                vec![order_param(&[$(stringify!($column)),*])]
            }
        }
    };
}

fn query_param(name: &str, description: &str, pattern: String) -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        ))
        .build()
}

/// `select=*` or a comma-separated list of the table's columns.
fn select_param(columns: &[&str]) -> utoipa::openapi::path::Parameter {
    let column = format!("({})", columns.join("|"));
    query_param(
        "select",
        "`*` or a comma-separated list of columns",
        format!("^(\\*|{column}(,{column})*)$"),
    )
}

/// `order=<column>[.asc|.desc][.nullsfirst|.nullslast],...`
fn order_param(columns: &[&str]) -> utoipa::openapi::path::Parameter {
    let key = format!(
        "({})(\\.(asc|desc))?(\\.(nullsfirst|nullslast))?",
        columns.join("|")
    );
    query_param(
        "order",
        "`<column>.asc|desc[.nullsfirst|.nullslast]`, comma-separated",
        format!("^{key}(,{key})*$"),
    )
}

fn filter_param(column: &str, kind: &str) -> utoipa::openapi::path::Parameter {
    query_param(
        column,
        &format!("A filter on `{column}`, e.g. `eq.<value>`"),
        filter_pattern(kind).to_owned(),
    )
}

filters!(
    DashboardFilters,
    DashboardSort {
        id: uuid,
        owner_id: uuid,
        name: text,
        description: text,
        created_at: time,
        updated_at: time
    }
);
filters!(
    WidgetFilters,
    WidgetSort {
        id: uuid,
        dashboard_id: uuid,
        owner_id: uuid,
        title: text,
        widget_type: text,
        data_source_id: uuid,
        refresh_interval: int,
        created_at: time,
        updated_at: time
    }
);
filters!(
    DataSourceFilters,
    DataSourceSort {
        id: uuid,
        owner_id: uuid,
        name: text,
        created_at: time,
        updated_at: time
    }
);
filters!(
    PreferenceFilters,
    PreferenceSort {
        id: uuid,
        user_id: uuid,
        dashboard_id: uuid,
        filter_key: text,
        created_at: time
    }
);
filters!(
    DefaultFilters,
    DefaultSort {
        id: uuid,
        dashboard_id: uuid,
        filter_key: text,
        created_at: time
    }
);

/// A row, with the columns `select` asked for (all by default).
#[derive(ToSchema)]
pub struct Dashboard {
    #[schema(required = false)]
    id: Uuid,
    #[schema(required = false)]
    owner_id: Uuid,
    #[schema(required = false)]
    name: String,
    #[schema(required = false)]
    description: Option<String>,
    #[schema(required = false)]
    created_at: DateTime<Utc>,
    #[schema(required = false)]
    updated_at: DateTime<Utc>,
}

#[derive(ToSchema)]
pub struct DashboardWidget {
    #[schema(required = false)]
    id: Uuid,
    #[schema(required = false)]
    dashboard_id: Uuid,
    #[schema(required = false)]
    owner_id: Uuid,
    #[schema(required = false)]
    title: String,
    /// `metric`, `chart`, `stat`, `gauge`, `table`, `summary` or `trend`.
    #[schema(required = false)]
    widget_type: String,
    #[schema(value_type = Object)]
    #[schema(required = false)]
    position: Value,
    #[schema(value_type = Object)]
    #[schema(required = false)]
    config: Value,
    #[schema(required = false)]
    data_source: Option<crate::plan::DataSource>,
    #[schema(required = false)]
    data_source_id: Option<Uuid>,
    #[schema(required = false)]
    filters: Vec<crate::plan::Filter>,
    /// Seconds an answer is cached; null: the widget type's default.
    #[schema(required = false)]
    refresh_interval: Option<i32>,
    #[schema(required = false)]
    created_at: DateTime<Utc>,
    #[schema(required = false)]
    updated_at: DateTime<Utc>,
}

#[derive(ToSchema)]
pub struct WidgetDataSource {
    #[schema(required = false)]
    id: Uuid,
    #[schema(required = false)]
    owner_id: Uuid,
    #[schema(required = false)]
    name: String,
    #[schema(required = false)]
    data_source: crate::plan::DataSource,
    #[schema(required = false)]
    created_at: DateTime<Utc>,
    #[schema(required = false)]
    updated_at: DateTime<Utc>,
}

/// A user's value for one dashboard filter: a scalar (equality), a list
/// (`in`) or `{"op", "value"}`.
#[derive(ToSchema)]
pub struct UserFilterPreference {
    #[schema(required = false)]
    id: Uuid,
    #[schema(required = false)]
    user_id: Uuid,
    #[schema(required = false)]
    dashboard_id: Uuid,
    /// A column name.
    #[schema(required = false)]
    filter_key: String,
    #[schema(required = false)]
    value: Value,
    #[schema(required = false)]
    created_at: DateTime<Utc>,
}

/// A filter default for one dashboard, or every dashboard (null
/// `dashboard_id`). Written by `service_role` only.
#[derive(ToSchema)]
pub struct GlobalFilterDefault {
    #[schema(required = false)]
    id: Uuid,
    #[schema(required = false)]
    dashboard_id: Option<Uuid>,
    #[schema(required = false)]
    filter_key: String,
    #[schema(required = false)]
    value: Value,
    #[schema(required = false)]
    created_at: DateTime<Utc>,
}

/// The kinds of widget.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WidgetType {
    Metric,
    Chart,
    Stat,
    Gauge,
    Table,
    Summary,
    Trend,
}

/// A filter preference's or default's value: a scalar (equality), a list
/// (`in`) or `{"op", "value"}`.
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
pub enum FilterValue {
    Text(String),
    Number(f64),
    Boolean(bool),
    List(Vec<Value>),
    #[schema(value_type = Object)]
    Test(Value),
}

#[derive(ToSchema)]
pub struct DashboardInsert {
    name: String,
    description: Option<String>,
}

/// The columns to change.
#[derive(ToSchema)]
#[schema(min_properties = 1)]
pub struct DashboardUpdate {
    #[schema(nullable = false)]
    name: Option<String>,
    description: Option<String>,
}

/// A widget: its `data_source` (or the one `data_source_id` names) and its
/// `filters` must compile, or the insert is refused with 400.
#[derive(ToSchema)]
pub struct DashboardWidgetInsert {
    dashboard_id: Uuid,
    widget_type: WidgetType,
    #[schema(nullable = false)]
    title: Option<String>,
    #[schema(value_type = Option<Object>, nullable = false)]
    position: Option<Value>,
    #[schema(value_type = Option<Object>, nullable = false)]
    config: Option<Value>,
    data_source: Option<crate::plan::DataSource>,
    data_source_id: Option<Uuid>,
    #[schema(nullable = false)]
    filters: Option<Vec<crate::plan::Filter>>,
    #[schema(minimum = 1)]
    refresh_interval: Option<i32>,
}

/// The columns to change; the widget as changed must still compile.
#[derive(ToSchema)]
#[schema(min_properties = 1)]
pub struct DashboardWidgetUpdate {
    #[schema(nullable = false)]
    dashboard_id: Option<Uuid>,
    #[schema(nullable = false)]
    widget_type: Option<WidgetType>,
    #[schema(nullable = false)]
    title: Option<String>,
    #[schema(value_type = Option<Object>, nullable = false)]
    position: Option<Value>,
    #[schema(value_type = Option<Object>, nullable = false)]
    config: Option<Value>,
    data_source: Option<crate::plan::DataSource>,
    data_source_id: Option<Uuid>,
    #[schema(nullable = false)]
    filters: Option<Vec<crate::plan::Filter>>,
    #[schema(minimum = 1)]
    refresh_interval: Option<i32>,
}

/// A reusable data source; it must compile.
#[derive(ToSchema)]
pub struct WidgetDataSourceInsert {
    name: String,
    data_source: crate::plan::DataSource,
}

#[derive(ToSchema)]
#[schema(min_properties = 1)]
pub struct WidgetDataSourceUpdate {
    #[schema(nullable = false)]
    name: Option<String>,
    #[schema(nullable = false)]
    data_source: Option<crate::plan::DataSource>,
}

#[derive(ToSchema)]
pub struct UserFilterPreferenceInsert {
    dashboard_id: Uuid,
    /// A column name.
    filter_key: String,
    value: FilterValue,
}

#[derive(ToSchema)]
#[schema(min_properties = 1)]
pub struct UserFilterPreferenceUpdate {
    #[schema(nullable = false)]
    filter_key: Option<String>,
    #[schema(nullable = false)]
    value: Option<FilterValue>,
}

#[derive(ToSchema)]
pub struct GlobalFilterDefaultInsert {
    /// Null or absent: every dashboard.
    dashboard_id: Option<Uuid>,
    filter_key: String,
    value: FilterValue,
}

#[derive(ToSchema)]
#[schema(min_properties = 1)]
pub struct GlobalFilterDefaultUpdate {
    dashboard_id: Option<Uuid>,
    #[schema(nullable = false)]
    filter_key: Option<String>,
    #[schema(nullable = false)]
    value: Option<FilterValue>,
}

macro_rules! table {
    ($module:ident, $path:literal, $row:ty, $insert:ty, $update:ty, $filters:ty, $sort:ty) => {
        pub mod $module {
            use super::*;

            /// Reads rows the caller may see.
            ///
            /// With `Accept: application/vnd.pgrst.object+json` (supabase-js
            /// `.single()`), the one row as an object of that media type, or
            /// 406 when the result is not exactly one row.
            #[utoipa::path(get, path = $path, tag = "rest",
                operation_id = concat!("list_", stringify!($module)),
                params(ReadParams, $sort, $filters,
                    ("Range" = Option<String>, Header, description = "`<from>-<to>` (or `<from>-`), rows counted from 0; one no rows could satisfy is a 416")),
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "The rows", body = Vec<$row>,
                        headers(("content-range" = String, description = "`<from>-<to>/*`, or `*/*` when empty"))),
                    (status = 400, description = "A parameter is invalid; `details.field` names it", body = ErrorBody),
                    (status = 401, description = "Missing or invalid token", body = ErrorBody),
                    (status = 403, description = "The role may not read the table", body = ErrorBody),
                    (status = 406, description = "An object was asked for and the result is not one row (`PGRST116`)", body = ErrorBody),
                    (status = 416, description = "The `Range` header names no rows that could be given (`range_not_satisfiable`)", body = ErrorBody),
                    (status = 429, description = "Over the caller's rate limit (`rate_limited`) or its concurrent queries (`too_many_queries`); see `Retry-After`", body = ErrorBody),
                    (status = 503, description = "Database unavailable; see `Retry-After`", body = ErrorBody),
                    (status = 504, description = "Query timed out", body = ErrorBody),
                ))]
            pub fn list() {}

            /// Inserts one row or an array of rows.
            #[utoipa::path(post, path = $path, tag = "rest",
                operation_id = concat!("create_", stringify!($module)),
                params(WriteParams,
                    ("Prefer" = Option<String>, Header, description = "`return=representation` for the rows, else an empty array")),
                request_body(content = Vec<$insert>, description = "An object or an array of them"),
                security(("bearer" = [])),
                responses(
                    (status = 201, description = "Created: the rows with `Prefer: return=representation`, else an empty array", body = Vec<$row>),
                    (status = 400, description = "Invalid body or a value the table refuses; `details.field` names it", body = ErrorBody),
                    (status = 401, description = "Missing or invalid token", body = ErrorBody),
                    (status = 403, description = "Not the caller's to write, or over the user's quota of rows (`quota_exceeded`)", body = ErrorBody),
                    (status = 409, description = "A row with this key exists", body = ErrorBody),
                    (status = 413, description = "Body larger than 1 MiB, more rows than `REST_MAX_BULK_ROWS` (`too_many_rows`), or more values than one statement takes (`too_many_parameters`)", body = ErrorBody),
                    (status = 415, description = "The body is not JSON (`Content-Type`)", body = ErrorBody),
                    (status = 429, description = "Over the caller's rate limit (`rate_limited`) or its concurrent queries (`too_many_queries`); see `Retry-After`", body = ErrorBody),
                    (status = 503, description = "Database unavailable; see `Retry-After`", body = ErrorBody),
                    (status = 504, description = "Query timed out", body = ErrorBody),
                ))]
            pub fn create() {}

            /// Changes the rows the filters select (at least one filter).
            #[utoipa::path(patch, path = $path, tag = "rest",
                operation_id = concat!("update_", stringify!($module)),
                params($filters,
                    ("Prefer" = Option<String>, Header, description = "`return=representation` for the rows, else 204")),
                request_body = $update,
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "The changed rows", body = Vec<$row>),
                    (status = 204, description = "Changed"),
                    (status = 400, description = "No filter, an invalid body, or a value the table refuses", body = ErrorBody),
                    (status = 401, description = "Missing or invalid token", body = ErrorBody),
                    (status = 403, description = "Not the caller's to write", body = ErrorBody),
                    (status = 406, description = "`.single()` asked for one row and the change matched another number: rolled back (`PGRST116`)", body = ErrorBody),
                    (status = 409, description = "A row with this key exists", body = ErrorBody),
                    (status = 413, description = "Body larger than 1 MiB, or more values than one statement takes (`too_many_parameters`)", body = ErrorBody),
                    (status = 415, description = "The body is not JSON (`Content-Type`)", body = ErrorBody),
                    (status = 429, description = "Over the caller's rate limit (`rate_limited`) or its concurrent queries (`too_many_queries`); see `Retry-After`", body = ErrorBody),
                    (status = 503, description = "Database unavailable; see `Retry-After`", body = ErrorBody),
                    (status = 504, description = "Query timed out", body = ErrorBody),
                ))]
            pub fn update() {}

            /// Deletes the rows the filters select (at least one filter).
            #[utoipa::path(delete, path = $path, tag = "rest",
                operation_id = concat!("delete_", stringify!($module)),
                params($filters,
                    ("Prefer" = Option<String>, Header, description = "`return=representation` for the rows, else 204")),
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "The deleted rows", body = Vec<$row>),
                    (status = 204, description = "Deleted"),
                    (status = 400, description = "No filter, or an invalid one", body = ErrorBody),
                    (status = 401, description = "Missing or invalid token", body = ErrorBody),
                    (status = 403, description = "Not the caller's to delete", body = ErrorBody),
                    (status = 406, description = "`.single()` asked for one row and the delete matched another number: rolled back (`PGRST116`)", body = ErrorBody),
                    (status = 429, description = "Over the caller's rate limit (`rate_limited`) or its concurrent queries (`too_many_queries`); see `Retry-After`", body = ErrorBody),
                    (status = 503, description = "Database unavailable; see `Retry-After`", body = ErrorBody),
                    (status = 504, description = "Query timed out", body = ErrorBody),
                ))]
            pub fn delete() {}
        }
    };
}

table!(
    dashboards,
    "/rest/v1/dashboards",
    Dashboard,
    DashboardInsert,
    DashboardUpdate,
    DashboardFilters,
    DashboardSort
);
table!(
    dashboard_widgets,
    "/rest/v1/dashboard_widgets",
    DashboardWidget,
    DashboardWidgetInsert,
    DashboardWidgetUpdate,
    WidgetFilters,
    WidgetSort
);
table!(
    widget_data_sources,
    "/rest/v1/widget_data_sources",
    WidgetDataSource,
    WidgetDataSourceInsert,
    WidgetDataSourceUpdate,
    DataSourceFilters,
    DataSourceSort
);
table!(
    user_filter_preferences,
    "/rest/v1/user_filter_preferences",
    UserFilterPreference,
    UserFilterPreferenceInsert,
    UserFilterPreferenceUpdate,
    PreferenceFilters,
    PreferenceSort
);
table!(
    global_filter_defaults,
    "/rest/v1/global_filter_defaults",
    GlobalFilterDefault,
    GlobalFilterDefaultInsert,
    GlobalFilterDefaultUpdate,
    DefaultFilters,
    DefaultSort
);

#[derive(OpenApi)]
#[openapi(paths(
    dashboards::list,
    dashboards::create,
    dashboards::update,
    dashboards::delete,
    dashboard_widgets::list,
    dashboard_widgets::create,
    dashboard_widgets::update,
    dashboard_widgets::delete,
    widget_data_sources::list,
    widget_data_sources::create,
    widget_data_sources::update,
    widget_data_sources::delete,
    user_filter_preferences::list,
    user_filter_preferences::create,
    user_filter_preferences::update,
    user_filter_preferences::delete,
    global_filter_defaults::list,
    global_filter_defaults::create,
    global_filter_defaults::update,
    global_filter_defaults::delete,
))]
pub struct RestDoc;
