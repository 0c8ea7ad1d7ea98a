//! The bundle through Wharf's own loader ([`config::Config::from_yaml_str`]): whatever
//! `wharf serve` would refuse to load and the field groups did not already report.

use std::borrow::Cow;

use config::{Config, ConfigError};

use crate::groups::{
    ACCESS_SETTINGS, APP_TOKEN_AUTHENTICATION, DATABASE, DISTRIBUTED_STORAGE, GENERAL,
    HOST_SETTINGS, REDIS, TIME_MACHINE, USER_VISIBLE_SETTINGS,
};
use crate::{Bundle, ValidationError};

pub(super) fn check(bundle: &Bundle, out: &mut Vec<ValidationError>) {
    // JSON is YAML, so a bundle that came as JSON goes through the same loader; positions in
    // it mean nothing to the user and are left out.
    let (text, positions) = match bundle.source() {
        Some(text) => (Cow::Borrowed(text), true),
        None => match serde_json::to_string(&bundle.config) {
            Ok(json) => (Cow::Owned(json), false),
            Err(_) => return,
        },
    };
    let error = match Config::from_yaml_str(&text) {
        Ok(_) => return,
        Err(error) => error,
    };
    let (key, message) = match error {
        ConfigError::InvalidValue {
            key,
            location,
            reason,
        } => {
            let message = match location.filter(|_| positions) {
                Some(at) => format!("invalid value for {key} at {at}: {reason}"),
                None => format!("invalid value for {key}: {reason}"),
            };
            (Some(key), message)
        }
        other => (None, other.to_string()),
    };
    if let Some(key) = &key {
        let nested = format!("{key}.");
        let reported = out
            .iter()
            .any(|e| e.tags.iter().any(|t| t == key || t.starts_with(&nested)));
        if reported {
            return;
        }
    }
    out.push(ValidationError {
        field_group: key.as_deref().map_or(GENERAL, group_of).to_owned(),
        tags: key.into_iter().collect(),
        message,
    });
}

/// The field group of a top-level key Wharf reads.
fn group_of(key: &str) -> &'static str {
    match key {
        "DB_URI" | "DB_CONNECTION_ARGS" | "DB_CONNECTION_POOLING" | "DATABASE_SECRET_KEY" => {
            DATABASE
        }
        "SERVER_HOSTNAME"
        | "PREFERRED_URL_SCHEME"
        | "EXTERNAL_TLS_TERMINATION"
        | "SSL_PROTOCOLS"
        | "SSL_CIPHERS" => HOST_SETTINGS,
        "FEATURE_STORAGE_REPLICATION" | "FEATURE_PROXY_STORAGE" => DISTRIBUTED_STORAGE,
        k if k.starts_with("DISTRIBUTED_STORAGE_") => DISTRIBUTED_STORAGE,
        "DEFAULT_TAG_EXPIRATION" | "TAG_EXPIRATION_OPTIONS" | "FEATURE_CHANGE_TAG_EXPIRATION" => {
            TIME_MACHINE
        }
        "AUTHENTICATION_TYPE"
        | "SUPER_USERS"
        | "GLOBAL_READONLY_SUPER_USERS"
        | "FEATURE_SUPER_USERS"
        | "FEATURE_SUPERUSERS_FULL_ACCESS"
        | "FEATURE_ANONYMOUS_ACCESS"
        | "FEATURE_USER_CREATION"
        | "FEATURE_USER_INITIALIZE"
        | "FEATURE_USER_METADATA"
        | "CREATE_PRIVATE_REPO_ON_PUSH" => ACCESS_SETTINGS,
        "FEATURE_APP_SPECIFIC_TOKENS" => APP_TOKEN_AUTHENTICATION,
        "REGISTRY_TITLE" => USER_VISIBLE_SETTINGS,
        "BUILDLOGS_REDIS" | "USER_EVENTS_REDIS" => REDIS,
        _ => GENERAL,
    }
}
