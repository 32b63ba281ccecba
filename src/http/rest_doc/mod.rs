//! The OpenAPI description of `/rest/v1/<table>`: one set of operations per
//! dashboard table, with its row and write shapes. The handlers themselves
//! are generic over the table (`rest.rs`); these functions only carry the
//! documentation and are never routed. Each table's columns are written
//! once (`columns.rs`); its row, insert, update, filter and `order` shapes
//! are built from them (`schema.rs`).
#![allow(dead_code)]

pub mod columns;
mod schema;

use crate::error::ErrorBody;
use schema::Shape;
use serde_json::Value;
use std::borrow::Cow;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{RefOr, schema::Schema};
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};

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

/// Parameters of inserts and upserts.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InsertParams {
    /// `*` or a comma-separated column list of the returned rows.
    select: Option<String>,
    /// The body keys to insert, comma-separated (optionally double-quoted);
    /// supabase-js sends it with an array. Other keys are ignored, and a
    /// row without one of them gets the column's default.
    columns: Option<String>,
    /// With `Prefer: resolution=...`: the comma-separated columns of the
    /// primary key or of a unique constraint whose duplicates are merged
    /// or ignored (in any order). The primary key when left out. Any other
    /// column list is a 400 naming `query.on_conflict`.
    on_conflict: Option<String>,
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

/// A row, insert or update object, built from a table's columns.
macro_rules! shape {
    ($name:ident, $table:expr, $shape:expr) => {
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                schema::object(&$table, $shape)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schema::references(&$table, $shape, schemas)
            }
        }
    };
}

/// A table's parameters, built from its columns.
macro_rules! params {
    ($name:ident, $table:expr, $build:path) => {
        pub struct $name;

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                $build(&$table)
            }
        }
    };
}

