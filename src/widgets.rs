//! Saved widgets: reads a widget's data source, its own filters, the
//! dashboard filter layers that apply to it and its cache lifetime, under
//! the caller's role, so row-level security decides whether the caller may
//! see the widget at all. Also checks widgets and data sources as they are
//! saved (`check_saved`).
//!
//! Takes a widget id and a principal; gives a `SavedWidget`.

use crate::auth::Principal;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::exec::{self, Database};
use crate::plan::{DataSource, Filter, Limits};
use crate::schema::SchemaCache;
use crate::sql;
use serde::Deserialize;
use sqlx::Arguments;
use sqlx::postgres::PgArguments;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct SavedWidget {
    pub widget_type: String,
    pub source: DataSource,
    /// The widget's own filters, always applied.
    pub filters: Vec<Filter>,
    /// Dashboard filter layers, `(column, value)`, in merge order: global
    /// defaults, then the caller's preferences.
    pub layers: Vec<(String, serde_json::Value)>,
    /// `refresh_interval`, or the default of the widget's type.
    pub ttl_secs: Option<u64>,
    pub presentation: Presentation,
}

/// What a saved widget's answer carries beside its rows.
#[derive(Debug, Clone, Default)]
pub struct Presentation {
    /// How long browsers may keep its answers without asking again
    /// (`config.browser_cache_ttl`, seed 001's browser layer); `None`:
    /// the service's `BROWSER_CACHE_SECS`.
    pub browser_ttl_secs: Option<u64>,
    /// The widget bundle its `config.bundle` names, when the caller may
    /// load it.
    pub bundle: Option<BundleLink>,
}

/// A widget bundle version a widget renders with: what a frontend needs
/// for `<script src=url integrity=integrity crossorigin=anonymous>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct BundleLink {
    pub id: String,
    pub version: String,
    /// The pinned copy: `/widgets/<id>/v<version>/bundle.js` on this service.
    #[serde(default)]
    pub url: String,
    /// Subresource Integrity of the pinned bytes (`sha384-…`).
    pub integrity: String,
}

impl BundleLink {
    /// With its `url` filled in.
    pub fn served(mut self) -> Self {
        self.url = crate::bundles::served_path(&self.id, &self.version);
        self
    }
}

#[derive(Deserialize)]
struct Row {
    widget_type: String,
    refresh_interval: Option<i64>,
    browser_cache_ttl: Option<serde_json::Value>,
    bundle: Option<BundleLink>,
    data_source: Option<serde_json::Value>,
    filters: serde_json::Value,
    defaults: Vec<(String, serde_json::Value)>,
    preferences: Vec<(String, serde_json::Value)>,
}

/// Cache lifetime by widget type when `refresh_interval` is null; `None`
/// means the service default (`CACHE_DEFAULT_TTL_SECS`).
pub fn default_ttl_secs(widget_type: &str) -> Option<u64> {
    match widget_type {
        "metric" => Some(5 * 60),
        "summary" => Some(60 * 60),
        "trend" => Some(6 * 60 * 60),
        _ => None,
    }
}

/// The definition of each widget as last loaded for each caller, so that
/// while the database cannot be asked for a widget, its cached data can
/// still be served (stale-if-error). Bounded (moka): past
/// `REMEMBERED_MAX`, the least asked for go first.
pub struct LastDefinitions(moka::sync::Cache<(Uuid, String), SavedWidget>);

const REMEMBERED_MAX: u64 = 10_000;

impl Default for LastDefinitions {
    fn default() -> Self {
        Self(moka::sync::Cache::new(REMEMBERED_MAX))
    }
}

impl LastDefinitions {
    fn keep(&self, id: Uuid, scope: String, widget: &SavedWidget) {
        self.0.insert((id, scope), widget.clone());
    }

    fn last(&self, id: Uuid, scope: String) -> Option<SavedWidget> {
        self.0.get(&(id, scope))
    }
}

