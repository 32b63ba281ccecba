//! Integration tests on a real PostgreSQL. One binary, so the suite links
//! once and shares one throwaway cluster.

mod harness;

mod auth;
mod cache;
mod compile;
mod dashboards;
mod e2e;
mod edge;
mod health;
mod injection;
mod instances;
mod openapi;
mod rls;
mod stale;
mod widgets;
