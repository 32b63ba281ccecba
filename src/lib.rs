//! widget-data answers dashboard widgets' data requests from PostgreSQL.
//!
//! A request travels one pipeline, each stage in its own module:
//!
//! ```text
//! http (auth, body) -> plan (pure) -> sql (sea-query) -> cache -> exec (Postgres)
//! ```
//!
//! | stage | module | does |
//! |---|---|---|
//! | edge | [`http`] | routing, JWT check ([`auth`]), body parsing, error rendering |
//! | plan | [`plan`] | pure: untrusted `DataSource` + [`schema::SchemaCache`] -> `QueryPlan` |
//! | sql | [`sql`] | pure: `QueryPlan` -> SQL text and bind values (the only sea-query user) |
//! | cache | [`cache`] | answers by key (query, data versions, caller's scope); coalesces misses |
//! | exec | [`exec`] | runs it in a read-only transaction under the caller's role |
//!
//! Beside it: [`rest`] (pure: PostgREST-style requests on the dashboard
//! tables, rendered by [`sql`] and run by [`exec`] as the caller) and
//! [`widgets`] (saved widgets: loading, filter layers, checks on save).
//!
//! Around them: [`config`] (environment), [`app`] (shared state),
//! [`db`] (connect, migrate, seed) and [`error`] (the one error type that
//! becomes an HTTP response). The private PostgreSQL for `cargo run` and
//! the tests is a crate of its own in the workspace, [`embedded_pg`]
//! (`crates/embedded-pg`), so these modules' unit tests need no database.

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod db;
pub mod deadline;
pub mod error;
pub mod exec;
pub mod http;
pub mod json;
pub mod pipeline;
pub mod plan;
pub mod rate_limit;
pub mod rest;
pub mod schema;
pub mod sql;
pub mod widgets;
