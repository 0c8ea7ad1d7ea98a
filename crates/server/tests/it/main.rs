//! HTTP integration tests of the registry: a real server on 127.0.0.1:0 driven with reqwest,
//! every test once on SQLite and once on PostgreSQL.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod access;
mod api_orgs;
mod api_repositories;
mod blobs;
mod config;
mod gc;
mod harness;
mod health;
mod listing;
mod manifests;
mod matrix;
mod metrics;
mod rate_limits;
mod s3;
mod tls;
mod uploads;
