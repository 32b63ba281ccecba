//! `App`: the state every request shares (pool, schema cache, JWT verifier,
//! configuration), and the task that keeps the schema cache current.

use crate::auth::JwtVerifier;
use crate::config::Config;
use crate::plan::Limits;
use crate::schema::{self, SchemaCache};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub struct App {
    pub config: Config,
    pub pool: PgPool,
    pub jwt: JwtVerifier,
    pub limits: Limits,
    schema: RwLock<Arc<SchemaCache>>,
}

impl App {
    /// Loads the schema cache; fails when the database cannot be read.
    pub async fn new(config: Config, pool: PgPool) -> Result<Arc<Self>, sqlx::Error> {
        let schema = schema::load(&pool, &config.exposed_schemas).await?;
        Ok(Arc::new(Self {
            jwt: JwtVerifier::new(
                &config.jwt_secret,
                &config.jwt_audience,
                &config.jwt_role_claim,
            ),
            limits: Limits {
                default_limit: 1000.min(config.max_rows),
                max_rows: config.max_rows,
            },
            schema: RwLock::new(Arc::new(schema)),
            config,
            pool,
        }))
    }

    /// The current schema cache (cheap: one `Arc` clone).
    pub fn schema(&self) -> Arc<SchemaCache> {
        Arc::clone(&self.schema.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub async fn reload_schema(&self) -> Result<(), sqlx::Error> {
        let fresh = schema::load(&self.pool, &self.config.exposed_schemas).await?;
        tracing::info!(tables = fresh.len(), "schema cache loaded");
        *self.schema.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// Listens for `NOTIFY widget_data, 'reload schema'` until the process
    /// ends. After a lost connection the cache is reloaded, since a
    /// notification may have been missed meanwhile.
    pub fn spawn_schema_listener(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = app.listen_once().await {
                    tracing::warn!(error = %e, "schema listener lost its connection; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    async fn listen_once(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(schema::RELOAD_CHANNEL).await?;
        // Anything may have changed while we were not listening.
        self.reload_schema().await?;
        loop {
            match listener.try_recv().await? {
                Some(n) if n.payload() == schema::RELOAD_PAYLOAD => self.reload_schema().await?,
                Some(_) => {}
                None => return Ok(()), // connection lost: reconnect and reload
            }
        }
    }
}
