//! One widget-data request, end to end: plan (pure) -> sql -> cache -> exec.
//!
//! Takes an authenticated principal and a parsed request; gives the rows
//! with their timestamps. Knows nothing of HTTP: its `Context` holds what
//! a request needs (the callers' database, the schema, the cache, limits
//! and lifetimes), not the whole service.

use crate::auth::Principal;
use crate::cache::{Cache, Entry, Key, KeyState, Outcome, Recipe};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::exec::{Database, ExecError, Lsn};
use crate::plan::{self, DataSource, Filter, Limits, QueryPlan};
use crate::schema::{self, Privilege, SchemaCache};
use crate::sql;
use crate::widgets::{self, LastDefinitions, Presentation};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use std::sync::Arc;
use uuid::Uuid;

mod plans;
mod warm;

pub use plans::{Planned, PlansByBody};
pub use warm::Warmed;

/// What the pipeline needs of the service.
pub struct Context {
    /// Callers' queries.
    pub db: Arc<Database>,
    pub schema: Arc<schema::Handle>,
    pub cache: Arc<Cache>,
    pub limits: Limits,
    pub lifetimes: Lifetimes,
    /// Plans of recent ad-hoc request bodies.
    plans: PlansByBody,
    /// Saved widgets as last loaded, for stale-if-error.
    widgets: LastDefinitions,
}

/// How long answers are kept.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// `CACHE_DEFAULT_TTL_SECS`: ad-hoc queries, and widgets without one.
    pub default_secs: u64,
    /// `CACHE_MAX_TTL_SECS`: no entry outlives this.
    pub max_secs: u64,
}

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
    /// What a saved widget adds beside its rows: its own browser lifetime
    /// and the bundle that renders it.
    pub presentation: Presentation,
    /// How the answer's `total` is made from its rows.
    pub total: plan::Total,
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

impl Context {
    pub fn new(
        db: Arc<Database>,
        schema: Arc<schema::Handle>,
        cache: Arc<Cache>,
        limits: Limits,
        lifetimes: Lifetimes,
    ) -> Self {
        Self {
            db,
            schema,
            cache,
            limits,
            lifetimes,
            plans: PlansByBody::default(),
            widgets: LastDefinitions::default(),
        }
    }

    /// The query a request body asked for when it was seen before (under
    /// the current schema): no parsing, no planning.
    pub fn remembered(&self, body: &[u8]) -> Option<Query> {
        let Planned {
            plan,
            force_refresh,
        } = self.plans.get(body, &self.schema.schema())?;
        Some(Query {
            source: Source::Config(plan),
            runtime_filters: Vec::new(),
            force_refresh,
        })
    }

    /// Plans an ad-hoc data source with the request's `filters` ANDed on,
    /// and remembers the plan by the `body` that asked for it.
    pub fn ad_hoc(
        &self,
        body: Bytes,
        source: &DataSource,
        filters: &[Filter],
        force_refresh: bool,
        principal: &Principal,
    ) -> Result<Query, ApiError> {
        let schema = self.schema.schema();
        let plan = plan::plan(source, filters, &schema, &self.limits)
            .map_err(|e| unless_unreadable(e, source, &schema, principal))?;
        let plan = Arc::new(plan);
        let planned = Planned {
            plan: Arc::clone(&plan),
            force_refresh,
        };
        self.plans.remember(body, schema, planned);
        Ok(Query {
            source: Source::Config(plan),
            runtime_filters: Vec::new(),
            force_refresh,
        })
    }

    /// The statement `query` would run for `principal`, with its parameters
    /// (for display: the playground shows it to `service_role`).
    pub async fn statement(
        &self,
        principal: &Principal,
        query: &Query,
        deadline: Deadline,
    ) -> Result<(String, Vec<serde_json::Value>), ApiError> {
        let resolved = resolve(self, principal, query, deadline).await?;
        Ok(sql::statement(&resolved.plan))
    }

    /// Answers `query` for `principal` by `deadline` (see [`run`]).
    pub async fn run(
        &self,
        principal: &Principal,
        query: &Query,
        deadline: Deadline,
    ) -> Result<Answer, ApiError> {
        run(self, principal, query, deadline).await
    }
}

