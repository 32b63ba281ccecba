//! The listening session: hears `NOTIFY widget_data, 'reload schema'`,
//! the data changes the cache keys depend on, other instances' cache
//! entries and widget bundles' status changes, and serves the cache's requests to watch tables on the same
//! session. While it is not listening nothing is cached; after a lost
//! connection the schema is reloaded and every data version renewed,
//! since notifications may have been missed meanwhile.

use crate::bundles::Bundles;
use crate::cache::{self, Cache};
use crate::db::Health;
use crate::schema::{self, Handle};
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgNotification};
use std::sync::Arc;
use std::time::Duration;

/// What the listening session keeps current.
pub struct Listener {
    /// The service's own pool (never a caller's).
    pub pool: PgPool,
    pub schema: Arc<Handle>,
    pub cache: Arc<Cache>,
    /// Its pinned copies are forgotten when a version's status changes.
    pub bundles: Arc<Bundles>,
    pub health: Arc<Health>,
}

/// A bundle version's status changed (`<bundle_id>/<version>`).
pub const BUNDLES_CHANNEL: &str = "widget_data_bundles";

impl Listener {
    /// Listens until the process ends, reconnecting a second after a lost
    /// connection.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.listen_once().await {
                    tracing::warn!(error = %e, "listener lost its connection; retrying");
                }
                // Perhaps the database went away: let the probe look.
                self.health.suspect();
                self.cache.deaf();
                self.bundles.pinned.deaf();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    async fn listen_once(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([
                schema::RELOAD_CHANNEL,
                cache::CHANGES_CHANNEL,
                cache::ENTRIES_CHANNEL,
                BUNDLES_CHANNEL,
            ])
            .await?;
        // Heard from here on: copies kept before may be out of date.
        self.bundles.pinned.listening();
        // Anything may have changed while we were not listening.
        reload_schema(&self.pool, &self.schema, &self.cache).await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut listener)
            .await?;
        // Watches ended with the old session and writes since may have
        // gone unannounced: every version is read afresh before it is used.
        self.cache.listening();
        let mut requests = self.cache.watch_requests().await;
        loop {
            // Notifications first: a change heard ends a watch before a
            // later request starts the next one.
            let request = tokio::select! {
                biased;
                n = listener.try_recv() => {
                    let Some(n) = n? else {
                        return Ok(()); // connection lost: reconnect and renew
                    };
                    self.notified(&mut listener, &n).await?;
                    continue;
                }
                Some(request) = requests.recv() => request,
            };
            self.cache.serve_watch(&mut listener, pid, request).await?;
        }
    }

    async fn notified(
        &self,
        listener: &mut PgListener,
        n: &PgNotification,
    ) -> Result<(), sqlx::Error> {
        if n.channel() == BUNDLES_CHANNEL {
            self.bundles.pinned.changed(n.payload());
        } else if n.channel() == cache::ENTRIES_CHANNEL {
            self.cache.entry_announced(n.payload());
        } else if n.channel() == cache::CHANGES_CHANNEL {
            self.cache.table_changed(listener, n.payload()).await?;
        } else if n.payload() == schema::RELOAD_PAYLOAD {
            reload_schema(&self.pool, &self.schema, &self.cache).await?;
        }
        Ok(())
    }
}

/// Installs change tracking on new tables, then reloads the schema cache
/// and the permissions digest the cache keys carry.
pub async fn reload_schema(
    pool: &PgPool,
    handle: &Handle,
    cache: &Cache,
) -> Result<(), sqlx::Error> {
    match schema::track_changes(pool, handle.exposed_schemas()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(tables = n, "change tracking installed"),
        // Not fatal: untracked tables are simply never cached.
        Err(e) => tracing::warn!(error = %e, "could not install change tracking"),
    }
    let fresh = handle.fetch(pool).await?;
    // Before the new schema is used: a permission change must never be
    // planned under and keyed with the old digest.
    cache.set_permissions(schema::permissions(pool).await?);
    tracing::info!(tables = fresh.len(), "schema cache loaded");
    handle.install(fresh);
    Ok(())
}
