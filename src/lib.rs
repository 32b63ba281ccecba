//! widget-data answers dashboard widgets' data requests from PostgreSQL.
//!
//! A request travels one pipeline, each stage in its own module, imports
//! pointing one way (down this list; `layout` checks it):
//!
//! ```text
//! http (parse, render) -> pipeline -> plan (pure) -> sql (sea-query) -> cache -> exec (Postgres)
//! ```
//!
//! | stage | module | does |
//! |---|---|---|
//! | edge | [`http`] | routing, JWT check ([`auth`]), body parsing, error rendering; nothing else |
//! | pipeline | [`pipeline`] | one widget-data request end to end, with a narrow `Context` |
//! | plan | [`plan`] | pure: untrusted `DataSource` + [`schema::SchemaCache`] -> `QueryPlan` |
//! | sql | [`sql`] | pure: `QueryPlan` -> SQL text and bind values (the only sea-query user) |
//! | cache | [`cache`] | answers by key (query, data versions, caller's scope); coalesces misses |
//! | exec | [`exec`] | runs it in a read-only transaction under the caller's role |
//!
//! Beside the pipeline: [`dashboards`] (`/rest/v1` and the action form:
//! requests parsed by [`rest`] (pure), rendered by [`sql`], run by
//! [`exec`] as the caller) and [`widgets`] (saved widgets: loading, filter
//! layers, checks on save), which both use.
//!
//! Below them: [`schema`] (the schema cache and its handle), [`auth`],
//! [`db`] (connect, migrate, seed, health), [`deadline`], [`json`]
//! (strict parsing), [`config`] (environment), [`error`] (the one error
//! type that becomes an HTTP response) and [`code`] (its codes).
//!
//! Around them: [`app`] (the components every request shares),
//! [`listener`] (hears schema reloads and data changes),
//! [`rate_limit`] and [`shared`] (the link to the Redis instances
//! share: a cache level and the fleet-wide rate limit). [`bundles`] pins
//! and serves third-party widget bundles. The private PostgreSQL for `cargo run` and the tests is
//! a crate of its own in the workspace, [`embedded_pg`]
//! (`crates/embedded-pg`), so these modules' unit tests need no database.

pub mod app;
pub mod auth;
pub mod bundles;
pub mod cache;
pub mod code;
pub mod config;
pub mod dashboards;
pub mod db;
pub mod deadline;
pub mod error;
pub mod exec;
pub mod http;
pub mod json;
pub mod listener;
pub mod pipeline;
pub mod plan;
pub mod rate_limit;
pub mod rest;
pub mod schema;
pub mod shared;
pub mod sql;
pub mod widgets;

#[cfg(test)]
mod layout;