/// A data source naming a table the caller's role may not read gets the
/// permission error it would get from PostgreSQL, not a planner error that
/// tells which of its columns exist.
fn unless_unreadable(
    error: plan::PlanError,
    source: &DataSource,
    schema: &SchemaCache,
    principal: &Principal,
) -> ApiError {
    match schema.resolve(&source.table) {
        Some(table)
            if !table
                .grants
                .allows(principal.role.as_str(), Privilege::Select) =>
        {
            ApiError::Exec(ExecError::PermissionDenied {
                message: format!("permission denied for table {}", table.name),
            })
        }
        _ => ApiError::Plan(error),
    }
}

/// Answers `query` for `principal` by `deadline`: from the cache, by
/// running the query, or (when the database cannot answer) from the last
/// entry it knows of.
async fn run(
    cx: &Context,
    principal: &Principal,
    query: &Query,
    deadline: Deadline,
) -> Result<Answer, ApiError> {
    let Resolved {
        plan,
        ttl_secs,
        widget,
        presentation,
    } = resolve(cx, principal, query, deadline).await?;
    // However long a widget asks to be kept, no entry outlives this.
    let ttl_secs = ttl_secs.min(cx.lifetimes.max_secs);
    let asked = Asked {
        plan: &plan,
        ttl_secs,
        principal,
        widget,
    };
    let hit = |key: &KeyState| match key {
        KeyState::Ready(key) if !query.force_refresh => asked.fresh(cx, key),
        _ => None,
    };
    let mut key = cx.cache.key(&plan, ttl_secs, principal);
    if let Some(entry) = hit(&key) {
        return Ok(Answer {
            entry,
            outcome: Outcome::Hit,
            presentation,
            total: plan.total(),
        });
    }
    // Known to be down: answer from what we have, without waiting on it.
    if cx.db.health().is_down() {
        return fall_back(cx, &plan, ttl_secs, principal, ExecError::Down)
            .map(|a| Answer { presentation, ..a });
    }
    // A table's version must be read first (after its change, or on a
    // new listening session): then the key, and perhaps a hit after all.
    if matches!(key, KeyState::Unsettled) {
        key = match Box::pin(cx.cache.settle(&plan, deadline)).await {
            true => cx.cache.key(&plan, ttl_secs, principal),
            false => KeyState::Uncacheable,
        };
        if let Some(entry) = hit(&key) {
            return Ok(Answer {
                entry,
                outcome: Outcome::Hit,
                presentation,
                total: plan.total(),
            });
        }
    }
    // Only a keyed answer may come from a replica: one that has replayed
    // what the key's versions name.
    let replayed = match &key {
        KeyState::Ready(_) => cx.cache.replayed_by(&plan),
        KeyState::Unsettled | KeyState::Uncacheable => None,
    };
    let compute = || compute(cx, &plan, ttl_secs, principal, deadline, replayed);
    let result = match &key {
        KeyState::Ready(key) => {
            let stamp = cx.cache.stamp(key, &plan, ttl_secs, principal);
            let filled = Box::pin(cx.cache.fill(
                key,
                stamp.as_ref(),
                widget,
                query.force_refresh,
                deadline,
                compute,
            ))
            .await;
            if let Ok((entry, _)) = &filled {
                asked.remember(cx, key, entry, Utc::now().timestamp());
            }
            filled
        }
        // Not cacheable: computed for this request alone.
        KeyState::Unsettled | KeyState::Uncacheable => Box::pin(compute())
            .await
            .map(|e| (Arc::new(e), Outcome::Miss)),
    };
    let answer = match result {
        Ok((entry, outcome)) => Answer {
            entry,
            outcome,
            presentation: Presentation::default(),
            total: plan.total(),
        },
        // Stale-if-error: an old answer beats none when PostgreSQL cannot
        // give a new one.
        Err(ApiError::Exec(e)) if e.is_unavailable() || matches!(e, ExecError::Timeout) => {
            fall_back(cx, &plan, ttl_secs, principal, e)?
        }
        Err(e) => return Err(e),
    };
    Ok(Answer {
        presentation,
        ..answer
    })
}

