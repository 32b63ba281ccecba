//! Serving pinned copies: a version's bytes (and their gzip and brotli
//! variants, made once at registration) as the caller may see them, and
//! approved versions' copies kept in memory so that serving one costs
//! about what a static file server's does.
//!
//! A copy in memory is used only while the listener hears status changes
//! (`widget_data_bundles`): a review or a quarantine makes every instance
//! forget it at once. A lookup that raced with a change does not keep what
//! it read (a generation number tells).

use super::store::Encoding;
use super::{Bundles, bind, internal};
use crate::auth::{Principal, Role};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::exec::ExecError;
use crate::sql;
use bytes::Bytes;
use serde::Deserialize;
use sqlx::postgres::PgArguments;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One version's pinned bytes, ready to serve.
#[derive(Debug)]
pub struct Pinned {
    pub sha256: String,
    /// Served to everyone (and so cacheable by shared caches); otherwise
    /// only to its owner and service_role.
    pub approved: bool,
    /// A stylesheet rather than JavaScript.
    pub css: bool,
    /// `"<sha256>"`: the strong `ETag`.
    pub etag: String,
    pub identity: Bytes,
    pub gzip: Option<Bytes>,
    pub brotli: Option<Bytes>,
}

impl Pinned {
    /// The bytes for `encoding`, and the encoding they really are in.
    pub fn body(&self, encoding: Encoding) -> (Bytes, Encoding) {
        match encoding {
            Encoding::Brotli => match &self.brotli {
                Some(b) => (b.clone(), Encoding::Brotli),
                None => self.body(Encoding::Gzip),
            },
            Encoding::Gzip => match &self.gzip {
                Some(b) => (b.clone(), Encoding::Gzip),
                None => (self.identity.clone(), Encoding::Identity),
            },
            Encoding::Identity => (self.identity.clone(), Encoding::Identity),
        }
    }

    fn weight(&self) -> u32 {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let total = self.identity.len() + len(&self.gzip) + len(&self.brotli) + 256;
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// Approved versions' copies in memory, bounded by bytes.
pub struct PinnedCopies {
    copies: moka::sync::Cache<(String, String), Arc<Pinned>>,
    listening: AtomicBool,
    /// Bumped by every forget: a lookup that started before one keeps
    /// nothing.
    generation: AtomicU64,
}

impl PinnedCopies {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            copies: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, p: &Arc<Pinned>| p.weight())
                .build(),
            listening: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    pub fn get(&self, bundle_id: &str, version: &str) -> Option<Arc<Pinned>> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        self.copies.get(&(bundle_id.to_owned(), version.to_owned()))
    }

    fn keep(&self, generation: u64, bundle_id: &str, version: &str, pinned: &Arc<Pinned>) {
        let key = (bundle_id.to_owned(), version.to_owned());
        self.copies.insert(key.clone(), Arc::clone(pinned));
        // A change heard meanwhile: what was read may be out of date.
        if self.generation.load(Ordering::Acquire) != generation
            || !self.listening.load(Ordering::Acquire)
        {
            self.copies.invalidate(&key);
        }
    }

    /// A version's status changed (`<bundle_id>/<version>`).
    pub fn forget(&self, bundle_id: &str, version: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.copies
            .invalidate(&(bundle_id.to_owned(), version.to_owned()));
    }

    /// The payload of a `widget_data_bundles` notification.
    pub fn changed(&self, payload: &str) {
        if let Some((id, version)) = payload.split_once('/') {
            self.forget(id, version);
        }
    }

    /// Status changes are heard from now on.
    pub fn listening(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.copies.invalidate_all();
        self.listening.store(true, Ordering::Release);
    }

    /// Status changes are no longer heard: nothing in memory is trusted.
    pub fn deaf(&self) {
        self.listening.store(false, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.copies.invalidate_all();
    }

    /// Bytes held.
    pub fn weighted_size(&self) -> u64 {
        self.copies.run_pending_tasks();
        self.copies.weighted_size()
    }
}

/// The caller of an unauthenticated request: anon, as PostgREST treats it.
pub fn anonymous() -> Principal {
    Principal {
        role: Role::Anon,
        sub: None,
        claims: serde_json::json!({"role": "anon"}),
        client: None,
    }
}

#[derive(Deserialize)]
struct Row {
    sha256: String,
    status: super::BundleStatus,
    content_type: String,
}

impl Bundles {
    /// Version `version` of `bundle_id` as `principal` may see it: approved
    /// ones for everyone, others for their owner and service_role only
    /// (404 like a missing one).
    pub async fn pinned(
        &self,
        principal: &Principal,
        bundle_id: &str,
        version: &str,
        deadline: Deadline,
    ) -> Result<Arc<Pinned>, ApiError> {
        if let Some(pinned) = self.pinned.get(bundle_id, version) {
            return Ok(pinned);
        }
        let not_found = || ApiError::NotFound {
            what: "bundle version",
        };
        if super::registry::check_name("bundle_id", bundle_id, false).is_err()
            || super::registry::check_name("version", version, true).is_err()
        {
            return Err(not_found());
        }
        let generation = self.pinned.generation.load(Ordering::Acquire);
        let mut args = PgArguments::default();
        bind(&mut args, bundle_id)?;
        bind(&mut args, version)?;
        let json = self
            .db
            .query_json(principal, deadline, sql::bundles::PINNED, args)
            .await?;
        let mut rows: Vec<Row> = serde_json::from_str(json.get()).map_err(ExecError::from)?;
        let row = rows.pop().ok_or_else(not_found)?;
        let identity = self
            .blobs
            .get(&row.sha256, Encoding::Identity)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let gzip = self
            .blobs
            .get(&row.sha256, Encoding::Gzip)
            .await
            .map_err(internal)?;
        let brotli = self
            .blobs
            .get(&row.sha256, Encoding::Brotli)
            .await
            .map_err(internal)?;
        let approved = row.status == super::BundleStatus::Approved;
        let pinned = Arc::new(Pinned {
            approved,
            css: row.content_type.starts_with("text/css"),
            etag: format!("\"{}\"", row.sha256),
            sha256: row.sha256,
            identity,
            gzip,
            brotli,
        });
        if approved {
            self.pinned.keep(generation, bundle_id, version, &pinned);
        }
        Ok(pinned)
    }

    /// The newest approved version of `bundle_id`.
    pub async fn newest(
        &self,
        principal: &Principal,
        bundle_id: &str,
        deadline: Deadline,
    ) -> Result<String, ApiError> {
        let not_found = || ApiError::NotFound { what: "bundle" };
        if super::registry::check_name("bundle_id", bundle_id, false).is_err() {
            return Err(not_found());
        }
        let mut args = PgArguments::default();
        bind(&mut args, bundle_id)?;
        let json = self
            .db
            .query_json(principal, deadline, sql::bundles::NEWEST, args)
            .await?;
        let mut versions: Vec<String> =
            serde_json::from_str(json.get()).map_err(ExecError::from)?;
        versions.pop().ok_or_else(not_found)
    }
}
