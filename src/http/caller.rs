//! The `Caller` extractor: the verified principal behind a request's bearer
//! token. An `apikey` header, as supabase-js sends it, is ignored.

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::sync::Arc;

pub struct Caller(pub Principal);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let header = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| crate::auth::AuthError::MalformedHeader)?,
            ),
        };
        Ok(Caller(app.jwt.verify_header(header)?))
    }
}
