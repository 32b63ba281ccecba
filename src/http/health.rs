//! `GET /health` (the process is up) and `GET /ready` (the database answers
//! and the migrations are applied).

use crate::app::App;
use crate::error::ErrorBody;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok`
    status: &'static str,
}

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is up", body = Status)))]
pub async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database is reachable and the migrations are applied.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "Database unreachable or not migrated", body = ErrorBody),
    ))]
pub async fn ready(
    State(app): State<Arc<App>>,
) -> Result<Json<Status>, (StatusCode, Json<ErrorBody>)> {
    match crate::db::is_ready(&app.pool).await {
        Ok(true) => Ok(Json(Status { status: "ok" })),
        Ok(false) => Err(not_ready("the database schema is not migrated")),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(not_ready("the database is unavailable"))
        }
    }
}

fn not_ready(message: &str) -> (StatusCode, Json<ErrorBody>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ErrorBody {
            code: "not_ready",
            message: message.to_owned(),
            details: None,
            hint: None,
        }),
    )
}
