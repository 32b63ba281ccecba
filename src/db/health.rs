//! Whether the database answers, as this instance last saw it: a circuit
//! breaker in front of every request's database work.
//!
//! A request that finds the database unreachable or silent *suspects* it;
//! a probe (one fresh connection, never a pooled one, so a busy pool is not
//! mistaken for a dead server) then decides. While the database is *down*,
//! requests do not wait on it at all: a cached answer is served, anything
//! else is a prompt 503. The probe keeps trying and closes the breaker as
//! soon as a connection succeeds.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a probe may take to connect: longer means not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a down database is probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// The database as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseState {
    /// Answering.
    Up,
    /// Not answering; cached answers are served, the rest are 503.
    Down,
    /// The embedded cluster died and is being restarted.
    Restarting,
}

#[derive(Default)]
pub struct Health {
    down: AtomicBool,
    restarting: AtomicBool,
    /// When the state last changed (ms since the epoch; 0: never).
    since_ms: AtomicI64,
    suspected: Notify,
}

impl Health {
    /// True while the breaker is open: do not wait on the database.
    pub fn is_down(&self) -> bool {
        self.down.load(Relaxed)
    }

    /// Something failed to reach the database, or it did not answer in
    /// time: have the probe look now.
    pub fn suspect(&self) {
        self.suspected.notify_one();
    }

    /// The embedded cluster is being restarted (`true`) or is back.
    pub fn set_restarting(&self, restarting: bool) {
        self.restarting.store(restarting, Relaxed);
        if restarting {
            self.set_down(true);
        } else {
            self.suspect();
        }
    }

    pub fn state(&self) -> (DatabaseState, Option<DateTime<Utc>>) {
        let state = if self.restarting.load(Relaxed) {
            DatabaseState::Restarting
        } else if self.is_down() {
            DatabaseState::Down
        } else {
            DatabaseState::Up
        };
        let since = DateTime::from_timestamp_millis(self.since_ms.load(Relaxed))
            .filter(|t| t.timestamp_millis() > 0);
        (state, since)
    }

    fn set_down(&self, down: bool) {
        if self.down.swap(down, Relaxed) != down {
            self.since_ms.store(Utc::now().timestamp_millis(), Relaxed);
            if down {
                tracing::warn!("the database is not answering; serving cached answers only");
            } else {
                tracing::info!("the database answers again");
            }
        }
    }
}

/// Runs for the life of the process: probes when suspected, and every
/// [`PROBE_INTERVAL`] while down.
pub async fn probe(health: Arc<Health>, options: PgConnectOptions) {
    let options = options.disable_statement_logging();
    loop {
        if health.is_down() {
            tokio::select! {
                _ = tokio::time::sleep(PROBE_INTERVAL) => {}
                _ = health.suspected.notified() => {}
            }
        } else {
            health.suspected.notified().await;
        }
        let answered = tokio::time::timeout(PROBE_TIMEOUT, async {
            let conn = sqlx::PgConnection::connect_with(&options).await?;
            conn.close().await
        })
        .await;
        let up = matches!(answered, Ok(Ok(())));
        if !up {
            tracing::debug!(?answered, "database probe failed");
        }
        // A restart in progress stays down until the supervisor says so.
        health.set_down(!up || health.restarting.load(Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_database_opens_the_breaker_until_it_answers() {
        let health = Arc::new(Health::default());
        assert_eq!(health.state().0, DatabaseState::Up);
        // Nothing listens on port 1 of loopback: refused at once.
        let options: PgConnectOptions = "postgres://u@127.0.0.1:1/db".parse().unwrap();
        let task = tokio::spawn(probe(Arc::clone(&health), options));
        health.suspect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !health.is_down() {
            assert!(tokio::time::Instant::now() < deadline, "never opened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (state, since) = health.state();
        assert_eq!(state, DatabaseState::Down);
        assert!(since.is_some());
        health.set_restarting(true);
        assert_eq!(health.state().0, DatabaseState::Restarting);
        task.abort();
    }
}
