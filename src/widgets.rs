//! Saved widgets: reads a widget's data source, its own filters and its
//! cache lifetime, under the caller's role, so row-level security decides
//! whether the caller may see the widget at all.
//!
//! Takes a widget id and a principal; gives a `SavedWidget`. Reads only.

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::exec;
use crate::plan::{DataSource, Filter};
use serde::Deserialize;
use sqlx::Arguments;
use sqlx::postgres::PgArguments;
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// A widget's own data source, or the `widget_data_sources` row it names.
const LOAD: &str = "SELECT coalesce(json_agg(w.*), '[]'::json) FROM ( \
    SELECT w.widget_type, w.refresh_interval, \
           coalesce(w.data_source, s.data_source) AS data_source, \
           coalesce(w.filters, '[]'::jsonb) AS filters \
    FROM app.dashboard_widgets w \
    LEFT JOIN app.widget_data_sources s ON s.id = w.data_source_id \
    WHERE w.id = $1) w";

#[derive(Debug, Clone)]
pub struct SavedWidget {
    pub widget_type: String,
    pub source: DataSource,
    /// The widget's own filters, always applied.
    pub filters: Vec<Filter>,
    /// `refresh_interval`, or the default of the widget's type.
    pub ttl_secs: Option<u64>,
}

#[derive(Deserialize)]
struct Row {
    widget_type: String,
    refresh_interval: Option<i64>,
    data_source: Option<serde_json::Value>,
    filters: serde_json::Value,
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
/// still be served (stale-if-error). Bounded: forgotten wholesale when full.
#[derive(Default)]
pub struct Remembered(Mutex<HashMap<(Uuid, String), SavedWidget>>);

const REMEMBERED_MAX: usize = 10_000;

impl Remembered {
    fn keep(&self, id: Uuid, scope: String, widget: &SavedWidget) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= REMEMBERED_MAX {
            map.clear();
        }
        map.insert((id, scope), widget.clone());
    }

    fn last(&self, id: Uuid, scope: String) -> Option<SavedWidget> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(id, scope)).cloned()
    }
}

/// Loads widget `id` as `principal` sees it; one the caller cannot see is
/// the same 404 as one that does not exist. When the database cannot
/// answer, the definition this caller last loaded is used, if any.
pub async fn load(app: &App, principal: &Principal, id: Uuid) -> Result<SavedWidget, ApiError> {
    let scope = crate::cache::scope(principal);
    match load_now(app, principal, id).await {
        Ok(widget) => {
            app.widget_definitions.keep(id, scope, &widget);
            Ok(widget)
        }
        Err(ApiError::Exec(e @ (exec::ExecError::Unavailable(_) | exec::ExecError::Timeout))) => {
            app.widget_definitions
                .last(id, scope)
                .ok_or(ApiError::Exec(e))
        }
        Err(e) => Err(e),
    }
}

async fn load_now(app: &App, principal: &Principal, id: Uuid) -> Result<SavedWidget, ApiError> {
    let mut args = PgArguments::default();
    args.add(id)
        .map_err(|e| ApiError::Exec(exec::ExecError::Internal(sqlx::Error::Encode(e))))?;
    let raw =
        match exec::query_json(&app.pool, principal, app.config.query_timeout, LOAD, args).await {
            Ok(raw) => raw,
            // A role with no access to widgets at all (anon) sees none: 404,
            // like any other widget it may not see.
            Err(exec::ExecError::PermissionDenied { .. }) => {
                return Err(ApiError::NotFound { what: "widget" });
            }
            Err(e) => return Err(e.into()),
        };
    let mut rows: Vec<Row> = serde_json::from_str(raw.get())
        .map_err(|e| ApiError::Exec(exec::ExecError::Internal(sqlx::Error::Decode(Box::new(e)))))?;
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
        ttl_secs,
    })
}
