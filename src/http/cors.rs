//! CORS for browser dashboards: tower-http's `CorsLayer`, configured.
//!
//! Credentials travel in the Authorization header, never in cookies, so
//! any origin may call (as with Supabase's API gateway) without exposing
//! one user's session to a site. With `*` and no credentials every answer
//! is the same for every origin: no `Vary`, nothing computed per request
//! but the preflight's mirrored method and headers.

use axum::http::HeaderName;
use std::time::Duration;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

/// Headers a page's script may read from an answer.
const EXPOSED: [HeaderName; 4] = [
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("x-cache"),
    HeaderName::from_static("content-range"),
    HeaderName::from_static("etag"),
];

pub fn layer() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        // Mirrored, as before: a preflight is allowed whatever it asks, and
        // the route itself answers a method it does not serve with 405.
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(EXPOSED)
        .max_age(Duration::from_secs(3600))
        // The answers do not depend on the origin or the preflight's asks.
        .vary([])
}