/// A query's plan, with what its source says about keeping the answer.
struct Resolved {
    plan: Arc<QueryPlan>,
    ttl_secs: u64,
    /// The saved widget asked for, if any.
    widget: Option<Uuid>,
    presentation: Presentation,
}

/// Plans `query`: an ad-hoc source is planned already; a saved widget is
/// loaded (as `principal`) and planned with its own filters, the
/// dashboard layers and the request's.
async fn resolve(
    cx: &Context,
    principal: &Principal,
    query: &Query,
    deadline: Deadline,
) -> Result<Resolved, ApiError> {
    match &query.source {
        Source::Config(plan) => Ok(Resolved {
            plan: Arc::clone(plan),
            ttl_secs: cx.lifetimes.default_secs,
            widget: None,
            presentation: Presentation::default(),
        }),
        Source::Widget(id) => {
            // Boxed, as the miss below: a hit's future stays small, and
            // moving it through the layers copies little.
            let load = widgets::load(&cx.db, &cx.widgets, principal, *id, deadline);
            let widget = Box::pin(load).await?;
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
            let plan = plan::plan(&widget.source, &filters, &cx.schema.schema(), &cx.limits)
                .map_err(|e| e.with_source_root("data_source"))?;
            Ok(Resolved {
                plan: Arc::new(plan),
                ttl_secs: widget.ttl_secs.unwrap_or(cx.lifetimes.default_secs),
                widget: Some(*id),
                presentation: widget.presentation.clone(),
            })
        }
    }
}

/// What one request asked the cache for: enough to compute it again.
struct Asked<'a> {
    plan: &'a Arc<QueryPlan>,
    ttl_secs: u64,
    principal: &'a Principal,
    widget: Option<Uuid>,
}

impl Asked<'_> {
    /// A fresh entry under `key`, marked read for warming.
    fn fresh(&self, cx: &Context, key: &Key) -> Option<Arc<Entry>> {
        let now = Utc::now();
        let entry = cx.cache.fresh(key, now)?;
        self.remember(cx, key, &entry, now.timestamp());
        Some(entry)
    }

    /// Marks `entry` read at `now` (Unix seconds), filing how to compute
    /// it again the first time.
    fn remember(&self, cx: &Context, key: &Key, entry: &Entry, now: i64) {
        cx.cache.remember(key, entry, now, || {
            Recipe::new(
                Arc::clone(self.plan),
                self.ttl_secs,
                self.principal.clone(),
                self.widget,
                now,
            )
        });
    }
}

/// Runs `plan` for `principal` and makes an entry of its rows that lives
/// `ttl_secs`: on a replica that has replayed up to `replayed`, else on
/// the primary.
async fn compute(
    cx: &Context,
    plan: &QueryPlan,
    ttl_secs: u64,
    principal: &Principal,
    deadline: Deadline,
    replayed: Option<Lsn>,
) -> Result<Entry, ApiError> {
    let (sql, values) = sql::build(plan);
    let cached_at = Utc::now();
    let (data, _) = cx
        .db
        .query_json_read(
            principal,
            deadline,
            sqlx::AssertSqlSafe(sql),
            values,
            replayed,
        )
        .await?;
    let ttl = chrono::Duration::seconds(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 1000));
    Ok(Entry::new(data, cached_at, cached_at + ttl))
}

/// The entry the cache last knew for this query and caller, or `error`.
fn fall_back(
    cx: &Context,
    plan: &QueryPlan,
    ttl_secs: u64,
    principal: &Principal,
    error: ExecError,
) -> Result<Answer, ApiError> {
    match cx.cache.fallback(plan, ttl_secs, principal, Utc::now()) {
        Some((entry, outcome)) => {
            if outcome == Outcome::Stale {
                tracing::warn!(error = %error, "database could not answer; serving a stale entry");
            }
            Ok(Answer {
                entry,
                outcome,
                presentation: Presentation::default(),
                total: plan.total(),
            })
        }
        None => Err(ApiError::Exec(error)),
    }
}
