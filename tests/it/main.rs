//! Integration tests on a real PostgreSQL (and a real Redis where they
//! need one). One binary, so the suite links once and shares one
//! throwaway cluster.

mod harness;
mod replica;

mod auth;
mod bundle_store;
mod bundles;
mod cache;
mod compile;
mod contract;
mod dashboards;
mod e2e;
mod edge;
mod external;
mod faults;
mod fleet;
mod health;
mod injection;
mod instances;
mod limits;
mod migrations;
mod openapi;
mod pages;
mod privacy;
mod redis;
mod redis_server;
mod replicas;
mod rest_counts;
mod rest_doc;
mod rest_logic;
mod rest_upsert;
mod rls;
mod seed004;
mod stale;
mod supervisor;
mod warming;
mod widgets;
