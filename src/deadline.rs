//! A request's time budget: every wait on the way to an answer (a pool
//! connection, the durable cache level, a watch, the query) is bounded by
//! what is left of it, so waits never stack up past it.
//!
//! Pure bookkeeping over `tokio::time`; no I/O of its own.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How much longer than `QUERY_TIMEOUT_MS` a request may take in all: the
/// work around the query (a pool connection, the cache levels, rendering),
/// and the margin by which we outwait PostgreSQL's own `statement_timeout`
/// before deciding the server is not answering.
pub const REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The part of [`REQUEST_GRACE`] kept back from a query's
/// `statement_timeout`: PostgreSQL cancels a slow query (a 504) this long
/// before we stop waiting for an answer (the server is not answering).
pub const SERVER_MARGIN: Duration = Duration::from_millis(500);

/// The moment by which an answer is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

/// The deadline passed before the awaited work finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline passed")]
pub struct Elapsed;

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// The budget of a request whose query may take `query_timeout`.
    pub fn for_request(query_timeout: Duration) -> Self {
        Self::after(query_timeout + REQUEST_GRACE)
    }

    /// What is left (zero once passed).
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn is_past(self) -> bool {
        self.remaining().is_zero()
    }

    /// This deadline or `limit` from now, whichever comes first: for work
    /// that must not use the whole budget (an optional cache level).
    pub fn within(self, limit: Duration) -> Self {
        self.min(Self::after(limit))
    }

    /// `margin` before this deadline (now, at the earliest): for a wait
    /// that must leave time for the work after it.
    pub fn sooner_by(self, margin: Duration) -> Self {
        self.0
            .checked_sub(margin)
            .map_or_else(|| Self(Instant::now()), |at| Self(at.max(Instant::now())))
    }

    /// Runs `work` until it finishes or the deadline passes.
    pub async fn run<F: Future>(self, work: F) -> Result<F::Output, Elapsed> {
        tokio::time::timeout_at(self.0, work)
            .await
            .map_err(|_| Elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_past_the_deadline_is_cut_off_and_within_never_extends_it() {
        let d = Deadline::after(Duration::from_millis(100));
        assert_eq!(d.run(async { 7 }).await, Ok(7));
        let slow = d.run(tokio::time::sleep(Duration::from_secs(5))).await;
        assert_eq!(slow, Err(Elapsed));
        assert!(d.is_past());
        let d = Deadline::after(Duration::from_millis(100));
        assert_eq!(d.within(Duration::from_secs(60)), d);
        assert!(d.within(Duration::from_millis(10)) < d);
        assert_eq!(
            d.sooner_by(Duration::from_millis(40)).remaining(),
            Duration::from_millis(60)
        );
        assert!(d.sooner_by(Duration::from_secs(9)).is_past());
    }
}