/// Loads widget `id` as `principal` sees it; one the caller cannot see is
/// the same 404 as one that does not exist. When the database cannot
/// answer, the definition this caller last loaded is used, if any.
pub async fn load(
    db: &Database,
    last: &LastDefinitions,
    principal: &Principal,
    id: Uuid,
    deadline: Deadline,
) -> Result<SavedWidget, ApiError> {
    let scope = crate::cache::scope(principal);
    match load_now(db, principal, id, deadline).await {
        Ok(widget) => {
            last.keep(id, scope, &widget);
            Ok(widget)
        }
        Err(ApiError::Exec(e)) if e.is_unavailable() || matches!(e, exec::ExecError::Timeout) => {
            last.last(id, scope).ok_or(ApiError::Exec(e))
        }
        Err(e) => Err(e),
    }
}

async fn load_now(
    db: &Database,
    principal: &Principal,
    id: Uuid,
    deadline: Deadline,
) -> Result<SavedWidget, ApiError> {
    let mut args = PgArguments::default();
    args.add(id)
        .map_err(|e| ApiError::Exec(exec::ExecError::Internal(sqlx::Error::Encode(e))))?;
    let raw = match db
        .query_json(principal, deadline, sql::widgets::LOAD, args)
        .await
    {
        Ok(raw) => raw,
        // A role with no access to widgets at all (anon) sees none: 404,
        // like any other widget it may not see.
        Err(exec::ExecError::PermissionDenied { .. }) => {
            return Err(ApiError::NotFound { what: "widget" });
        }
        Err(e) => return Err(e.into()),
    };
    let mut rows: Vec<Row> = serde_json::from_str(raw.get()).map_err(exec::ExecError::from)?;
    let row = rows.pop().ok_or(ApiError::NotFound { what: "widget" })?;
    let invalid = |field: &str, e: String| ApiError::InvalidSavedWidget {
        field: field.to_owned(),
        message: e,
    };
    let source = match row.data_source {
        Some(v) => serde_json::from_value(v).map_err(|e| invalid("data_source", e.to_string()))?,
        None => {
            return Err(invalid(
                "data_source",
                "the widget has no data source".into(),
            ));
        }
    };
    let filters =
        serde_json::from_value(row.filters).map_err(|e| invalid("filters", e.to_string()))?;
    let ttl_secs = match row.refresh_interval {
        Some(secs) if secs > 0 => Some(secs as u64),
        _ => default_ttl_secs(&row.widget_type),
    };
    Ok(SavedWidget {
        widget_type: row.widget_type,
        source,
        filters,
        layers: row.defaults.into_iter().chain(row.preferences).collect(),
        ttl_secs,
        presentation: Presentation {
            browser_ttl_secs: row
                .browser_cache_ttl
                .as_ref()
                .and_then(serde_json::Value::as_u64),
            bundle: row.bundle.map(BundleLink::served),
        },
    })
}

/// The dashboard filters for a widget query: `layers` (global defaults,
/// then the user's preferences), then the request's `filters`, where a
/// later filter on a column replaces an earlier one. A layer's value is a
/// scalar (equality), a list (`in`), null (`is_null`) or `{"op", "value"}`.
/// Request filters without a single column (`or`/`and` groups) are kept
/// as they are, after the rest.
pub fn merge_filters(layers: &[(String, serde_json::Value)], request: &[Filter]) -> Vec<Filter> {
    use serde_json::{Value, json};
    let mut by_column: Vec<(String, Filter)> = Vec::new();
    let mut groups = Vec::new();
    let mut put = |column: String, filter: Filter| {
        by_column.retain(|(c, _)| *c != column);
        by_column.push((column, filter));
    };
    for (column, value) in layers {
        let filter = match value {
            Value::Object(o) if o.contains_key("op") => {
                let mut f = o.clone();
                f.insert("column".into(), Value::String(column.clone()));
                Value::Object(f)
            }
            Value::Array(items) => json!({"column": column, "op": "in", "value": items}),
            Value::Null => json!({"column": column, "op": "is_null"}),
            v => json!({"column": column, "op": "eq", "value": v}),
        };
        put(column.clone(), Filter(filter));
    }
    for f in request {
        match f.0.get("column").and_then(Value::as_str) {
            Some(column) => put(column.to_owned(), f.clone()),
            None => groups.push(f.clone()),
        }
    }
    by_column
        .into_iter()
        .map(|(_, f)| f)
        .chain(groups)
        .collect()
}

