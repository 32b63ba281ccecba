//! The registry, `app.widget_bundles`: registering a version (fetch, pin,
//! store, analyse, then insert as the developer), listing, and review.
//! Every statement a caller causes runs as the caller, so the table's
//! row-level security decides ownership and visibility.

use super::analyse::{self, Finding};
use super::fetch::{FetchError, USER_AGENTS};
use super::{Bundles, bind, internal, served_path};
use crate::auth::{Principal, Role};
use crate::code::ErrorCode;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::exec::ExecError;
use crate::sql;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgArguments;

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BundleStatus {
    /// Waiting for review; served to its owner and service_role only.
    Pending,
    /// Served to everyone.
    Approved,
    Rejected,
    /// Taken out of service (for instance after its origin changed).
    Quarantined,
}

impl BundleStatus {
    fn as_str(self) -> &'static str {
        match self {
            BundleStatus::Pending => "pending",
            BundleStatus::Approved => "approved",
            BundleStatus::Rejected => "rejected",
            BundleStatus::Quarantined => "quarantined",
        }
    }
}

/// One registered version of a bundle.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BundleVersion {
    pub bundle_id: String,
    pub version: String,
    /// The developer who registered the bundle.
    pub owner_id: uuid::Uuid,
    /// Where it was fetched from (and is re-checked).
    pub origin_url: String,
    /// SHA-256 of the pinned bytes, hex: also their `ETag`.
    pub sha256: String,
    /// Subresource Integrity of the pinned bytes, for `<script integrity>`.
    pub integrity: String,
    pub size_bytes: i64,
    pub content_type: String,
    pub status: BundleStatus,
    /// The hosts its code may talk to; calls to others are findings.
    pub declared_hosts: Vec<String>,
    /// What the analysis at registration found.
    pub findings: Vec<Finding>,
    pub fetched_at: DateTime<Utc>,
    /// When re-verification last found the origin serving the pinned bytes.
    pub last_verified_at: Option<DateTime<Utc>>,
    /// How often re-verification found other bytes at the origin.
    pub drift_count: i32,
    pub last_drift_at: Option<DateTime<Utc>>,
    /// SHA-256 of the bytes the origin served instead, last time.
    pub drift_sha256: Option<String>,
    /// How often re-verification could not reach the origin.
    pub unreachable_count: i32,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// This service's pinned copy: `/widgets/<bundle_id>/v<version>/bundle.js`.
    #[serde(default)]
    pub url: String,
}

/// `POST /functions/v1/widget-bundles`: a new version to pin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Lowercase letters, digits, `-` and `_`; the first registration of
    /// an id makes the caller its owner.
    pub bundle_id: String,
    /// Letters, digits, `.`, `+`, `-` and `_` (say `1.4.0`); never reused.
    pub version: String,
    /// The developer's `GET /bundle` URL (http or https).
    pub url: String,
    /// Hosts the bundle's code may call (`api.example.com`).
    #[serde(default)]
    pub declared_hosts: Vec<String>,
}

/// A review by service_role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub status: BundleStatus,
}

/// At most this many declared hosts per version.
const MAX_DECLARED_HOSTS: usize = 64;

fn invalid(message: String) -> ApiError {
    ApiError::InvalidBody { message }
}

/// The id and version rules of the table's CHECKs, named before anything
/// is fetched.
pub fn check_name(field: &str, value: &str, version: bool) -> Result<(), ApiError> {
    let first_ok = |c: char| {
        if version {
            c.is_ascii_alphanumeric()
        } else {
            c.is_ascii_lowercase() || c.is_ascii_digit()
        }
    };
    let rest_ok = |c: char| {
        if version {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')
        } else {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')
        }
    };
    let mut chars = value.chars();
    let ok = value.len() <= 64 && chars.next().is_some_and(first_ok) && chars.all(rest_ok);
    if ok {
        return Ok(());
    }
    Err(invalid(if version {
        format!(
            "{field} must be 1 to 64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit (got {value:?})"
        )
    } else {
        format!(
            "{field} must be 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit (got {value:?})"
        )
    }))
}

fn check_hosts(hosts: &[String]) -> Result<Vec<String>, ApiError> {
    if hosts.len() > MAX_DECLARED_HOSTS {
        return Err(invalid(format!(
            "declared_hosts: at most {MAX_DECLARED_HOSTS} hosts"
        )));
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = h.trim().to_ascii_lowercase();
            let ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*'));
            if ok {
                Ok(host)
            } else {
                Err(invalid(format!(
                    "declared_hosts[{i}]: {h:?} is not a host name (no scheme or path: api.example.com)"
                )))
            }
        })
        .collect()
}

/// A refused fetch: a 422 naming what was wrong, nothing stored.
fn refused(e: FetchError) -> ApiError {
    let code = match e.code() {
        "bundle_too_large" => ErrorCode::BundleTooLarge,
        "bundle_forbidden_address" => ErrorCode::BundleForbiddenAddress,
        "bundle_bad_content_type" => ErrorCode::BundleBadContentType,
        _ => ErrorCode::BundleFetchFailed,
    };
    ApiError::BundleRefused {
        code,
        message: e.to_string(),
    }
}

fn rows(json: &serde_json::value::RawValue) -> Result<Vec<BundleVersion>, ApiError> {
    let mut rows: Vec<BundleVersion> = serde_json::from_str(json.get()).map_err(ExecError::from)?;
    for row in &mut rows {
        row.url = served_path(&row.bundle_id, &row.version);
    }
    Ok(rows)
}

