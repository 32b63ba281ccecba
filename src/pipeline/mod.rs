//! One widget-data request, end to end: plan (pure) -> sql -> cache -> exec.
//!
//! Takes an authenticated principal and a parsed request; gives the rows
//! with their timestamps. Knows nothing of HTTP.

use crate::app::App;
use crate::auth::Principal;
use crate::cache::{Entry, Outcome};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::exec::ExecError;
use crate::plan::{self, Filter, QueryPlan};
use crate::{sql, widgets};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use std::sync::Arc;
use uuid::Uuid;

mod memo;

pub use memo::{Planned, Plans};

/// Where the data source comes from.
pub enum Source {
    /// An ad-hoc data source sent with the request, already planned (with
    /// the request's filters).
    Config(Arc<QueryPlan>),
    /// A saved widget's.
    Widget(Uuid),
}

/// What a caller asks for: a data source plus runtime filters ANDed on.
pub struct Query {
    pub source: Source,
    pub runtime_filters: Vec<Filter>,
    /// Recompute and replace the cached entry.
    pub force_refresh: bool,
}

/// What the caller gets back.
#[derive(Debug)]
pub struct Answer {
    pub entry: Arc<Entry>,
    pub outcome: Outcome,
    /// A saved widget's own browser lifetime (`config.browser_cache_ttl`),
    /// if it opted into one.
    pub browser_ttl_secs: Option<u64>,
}

impl Answer {
    /// Served from the cache rather than computed for this request.
    pub fn cached(&self) -> bool {
        matches!(self.outcome, Outcome::Hit | Outcome::Stale)
    }

    /// Expired, served because the database could not answer.
    pub fn stale(&self) -> bool {
        self.outcome == Outcome::Stale
    }

    pub fn data(&self) -> &RawValue {
        &self.entry.data
    }

    pub fn cached_at(&self) -> DateTime<Utc> {
        self.entry.cached_at
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.entry.expires_at
    }
}

/// Answers `query` for `principal` by `deadline`: from the cache, by
/// running the query, or (when the database cannot answer) from the last
/// entry it knows of.
pub async fn run(
    app: &App,
    principal: &Principal,
    query: &Query,
    deadline: Deadline,
) -> Result<Answer, ApiError> {
    let mut browser_ttl_secs = None;
    let (plan, ttl_secs, widget) = match &query.source {
        Source::Config(plan) => (Arc::clone(plan), app.config.cache_default_ttl_secs, None),
        Source::Widget(id) => {
            // Boxed, as the miss below: a hit's future stays small, and
            // moving it through the layers copies little.
            let widget = Box::pin(widgets::load(app, principal, *id, deadline)).await?;
            browser_ttl_secs = widget.browser_ttl_secs;
            // The widget's own filters always apply; on top of them the
            // dashboard layers and the request's, merged by column.
            let filters: Vec<Filter> = widget
                .filters
                .iter()
                .cloned()
                .chain(widgets::merge_filters(
                    &widget.layers,
                    &query.runtime_filters,
                ))
                .collect();
            let plan = plan::plan(&widget.source, &filters, &app.schema(), &app.limits)
                .map_err(|e| e.with_source_root("data_source"))?;
            (
                Arc::new(plan),
                widget.ttl_secs.unwrap_or(app.config.cache_default_ttl_secs),
                Some(*id),
            )
        }
    };
    // However long a widget asks to be kept, no entry outlives this.
    let ttl_secs = ttl_secs.min(app.config.cache_max_ttl_secs);
    let key = app.cache.key(&plan, ttl_secs, principal);
    if let Some(key) = &key
        && !query.force_refresh
        && let Some(entry) = app.cache.fresh(key, Utc::now())
    {
        return Ok(Answer {
            entry,
            outcome: Outcome::Hit,
            browser_ttl_secs,
        });
    }
    // Known to be down: answer from what we have, without waiting on it.
    if app.db.health().is_down() {
        return fall_back(app, &plan, ttl_secs, principal, ExecError::Down).map(|a| Answer {
            browser_ttl_secs,
            ..a
        });
    }
    let compute = || async {
        let (sql, values) = sql::build(&plan);
        let cached_at = Utc::now();
        let data = app
            .db
            .query_json(principal, deadline, sqlx::AssertSqlSafe(sql), values)
            .await?;
        let ttl = chrono::Duration::seconds(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 1000));
        Ok::<_, ApiError>(Entry::new(data, cached_at, cached_at + ttl))
    };
    let result = match &key {
        Some(key) => {
            let stamp = app.cache.stamp(key, &plan, ttl_secs, principal);
            Box::pin(app.cache.fill(
                key,
                stamp.as_ref(),
                &plan,
                widget,
                query.force_refresh,
                deadline,
                compute,
            ))
            .await
        }
        // Not cacheable: computed for this request alone.
        None => Box::pin(compute())
            .await
            .map(|e| (Arc::new(e), Outcome::Miss)),
    };
    let answer = match result {
        Ok((entry, outcome)) => Answer {
            entry,
            outcome,
            browser_ttl_secs: None,
        },
        // Stale-if-error: an old answer beats none when PostgreSQL cannot
        // give a new one.
        Err(ApiError::Exec(e)) if e.is_unavailable() || matches!(e, ExecError::Timeout) => {
            fall_back(app, &plan, ttl_secs, principal, e)?
        }
        Err(e) => return Err(e),
    };
    Ok(Answer {
        browser_ttl_secs,
        ..answer
    })
}

/// The entry the cache last knew for this query and caller, or `error`.
fn fall_back(
    app: &App,
    plan: &QueryPlan,
    ttl_secs: u64,
    principal: &Principal,
    error: ExecError,
) -> Result<Answer, ApiError> {
    match app.cache.fallback(plan, ttl_secs, principal, Utc::now()) {
        Some((entry, outcome)) => {
            if outcome == Outcome::Stale {
                tracing::warn!(error = %error, "database could not answer; serving a stale entry");
            }
            Ok(Answer {
                entry,
                outcome,
                browser_ttl_secs: None,
            })
        }
        None => Err(ApiError::Exec(error)),
    }
}
