//! Widget bundles (seed 002): third-party widget code fetched once from
//! its developer's origin, pinned by SHA-256, analysed, stored by content
//! and served from here at a versioned, immutable URL, while the origin
//! is re-checked for a switch.
//!
//! | part | module | does |
//! |---|---|---|
//! | fetch | [`fetch`] | one bundle from its origin: size cap, redirects, content type, SSRF guard |
//! | analyse | [`analyse`] | pure: findings of a bundle's JavaScript (oxc) |
//! | store | [`store`] | content-addressed blobs and their compressed variants (`object_store`) |
//! | registry | [`registry`] | the versions in `app.widget_bundles`, as the caller (row-level security) |
//! | pinned | [`pinned`] | approved versions' bytes in memory, forgotten when a status changes |
//! | verify | [`verify`] | re-fetches approved versions' origins, with several User-Agents |

pub mod analyse;
pub mod fetch;
pub mod pinned;
pub mod registry;
pub mod store;
pub mod verify;

pub use pinned::{Pinned, PinnedCopies};
pub use registry::{BundleStatus, BundleVersion, Registration, Review};

use crate::exec::Database;
use fetch::Fetcher;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use store::Blobs;

/// What the bundle proxy needs of the service.
pub struct Bundles {
    /// Callers' statements: registration, listing, review, serving lookups.
    pub db: Arc<Database>,
    /// The service's own connection: automatic approval, re-verification.
    pub pool: PgPool,
    pub fetcher: Fetcher,
    pub blobs: Blobs,
    pub pinned: PinnedCopies,
    pub settings: Settings,
    /// `/metrics`: re-verifications that found other bytes at the origin,
    /// and those that could not reach it.
    pub drifts: metrics::Counter,
    pub unreachable: metrics::Counter,
}

/// `BUNDLE_*` settings that are not the fetcher's or the store's.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `BUNDLE_AUTO_APPROVE`: a version without high-severity findings is
    /// approved at registration.
    pub auto_approve: bool,
    /// `BUNDLE_VERIFY_INTERVAL_SECS`: how often approved versions' origins
    /// are fetched again (0: never).
    pub verify_interval: Duration,
    /// `BUNDLE_ON_DRIFT=quarantine`: a drifted version stops being served.
    pub quarantine_on_drift: bool,
}

/// A failure of the service's own (the blob store, an analysis thread): a
/// generic 500, its cause logged and never sent.
fn internal(e: impl std::fmt::Display) -> crate::error::ApiError {
    crate::error::ApiError::Exec(crate::exec::ExecError::Internal(sqlx::Error::Io(
        std::io::Error::other(e.to_string()),
    )))
}

/// Binds `value` as the next parameter of `args`.
fn bind<'q, T>(
    args: &mut sqlx::postgres::PgArguments,
    value: T,
) -> Result<(), crate::error::ApiError>
where
    T: 'q + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::Arguments::add(args, value).map_err(|e| {
        crate::error::ApiError::Exec(crate::exec::ExecError::Internal(sqlx::Error::Encode(e)))
    })
}

/// Where version `version` of `bundle_id` is served.
pub fn served_path(bundle_id: &str, version: &str) -> String {
    format!("/widgets/{bundle_id}/v{version}/bundle.js")
}