impl Bundles {
    /// Registers `reg` for `principal` (a developer): fetches the bundle,
    /// pins it, stores it, analyses it and records the version. Nothing is
    /// stored when the fetch is refused or fails.
    pub async fn register(
        &self,
        principal: &Principal,
        reg: Registration,
        deadline: Deadline,
    ) -> Result<BundleVersion, ApiError> {
        if principal.role != Role::Authenticated || principal.sub.is_none() {
            return Err(ApiError::Forbidden {
                message: "registering a bundle takes a signed-in developer's token",
            });
        }
        check_name("bundle_id", &reg.bundle_id, false)?;
        check_name("version", &reg.version, true)?;
        let hosts = check_hosts(&reg.declared_hosts)?;
        self.check_claim(principal, &reg, deadline).await?;

        let fetched = self
            .fetcher
            .fetch(&reg.url, USER_AGENTS[0].1)
            .await
            .map_err(refused)?;
        let source = String::from_utf8_lossy(&fetched.bytes).into_owned();
        let analysis_hosts = hosts.clone();
        let analysis =
            tokio::task::spawn_blocking(move || analyse::analyse(&source, &analysis_hosts));
        let stored = self.blobs.put(&fetched.bytes).await.map_err(internal)?;
        let findings = analysis.await.map_err(internal)?;
        let clean = !findings.iter().any(Finding::is_high);

        let mut args = PgArguments::default();
        bind(&mut args, reg.bundle_id.as_str())?;
        bind(&mut args, reg.version.as_str())?;
        bind(&mut args, fetched.final_url.as_str())?;
        bind(&mut args, stored.sha256.as_str())?;
        bind(&mut args, stored.integrity.as_str())?;
        bind(&mut args, i32::try_from(stored.size).unwrap_or(i32::MAX))?;
        bind(&mut args, fetched.content_type.as_str())?;
        bind(&mut args, hosts)?;
        bind(
            &mut args,
            sqlx::types::Json(serde_json::to_value(&findings).map_err(ExecError::from)?),
        )?;
        let mut lock = PgArguments::default();
        bind(&mut lock, reg.bundle_id.as_str())?;
        let mut tx = self.db.begin_write(principal, deadline).await?;
        tx.count(sql::bundles::LOCK, lock).await?;
        let written = tx.json(sql::bundles::REGISTER, args).await?;
        tx.commit().await?;
        let mut row = rows(&written)?
            .pop()
            .ok_or(ApiError::NotFound { what: "bundle" })?;
        if self.settings.auto_approve && clean {
            let approved: sqlx::types::Json<Box<serde_json::value::RawValue>> =
                sqlx::query_scalar(sql::bundles::AUTO_APPROVE)
                    .bind(&row.bundle_id)
                    .bind(&row.version)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(ExecError::from)?;
            if let Some(approved) = rows(&approved.0)?.pop() {
                row = approved;
            }
        }
        tracing::info!(
            bundle = %row.bundle_id, version = %row.version, sha256 = %row.sha256,
            status = row.status.as_str(), findings = row.findings.len(),
            "bundle version registered"
        );
        Ok(row)
    }

    /// Refuses, before fetching, a bundle id someone else owns and a
    /// version that exists already.
    async fn check_claim(
        &self,
        principal: &Principal,
        reg: &Registration,
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        #[derive(Deserialize)]
        struct Claim {
            owner: Option<String>,
            exists: bool,
        }
        let mut args = PgArguments::default();
        bind(&mut args, reg.bundle_id.as_str())?;
        bind(&mut args, reg.version.as_str())?;
        let claim = self
            .db
            .query_json(principal, deadline, sql::bundles::CLAIM, args)
            .await?;
        let claim: Claim = serde_json::from_str(claim.get()).map_err(ExecError::from)?;
        if claim.owner.is_some() && claim.owner != principal.sub {
            return Err(ApiError::Forbidden {
                message: "this bundle id belongs to another developer",
            });
        }
        if claim.exists {
            return Err(ApiError::Exec(ExecError::Rejected {
                message: format!(
                    "version {:?} of {:?} is registered already: versions are immutable, register a new one",
                    reg.version, reg.bundle_id
                ),
                conflict: true,
            }));
        }
        Ok(())
    }

    /// The caller's versions (every version for service_role), of `status`
    /// when given.
    pub async fn list(
        &self,
        principal: &Principal,
        status: Option<BundleStatus>,
        deadline: Deadline,
    ) -> Result<Vec<BundleVersion>, ApiError> {
        let mut args = PgArguments::default();
        bind(&mut args, status.map(BundleStatus::as_str))?;
        bind(&mut args, principal.role == Role::ServiceRole)?;
        let json = match self
            .db
            .query_json(principal, deadline, sql::bundles::LIST, args)
            .await
        {
            Ok(json) => json,
            // anon may read approved versions' public fields only.
            Err(ExecError::PermissionDenied { .. }) => {
                return Err(ApiError::Forbidden {
                    message: "listing bundles takes a signed-in developer's token",
                });
            }
            Err(e) => return Err(e.into()),
        };
        rows(&json)
    }

    /// service_role sets a version's status.
    pub async fn review(
        &self,
        principal: &Principal,
        bundle_id: &str,
        version: &str,
        review: Review,
        deadline: Deadline,
    ) -> Result<BundleVersion, ApiError> {
        if principal.role != Role::ServiceRole {
            return Err(ApiError::Forbidden {
                message: "reviewing bundles is for service_role only",
            });
        }
        let mut args = PgArguments::default();
        bind(&mut args, bundle_id)?;
        bind(&mut args, version)?;
        bind(&mut args, review.status.as_str())?;
        let mut tx = self.db.begin_write(principal, deadline).await?;
        let json = tx.json(sql::bundles::REVIEW, args).await?;
        tx.commit().await?;
        // The status trigger has told every instance to forget its copy.
        self.pinned.forget(bundle_id, version);
        rows(&json)?.pop().ok_or(ApiError::NotFound {
            what: "bundle version",
        })
    }
}
