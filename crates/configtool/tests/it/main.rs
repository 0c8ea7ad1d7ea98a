//! The config tool's tests: every field group's rules and messages (`groups`), TLS
//! certificates made with rcgen (`certs`), online checks against the PostgreSQL and Redis
//! of the machine and closed ports (`online`), and the HTTP API (`api`).

#![allow(clippy::unwrap_used)]

mod api;
mod certs;
mod groups;
mod online;

use std::collections::BTreeMap;

use configtool::{Bundle, ValidationError};
use serde_json::{Map, Value, json};

/// A config every offline rule accepts.
fn valid_config() -> Map<String, Value> {
    json!({
        "SERVER_HOSTNAME": "quay.example.com",
        "DB_URI": "postgresql://quay:secret@db.example.com:5432/quay",
        "DATABASE_SECRET_KEY": "a-long-random-string",
        "DISTRIBUTED_STORAGE_CONFIG": {
            "default": ["LocalStorage", {"storage_path": "/datastorage/registry"}]
        },
        "DISTRIBUTED_STORAGE_PREFERENCE": ["default"],
        "BUILDLOGS_REDIS": {"host": "redis.example.com", "port": 6379},
        "USER_EVENTS_REDIS": {"host": "redis.example.com", "port": 6379},
    })
    .as_object()
    .cloned()
    .unwrap()
}

/// The valid config with `changes` applied: a `null` removes a key.
fn config_with(changes: Value) -> Map<String, Value> {
    let mut config = valid_config();
    for (key, value) in changes.as_object().cloned().unwrap() {
        if value.is_null() {
            config.remove(&key);
        } else {
            config.insert(key, value);
        }
    }
    config
}

fn bundle_with(changes: Value) -> Bundle {
    Bundle::new(config_with(changes), BTreeMap::new())
}

/// The offline problems of `bundle` as `(group, tags, message)`.
fn offline(bundle: &Bundle) -> Vec<(String, Vec<String>, String)> {
    triples(configtool::validate_offline(bundle))
}

fn triples(problems: Vec<ValidationError>) -> Vec<(String, Vec<String>, String)> {
    problems
        .into_iter()
        .map(|e| (e.field_group, e.tags, e.message))
        .collect()
}

/// `(group, tags, message)` from string slices.
fn p(group: &str, tags: &[&str], message: &str) -> (String, Vec<String>, String) {
    (
        group.to_owned(),
        tags.iter().map(|t| (*t).to_owned()).collect(),
        message.to_owned(),
    )
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
