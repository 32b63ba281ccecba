//! Re-verification: every `BUNDLE_VERIFY_INTERVAL_SECS`, each approved
//! version's origin is fetched again, once per User-Agent of
//! [`USER_AGENTS`] (a switch can target some clients only). Bytes other
//! than the pinned ones mark the version drifted (count, time, their
//! hash), are logged and counted in `/metrics`, and with
//! `BUNDLE_ON_DRIFT=quarantine` take the version out of service. The
//! served copy never changes. An origin that cannot be reached is counted,
//! never taken for a match.

use super::Bundles;
use super::fetch::USER_AGENTS;
use super::store::digest;
use crate::sql;
use serde::Serialize;
use std::sync::Arc;

/// What one pass found.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Pass {
    pub checked: usize,
    pub matched: usize,
    pub drifted: usize,
    pub unreachable: usize,
}

#[derive(sqlx::FromRow)]
struct Approved {
    bundle_id: String,
    version: String,
    origin_url: String,
    sha256: String,
}

enum Verdict {
    Match,
    Drift(String),
    Unreachable(String),
}

impl Bundles {
    /// Re-fetches every approved version's origin once.
    pub async fn verify_all(&self) -> Result<Pass, sqlx::Error> {
        let approved: Vec<Approved> = sqlx::query_as(sql::bundles::TO_VERIFY)
            .fetch_all(&self.pool)
            .await?;
        let mut pass = Pass::default();
        for version in approved {
            pass.checked += 1;
            match self.verdict(&version).await {
                Verdict::Match => {
                    pass.matched += 1;
                    sqlx::query(sql::bundles::VERIFIED)
                        .bind(&version.bundle_id)
                        .bind(&version.version)
                        .execute(&self.pool)
                        .await?;
                }
                Verdict::Drift(found) => {
                    pass.drifted += 1;
                    self.drifts.increment(1);
                    tracing::warn!(
                        bundle = %version.bundle_id, version = %version.version,
                        pinned = %version.sha256, found = %found,
                        quarantined = self.settings.quarantine_on_drift,
                        "a bundle's origin serves other bytes than the pinned ones"
                    );
                    sqlx::query(sql::bundles::DRIFTED)
                        .bind(&version.bundle_id)
                        .bind(&version.version)
                        .bind(&found)
                        .bind(self.settings.quarantine_on_drift)
                        .execute(&self.pool)
                        .await?;
                }
                Verdict::Unreachable(why) => {
                    pass.unreachable += 1;
                    self.unreachable.increment(1);
                    tracing::warn!(
                        bundle = %version.bundle_id, version = %version.version, error = %why,
                        "a bundle's origin could not be reached for re-verification"
                    );
                    sqlx::query(sql::bundles::UNREACHABLE)
                        .bind(&version.bundle_id)
                        .bind(&version.version)
                        .execute(&self.pool)
                        .await?;
                }
            }
        }
        Ok(pass)
    }

    /// The first User-Agent that gets other bytes decides; any failure
    /// makes the origin unreachable unless another agent already drifted.
    async fn verdict(&self, version: &Approved) -> Verdict {
        let mut unreachable = None;
        for (label, agent) in USER_AGENTS {
            match self.fetcher.fetch(&version.origin_url, agent).await {
                Ok(fetched) => {
                    let (sha256, _) = digest(&fetched.bytes);
                    if sha256 != version.sha256 {
                        return Verdict::Drift(sha256);
                    }
                }
                Err(e) => unreachable = Some(format!("{label}: {e}")),
            }
        }
        match unreachable {
            Some(why) => Verdict::Unreachable(why),
            None => Verdict::Match,
        }
    }
}

/// Runs a pass every `BUNDLE_VERIFY_INTERVAL_SECS` until the process ends.
pub fn spawn(bundles: Arc<Bundles>) -> Option<tokio::task::JoinHandle<()>> {
    let every = bundles.settings.verify_interval;
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await; // the first tick is now: registration just checked
        loop {
            ticks.tick().await;
            match bundles.verify_all().await {
                Ok(pass) => tracing::info!(?pass, "bundle origins re-verified"),
                Err(e) => tracing::warn!(error = %e, "bundle re-verification failed"),
            }
        }
    }))
}