/// What saved widgets and data sources are checked against: the schema
/// and limits their queries will be planned with, and the longest
/// lifetime an entry may have.
pub struct Checks<'a> {
    pub schema: &'a SchemaCache,
    pub limits: &'a Limits,
    /// `CACHE_MAX_TTL_SECS`: the most a `refresh_interval` may ask for.
    pub max_ttl_secs: u64,
}

/// Checks a write's body before anything reaches the database: a
/// `data_source` given must compile (with the `filters` given beside it),
/// and `filters` must be filters, even when the write will match no row.
/// (What the write saved is checked again by [`check_saved`], with the
/// columns the body did not give.)
pub fn check_body(checks: &Checks, table: &str, body: &serde_json::Value) -> Result<(), ApiError> {
    use serde_json::Value;
    if !matches!(table, "dashboard_widgets" | "widget_data_sources") {
        return Ok(());
    }
    let objects: Vec<&serde_json::Map<String, Value>> = match body {
        Value::Object(o) => vec![o],
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        _ => return Ok(()),
    };
    let many = objects.len() > 1;
    for (i, object) in objects.iter().enumerate() {
        let root = |field: &str| {
            if many {
                format!("body[{i}].{field}")
            } else {
                field.to_owned()
            }
        };
        if let Some(bundle) = object.get("config").and_then(|c| c.get("bundle")) {
            check_bundle_ref(bundle, &root("config.bundle"))?;
        }
        let filters = object.get("filters").unwrap_or(&Value::Null);
        match object.get("data_source") {
            Some(source) if !source.is_null() => {
                validate(
                    checks,
                    source,
                    filters,
                    &root("data_source"),
                    &root("filters"),
                )?;
            }
            _ if !filters.is_null() => {
                serde_json::from_value::<Vec<Filter>>(filters.clone())
                    .map_err(|e| invalid_field(root("filters"), &e.to_string()))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks what a write to the dashboard tables saved, before it commits:
/// each widget's data source (its own, or the `widget_data_sources` row it
/// names) with its filters, and each data source row, must compile
/// against the exposed schema. `rows` are the written rows, all columns.
pub async fn check_saved(
    checks: &Checks<'_>,
    tx: &mut exec::WriteTx<'_>,
    table: &str,
    rows: &[serde_json::Value],
) -> Result<(), ApiError> {
    use serde_json::Value;
    let root = |i: usize, field: &str| {
        if rows.len() > 1 {
            format!("body[{i}].{field}")
        } else {
            field.to_owned()
        }
    };
    match table {
        "widget_data_sources" => {
            for (i, row) in rows.iter().enumerate() {
                let source = row.get("data_source").unwrap_or(&Value::Null);
                validate(
                    checks,
                    source,
                    &Value::Array(vec![]),
                    &root(i, "data_source"),
                    &root(i, "filters"),
                )?;
            }
            Ok(())
        }
        "dashboard_widgets" => {
            let max = checks.max_ttl_secs;
            for (i, row) in rows.iter().enumerate() {
                if let Some(secs) = row.get("refresh_interval").and_then(Value::as_u64)
                    && secs > max
                {
                    return Err(invalid_field(
                        root(i, "refresh_interval"),
                        &format!("at most {max} seconds (CACHE_MAX_TTL_SECS); got {secs}"),
                    ));
                }
            }
            let ids: Vec<Uuid> = rows
                .iter()
                .filter_map(|r| r.get("id")?.as_str()?.parse().ok())
                .collect();
            let mut args = PgArguments::default();
            args.add(&ids)
                .map_err(|e| ApiError::Exec(exec::ExecError::Internal(sqlx::Error::Encode(e))))?;
            let saved = tx.json(sql::widgets::SAVED, args).await?;
            let saved: serde_json::Map<String, Value> =
                serde_json::from_str(saved.get()).map_err(exec::ExecError::from)?;
            for (i, row) in rows.iter().enumerate() {
                let Some(w) = row
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| saved.get(id))
                else {
                    continue;
                };
                let source = match (&w["own"], &w["named"], &w["referenced"]) {
                    (own, _, _) if !own.is_null() => own,
                    (_, named, referenced) if !named.is_null() => {
                        if referenced.is_null() {
                            return Err(invalid_field(
                                root(i, "data_source_id"),
                                "no data source with this id is visible to you",
                            ));
                        }
                        referenced
                    }
                    _ => {
                        return Err(invalid_field(
                            root(i, "data_source"),
                            "a widget needs a data_source or a data_source_id",
                        ));
                    }
                };
                validate(
                    checks,
                    source,
                    &w["filters"],
                    &root(i, "data_source"),
                    &root(i, "filters"),
                )?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A widget's `config.bundle`: `{"id": …, "version": …}` naming a bundle
/// version (`null` for none).
fn check_bundle_ref(bundle: &serde_json::Value, field: &str) -> Result<(), ApiError> {
    if bundle.is_null() {
        return Ok(());
    }
    let named = |key: &str, version: bool| {
        let value = bundle.get(key).and_then(serde_json::Value::as_str);
        match value {
            Some(v) => crate::bundles::registry::check_name(key, v, version).is_ok(),
            None => false,
        }
    };
    let keys_ok = bundle
        .as_object()
        .is_some_and(|o| o.keys().all(|k| k == "id" || k == "version"));
    if keys_ok && named("id", false) && named("version", true) {
        return Ok(());
    }
    Err(invalid_field(
        field.to_owned(),
        "expected {\"id\": \"<bundle id>\", \"version\": \"<version>\"} naming a widget bundle",
    ))
}

fn invalid_field(field: String, message: &str) -> ApiError {
    ApiError::Plan(crate::plan::PlanError::new(
        field,
        crate::plan::PlanErrorKind::InvalidValue(message.to_owned()),
    ))
}

/// Plans `source` with `filters` as a query would, naming the field that
/// is wrong.
fn validate(
    checks: &Checks,
    source: &serde_json::Value,
    filters: &serde_json::Value,
    source_root: &str,
    filters_root: &str,
) -> Result<(), ApiError> {
    let source: DataSource = serde_json::from_value(source.clone())
        .map_err(|e| invalid_field(source_root.to_owned(), &e.to_string()))?;
    let filters: Vec<Filter> = match filters {
        serde_json::Value::Null => Vec::new(),
        f => serde_json::from_value(f.clone())
            .map_err(|e| invalid_field(filters_root.to_owned(), &e.to_string()))?,
    };
    crate::plan::plan(&source, &filters, checks.schema, checks.limits).map_err(|e| {
        let e = e.with_source_root(source_root);
        match e.field().strip_prefix("filters").map(str::to_owned) {
            Some(rest) if !e.field().starts_with(source_root) => {
                ApiError::Plan(e.with_field(format!("{filters_root}{rest}")))
            }
            _ => ApiError::Plan(e),
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn later_layers_replace_earlier_ones_on_the_same_column() {
        let layers = vec![
            ("region".to_owned(), json!("eu-west-1")),
            ("status".to_owned(), json!(["Active", "Ready"])),
            // the user's preference for region replaces the default
            (
                "region".to_owned(),
                json!({"op": "neq", "value": "us-east-1"}),
            ),
        ];
        let request = vec![
            Filter(json!({"column": "status", "op": "eq", "value": "Offline"})),
            Filter(json!({"or": [{"column": "cpu_pct", "op": "gt", "value": 90}]})),
        ];
        let merged: Vec<_> = merge_filters(&layers, &request)
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            merged,
            [
                json!({"column": "region", "op": "neq", "value": "us-east-1"}),
                json!({"column": "status", "op": "eq", "value": "Offline"}),
                json!({"or": [{"column": "cpu_pct", "op": "gt", "value": 90}]}),
            ]
        );
        assert_eq!(
            merge_filters(&[("owner".into(), json!(null))], &[])[0].0,
            json!({"column": "owner", "op": "is_null"})
        );
    }
}
