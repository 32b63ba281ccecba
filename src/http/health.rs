//! `GET /health` (the process is up, and how the database looks from here)
//! and `GET /ready` (the database answers and the migrations are applied).

use crate::app::App;
use crate::db::DatabaseState;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// How long `/ready` waits for the database: a probe must answer promptly,
/// whatever state the database is in.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok`
    status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` whenever the process serves HTTP.
    status: &'static str,
    /// The database as this instance last saw it. While it is `down` (or
    /// the embedded cluster is `restarting`), cached answers are served
    /// and everything else is a 503.
    database: DatabaseState,
    /// When the database's state last changed, if it ever did.
    database_since: Option<DateTime<Utc>>,
}

/// Liveness: answers as long as the process serves HTTP, with the
/// database's state in the body (it is not a reason to restart us).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn health(State(app): State<Arc<App>>) -> Json<Health> {
    let (database, database_since) = app.db.health().state();
    Json(Health {
        status: "ok",
        database,
        database_since,
    })
}

/// Readiness: the database is reachable and the migrations are applied.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "Database unreachable or not migrated", body = ErrorBody),
    ))]
pub async fn ready(State(app): State<Arc<App>>) -> Result<Json<Status>, ApiError> {
    app.db
        .ready(READY_TIMEOUT)
        .await
        .map_err(|message| ApiError::NotReady { message })?;
    Ok(Json(Status { status: "ok" }))
}