/// A table's shapes, from its column list, and its four operations.
macro_rules! table {
    ($module:ident, $path:literal, $columns:expr,
        $row:ident, $insert:ident, $update:ident, $filters:ident, $sort:ident) => {
        shape!($row, $columns, Shape::Row);
        shape!($insert, $columns, Shape::Insert);
        shape!($update, $columns, Shape::Update);
        params!($filters, $columns, schema::filter_params);
        params!($sort, $columns, schema::sort_params);

        pub mod $module {
            use super::*;

            /// Reads rows the caller may see.
            ///
            /// With `Accept: application/vnd.pgrst.object+json` (supabase-js
            /// `.single()`), the one row as an object of that media type, or
            /// 406 when the result is not exactly one row. With `Prefer:
            /// count=exact` (supabase-js `{ count }`) the total the filters
            /// match follows the `/` in `Content-Range`; `planned` and
            /// `estimated` are counted exactly too, the tables being small.
            #[utoipa::path(get, path = $path, tag = "rest",
                operation_id = concat!("list_", stringify!($module)),
                params(ReadParams, $sort, $filters,
                    ("Range" = Option<String>, Header, description = "`<from>-<to>` (or `<from>-`), rows counted from 0; one no rows could satisfy is a 416"),
                    ("Prefer" = Option<String>, Header, description = "`count=exact`, `count=planned` or `count=estimated`: the total the filters match, under the caller's row policies, after the `/` of `Content-Range`. All three are counted exactly (the dashboard tables are small); without one the total is `*`")),
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "The rows (all of them, when counted)", body = Vec<$row>,
                        headers(("content-range" = String, description = "`<from>-<to>/<total>`, `*/<total>` when no rows; `<total>` is `*` unless a count was asked for (`Prefer: count=exact`)"))),
                    (status = 206, description = "A count was asked for and the rows are a part of the total", body = Vec<$row>,
                        headers(("content-range" = String, description = "`<from>-<to>/<total>`, `*/<total>` when no rows; `<total>` is `*` unless a count was asked for (`Prefer: count=exact`)"))),
                    (status = 400, description = "A parameter is invalid; `details.field` names it", body = ErrorBody),
                    (status = 401, description = "Missing or invalid token", body = ErrorBody),
                    (status = 403, description = "The role may not read the table", body = ErrorBody),
                    (status = 406, description = "An object was asked for and the result is not one row: `PGRST116`, `details` \"The result contains <n> rows\" (supabase-js `.maybeSingle()` reads 0 rows as no row)", body = ErrorBody),
                    (status = 416, description = "A count was asked for and the offset is past the total (`PGRST103`, `Content-Range: */<total>`), or the `Range` header names no rows that could be given (`range_not_satisfiable`)", body = ErrorBody,
                        headers(("content-range" = String, description = "`*/<total>`"))),
                    (status = 429, description = "Over the caller's rate limit (`rate_limited`) or its concurrent queries (`too_many_queries`); see `Retry-After`", body = ErrorBody),
                    (status = 503, description = "Database unavailable; see `Retry-After`", body = ErrorBody),
                    (status = 504, description = "Query timed out", body = ErrorBody),
                ))]
            pub fn list() {}

            /// The headers of the read with the same query (supabase-js
            /// `{ head: true }`), and no body: with `Prefer: count=exact`,
            /// the total in `Content-Range`.
            #[utoipa::path(head, path = $path, tag = "rest",
                operation_id = concat!("count_", stringify!($module)),
                params(ReadParams, $sort, $filters,
                    ("Range" = Option<String>, Header, description = "As for GET"),
                    ("Prefer" = Option<String>, Header, description = "`count=exact`, `count=planned` or `count=estimated`: the total the filters match, under the caller's row policies, after the `/` of `Content-Range`. All three are counted exactly (the dashboard tables are small); without one the total is `*`")),
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "Every row matched; no body",
                        headers(("content-range" = String, description = "`<from>-<to>/<total>`, `*/<total>` when no rows; `<total>` is `*` unless a count was asked for (`Prefer: count=exact`)"))),
                    (status = 206, description = "A count was asked for and the page is a part of the total; no body",
                        headers(("content-range" = String, description = "`<from>-<to>/<total>`, `*/<total>` when no rows; `<total>` is `*` unless a count was asked for (`Prefer: count=exact`)"))),
                    (status = 400, description = "A parameter is invalid; no body"),
                    (status = 401, description = "Missing or invalid token; no body"),
                    (status = 403, description = "The role may not read the table; no body"),
                    (status = 416, description = "The offset is past the counted rows, or the `Range` header names no rows; no body",
                        headers(("content-range" = String, description = "`*/<total>`"))),
                    (status = 429, description = "Over the caller's rate limit or its concurrent queries; no body"),
                    (status = 503, description = "Database unavailable; no body"),
                    (status = 504, description = "Query timed out; no body"),
                ))]
            pub fn count() {}

            /// Inserts one row or an array of rows.
            #[utoipa::path(post, path = $path, tag = "rest",
                operation_id = concat!("create_", stringify!($module)),
                params(InsertParams,
                    ("Prefer" = Option<String>, Header, description = "Comma-separated: `return=representation` for the rows, else an empty array; `resolution=merge-duplicates` (upsert: a row whose `on_conflict` key exists updates it, setting the columns sent outside the key) or `resolution=ignore-duplicates` (such a row is left out; only inserted rows are returned)")),
                request_body(content = Vec<$insert>, description = "An object or an array of them"),
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "`resolution=merge-duplicates` that only merged into existing rows: the rows with `Prefer: return=representation`, else an empty array", body = Vec<$row>),
                    (status = 201, description = "Created: the rows with `Prefer: return=representation`, else an empty array", body = Vec<$row>),
                    (status = 400, description = "Invalid body or a value the table refuses; `details.field` names it", body = ErrorBody),
                    (status = 401, description = "Missing or invalid token", body = ErrorBody),
                    (status = 403, description = "Not the caller's to write (row-level security also refuses an upsert onto another user's row), or over the user's quota of rows (`quota_exceeded`; an upsert counts only the rows it inserts)", body = ErrorBody),
                    (status = 409, description = "A row with this key exists (without `Prefer: resolution=...`, or on another unique key than `on_conflict`)", body = ErrorBody),
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
    columns::DASHBOARDS,
    Dashboard,
    DashboardInsert,
    DashboardUpdate,
    DashboardFilters,
    DashboardSort
);
table!(
    dashboard_widgets,
    "/rest/v1/dashboard_widgets",
    columns::DASHBOARD_WIDGETS,
    DashboardWidget,
    DashboardWidgetInsert,
    DashboardWidgetUpdate,
    WidgetFilters,
    WidgetSort
);
table!(
    widget_data_sources,
    "/rest/v1/widget_data_sources",
    columns::WIDGET_DATA_SOURCES,
    WidgetDataSource,
    WidgetDataSourceInsert,
    WidgetDataSourceUpdate,
    DataSourceFilters,
    DataSourceSort
);
table!(
    user_filter_preferences,
    "/rest/v1/user_filter_preferences",
    columns::USER_FILTER_PREFERENCES,
    UserFilterPreference,
    UserFilterPreferenceInsert,
    UserFilterPreferenceUpdate,
    PreferenceFilters,
    PreferenceSort
);
table!(
    global_filter_defaults,
    "/rest/v1/global_filter_defaults",
    columns::GLOBAL_FILTER_DEFAULTS,
    GlobalFilterDefault,
    GlobalFilterDefaultInsert,
    GlobalFilterDefaultUpdate,
    DefaultFilters,
    DefaultSort
);

#[derive(OpenApi)]
#[openapi(paths(
    dashboards::list,
    dashboards::count,
    dashboards::create,
    dashboards::update,
    dashboards::delete,
    dashboard_widgets::list,
    dashboard_widgets::count,
    dashboard_widgets::create,
    dashboard_widgets::update,
    dashboard_widgets::delete,
    widget_data_sources::list,
    widget_data_sources::count,
    widget_data_sources::create,
    widget_data_sources::update,
    widget_data_sources::delete,
    user_filter_preferences::list,
    user_filter_preferences::count,
    user_filter_preferences::create,
    user_filter_preferences::update,
    user_filter_preferences::delete,
    global_filter_defaults::list,
    global_filter_defaults::count,
    global_filter_defaults::create,
    global_filter_defaults::update,
    global_filter_defaults::delete,
))]
pub struct RestDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_table_is_documented_from_its_column_list_under_its_path() {
        let names: Vec<_> = columns::TABLES.iter().map(|t| t.name).collect();
        assert_eq!(names, crate::rest::TABLES);
        let doc = RestDoc::openapi();
        let mut paths: Vec<_> = doc.paths.paths.keys().cloned().collect();
        paths.sort();
        let mut expected: Vec<_> = names.iter().map(|n| format!("/rest/v1/{n}")).collect();
        expected.sort();
        assert_eq!(paths, expected);
    }
}
