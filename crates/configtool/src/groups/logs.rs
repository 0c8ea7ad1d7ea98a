//! ActionLogArchiving and ElasticSearch: where action logs are archived and which logs model
//! stores them.

use crate::ValidationError;
use crate::check::{Group, Object, as_port, present, text};
use crate::groups::{ACTION_LOG_ARCHIVING, ELASTICSEARCH};

/// Quay's logs models.
const LOGS_MODELS: &[&str] = &[
    "database",
    "transition_reads_both_writes_es",
    "elasticsearch",
    "splunk",
];
/// Where the Elasticsearch logs model writes.
const PRODUCERS: &[&str] = &["elasticsearch", "kinesis_stream", "kafka"];

/// With `FEATURE_ACTION_LOG_ROTATION`, old logs go to a storage location under a path.
pub(super) fn check_action_log_archiving(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(ACTION_LOG_ARCHIVING, config, out);
    if !g.flag("FEATURE_ACTION_LOG_ROTATION", false) {
        return;
    }
    g.required("ACTION_LOG_ARCHIVE_PATH");
    let location = g.required("ACTION_LOG_ARCHIVE_LOCATION");
    let Some(storage) = present(config, "DISTRIBUTED_STORAGE_CONFIG") else {
        g.error_at(
            "DISTRIBUTED_STORAGE_CONFIG",
            "DISTRIBUTED_STORAGE_CONFIG is required",
        );
        return;
    };
    let known = storage
        .as_object()
        .is_some_and(|locations| location.is_some_and(|l| locations.contains_key(l)));
    if location.is_some() && !known {
        g.error(
            &["ACTION_LOG_ARCHIVE_LOCATION", "DISTRIBUTED_STORAGE_CONFIG"],
            "ACTION_LOG_ARCHIVE_LOCATION must be in DISTRIBUTED_STORAGE_CONFIG",
        );
    }
}

/// With `LOGS_MODEL: elasticsearch`, the Elasticsearch connection (and the producer's)
/// settings are required. Nested keys are named as Quay names them in its messages
/// (`LOGS_MODEL_CONFIG.ELASTIC_SEARCH_CONFIG.HOST`).
pub(super) fn check_elasticsearch(config: &Object, out: &mut Vec<ValidationError>) {
    let mut g = Group::new(ELASTICSEARCH, config, out);
    let model = g.string("LOGS_MODEL").unwrap_or("database");
    g.one_of("LOGS_MODEL", model, LOGS_MODELS);
    if model != "elasticsearch" {
        return;
    }
    let Some(logs_config) = present(config, "LOGS_MODEL_CONFIG") else {
        g.error_at(
            "LOGS_MODEL_CONFIG",
            "LOGS_MODEL_CONFIG is required for Elasticsearch",
        );
        return;
    };
    let Some(logs_config) = logs_config.as_object() else {
        g.error_at(
            "LOGS_MODEL_CONFIG",
            "LOGS_MODEL_CONFIG must be of type object",
        );
        return;
    };
    let producer = text(logs_config, "producer").unwrap_or("elasticsearch");
    if !PRODUCERS.contains(&producer) {
        g.error_at(
            "LOGS_MODEL_CONFIG.producer",
            format!(
                "LOGS_MODEL_CONFIG.producer must be one of {}.",
                PRODUCERS.join(", ")
            ),
        );
    }
    const ES: &str = "LOGS_MODEL_CONFIG.ELASTIC_SEARCH_CONFIG";
    match present(logs_config, "elasticsearch_config").and_then(|v| v.as_object()) {
        None => g.error_at(ES, format!("{ES} is required for Elasticsearch")),
        Some(es) => {
            for (key, name) in [
                ("host", "HOST"),
                ("access_key", "ACCESS_KEY"),
                ("secret_key", "SECRET_KEY"),
            ] {
                if text(es, key).is_none() {
                    g.error_at(
                        &format!("{ES}.{name}"),
                        format!("{ES}.{name} is required for Elasticsearch"),
                    );
                }
            }
            if present(es, "port").and_then(as_port).is_none() {
                g.error_at(
                    &format!("{ES}.PORT"),
                    format!("{ES}.PORT is required for Elasticsearch"),
                );
            }
        }
    }
    let required: &[(&str, &str, &[&str])] = &[
        (
            "kinesis_stream",
            "kinesis_stream_config",
            &["stream_name", "aws_region"],
        ),
        ("kafka", "kafka_config", &["bootstrap_servers", "topic"]),
    ];
    for (name, key, fields) in required {
        if producer != *name {
            continue;
        }
        let section = format!("LOGS_MODEL_CONFIG.{}", key.to_ascii_uppercase());
        match present(logs_config, key).and_then(|v| v.as_object()) {
            None => g.error_at(&section, format!("{section} is required for {name}")),
            Some(settings) => {
                for field in *fields {
                    if present(settings, field).is_none() {
                        let tag = format!("{section}.{}", field.to_ascii_uppercase());
                        g.error_at(&tag, format!("{tag} is required for {name}"));
                    }
                }
            }
        }
    }
}
