//! The `Caller` extractor: the verified principal behind a request's bearer
//! token, within its rate limit. An `apikey` header, as supabase-js sends
//! it, is ignored.

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::net::SocketAddr;
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
        let mut principal = app.jwt.verify_header(header)?;
        principal.client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        // Counted per caller once the token is known good: a flood of bad
        // tokens costs a signature check each and reaches nothing.
        app.rate_limiter
            .check(principal.caller_key(), || principal.fleet_key())
            .await
            .map_err(|wait| ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            })?;
        Ok(Caller(principal))
    }
}
